"""Fixtures for REPL tests: a core :class:`Repl` printing into a buffer, and a playbook."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gxo.repl.core import Repl
from gxo.repl.session import ReplSession

# a -> b -> c by registered results; c also reads a's status; s1 streams into s2;
# flaky fails unless `fix` is set, and after_flaky needs it.
PLAYBOOK = """
schemaVersion: "1.0.0"
name: demo
vars: { n: 2, greeting: "hi {{ n }}" }
workloads:
  - name: a
    process: { module: control:identity, params: { x: "{{ n * 2 }}" } }
    register: a_out
  - name: b
    process: { module: control:identity, params: { y: "{{ a_out.x + 1 }}" } }
    register: b_out
  - name: c
    process:
      module: control:identity
      params: { z: "{{ b_out.y * 10 }}", a_status: "{{ _gxo.workloads.a.status }}" }
    register: c_out
  - name: s1
    process: { module: data:generate_from_list, params: { items: [1, 2, 3] } }
  - name: s2
    process: { module: passthrough }
    stream_inputs: [s1]
    register: joined
  - name: flaky
    process: { module: control:assert, params: { condition: "fix | default(false)" } }
    register: flaky_out
  - name: after_flaky
    process: { module: control:identity, params: { ok: "{{ flaky_out.condition_met }}" } }
"""


class ReplHarness:
    """A Repl whose output is captured; ``answers`` feed ``:run``'s question."""

    def __init__(self, variables: dict[str, Any] | None = None) -> None:
        self.buffer = io.StringIO()
        console = Console(
            file=self.buffer, width=120, color_system=None, highlight=False, soft_wrap=True
        )
        self.session = ReplSession(variables)
        self.answers: list[bool] = []
        self.questions: list[str] = []
        self.repl = Repl(self.session, console, confirm=self._confirm)

    async def _confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answers.pop(0)

    async def __call__(self, text: str) -> str:
        """Handle one input; returns what it printed."""
        start = self.buffer.tell()
        keep_going = await self.repl.handle(text)
        assert keep_going, f"{text!r} ended the session"
        return self.buffer.getvalue()[start:]


@pytest.fixture
def playbook_path(tmp_path: Path) -> Path:
    path = tmp_path / "demo.gxo.yaml"
    path.write_text(textwrap.dedent(PLAYBOOK).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def harness() -> Callable[..., ReplHarness]:
    return ReplHarness


@pytest.fixture
def repl(playbook_path: Path) -> ReplHarness:
    """A harness with the demo playbook loaded and ``-e extra=7``."""
    h = ReplHarness({"extra": 7})
    h.session.load(playbook_path)
    return h
