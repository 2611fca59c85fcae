"""Tab completion for the REPL, from the live session and the module registry.

* ``:`` + word → command names;
* ``:module`` / ``:modules`` + word → module names (synopsis shown);
* ``:module NAME {…`` → that module's param names, from its pydantic model;
* ``:run`` + word → workload names; ``:load`` + path → files;
* ``:resume`` / ``:reject`` + word → paused workloads (prompt shown); ``:resume NAME {…``
  → the property names of its ``payload_schema``;
* anywhere an expression is typed (plain input, ``:set x = …``, inside ``{{ }}``
  of ``:module`` params) → variable names, registered keys (also those of
  workloads not run yet), ``_gxo``; after a dot, the keys of the value reached
  (``_gxo.workloads.<name>``, ``users.json_body.<key>``); after ``|``, filters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

if TYPE_CHECKING:
    from gxo.repl.commands import Command
    from gxo.repl.session import ReplSession

__all__ = ["ReplCompleter"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_DOTTED = re.compile(rf"({_IDENT}(?:\.{_IDENT})*)\.([A-Za-z0-9_]*)$")
_WORD = re.compile(rf"(?<![.\w])({_IDENT})?$")
_FILTER = re.compile(rf"\|\s*({_IDENT})?$")
_TEST = re.compile(rf"\bis\s+(?:not\s+)?({_IDENT})?$")
_KEY_POSITION = re.compile(rf"(?:^|[{{,\n])\s*({_IDENT})?$")
_USED_KEY = re.compile(rf"(?:^|[{{,\n])\s*({_IDENT})\s*:")
# a JSON payload: a key is typed after "{" or "," (with or without its opening quote)
_JSON_KEY_POSITION = re.compile(r'[{,]\s*("?([A-Za-z0-9_-]*))$')
_JSON_USED_KEY = re.compile(r'"([^"]+)"\s*:')
# Names every expression may use besides the session's (Jinja globals and literals).
_GLOBALS = {
    "secret": "secret('NAME'): a secret, redacted in output",
    "range": "range(n)",
    "namespace": "namespace()",
    "now": "now(tz='Europe/Paris'): the current time (aware; UTC by default)",
    "success": "when: every dependency Completed or Skipped",
    "failure": "when: a dependency failed",
    "always": "when: run whatever the dependencies' outcome",
    "cancelled": "when: the run was interrupted",
    "paused": "when: start as soon as a control:wait_for_signal dependency pauses",
}
_LITERALS = ("true", "false", "none")


class ReplCompleter(Completer):
    """Completes REPL input from ``session`` (live) and the module registry."""

    def __init__(self, session: ReplSession, commands: Mapping[str, Command]) -> None:
        self.session = session
        self.commands = commands
        self._paths = PathCompleter(expanduser=True)

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        stripped = text.lstrip()
        if not stripped.startswith(":"):
            yield from self._expression(text)
            return
        match = re.match(r":(\S*)(\s+)?(.*)", stripped, re.DOTALL)
        assert match is not None  # any text after ":" matches
        command, space, rest = match.group(1), match.group(2), match.group(3)
        if not space:
            yield from self._command_names(command)
            return
        name = self._canonical(command)
        if name == "help":
            yield from (
                self._command_names(rest)
                if not rest.startswith(":")
                else self._command_names(rest[1:])
            )
        elif name in ("module", "modules"):
            module, module_space, params = re.match(r"(\S*)(\s+)?(.*)", rest, re.DOTALL).groups()  # type: ignore[union-attr]
            if not module_space:
                yield from self._module_names(module)
            elif name == "module":
                yield from self._params(module, params)
        elif name == "run":
            yield from self._workloads(rest)
        elif name in ("resume", "reject"):
            workload, workload_space, payload = re.match(
                r"(\S*)(\s+)?(.*)", rest, re.DOTALL
            ).groups()  # type: ignore[union-attr]
            if not workload_space:
                yield from self._paused(workload)
            elif name == "resume":
                yield from self._payload_keys(workload, payload)
        elif name == "load":
            yield from self._paths.get_completions(Document(rest, len(rest)), complete_event)
        elif name == "set" and "=" in rest:
            yield from self._expression(rest.split("=", 1)[1])

    # -- commands and modules ------------------------------------------------------

    def _canonical(self, word: str) -> str | None:
        command = self.commands.get(word)
        return command.name if command is not None else None

    def _command_names(self, prefix: str) -> Iterator[Completion]:
        seen = set()
        for command in self.commands.values():
            if command.name in seen or not command.name.startswith(prefix):
                continue
            seen.add(command.name)
            yield Completion(
                command.name, -len(prefix), display=f":{command.name}", display_meta=command.summary
            )

    def _module_names(self, prefix: str) -> Iterator[Completion]:
        from gxo.modules.base import REGISTRY

        for spec in REGISTRY.all():
            if spec.name.startswith(prefix):
                yield Completion(spec.name, -len(prefix), display_meta=spec.synopsis)

    def _params(self, module: str, params: str) -> Iterator[Completion]:
        from gxo.modules.base import REGISTRY
        from gxo.modules.reference import params_rows

        if _inside_template(params):
            yield from self._expression(params[params.rfind("{{") + 2 :])
            return
        spec = REGISTRY.get(module)
        match = _KEY_POSITION.search(params)
        if spec is None or match is None:
            return
        prefix = match.group(1) or ""
        used = set(_USED_KEY.findall(params))
        for row in params_rows(spec):
            if row["name"].startswith(prefix) and row["name"] not in used:
                meta = f"{row['type']}{' (required)' if row['required'] else ''} — {row['description']}"
                yield Completion(row["name"], -len(prefix), display_meta=meta)

    def _workloads(self, prefix: str) -> Iterator[Completion]:
        session = self.session
        for name in session.workload_names:
            if name.startswith(prefix):
                state = session.states[name]
                module = state.workload.process.module
                yield Completion(
                    name, -len(prefix), display_meta=f"{module} — {state.status.value}"
                )

    def _paused(self, prefix: str) -> Iterator[Completion]:
        for name, pending in self.session.paused().items():
            if name.startswith(prefix):
                prompt = self.session.secrets.redact_str(pending.request.prompt)
                yield Completion(name, -len(prefix), display_meta=f"paused — {prompt}")

    def _payload_keys(self, workload: str, payload: str) -> Iterator[Completion]:
        """Inside ``{`` of a payload: the schema's property names not given yet."""
        pending = self.session.paused().get(workload)
        match = _JSON_KEY_POSITION.search(payload)
        if pending is None or match is None or "{" not in payload:
            return
        schema = pending.request.schema or {}
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return
        typed, prefix = match.group(1), match.group(2)
        used = set(_JSON_USED_KEY.findall(payload))
        required = set(schema.get("required") or ())
        for key, spec in properties.items():
            if key.startswith(prefix) and key not in used:
                spec = spec if isinstance(spec, Mapping) else {}
                kind = spec.get("type") or "|".join(str(c) for c in spec.get("enum", ()))
                meta = f"{kind or 'any'}{' (required)' if key in required else ''}"
                yield Completion(f'"{key}": ', -len(typed), display=key, display_meta=meta)

    # -- expressions ------------------------------------------------------------------

    def _expression(self, text: str) -> Iterator[Completion]:
        if (match := _FILTER.search(text)) is not None:
            yield from _names(self.session.templates.env.filters, match.group(1) or "", "filter")
            return
        if (match := _TEST.search(text)) is not None:
            yield from _names(self.session.templates.env.tests, match.group(1) or "", "test")
            return
        if (match := _DOTTED.search(text)) is not None:
            yield from self._attributes(match.group(1), match.group(2))
            return
        if (match := _WORD.search(text)) is not None:
            prefix = match.group(1) or ""
            if not prefix and text and not text[-1].isspace() and text[-1] not in "([{,:=+-*/%~<>!":
                return  # right after a value ("x)", "'a'"): no name can follow
            yield from self._root_names(prefix)

    def _root_names(self, prefix: str) -> Iterator[Completion]:
        session = self.session
        offered: set[str] = set()

        def offer(name: str, meta: str) -> Iterator[Completion]:
            if name.startswith(prefix) and name not in offered:
                offered.add(name)
                yield Completion(name, -len(prefix), display_meta=meta)

        for name in sorted(session.store.keys()):
            yield from offer(name, "registered")
        for key, workload in sorted(session.declared_registers().items()):
            yield from offer(key, f"register of {workload} (not run yet)")
        for name in sorted(session.variables):
            yield from offer(name, "variable")
        yield from offer("_gxo", "run info: workloads, run_id, workspace, playbook_dir, playbook")
        for name, meta in _GLOBALS.items():
            yield from offer(name, meta)
        for name in _LITERALS:
            yield from offer(name, "literal")

    def _attributes(self, path: str, prefix: str) -> Iterator[Completion]:
        value: Any = self.session.context()
        for part in path.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return
            value = value[part]
        if isinstance(value, Mapping):
            keys: Iterable[Any] = value.keys()
            for key in keys:
                if isinstance(key, str) and re.fullmatch(_IDENT, key) and key.startswith(prefix):
                    yield Completion(
                        key, -len(prefix), display_meta=_describe(self.session.redact(value[key]))
                    )


def _names(names: Iterable[str], prefix: str, meta: str) -> Iterator[Completion]:
    for name in sorted(names):
        if name.startswith(prefix):
            yield Completion(name, -len(prefix), display_meta=meta)


def _inside_template(text: str) -> bool:
    return text.rfind("{{") > text.rfind("}}")


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"map ({len(value)} keys)"
    if isinstance(value, list):
        return f"list ({len(value)} items)"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
