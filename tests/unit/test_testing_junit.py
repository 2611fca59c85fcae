"""JUnit XML from ``gxo test --junit``, read back with a real JUnit parser (junitparser)."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from junitparser import Failure, JUnitXml, Skipped

from gxo.testing.discovery import TestFile
from gxo.testing.execute import FAIL, PASS, SKIP, Outcome
from gxo.testing.junit import write_junit
from gxo.testing.runner import main


def outcome(name: str, status: str, **kw) -> Outcome:
    return Outcome(
        TestFile(Path(f"/x/{name}.test.gxo.yaml"), f"tests/{name}.test.gxo.yaml"),
        name,
        status,
        **kw,
    )


def test_one_testcase_per_file_with_failures_skips_and_output(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "junit.xml"
    write_junit(
        [
            outcome(
                "ok", PASS, duration=0.25, output=["work: Completed (0.01s)", "    stdout | hi"]
            ),
            outcome(
                "bad",
                FAIL,
                duration=1.5,
                message="workload 'check' failed: 1 of 2 assertions failed",
                kind="workload-failed",
                details=[
                    "x.yaml:4:5: workload 'check' (test:assert) failed",
                    "    expected: 1",
                    "    actual:   2 \x1b[31m",
                ],
            ),
            outcome("later", SKIP, message="when condition is false"),
        ],
        target,
    )
    xml = JUnitXml.fromfile(str(target))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "gxo test"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (3, 1, 0, 1)
    cases = {case.name: case for case in suite}
    assert set(cases) == {"ok", "bad", "later"}
    assert cases["ok"].is_passed
    assert cases["ok"].classname == "tests/ok.test.gxo.yaml"
    assert cases["ok"].time == 0.25
    assert cases["ok"].system_out == "work: Completed (0.01s)\n    stdout | hi"
    failure = cases["bad"].result[0]
    assert isinstance(failure, Failure)
    assert failure.message == "workload 'check' failed: 1 of 2 assertions failed"
    assert failure.type == "workload-failed"
    assert (
        "expected: 1" in failure.text and "actual:   2 [31m" in failure.text
    )  # control chars removed
    skipped = cases["later"].result[0]
    assert isinstance(skipped, Skipped)
    assert skipped.message == "when condition is false"


def test_gxo_test_junit_option_writes_a_parsable_report(tmp_path: Path) -> None:
    (tmp_path / "pass.test.gxo.yaml").write_text(
        textwrap.dedent(
            """
            schemaVersion: "1.0.0"
            name: passing
            workloads:
              - name: check
                process: { module: test:assert, params: { assertions: [{ actual: 1, equal_to: 1 }] } }
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "invalid.test.gxo.yaml").write_text(
        "schemaVersion: '1.0.0'\nname: x\n", encoding="utf-8"
    )
    report = tmp_path / "out.xml"
    code = main([tmp_path], junit=report, stdout=io.StringIO())
    assert code == 1
    suite = next(iter(JUnitXml.fromfile(str(report))))
    assert (suite.tests, suite.failures) == (2, 1)
    cases = {case.name: case for case in suite}
    assert cases["passing"].is_passed
    failure = cases["invalid"].result[0]
    assert failure.type == "invalid-playbook"
    assert "invalid.test.gxo.yaml" in failure.message
    assert "workloads" in failure.message
