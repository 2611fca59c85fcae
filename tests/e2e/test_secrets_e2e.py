"""`gxo run -v --report` on tests/playbooks/secrets_derived.gxo.yaml: no form of a secret leaks."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

PLAYBOOKS = Path(__file__).parent.parent / "playbooks"
TOKEN = "tok-Abc/9+xY=zq 42"
PEM = (
    "-----BEGIN KEY-----\n"
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX\n"
    "6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n"
    "-----END KEY-----\n"
)
METHOD = "supersecretverb"


def _forms() -> list[str]:
    values = [TOKEN, TOKEN.upper(), TOKEN[1:], TOKEN[::-1], TOKEN.replace("-", "_"), METHOD]
    out = []
    for v in values:
        out += [v, quote(v, safe=""), quote_plus(v), base64.b64encode(v.encode()).decode()]
    out += [ln for ln in PEM.splitlines() if "KEY" not in ln]
    out += [repr(PEM.encode())[2:-1], METHOD.upper(), TOKEN[:6]]
    return out


def test_no_form_of_a_secret_reaches_progress_or_the_report(gxo, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = gxo(
        "run",
        str(PLAYBOOKS / "secrets_derived.gxo.yaml"),
        "-v",
        "--report",
        str(report),
        env={"GXO_TEST_TOKEN": TOKEN, "GXO_TEST_PEM": PEM, "GXO_TEST_METHOD": METHOD},
    )
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    for form in _forms():
        for where, output in (("stdout", proc.stdout), ("stderr", proc.stderr), ("report", text)):
            assert form not in output, f"{form!r} leaked in {where}"
    data = json.loads(text)["workloads"]
    # printed before secret() was first evaluated: registered at load, so redacted
    assert data["early_print"]["summary"]["stdout"] == "early [REDACTED]"
    assert "early_print | early [REDACTED]" in proc.stderr
    derived = data["derived"]["summary"]
    assert derived.pop("chars") == ["[REDACTED]"] * len(TOKEN)
    assert set(derived.values()) == {"[REDACTED]"}, derived
    lines = data["echo_forms"]["summary"]["stdout_lines"]
    assert lines[:5] == [
        "upper [REDACTED]",
        "rev [REDACTED]",
        "b64 [REDACTED]",
        "url [REDACTED] [REDACTED]",
        "bytes b'[REDACTED]'",
    ]
    assert lines[5:] == ["[REDACTED]"] * 4  # the PEM, line by line
    # the error excerpt is cut at 300 characters after redaction
    assert data["cut_excerpt"]["error"].endswith("0[REDACTED]")
    assert "(got [REDACTED])" in data["bad_method"]["error"]


def test_gxo_test_fail_lines_and_junit_show_no_secret(gxo, tmp_path: Path) -> None:
    (tmp_path / "fail.test.gxo.yaml").write_text(
        """schemaVersion: "1.0.0"
name: failing
workloads:
  - name: echo
    process: { module: exec, params: { command: echo, args: ["Bearer {{ secret('GXO_TEST_TOKEN') | upper }}"] } }
    register: echoed
  - name: check
    process:
      module: test:assert
      params:
        assertions:
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer {{ secret('GXO_TEST_TOKEN') | upper }}" }
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer {{ secret('GXO_TEST_TOKEN') }}" }
          - { actual: "{{ echoed.stdout }}", equal_to: "Bearer! {{ secret('GXO_TEST_TOKEN') }}" }
"""
    )
    junit = tmp_path / "j.xml"
    proc = gxo("test", str(tmp_path), "-v", "--junit", str(junit), env={"GXO_TEST_TOKEN": TOKEN})
    assert proc.returncode == 1
    assert "assertions[0]" not in proc.stdout.split("--- FAIL")[-1]  # the true values are equal
    xml = junit.read_text()
    for output in (proc.stdout, proc.stderr, xml):
        for form in (TOKEN, TOKEN.upper(), TOKEN[:6], TOKEN.upper()[:6]):
            assert form not in output
        assert not any(line.strip().startswith("? ") for line in output.splitlines())
    assert "differ inside a secret" in proc.stdout
