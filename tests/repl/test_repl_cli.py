"""``gxo repl`` as a real command (a subprocess; stdin is a pipe, so no prompt is drawn)."""

from __future__ import annotations

from pathlib import Path


def test_scripted_session(gxo, playbook_path: Path) -> None:
    script = "n * extra\n:run c\nc_out\n{{ nope }}\n:quit\nnot reached\n"
    proc = gxo("repl", str(playbook_path), "-e", "extra=5", input=script, timeout=60)
    assert proc.returncode == 1, proc.stderr  # `{{ nope }}` failed: a script can be checked
    out = proc.stdout
    assert out.startswith("10\n")
    assert "✔ c Completed" in out and "{'z': 50, 'a_status': 'Completed'}" in out
    assert "error: undefined name 'nope'" in out
    assert "not reached" not in out and "Traceback" not in out + proc.stderr


def test_bad_playbook_is_reported_and_session_goes_on(gxo, tmp_path: Path) -> None:
    bad = tmp_path / "bad.gxo.yaml"
    bad.write_text("schemaVersion: '1.0.0'\nname: x\nworkloads: [\n", encoding="utf-8")
    proc = gxo("repl", str(bad), input="1 + 1\n")
    assert proc.returncode == 0
    assert f"{bad}:" in proc.stdout and "YAML syntax error" in proc.stdout
    assert proc.stdout.endswith("2\n")


def test_bad_extra_vars_are_a_usage_error(gxo) -> None:
    proc = gxo("repl", "-e", "not-a-pair", input="")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
