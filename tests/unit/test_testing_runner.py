"""``gxo test`` in process: output format, statuses, exit codes, ``-j`` ordering."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest

from gxo.errors import UsageError
from gxo.testing.runner import main

PASSING = """
schemaVersion: "1.0.0"
name: {name}
workloads:
  - name: work
    process: {{ module: exec, params: {{ command: sh, args: [-c, "sleep {sleep}; echo done"] }} }}
    register: out
  - name: check
    process:
      module: test:assert
      params: {{ assertions: [{{ actual: "{{{{ out.stdout }}}}", equal_to: done }}] }}
"""

FAILING = """
schemaVersion: "1.0.0"
name: broken
workloads:
  - name: check
    process:
      module: test:assert
      params:
        assertions:
          - { actual: "{{ [1, 2] }}", equal_to: [1, 3], msg: numbers }
"""


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run(paths: list[Path], **options) -> tuple[int, str]:
    out = io.StringIO()
    code = main(paths, stdout=out, **options)
    return code, out.getvalue()


RESULT = re.compile(r"^--- (PASS|FAIL|SKIP): (\S+) \(\d+\.\d\ds\)$", re.M)


def test_all_pass_prints_run_and_pass_lines_and_the_closing_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.test.gxo.yaml", PASSING.format(name="alpha", sleep=0))
    write(tmp_path, "sub/b.test.gxo.yaml", PASSING.format(name="beta", sleep=0))
    monkeypatch.chdir(tmp_path)
    code, out = run([Path(".")])
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "=== RUN   a.test.gxo.yaml"
    assert re.fullmatch(r"--- PASS: alpha \(\d+\.\d\ds\)", lines[1])
    assert lines[2] == "=== RUN   sub/b.test.gxo.yaml"
    assert re.fullmatch(r"--- PASS: beta \(\d+\.\d\ds\)", lines[3])
    assert lines[4:] == ["2 passed, 0 failed"]


def test_a_failure_shows_workload_assertion_expected_actual_and_diff(tmp_path: Path) -> None:
    write(tmp_path, "ok.test.gxo.yaml", PASSING.format(name="ok", sleep=0))
    bad = write(tmp_path, "bad.test.gxo.yaml", FAILING)
    code, out = run([tmp_path])
    assert code == 1
    assert RESULT.findall(out) == [("FAIL", "broken"), ("PASS", "ok")]
    block = out.split("--- FAIL: broken")[1].split("=== RUN")[0]
    assert (
        f"{bad.as_posix()}:4:5: workload 'check' (test:assert) failed: 1 of 1 assertions failed"
        in block
    )
    assert f"assertions[0] (numbers) at {bad.as_posix()}:9:13: equal_to" in block
    assert "expected: [1, 3]" in block
    assert "actual:   [1, 2]" in block
    assert "~ [1]: expected 3, actual 2" in block
    assert out.endswith("1 passed, 1 failed\n")


def test_an_invalid_test_file_is_a_fail_with_the_loader_message_and_others_still_run(
    tmp_path: Path,
) -> None:
    bad = write(
        tmp_path,
        "a_invalid.test.gxo.yaml",
        'schemaVersion: "1.0.0"\nname: x\nworkloads:\n  - name: w\n    proces: {}\n',
    )
    write(tmp_path, "b.test.gxo.yaml", PASSING.format(name="fine", sleep=0))
    write(tmp_path, "c_yaml.test.gxo.yaml", "name: [unclosed\n")
    code, out = run([tmp_path])
    assert code == 1
    assert RESULT.findall(out) == [("FAIL", "a_invalid"), ("PASS", "fine"), ("FAIL", "c_yaml")]
    assert (
        f"    {bad.as_posix()}:5:5: workload 'w': unknown key 'proces' (did you mean 'process'?)"
        in out
    )
    assert "c_yaml.test.gxo.yaml:2:1: YAML syntax error" in out
    assert "Traceback" not in out
    assert out.endswith("1 passed, 2 failed\n")


def test_a_test_whose_workloads_all_skip_themselves_is_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        "s.test.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: needs-prod
        vars: { env: dev }
        workloads:
          - name: only_prod
            when: "env == 'prod'"
            process: { module: control:identity, params: {} }
        """,
    )
    write(tmp_path, "t.test.gxo.yaml", PASSING.format(name="t", sleep=0))
    code, out = run([tmp_path])
    assert code == 0
    assert RESULT.findall(out) == [("SKIP", "needs-prod"), ("PASS", "t")]
    assert "    when condition is false" in out
    assert out.endswith("1 passed, 0 failed, 1 skipped\n")


