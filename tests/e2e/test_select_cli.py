"""``gxo run --only/--skip/--from/--tags/--skip-tags``, and the workspace defaulting to
the playbook's directory (``_gxo.playbook_dir``, ``_gxo.playbook``).

In-process through the CLI (typer's runner): each run costs milliseconds, not a
Python start-up; one subprocess checks the real command's exit code and output.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gxo.cli import app
from gxo.config.loader import load_playbook
from gxo.config.select import Selection, missing_registers, select_workloads, split_values
from gxo.errors import UsageError

PLAYBOOK = """
schemaVersion: "1.0.0"
name: selection
workloads:
  - name: fetch
    tags: [db]
    process: {module: exec, params: {command: echo, args: [fetched]}}
    register: fetched
  - name: transform
    tags: [etl]
    process: {module: exec, params: {command: echo, args: ["{{ fetched.stdout }}-t"]}}
    register: transformed
  - name: load
    tags: [db, deploy]
    process: {module: exec, params: {command: echo, args: ["{{ transformed.stdout }}-l"]}}
    register: loaded
  - name: notify
    tags: [notify]
    depends_on: [load]
    process: {module: exec, params: {command: echo, args: ["{{ loaded.stdout | default('none') }}"]}}
  - name: lint
    process: {module: exec, params: {command: "true"}}
"""

STREAMS = """
schemaVersion: "1.0.0"
name: streams
workloads:
  - name: gen
    process: {module: data:generate_from_list, params: {items: [1, 2]}}
  - name: sink
    stream_inputs: [gen]
    process: {module: passthrough}
  - name: after
    depends_on: [sink]
    process: {module: exec, params: {command: "true"}}
