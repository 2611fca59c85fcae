"""Loader speed: the cyclic GC is paused while a playbook loads (and always switched
back on); the checks stay linear in the number of workloads."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from gxo.config.loader import load_playbook
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


@pytest.fixture
def collections() -> list[str]:
    seen: list[str] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(phase)

    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)


def test_no_collection_during_a_load(collections: list[str]) -> None:
    # 400 workloads allocate far past gen 0's threshold (700): with the GC on,
    # validation alone would run collections.
    loaded = load_playbook(text=playbook(400), name="pb.yaml")
    assert len(loaded.playbook.workloads) == 400
    assert collections == []
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