def test_verbose_shows_each_workloads_status_duration_and_output(tmp_path: Path) -> None:
    write(tmp_path, "v.test.gxo.yaml", PASSING.format(name="verbose", sleep=0))
    code, out = run([tmp_path], verbose=True)
    assert code == 0
    assert re.search(r"^    work: Completed \(\d+\.\d\ds\)\n        stdout \| done$", out, re.M)
    assert re.search(
        r"^    check: Completed \(\d+\.\d\ds\)\n        ok    assertions\[0\]: equal_to$", out, re.M
    )
    # verbose output comes between the RUN and the PASS line
    assert out.index("=== RUN") < out.index("stdout | done") < out.index("--- PASS")


def test_run_selects_by_file_or_playbook_name(tmp_path: Path) -> None:
    write(tmp_path, "users.test.gxo.yaml", PASSING.format(name="crud", sleep=0))
    write(tmp_path, "orders.test.gxo.yaml", PASSING.format(name="orders-api", sleep=0))
    write(tmp_path, "broken.test.gxo.yaml", "not: [valid\n")
    assert RESULT.findall(run([tmp_path], run="users")[1]) == [("PASS", "crud")]
    assert RESULT.findall(run([tmp_path], run="-api$")[1]) == [("PASS", "orders-api")]
    assert RESULT.findall(run([tmp_path], run="crud|orders")[1]) == [
        ("PASS", "orders-api"),
        ("PASS", "crud"),
    ]
    with pytest.raises(UsageError, match=r"no test file matches --run 'nothing' \(3 found\)"):
        run([tmp_path], run="nothing")


def test_parallel_runs_print_whole_blocks_in_discovery_order(tmp_path: Path) -> None:
    # The first file is the slowest: with -j 3 it finishes last, but prints first.
    write(tmp_path, "a.test.gxo.yaml", PASSING.format(name="slow", sleep=0.4))
    write(tmp_path, "b.test.gxo.yaml", PASSING.format(name="quick", sleep=0))
    write(tmp_path, "c.test.gxo.yaml", FAILING)
    code, out = run([tmp_path], jobs=3, verbose=True)
    assert code == 1
    assert RESULT.findall(out) == [("PASS", "slow"), ("PASS", "quick"), ("FAIL", "broken")]
    blocks = out.split("=== RUN   ")[1:]
    assert [b.splitlines()[0].rsplit("/", 1)[-1] for b in blocks] == [
        "a.test.gxo.yaml",
        "b.test.gxo.yaml",
        "c.test.gxo.yaml",
    ]
    durations = [float(d) for d in re.findall(r"^--- \w+: \S+ \((\d+\.\d\d)s\)$", out, re.M)]
    assert durations[0] >= 0.4
    assert "2 passed, 1 failed" in out


def test_parallel_is_faster_than_sequential(tmp_path: Path) -> None:
    import time

    for i in range(4):
        write(tmp_path, f"t{i}.test.gxo.yaml", PASSING.format(name=f"t{i}", sleep=0.5))
    started = time.monotonic()
    assert run([tmp_path], jobs=4)[0] == 0
    assert time.monotonic() - started < 1.8  # sequential would take at least 2 s


def test_tests_run_in_their_own_directory_with_a_scratch_dir(tmp_path: Path) -> None:
    write(tmp_path, "suite/data/users.csv", "id,name\n1,ada\n")
    write(
        tmp_path,
        "suite/files.test.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: files
        workloads:
          - name: read_data
            process: { module: exec, params: { command: cat, args: [data/users.csv] } }
            register: data
          - name: scratch
            process:
              module: exec
              params: { command: sh, args: [-c, 'echo x > "$1/out.txt"; pwd', sh, "{{ gxo_test.tmp_dir }}"] }
            register: scratch
          - name: check
            process:
              module: test:assert
              params:
                assertions:
                  - { actual: "{{ data.stdout_lines[1] }}", equal_to: "1,ada" }
                  - { actual: "{{ scratch.stdout }}", equal_to: "{{ gxo_test.dir }}" }
                  - { actual: "{{ _gxo.workspace }}", equal_to: "{{ gxo_test.dir }}" }
                  - { actual: "{{ gxo_test.file }}", matches: "files\\\\.test\\\\.gxo\\\\.yaml$" }
                  - { actual: "{{ gxo_test.python }}", contains: python }
        """,
    )
    code, out = run([tmp_path / "suite"])
    assert code == 0, out
    assert not list((tmp_path / "suite").glob("out.txt"))


def test_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no test files \(\*\.test\.gxo\.yaml\) found in"):
        run([tmp_path])
    with pytest.raises(UsageError, match="no such file or directory"):
        run([tmp_path / "missing"])
    write(tmp_path, "a.test.gxo.yaml", PASSING.format(name="a", sleep=0))
    with pytest.raises(UsageError, match="--run: invalid regular expression"):
        run([tmp_path], run="[")
    with pytest.raises(UsageError, match="at least 1"):
        run([tmp_path], jobs=0)
    with pytest.raises(UsageError, match="is a directory"):
        run([tmp_path], junit=tmp_path)
