"""Human output of the headless CLI: progress lines on stderr, errors, summaries.

Progress is an event-bus listener, so ``gxo run`` shows exactly what the TUI
shows, from the same events.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from gxo.engine.events import Event, EventKind
from gxo.engine.locate import failure_location

if TYPE_CHECKING:
    from rich.console import Console

    from gxo.config.loader import LoadedPlaybook
    from gxo.engine.scheduler import RunResult
    from gxo.template.secrets import SecretRegistry

__all__ = [
    "ProgressPrinter",
    "err_console",
    "print_diffs",
    "print_error",
    "print_summary",
    "print_warnings",
]

_STYLE = {
    "Running": ("▶", "cyan"),
    "Completed": ("✔", "green"),
    "Failed": ("✘", "red"),
    "Skipped": ("↷", "yellow"),
}


def err_console() -> Console:
    """stderr's console: rich's, or a :class:`PlainConsole` where rich would print plain
    text anyway (stderr not a terminal, no ``FORCE_COLOR``/``TTY_COMPATIBLE``)."""
    if _plain_stderr():
        return PlainConsole()  # type: ignore[return-value]
    return _rich_err_console()


def _rich_err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _plain_stderr() -> bool:
    """Whether rich's ``Console(stderr=True)`` would decide "not a terminal" (its
    ``is_terminal``: Jupyter, ``TTY_COMPATIBLE``, ``FORCE_COLOR``, then isatty)."""
    import builtins

    if hasattr(builtins, "get_ipython") or "TTY_COMPATIBLE" in os.environ:
        return False
    if "FORCE_COLOR" in os.environ:
        return False
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return isatty is not None and not isatty()
    except ValueError:  # closed: rich says "not a terminal" too, and fails on write
        return False


# rich.markup's grammar: a tag is "[" + a letter, "#", "/" or "@" ... "]", an odd number
# of backslashes before it makes it text. rich.markup.escape, the same without importing
# rich (issue 19: start-up).
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# What rich would still change in a plain line: an emoji code (":name:"), a tab
# (expanded to its column), a control code it strips (BEL, BS, VT, FF, CR).
_NOT_PLAIN = re.compile(r":\S*?:|[\t\x07\x08\x0b\x0c\r]")


def escape(markup: str) -> str:
    """rich.markup.escape: ``markup`` as text, not tags."""

    def escape_backslashes(match: re.Match[str]) -> str:
        backslashes, text = match.groups()
        return f"{backslashes}{backslashes}\\{text}"

    markup = _ESCAPE.sub(escape_backslashes, markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


def plain_text(markup: str) -> str | None:
    """The text rich prints for ``markup`` on a console without colour, or None where
    this would not be exactly rich's (an emoji code, a tab, a control code, a closing
    tag rich would refuse): rich prints those."""
    if "[" not in markup:
        return None if _NOT_PLAIN.search(markup) else markup
    parts: list[str] = []  # rich's text pieces, each with "\[" read as "["
    position = 0
    open_tags: list[str] = []
    for match in _TAG.finditer(markup):
        full, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            parts.append("\\" * backslashes)
            if escaped:
                parts.append(full[len(escapes) :].replace("\\[", "["))
                continue
        name = tag.partition("=")[0]
        if name.startswith("/"):
            closing = name[1:].strip()
            if closing:
                if closing not in open_tags:
                    return None
                del open_tags[len(open_tags) - 1 - open_tags[::-1].index(closing)]
            elif not open_tags:
                return None
            else:
                open_tags.pop()
        elif name.startswith("@"):
            return None  # a handler tag: rich's business
        else:
            open_tags.append(name.strip())
    parts.append(markup[position:].replace("\\[", "["))
    text = "".join(parts)
    return None if _NOT_PLAIN.search(text) else text


class PlainConsole:
    """``Console(stderr=True, highlight=False, soft_wrap=True)`` where rich would print
    plain text: the same bytes, without importing rich (~85 M instructions of a
    ``gxo run``, issue 19). A line this cannot render exactly as rich does, and any
    other use, goes to a rich console made then."""

    is_terminal = False

    def __init__(self) -> None:
        self._rich: Console | None = None

    def _console(self) -> Console:
        if self._rich is None:
            self._rich = _rich_err_console()
        return self._rich

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if len(objects) == 1 and not kwargs and isinstance(objects[0], str):
            text = plain_text(objects[0])
            if text is not None:
                try:
                    sys.stderr.write(text + "\n")
                    sys.stderr.flush()
                    return
                except UnicodeEncodeError:
                    pass  # rich words this error
        self._console().print(*objects, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console(), name)


def print_error(console: Console, message: str) -> None:
    for line in str(message).splitlines() or [""]:
        console.print(f"[bold red]error:[/] {escape(line)}")


def print_warnings(console: Console, warnings: list[str]) -> None:
    for w in warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.2f}s"


class ProgressPrinter:
    """Prints one line per workload transition; with ``verbose``, its output lines too."""

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        quiet: bool = False,
        loaded: LoadedPlaybook | None = None,
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.quiet = quiet
        self.loaded = loaded  # to name the file:line of a failure, as gxo test does

    def __call__(self, event: Event) -> None:
        kind, name, data = event.kind, event.workload, event.data
        if self.quiet and not _loud(event):
            return
        if kind == EventKind.WORKLOAD_STATUS:
            status = data["status"]
            if status == "Running" and not self.verbose:
                return
            icon, color = _STYLE.get(status, ("•", "white"))
            ignored = status == "Failed" and data.get("ignored")
            if ignored:  # did not fail the run: say so, and not in red
                color = "yellow"
            line = f"[{color}]{icon} {escape(name or '')}[/] [dim]{status}[/]"
            if ignored:
                line += " [yellow](ignored: ignore_errors)[/]"
            if status in ("Completed", "Failed") and data.get("duration_ms") is not None:
                line += f" [dim]{_ms(data['duration_ms'])}[/]"
            if status == "Completed" and data.get("check") == "predicted":
                line += " [cyan](check: predicted)[/]"
            if data.get("attempts", 0) > 1:
                line += f" [dim]({data['attempts']} attempts)[/]"
            if status == "Skipped" and data.get("reason"):
                line += f" [dim]— {escape(str(data['reason']))}[/]"
            if data.get("records_dropped"):
                n = data["records_dropped"]
                line += (
                    f" [yellow]— dropped {n} record{'s' if n != 1 else ''} "
                    "(a consumer's buffer was full; channel_policy.overflow_strategy)[/]"
                )
            if status == "Failed" and data.get("error"):
                error = str(data["error"])
                if self.loaded is not None and name:
                    error = f"{failure_location(self.loaded, name, error)}: {error}"
                line += f"\n    [{'yellow' if ignored else 'red'}]{escape(error)}[/]"
            self.console.print(line)
        elif kind == EventKind.WORKLOAD_RETRYING:
            self.console.print(
                f"[yellow]↻ {escape(name or '')}[/] [dim]attempt {data['attempt']} failed: "
                f"{escape(str(data['error']))}; retrying in {data['delay']}s[/]"
            )
        elif kind == EventKind.LOG and self.verbose:
            stream = data.get("stream", "log")
            style = "red" if stream == "stderr" else "dim"
            self.console.print(
                f"  [{style}]{escape(name or '')} | {escape(str(data.get('line', '')))}[/]"
            )
        elif kind == EventKind.WARNING:
            self.console.print(f"[yellow]warning:[/] {escape(str(data.get('message', '')))}")


_WORKLOAD_STATUS = EventKind.WORKLOAD_STATUS  # a global: ``EventKind.X`` costs ~10x more


def _loud(event: Event) -> bool:
    """What ``-q`` still prints: a failure that fails the run, and lost records."""
    if event.kind != _WORKLOAD_STATUS:
        return False
    data = event.data
    failed = data.get("status") == "Failed" and not data.get("ignored")
    return failed or bool(data.get("records_dropped"))


# The engine's error of a cancelled workload: "cancelled: the run was interrupted",
# or the reason of Engine.cancel_workload ("cancelled by the user").
_CANCELLED = "cancelled"


def _cancelled(state: Any) -> bool:
    return state.status.value == "Failed" and (state.error or "").startswith(_CANCELLED)


def print_summary(console: Console, result: RunResult, *, verbose: bool = False) -> None:
    counts: dict[str, int] = {}
    for state in result.states.values():
        # Cancelled by an interruption (Ctrl-C, SIGTERM) is not a failure of the workload.
        status = "Cancelled" if _cancelled(state) else state.status.value
        counts[status] = counts.get(status, 0) + 1
    ignored = sum(1 for state in result.states.values() if state.ignored)
    parts = [
        f"{counts.get(s, 0)} {s.lower()}"
        + (f" ({ignored} ignored)" if s == "Failed" and ignored else "")
        for s in ("Completed", "Failed", "Cancelled", "Skipped")
        if counts.get(s)
    ]
    color = {"Completed": "green", "Failed": "red", "Interrupted": "yellow"}[result.status]
    check = ""
    if result.check:  # gxo run --check: say so, and what would change
        would = sum(
            1
            for s in result.states.values()
            if isinstance(s.summary, dict) and s.summary.get("changed") is True
        )
        not_run = sum(1 for s in result.states.values() if s.check_outcome == "not run")
        check = f"; check: {would} would change, {not_run} not run"
    label = f"{result.status} (check)" if result.check else result.status
    console.print(
        f"[bold {color}]{label}[/] {escape(result.playbook)} "
        f"[dim](run {result.run_id}: {', '.join(parts) or 'nothing ran'} in {_ms(result.duration_ms)}{check})[/]"
    )
    if verbose:
        for state in result.states.values():
            if state.summary not in (None, {}, []):
                console.print(
                    f"[dim]{escape(state.name)} summary:[/] "
                    f"{escape(_short(state.summary, secrets=result.secrets))}"
                )


def print_diffs(console: Console, result: RunResult) -> None:
    """``--diff``: each workload's unified diffs, redacted, coloured like ``git diff``."""
    for state in result.states.values():
        if not state.diffs:
            continue
        console.print(f"[bold]── diff {escape(state.name)}[/]")
        for diff in state.diffs:
            text = result.secrets.redact_str(diff) if result.secrets else diff
            for line in text.splitlines():
                style = _DIFF_STYLE.get(line[:1], "")
                if line.startswith(("---", "+++")):
                    style = "bold"
                console.print(f"[{style}]{escape(line)}[/]" if style else escape(line))


_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}


def _short(value: Any, limit: int = 500, secrets: SecretRegistry | None = None) -> str:
    import json

    text = json.dumps(value, default=str, ensure_ascii=False)
    if secrets:
        # With the run's final registry (a secret learned late), then cut: never a
        # secret cut in half at the edge.
        return secrets.redact_excerpt(text, limit)
    return text if len(text) <= limit else text[:limit] + "…"


def isatty() -> bool:
    return sys.stderr.isatty()
