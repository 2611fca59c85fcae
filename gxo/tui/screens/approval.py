"""The form that answers a paused workload: fields built from its ``payload_schema``.

An object schema of simple properties gets one field each (text and numbers in an
Input, booleans in a Switch, ``enum`` in a Select); any other schema is edited as JSON
in a TextArea. Approve checks the payload first — typing errors under each field, then
the schema (:func:`~gxo.engine.signals.check_payload`) — and only a valid payload is
sent; whatever the session's approvals answer (already decided, refused) is shown in
the form, and the workload stays paused until an answer is accepted. Reject sends the
reason typed below the fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, Switch, TextArea

from gxo.engine.payload_form import FormField, build_payload, form_fields, schema_summary
from gxo.engine.signals import check_payload
from gxo.errors import GxoError

if TYPE_CHECKING:
    from textual.app import ComposeResult
    from textual.widget import Widget

    from gxo.tui.approvals import Approvals
    from gxo.tui.model import PausedView

__all__ = ["ApprovalScreen"]

DEFAULT_REASON = "rejected in gxo ui"


class ApprovalScreen(ModalScreen[str | None]):
    """Dismissed with the approvals' message once an answer is accepted, None on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "approve", "Approve", priority=True),
    ]

    def __init__(
        self,
        entry: PausedView,
        approvals: Approvals,
        *,
        still_paused: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__()
        self.entry = entry
        self.approvals = approvals
        self.still_paused = still_paused  # polled: the pause may be decided elsewhere
        self.closed = False
        self.fields: list[FormField] | None = form_fields(entry.schema)
        self.busy = False
        self.messages: dict[str, str] = {}  # field index ("json") or "" → what is wrong

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        entry = self.entry
        with VerticalScroll(id="approval-dialog") as dialog:
            dialog.border_title = f"⏸ {entry.workload}"
            yield Static(f"[b]{escape(entry.prompt or '(no prompt)')}[/b]", id="approval-prompt")
            yield Static(
                f"[dim]payload: {escape(schema_summary(entry.schema, width=200))}[/]",
                id="approval-schema",
            )
            if self.fields is None:
                yield Label("Payload (JSON)")
                yield TextArea(self._initial_json(), id="approval-json", soft_wrap=True)
                yield Static("", id="error-json", classes="field-error")
            else:
                for index, spec in enumerate(self.fields):
                    with Horizontal(classes="field-row"):
                        yield Label(escape(spec.label), classes="field-label")
                        yield self._widget(index, spec)
                    if spec.description:
                        yield Static(f"[dim]{escape(spec.description)}[/]", classes="field-help")
                    yield Static("", id=f"error-{index}", classes="field-error")
            yield Static("", id="approval-error")
            with Horizontal(classes="field-row", id="reason-row"):
                yield Label("reject reason", classes="field-label")
                yield Input(placeholder=DEFAULT_REASON, id="approval-reason", compact=True)
            with Horizontal(id="approval-buttons"):
                yield Button("Approve (ctrl+s)", variant="success", id="approval-approve")
                yield Button("Reject", variant="error", id="approval-reject")
                yield Button("Cancel (esc)", id="approval-cancel")

    def _initial_json(self) -> str:
        schema = self.entry.schema or {}
        if "default" in schema:
            return json.dumps(schema["default"], indent=2)
        return {"object": "{}", "array": "[]"}.get(str(schema.get("type")), "")

    @staticmethod
    def _widget(index: int, spec: FormField) -> Widget:
        wid = f"field-{index}"
        if spec.kind == "boolean" and (spec.required or spec.has_default):
            return Switch(value=bool(spec.default), id=wid)
        if spec.kind == "boolean":
            return Select(
                [("true", True), ("false", False)], prompt="(unset)", id=wid, compact=True
            )
        if spec.kind == "enum":
            value = spec.default if spec.has_default and spec.default in spec.choices else None
            return Select(
                [(str(c), c) for c in spec.choices],
                prompt="(choose)",
                value=Select.NULL if value is None else value,
                id=wid,
                compact=True,
            )
        initial = "" if not spec.has_default or spec.default is None else str(spec.default)
        return Input(
            initial,
            placeholder=spec.kind,
            type="integer"
            if spec.kind == "integer"
            else "number"
            if spec.kind == "number"
            else "text",
            id=wid,
            compact=True,
        )

    def on_mount(self) -> None:
        first = self.query("#approval-json, #field-0")
        if first:
            first.first().focus()
        if self.still_paused is not None:
            self.set_interval(0.25, self._check_still_paused)

    def _check_still_paused(self) -> None:
        """The timeout fired, or someone else answered: say so, and answer no more."""
        if self.closed or self.still_paused is None or self.still_paused():
            return
        self.closed = True
        self._error(
            f"{self.entry.workload} is no longer paused: it was answered elsewhere or its "
            "timeout decided. Esc closes this form."
        )
        for button in ("#approval-approve", "#approval-reject"):
            self.query_one(button, Button).disabled = True

    # -- reading the form ----------------------------------------------------------------

    def _values(self) -> dict[str, Any]:
        assert self.fields is not None
        values: dict[str, Any] = {}
        for index, spec in enumerate(self.fields):
            widget = self.query_one(f"#field-{index}")
            if isinstance(widget, Switch):
                values[spec.name] = widget.value
            elif isinstance(widget, Select):
                values[spec.name] = None if widget.value is Select.NULL else widget.value
            elif isinstance(widget, Input):
                values[spec.name] = widget.value
        return values

    def payload(self) -> tuple[bool, Any]:
        """(ok, payload): errors are shown under their field or at the bottom."""
        self._error("")
        if self.fields is None:
            text = self.query_one("#approval-json", TextArea).text.strip()
            try:
                payload = json.loads(text) if text else None
            except ValueError as exc:
                self._field_error("json", f"not JSON: {exc}")
                return False, None
            self._field_error("json", "")
        else:
            payload, errors = build_payload(self.fields, self._values())
            for index, spec in enumerate(self.fields):
                self._field_error(str(index), errors.get(spec.name, ""), spec.name)
            if errors:
                self._error("Fix the fields marked above.")
                return False, None
        try:
            check_payload(self.entry.schema, payload)
        except GxoError as exc:
            self._error(str(exc))
            return False, None
        return True, payload

    def _field_error(self, key: str, message: str, name: str = "payload") -> None:
        self.messages[key] = f"{name}: {message}" if message else ""
        shown = self.query_one(f"#error-{key}", Static)
        shown.update(escape(message))
        shown.display = bool(message)

    def _error(self, message: str) -> None:
        self.messages[""] = message
        shown = self.query_one("#approval-error", Static)
        shown.update(escape(message))
        shown.display = bool(message)

    @property
    def error_text(self) -> str:
        """Every message the form shows (field errors, then the form's), one per line."""
        return "\n".join(m for _, m in sorted(self.messages.items(), reverse=True) if m)

    # -- actions ---------------------------------------------------------------------------

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "approval-approve":
            await self.action_approve()
        elif event.button.id == "approval-reject":
            await self.action_reject()
        else:
            self.action_cancel()

    async def action_approve(self) -> None:
        if self.closed:
            return
        ok, payload = self.payload()
        if ok:
            await self._send(self.approvals.resume(self.entry, payload))

    async def action_reject(self) -> None:
        if self.closed:
            return
        reason = self.query_one("#approval-reason", Input).value.strip() or DEFAULT_REASON
        await self._send(self.approvals.reject(self.entry, reason))

    async def _send(self, answer: Any) -> None:
        if self.busy:  # one answer at a time (a daemon call may take a moment)
            answer.close()
            return
        self.busy = True
        try:
            message = await answer
        except GxoError as exc:  # refused: the workload stays paused (or was decided)
            self._error(str(exc))
            return
        finally:
            self.busy = False
        self.dismiss(message)

    def action_cancel(self) -> None:
        self.dismiss(None)
