"""Loader speed: the cyclic GC is paused while a playbook loads (and always switched
back on); the checks stay linear in the number of workloads."""

from __future__ import annotations

import gc
import threading
import time
from graphlib import CycleError, TopologicalSorter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gxo.config.loader import load_playbook
from gxo.engine.dag import has_cycle
from gxo.errors import ConfigError


def playbook(n: int, *, bad: bool = False) -> str:
    lines = ['schemaVersion: "1.0.0"', "name: gc", "vars: { greeting: hi }", "workloads:"]
    for i in range(n):
        lines += [
            f"  - name: w{i}",
            f"    register: r{i}",
            "    process:",
            "      module: control:identity",
            f'      params: {{ msg: "{{{{ greeting }}}} {i}", n: {i} }}',
        ]
    if bad:
        lines.append('    when: "{{ ghost }}"')
    return "\n".join(lines) + "\n"


def test_gc_is_paused_for_the_whole_load() -> None:
    # Asked inside the load (a probe among the validation checks, which run last)
    # rather than by counting collections: the session's other threads may collect
    # at any time, which made a collection count flaky in the full suite.
    import gxo.config.validate as validate

    seen: list[bool] = []

    def probe(*args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())

    original = validate.CHECKS
    validate.CHECKS = (*original, probe)
    try:
        loaded = load_playbook(text=playbook(400), name="pb.yaml")
    finally:
        validate.CHECKS = original
    assert len(loaded.playbook.workloads) == 400
    assert seen == [False]
    assert gc.isenabled()


def test_gc_back_on_after_a_failed_load() -> None:
    with pytest.raises(ConfigError, match="ghost"):
        load_playbook(text=playbook(3, bad=True), name="pb.yaml")
    assert gc.isenabled()


def test_a_load_in_a_thread_leaves_the_gc_alone() -> None:
    # gc.disable is process-wide: a worker thread must not switch it off under the main one.
    seen: list[bool] = []

    def probe(*args: object, **kwargs: object) -> None:
        seen.append(gc.isenabled())

    import gxo.config.validate as validate

    original = validate.CHECKS
    validate.CHECKS = (*original, probe)
    try:
        thread = threading.Thread(target=load_playbook, kwargs={"text": playbook(2)})
        thread.start()
        thread.join()
        load_playbook(text=playbook(2))
    finally:
        validate.CHECKS = original
    assert seen == [True, False]


def _check_time(check_name: str, text: str) -> float:
    """Best CPU time of one validation check over a load of ``text``."""
    import gxo.config.validate as validate

    best = float("inf")
    original = validate.CHECKS

    def timed(check):  # type: ignore[no-untyped-def]
        def run(v):  # type: ignore[no-untyped-def]
            nonlocal best
            start = time.process_time()
            check(v)
            best = min(best, time.process_time() - start)

        return run if check.__name__ == check_name else check

    validate.CHECKS = tuple(timed(c) for c in original)
    try:
        for _ in range(3):
            load_playbook(text=text)
    finally:
        validate.CHECKS = original
    return best


def test_reference_check_is_linear() -> None:
    # Every register key is a known name; the check once copied that set for every
    # template, so 8x the workloads took 64x the time.
    small = _check_time("check_references", playbook(500))
    large = _check_time("check_references", playbook(4000))
    assert large < 20 * max(small, 1e-4), (small, large)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(st.integers(0, 12), st.sets(st.integers(0, 14), max_size=4), max_size=12))
def test_has_cycle_agrees_with_graphlib(deps: dict[int, set[int]]) -> None:
    # The cheap check decides whether graphlib is asked for the cycle's path at all.
    sorter: TopologicalSorter[int] = TopologicalSorter()
    for node, ds in deps.items():
        sorter.add(node, *ds)
    try:
        sorter.prepare()
    except CycleError:
        cyclic = True
    else:
        cyclic = False
    assert has_cycle(deps) is cyclic


def test_cycles_still_reported_with_their_path() -> None:
    text = (
        playbook(3).replace("{{ greeting }} 0", "{{ r2 }}").replace("{{ greeting }} 2", "{{ r1 }}")
    )
    text = text.replace("{{ greeting }} 1", "{{ r0 }}")
    with pytest.raises(ConfigError, match=r"dependency cycle: w\d -> w\d -> w\d -> w\d"):
        load_playbook(text=text, name="pb.yaml")


def test_pipeline_cycle_still_reported() -> None:
    # No cycle between workloads, one between the pipelines [a1, a2] and [b1, b2].
    text = """\
schemaVersion: "1.0.0"
name: pcyc
workloads:
  - name: a1
    process: { module: data:generate_from_list, params: { items: [{ n: 1 }] } }
  - name: a2
    stream_inputs: [a1]
    depends_on: [b2]
    process: { module: data:filter, params: { condition: "record.n > 0" } }
  - name: b1
    depends_on: [a1]
    process: { module: data:generate_from_list, params: { items: [{ n: 1 }] } }
  - name: b2
    stream_inputs: [b1]
    process: { module: data:filter, params: { condition: "record.n > 0" } }
"""
    with pytest.raises(ConfigError, match=r"pipelines wait for each other in a cycle.*\[a1, a2\]"):
        load_playbook(text=text, name="pb.yaml")
