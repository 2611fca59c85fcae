"""``gxo test`` as users run it: a subprocess on the real test playbooks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from junitparser import JUnitXml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "tests" / "playbooks"
FAILING = PLAYBOOKS / "failing"
RESULT = re.compile(r"^--- (PASS|FAIL|SKIP): (\S+) \(\d+\.\d\ds\)$", re.M)


def test_the_test_playbooks_and_examples_pass(gxo, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    proc = gxo(
        "test",
        "tests/playbooks",
        "examples",
        "-j",
        "4",
        "--junit",
        str(report),
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = RESULT.findall(proc.stdout)
    discovered = sorted(PLAYBOOKS.glob("*.test.gxo.yaml")) + sorted(
        (ROOT / "examples").glob("*.test.gxo.yaml")
    )
    assert len(results) == len(discovered) >= 8
    assert {status for status, _ in results} == {"PASS"}
    assert "quickstart-test" in {name for _, name in results}
    assert proc.stdout.splitlines()[-1] == f"{len(results)} passed, 0 failed"
    assert not any("failing/" in line for line in proc.stdout.splitlines())  # not discovered
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert (suite.tests, suite.failures) == (len(results), 0)


def run_failing(gxo, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return gxo("test", str(FAILING / name), *args, cwd=ROOT)


def test_assertion_failures_are_each_reported_with_expected_actual_and_diff(gxo) -> None:
    proc = run_failing(gxo, "assert_mismatch.fails.gxo.yaml")
    assert proc.returncode == 1
    out = proc.stdout
    where = "tests/playbooks/failing/assert_mismatch.fails.gxo.yaml"
    assert out.startswith(f"=== RUN   {where}\n--- FAIL: assert-mismatch (")
    assert (
        f"    {where}:15:5: workload 'check' (test:assert) failed: 6 of 7 assertions failed\n"
        in out
    )
    assert f"        assertions[0] (user record) at {where}:20:13: equal_to\n" in out
    assert '              ~ roles[1]: expected "dev", actual "ops"\n' in out
    assert "              - active: true   (missing from actual)\n" in out
    assert '              + email: "ada@example.org"   (not expected)\n' in out
    assert "              -BETA\n              +beta\n" in out  # unified diff of multi-line strings
    assert "            types:    expected string, actual int\n" in out
    assert "cannot evaluate actual: undefined name 'address' in '{{ user.address.city }}'" in out
    assert '["admin", "ops"] does not contain "root"' in out
    assert "assertions[2]" not in out  # the passing one
    assert out.endswith("0 passed, 1 failed\n")


def test_an_invalid_test_playbook_fails_with_file_line_and_the_others_still_run(gxo) -> None:
    proc = gxo(
        "test",
        str(FAILING / "invalid.fails.gxo.yaml"),
        str(PLAYBOOKS / "assert_operators.test.gxo.yaml"),
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert RESULT.findall(proc.stdout) == [("FAIL", "invalid.fails"), ("PASS", "assert-operators")]
    assert (
        "    tests/playbooks/failing/invalid.fails.gxo.yaml:10:34: workload 'check': module 'test:assert' params: "
        "unknown key 'equals' (did you mean 'equal_to'?)\n"
    ) in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.endswith("1 passed, 1 failed\n")


def test_a_failed_workload_shows_its_error_output_and_skipped_dependents(gxo) -> None:
    proc = run_failing(gxo, "workload_error.fails.gxo.yaml")
    assert proc.returncode == 1
    assert (
        "    tests/playbooks/failing/workload_error.fails.gxo.yaml:6:5: workload 'migrate' (exec) failed: "
        "command exited with code 4: relation users does not exist\n"
        "        output:\n"
        "          stdout | applying 0042\n"
        "          stderr | relation users does not exist\n"
        "    skipped because a dependency failed: check\n"
    ) in proc.stdout


def test_an_unmatched_mock_request_names_the_handlers(gxo) -> None:
    proc = run_failing(gxo, "unmatched_request.fails.gxo.yaml")
    assert proc.returncode == 1
    assert "workload 'get_user' (http:request) failed: GET http://127.0.0.1:" in proc.stdout
    assert (
        '"error": "no handler matched GET /v2/users/1", "handlers": ["GET /v1/users/{id}"]'
        in proc.stdout
    )


def test_every_failing_playbook_fails_and_junit_records_each(gxo, tmp_path: Path) -> None:
    files = sorted(str(p) for p in FAILING.glob("*.fails.gxo.yaml"))
    report = tmp_path / "junit.xml"
    proc = gxo("test", *files, "-j", "4", "--junit", str(report), cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1] == f"0 passed, {len(files)} failed"
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert (suite.tests, suite.failures) == (len(files), len(files))
    kinds = {case.name: case.result[0].type for case in suite}
    assert kinds["invalid.fails"] == "invalid-playbook"
    assert kinds["assert-mismatch"] == "workload-failed"


def test_verbose_and_run_selection(gxo) -> None:
    proc = gxo("test", "tests/playbooks", "--run", "^when-and", "-v", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert RESULT.findall(proc.stdout) == [("PASS", "when-and-skip")]
    assert re.search(r"^    only_prod: Skipped — when condition is false$", proc.stdout, re.M)
    assert re.search(r"^    check: Completed \(\d+\.\d\ds\)$", proc.stdout, re.M)
    assert proc.stdout.splitlines()[-1] == "1 passed, 0 failed"


def test_usage_errors_exit_2_with_a_message(gxo, tmp_path: Path) -> None:
    empty = gxo("test", str(tmp_path))
    assert empty.returncode == 2
    assert "no test files (*.test.gxo.yaml) found in" in empty.stderr
    missing = gxo("test", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no such file or directory" in missing.stderr
    bad_regex = gxo("test", "tests/playbooks", "--run", "(", cwd=ROOT)
    assert bad_regex.returncode == 2
    assert "--run: invalid regular expression '('" in bad_regex.stderr
    no_match = gxo("test", "tests/playbooks", "--run", "zzz-no-such-test", cwd=ROOT)
    assert no_match.returncode == 2
    assert "no test file matches --run 'zzz-no-such-test'" in no_match.stderr
    for proc in (empty, missing, bad_regex, no_match):
        assert "Traceback" not in proc.stderr


def test_watch_reruns_a_changed_test_and_ctrl_c_exits_0(tmp_path: Path) -> None:
    test_file = tmp_path / "w.test.gxo.yaml"
    body = (
        'schemaVersion: "1.0.0"\nname: watched\nworkloads:\n'
        "  - name: check\n    process: { module: test:assert, params: { assertions: [{ actual: 1, equal_to: EXPECTED }] } }\n"
    )
    test_file.write_text(body.replace("EXPECTED", "1"), encoding="utf-8")
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxo.cli", "test", "--watch", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: list[str] = []

        def wait_for(text: str, timeout: float = 20) -> None:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
                if text in line:
                    return
            raise AssertionError(f"{text!r} not seen; output so far:\n{''.join(lines)}")

        wait_for("watching ")
        time.sleep(0.3)
        test_file.write_text(body.replace("EXPECTED", "2"), encoding="utf-8")
        wait_for("--- FAIL: watched")
        wait_for("0 passed, 1 failed")
        wait_for("watching ")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert "Traceback" not in err + out
    text = "".join(lines)
    assert text.count("=== RUN") == 2
    assert re.search(
        r"^\[\d\d:\d\d:\d\d\] changed: .*w\.test\.gxo\.yaml — re-running 1 test file$", text, re.M
    )
