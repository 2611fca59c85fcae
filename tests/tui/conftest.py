"""Fixtures for the TUI tests: playbooks, a stalling consumer, snapshot location, waiting."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from syrupy.location import PyTestLocation

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
SNAPSHOTS = ROOT / "snapshots"

STALL_MODULE = "test:tui_stall"


# -- playbooks -------------------------------------------------------------------------


@pytest.fixture
def ui_playbook(_isolate: Path) -> Callable[[str], Path]:
    """Copy ``tests/tui/playbooks/<name>.gxo.yaml`` into the test's cwd and return the
    *relative* path, so locations shown on screen are the same on every machine."""

    def copy(name: str) -> Path:
        target = Path(f"{name}.gxo.yaml")
        shutil.copyfile(PLAYBOOKS / target.name, _isolate / target)
        return target

    return copy


# -- a consumer that never reads (back-pressure on demand) ----------------------------


@pytest.fixture
def stall_module() -> Iterator[str]:
    """Registers ``test:tui_stall`` for one test: it reads nothing until cancelled.

    Registered here, not at import, and removed afterwards, so no other test (a
    module listing, generated docs) ever sees it.
    """
    from pydantic import Field

    from gxo.modules.base import REGISTRY, Module, ModuleParams, StreamRole, register

    class Stall(Module):
        """Consume nothing: the producer's buffer fills and it blocks.

        Example:
            - name: stalled
              process: { module: "test:tui_stall" }
              stream_inputs: [numbers]
        """

        class Params(ModuleParams):
            note: str = Field("", description="Logged once when the module starts")

        consumes = StreamRole.required
        summary: dict[str, str] = {}

        async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
            ctx.log(params.note or "stalling: not reading the input stream")
            await asyncio.Event().wait()  # until the run is cancelled
            return {}

    register(STALL_MODULE, layer="test")(Stall)
    try:
        yield STALL_MODULE
    finally:
        REGISTRY._specs.pop(STALL_MODULE, None)


# -- snapshots under the top-level snapshots/ directory ----------------------------------


class _TopLevelSVG(SVGImageExtension):
    """SVG baselines in ``snapshots/<test module>/`` instead of next to the tests."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(SNAPSHOTS / test_location.basename)


class _TopLevelSnapshots(SnapshotAssertion):
    def use_extension(self, extension_class: Any = None) -> SnapshotAssertion:
        # pytest-textual-snapshot asks for its SVG extension; substitute ours.
        if extension_class is SVGImageExtension:
            extension_class = _TopLevelSVG
        return super().use_extension(extension_class)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return _TopLevelSnapshots(
        update_snapshots=snapshot.update_snapshots,
        extension_class=snapshot.extension_class,
        test_location=snapshot.test_location,
        session=snapshot.session,
    )


# -- waiting ------------------------------------------------------------------------------


async def _wait_until(
    predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``await wait_until(predicate, timeout=15, what="...")``: poll while the app's
    loop (engine and UI) keeps running."""
    return _wait_until
