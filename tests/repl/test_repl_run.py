"""``:run WORKLOAD``: dependencies from the session, the offer to run missing ones."""

from __future__ import annotations

from pathlib import Path

import pytest


async def test_run_offers_missing_dependencies_and_runs_them_in_order(repl) -> None:
    repl.answers = [True]
    out = await repl(":run c")
    assert repl.questions == ["'c' needs a, b (not run in this session). Run them first? [Y/n] "]
    assert out.index("✔ a Completed") < out.index("✔ b Completed") < out.index("✔ c Completed")
    assert "{'z': 50, 'a_status': 'Completed'}" in out and "registered as c_out" in out
    # workloads that were not asked for are not run, nor printed
    assert "s1" not in out and "flaky" not in out
    assert repl.session.states["s1"].status.value == "Pending"
    assert (await repl("c_out.z + b_out.y")).strip() == "55"


async def test_declining_runs_nothing(repl) -> None:
    repl.answers = [False]
    out = await repl(":run b")
    assert "warning: 'b' not run: it needs a" in out
    assert repl.session.store.keys() == []
    assert repl.session.states["b"].status.value == "Pending"


async def test_satisfied_dependencies_come_from_session_state(repl) -> None:
    repl.answers = [True]
    await repl(":run b")
    # a and b ran: c runs alone, reading b_out from the session store and a's status
    out = await repl(":run c")
    assert repl.answers == [] and len(repl.questions) == 1  # no second question
    assert "✔ c Completed" in out and "✔ a" not in out and "✔ b" not in out
    assert "'a_status': 'Completed'" in out


async def test_rerun_uses_current_variables(repl) -> None:
    await repl(":run a")
    assert (await repl("a_out.x")).strip() == "4"
    await repl(":set n = 5")
    await repl(":run a")
    assert (await repl("a_out.x")).strip() == "10"


async def test_stream_producers_run_with_their_consumer(repl) -> None:
    out = await repl(":run s2")
    assert repl.questions == []  # producers of a stream are part of the run, no question
    assert "✔ s1 Completed" in out and "✔ s2 Completed" in out
    assert "{'records_processed': 3}" in out
    assert repl.session.states["s2"].records_in == 3


async def test_failed_dependency_is_offered_again(repl) -> None:
    out = await repl(":run flaky")
    assert "✘ flaky Failed" in out and "assertion failed" in out
    # the failed workload's partial result does not satisfy its dependents
    repl.answers = [False]
    await repl(":run after_flaky")
    assert repl.questions == [
        "'after_flaky' needs flaky (Failed in this session). Run it first? [Y/n] "
    ]
    await repl(":set fix = true")
    repl.answers = [True]
    out = await repl(":run after_flaky")
    assert "✔ flaky Completed" in out and "{'ok': True}" in out


async def test_rerun_drops_the_stale_registered_result(repl, playbook_path: Path) -> None:
    await repl(":set fix = true")
    await repl(":run flaky")
    assert repl.session.store.get("flaky_out") == {"condition_met": True, "evaluated_value": True}
    await repl(":set fix = false")
    await repl(":run flaky")
    # the failure's partial summary replaces the old success
    assert repl.session.store.get("flaky_out")["condition_met"] is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (":run", "usage: :run WORKLOAD"),
        (":run a b", "usage: :run WORKLOAD"),
        (":run cc", "unknown workload 'cc' (did you mean 'c'?)"),
    ],
)
async def test_run_errors(repl, text: str, message: str) -> None:
    assert message in await repl(text)


async def test_run_without_playbook(harness) -> None:
    assert "no playbook loaded" in await (harness())(":run a")


async def test_run_refuses_long_running_lifecycles(harness, tmp_path: Path) -> None:
    path = tmp_path / "daemon.gxo.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: d\nworkloads:\n'
        "  - name: svc\n    lifecycle: { policy: supervise }\n    process: { module: control:identity }\n",
        encoding="utf-8",
    )
    h = harness()
    await h(f":load {path}")
    assert "lifecycle 'supervise'" in await h(":run svc")


async def test_run_with_secret_keeps_it_out_of_state_and_output(
    harness, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("REPL_RUN_SECRET", "hunter2-hunter2")
    path = tmp_path / "s.gxo.yaml"
    path.write_text(
        'schemaVersion: "1.0.0"\nname: s\nworkloads:\n'
        "  - name: w\n    process: { module: exec, params: { command: echo, args: [\"{{ secret('REPL_RUN_SECRET') }}\"] } }\n"
        "    register: w_out\n",
        encoding="utf-8",
    )
    h = harness()
    await h(f":load {path}")
    out = await h(":run w")
    assert "hunter2" not in out and "[REDACTED]" in out
    assert "hunter2" not in await h(":state")
    assert (await h("w_out.stdout")).strip() == "'[REDACTED]'"
