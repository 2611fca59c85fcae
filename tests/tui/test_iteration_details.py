"""The Details tab of a loop shows what the engine records per iteration: the item,
each iteration's own rendered params (secrets redacted), and what the size cap left out."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Static

from gxo.engine import runner
from gxo.tui.app import create_app
from gxo.tui.widgets import DagView

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: loop-details
workloads:
  - name: each
    loop: [alpha, beta, "{{ secret('GXO_TEST_LOOP_TOKEN') }}", delta]
    process:
      module: control:identity
      params: { name: "{{ item }}", pad: "{{ 'p' * 30 if item == 'delta' else '' }}" }
"""


def details_text(app: Any) -> str:
    console = Console(width=140, file=io.StringIO(), record=True, color_system=None)
    console.print(app.screen.query_one("#details-body", Static).content)
    return console.export_text()


async def test_loop_details_from_the_engine_records(
    write_playbook: Any, wait_until: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GXO_TEST_LOOP_TOKEN", "tok-very-secret")
    monkeypatch.setattr(runner, "PARAMS_BUDGET", 90)  # delta's params do not fit
    app = create_app(write_playbook(PLAYBOOK), timings=False)
    async with app.run_test(size=(140, 60)) as pilot:
        await wait_until(lambda: app.session.model.finished and not app.session.running)
        app.screen.query_one(DagView).select("each")
        await pilot.pause()
        text = details_text(app)
        header = next(line for line in text.splitlines() if line.strip().startswith("#"))
        assert header.split() == ["#", "item", "status", "tries", "error"]
        assert "Params of iteration 1 (beta)" in text
        assert '"name": "beta"' in text
        assert "Params of iteration 2 ([REDACTED])" in text
        assert "tok-very-secret" not in text
        assert "Params of iteration 3" not in text
        assert "params of 1 iterations not kept (size cap of the report)" in text
        assert "latest iteration" not in text