"""


@pytest.fixture(scope="module")
def playbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("select") / "site.gxo.yaml"
    path.write_text(textwrap.dedent(PLAYBOOK).lstrip(), encoding="utf-8")
    return path


def run(*args: str) -> tuple[int, str, dict[str, Any] | None]:
    """``gxo run ARGS --report -``: exit code, stderr and the report."""
    result = CliRunner().invoke(app, ["run", *args, "-q", "--report", "-"])
    report = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result.exit_code, result.stderr, report


def statuses(report: dict[str, Any] | None) -> dict[str, str]:
    assert report is not None
    return {
        name: w["status"] + (f" ({w['reason']})" if w.get("reason") else "")
        for name, w in report["workloads"].items()
    }


def test_only_runs_what_the_workload_needs(playbook: Path) -> None:
    code, err, report = run(str(playbook), "--only", "load")
    assert code == 0, err
    assert statuses(report) == {
        "fetch": "Completed",
        "transform": "Completed",
        "load": "Completed",
        "notify": "Skipped (not selected)",
        "lint": "Skipped (not selected)",
    }
    assert report["workloads"]["load"]["summary"]["stdout"] == "fetched-t-l"


def test_only_is_repeatable_and_comma_separated(playbook: Path) -> None:
    code, err, report = run(str(playbook), "--only", "fetch,lint", "--only", "fetch")
    assert code == 0, err
    done = {n for n, s in statuses(report).items() if s == "Completed"}
    assert done == {"fetch", "lint"}


def test_skip_leaves_out_and_dependents_see_a_skipped_dependency(playbook: Path) -> None:
    code, err, report = run(str(playbook), "--skip", "lint", "--skip", "notify")
    assert code == 0, err
    assert statuses(report)["lint"] == "Skipped (not selected)"
    assert statuses(report)["load"] == "Completed"


def test_skip_of_a_needed_register_is_refused(playbook: Path) -> None:
    code, err, _ = run(str(playbook), "--skip", "fetch")
    assert code == 2
    assert "workload 'transform' reads register 'fetched' of workload 'fetch'" in err
    assert "--state" in err


def test_from_without_state_says_which_register_is_missing(playbook: Path) -> None:
    code, err, _ = run(str(playbook), "--from", "transform")
    assert code == 2
    assert "--from transform: workload 'transform' reads register 'fetched'" in err
    assert "no --state store" in err


def test_from_reuses_the_results_of_an_earlier_run_in_the_state_store(
    playbook: Path, tmp_path: Path
) -> None:
    from gxo.state.crypto import generate_key, write_key_file

    key = write_key_file(tmp_path / "k.key", generate_key())
    state = ["--state", f"sqlite:///{tmp_path / 'state.db'}", "--state-key-file", str(key)]
    code, err, _ = run(str(playbook), *state, "--only", "fetch")
    assert code == 0, err
    code, err, report = run(str(playbook), *state, "--from", "transform")
    assert code == 0, err
    assert statuses(report) == {
        "fetch": "Skipped (not selected)",
        "transform": "Completed",
        "load": "Completed",
        "notify": "Completed",
        "lint": "Skipped (not selected)",
    }
    assert report["workloads"]["notify"]["summary"]["stdout"] == "fetched-t-l"


def test_tags_and_skip_tags(playbook: Path) -> None:
    code, err, report = run(str(playbook), "--tags", "db")
    assert code == 0, err
    done = {n for n, s in statuses(report).items() if s == "Completed"}
    assert done == {"fetch", "transform", "load"}  # transform: load needs it
    code, err, report = run(str(playbook), "--tags", "db,notify", "--skip-tags", "notify")
    assert code == 0, err
    assert statuses(report)["notify"] == "Skipped (not selected)"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--only", "lod"), "--only: unknown workload 'lod' (did you mean 'load'?)"),
        (("--from", "fetc"), "--from: unknown workload 'fetc' (did you mean 'fetch'?)"),
        (("--skip", "zzz"), "--skip: unknown workload 'zzz'; known workloads: fetch, lint"),
        (("--tags", "dbb"), "--tags: unknown tag 'dbb' (did you mean 'db'?)"),
        (("--skip-tags", "x"), "--skip-tags: unknown tag 'x'; known tags: db, deploy, etl"),
        (("--only", "lint", "--skip", "lint"), "no workload is left to run"),
    ],
)
def test_unknown_names_and_tags_exit_2(
    playbook: Path, args: tuple[str, ...], expected: str
) -> None:
    code, err, report = run(str(playbook), *args)
    assert code == 2 and report is None
    assert expected in " ".join(err.split())


def test_selection_units(tmp_path: Path) -> None:
    path = tmp_path / "streams.gxo.yaml"
    path.write_text(textwrap.dedent(STREAMS).lstrip(), encoding="utf-8")
    loaded = load_playbook(path)
    assert select_workloads(loaded, Selection()) is None
    # --from a stream consumer brings its producer: a stream cannot be replayed.
    assert select_workloads(loaded, Selection(from_="sink")) == {"gen", "sink", "after"}
    assert select_workloads(loaded, Selection(from_="after")) == {"after"}
    assert select_workloads(loaded, Selection(only=["sink"])) == {"gen", "sink"}
    assert missing_registers(loaded, {"after"}) == []
    assert split_values(["a, b", "", "a,c"]) == ["a", "b", "c"]
    with pytest.raises(UsageError, match="the playbook has no tags"):
        select_workloads(loaded, Selection(tags=["x"]))
    assert Selection(only=["a"], from_=" b ").describe() == "--only a --from b"


DATA_PLAYBOOK = """
schemaVersion: "1.0.0"
name: where-am-i
workloads:
  - name: read
    process: {module: filesystem:read, params: {path: data.csv}}
    register: data
  - name: info
    process:
      module: exec
      params:
        command: echo
        args: ["{{ _gxo.playbook_dir }}|{{ _gxo.playbook.name }}|{{ _gxo.playbook.path }}|{{ _gxo.workspace }}"]
"""


def test_workspace_defaults_to_the_playbook_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pb_dir = tmp_path / "pb"
    pb_dir.mkdir()
    (pb_dir / "data.csv").write_text("a,b\n", encoding="utf-8")
    path = pb_dir / "site.gxo.yaml"
    path.write_text(textwrap.dedent(DATA_PLAYBOOK).lstrip(), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, err, report = run(os.path.relpath(path, elsewhere))
    assert code == 0, err
    assert report["workloads"]["read"]["summary"]["content"] == "a,b\n"
    real = str(pb_dir.resolve())
    assert report["workloads"]["info"]["summary"]["stdout"] == (
        f"{real}|where-am-i|{real}/site.gxo.yaml|{real}"
    )
    # --workspace still overrides: data.csv is looked for there.
    code, err, report = run(str(path), "--workspace", str(elsewhere))
    assert code == 1
    assert "data.csv" in report["workloads"]["read"]["error"]


def test_the_real_command(gxo, playbook: Path, tmp_path: Path) -> None:
    proc = gxo("run", str(playbook), "--only", "notfound", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "error: --only: unknown workload 'notfound'" in proc.stderr
    proc = gxo("run", str(playbook), "--tags", "etl", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2 completed, 3 skipped" in proc.stderr
