"""Secrets: taint-marked strings and value-based redaction.

``secret('NAME')`` returns a :class:`SecretStr`. Its value is recorded in the
run's :class:`SecretRegistry`; every output path (registered state, summaries,
logs, events, reports, TUI, REPL) passes through :meth:`SecretRegistry.redact`,
which replaces each recorded value wherever it occurs, even inside strings
derived from it (``"Bearer " + token``), where the taint mark itself is lost.

A value is redacted in every *form* it takes on its way out, not only verbatim:
without its trailing newline, each line of a multi-line value (PEM keys, at
least :data:`MIN_LINE` characters so short lines like ``-----`` do not mask
unrelated text), percent-encoded (``quote``/``quote_plus``), base64 (standard
and URL-safe, padded or not) and escaped as inside ``repr()``/JSON. Values
computed from a secret inside a template (``|upper``, slicing, ...) are
registered as *derived* secrets by :mod:`gxo.template.taint`.
"""

from __future__ import annotations

import base64
import bisect
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from gxo.errors import SecretError

__all__ = [
    "MIN_DERIVED",
    "MIN_LINE",
    "REDACTED",
    "SecretRegistry",
    "SecretStr",
    "env_provider",
    "secret_names",
]

REDACTED = "[REDACTED]"
# A line of a multi-line secret shorter than this is structure (`-----`, `}`), not secret.
MIN_LINE = 6
# Forms and derived fragments shorter than this are not registered: a 1-3 character
# piece (a character from iterating a secret, `s[0]`) would otherwise mask that
# letter everywhere in every output. Such pieces keep their taint mark (SecretStr),
# so they are still redacted wherever the object itself reaches an output.
MIN_DERIVED = 4
# The shortest prefix of a form masked where an excerpt was cut (redact_excerpt).
MIN_PARTIAL = 4
# Per-record templates can derive a new value per record (`record.id ~ secret('K')`):
# beyond this many derived values the registry stops growing (the taint mark stays).
MAX_DERIVED = 1024


class SecretStr(str):
    """A string that came from a secret provider, or was computed from one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"SecretStr({REDACTED!r})"

    def __str__(self) -> str:
        # Jinja writes every output piece through str(): returning self keeps the
        # taint mark on template output, so consecutive tainted pieces can be
        # recognised when the template is concatenated (gxo.template.taint).
        return self

    def __getitem__(self, key: Any) -> str:
        # Slicing bypasses the sandbox's getitem hook (`s[1:]`, `s[::-1]`).
        from gxo.template.taint import derived

        return derived(str.__getitem__(self, key))

    def __iter__(self) -> Any:
        return (SecretStr(c) for c in str.__iter__(self))


def env_provider(name: str) -> str | None:
    return os.environ.get(name)


_SECRET_CALL = re.compile(r"""\bsecret\(\s*(['"])([^'"\\]+)\1\s*\)""")


def secret_names(value: Any) -> set[str]:
    """The NAMEs of every literal ``secret('NAME')`` in ``value`` (strings, dicts, lists, models)."""
    names: set[str] = set()
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        item = pop()
        cls = item.__class__
        if cls is str:
            if "secret" in item:
                names.update(m.group(2) for m in _SECRET_CALL.finditer(item))
        elif cls is dict:
            extend(item.values())
        elif cls is list or cls is tuple:
            extend(item)
        elif item is None or cls is int or cls is bool or cls is float:
            continue
        elif hasattr(item, "__pydantic_fields__"):  # a playbook model (Workload, Process, ...)
            for field in item.__pydantic_fields__:
                push(getattr(item, field))
        elif isinstance(item, Mapping):
            extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            extend(item)
    return names


def _forms(value: str, *, lines: bool) -> set[str]:
    """The forms ``value`` may take in an output (see the module docstring)."""
    out = {value}
    bases = {value, value.rstrip("\r\n"), value.strip()}
    if lines and ("\n" in value or "\r" in value):
        out.update(line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE)
    for base in bases:
        if not base:
            continue
        raw = base.encode("utf-8", "surrogatepass")
        std = base64.b64encode(raw).decode()
        url = base64.urlsafe_b64encode(raw).decode()
        out.update(
            (
                base,
                quote(base, safe=""),
                quote(base),
                quote_plus(base),
                std,
                std.rstrip("="),
                url,
                url.rstrip("="),
                repr(raw)[2:-1],
                repr(base)[1:-1],
                json.dumps(base)[1:-1],
                json.dumps(base, ensure_ascii=False)[1:-1],
            )
        )
    return {f for f in out if len(f) >= MIN_DERIVED or f == value}


_RUN_PROVIDERS: list[Any] = []  # RunProviders, imported on first use (not per run)


def _run_providers() -> Any:
    if not _RUN_PROVIDERS:
        from gxo.template.secret_providers import RunProviders

        _RUN_PROVIDERS.append(RunProviders)
    return _RUN_PROVIDERS[0]


class SecretRegistry:
    """The secret values seen in one run, and redaction of them (in all their forms)."""

    def __init__(self, provider: Callable[[str], str | None] = env_provider) -> None:
        if provider is env_provider:
            # NAME: the environment; file://, aws-sm://, vault:// references: the
            # providers of gxo/template/secret_providers.py, fetched once per run.
            provider = _run_providers()(env_provider)
        self._provider = provider
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._derived = 0
        self._longest = 0  # the longest secret from a provider
        # Every form, longest first (replaced in that order, so a secret containing
        # another is replaced whole), and the minimal subset worth testing with
        # `in`: a form containing a shorter registered form is implied by it.
        # Both are replaced, never mutated, so readers need no lock.
        self._by_len: list[str] = []
        self._detect: tuple[str, ...] = ()
        self._shortest = 0  # no text shorter than the shortest form can hold one
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def lookup(self, name: str) -> SecretStr:
        if not isinstance(name, str) or not name:
            raise SecretError(f"secret() needs a non-empty name, got {name!r}")
        value = self._provider(name)
        if value is None:
            raise SecretError(
                f"secret '{name}' is not set (looked for environment variable {name})"
            )
        self.add(value)
        return SecretStr(value)

    def preload(self, name: str) -> bool:
        """Register secret ``name`` ahead of its use; a missing one is left for its user to fail."""
        try:
            value = self._provider(name)
        except Exception:  # a provider error is reported where the secret is used
            return False
        if not isinstance(value, str) or not value:
            return False
        self.add(value)
        return True

    def confine_files(self, contains: Callable[[str], bool], roots: str = "") -> None:
        """A confined run: ``secret('file://...')`` reads only paths ``contains`` accepts."""
        from gxo.template.secret_providers import RunProviders

        if isinstance(self._provider, RunProviders):
            self._provider.file_guard = contains
            self._provider.file_roots = roots

    def preload_names(self, value: Any) -> None:
        """Register the secrets that ``value`` (a playbook, workloads) names, before anything runs.

        So a value an earlier workload prints (`cat tokfile`) is already redacted in
        progress output and summaries. A missing secret fails only the workload
        that uses it, when it renders.
        """
        for name in sorted(secret_names(value)):
            self.preload(name)

    def add(self, value: str) -> None:
        """Register a secret value from a provider (every form, lines included)."""
        if value:
            self._longest = max(self._longest, len(value))
            self._register(value, _forms(value, lines=True))

    def add_derived(self, value: str) -> bool:
        """Register a value computed from a secret; False if too short (or the cap is hit)."""
        if len(value) < MIN_DERIVED or value in self._values:
            return value in self._values
        if self._derived >= MAX_DERIVED:
            return False
        self._derived += 1
        # Lines of a derived value (`pem | upper`) are secret too, unless the value is
        # mostly something else (a whole script rendered around a token): then its
        # lines are ordinary text that must not be masked everywhere.
        lines = len(value) <= 2 * self._longest + 16
        self._register(value, _forms(value, lines=lines))
        return True

    def _register(self, value: str, forms: set[str]) -> None:
        with self._lock:
            self._values.add(value)
            new = forms - self._forms
            if not new:
                return
            self._forms |= new
            by_len = list(self._by_len)
            detect = list(self._detect)
            for form in sorted(new, key=len):
                bisect.insort(by_len, form, key=lambda f: -len(f))
                if not any(d in form for d in detect):
                    detect = [d for d in detect if form not in d]
                    detect.append(form)
            self._by_len, self._detect = by_len, tuple(detect)
            self._shortest = min(map(len, detect))

    def contains(self, text: str) -> bool:
        """Whether any secret form occurs in ``text``."""
        if len(text) < self._shortest:
            return False
        # `in` is a C substring search, several times faster per form than a
        # regex alternation scanning text that (nearly always) holds no secret.
        for form in self._detect:  # noqa: SIM110 - any(genexpr) is several times slower
            if form in text:
                return True
        return False

    def is_secret(self, value: Any) -> bool:
        """Whether ``value`` is taint-marked or holds a secret form (text, or inside a list/dict)."""
        if isinstance(value, SecretStr):
            return True
        if isinstance(value, str):
            return self.contains(value)
        if isinstance(value, Mapping):
            return any(self.is_secret(k) or self.is_secret(v) for k, v in value.items())
        if isinstance(value, list | tuple):
            return any(self.is_secret(v) for v in value)
        return False

    def redact_str(self, text: str) -> str:
        for form in self._detect:
            if form in text:
                return self._replace(text)
        return text

    def _replace(self, text: str) -> str:
        for form in self._by_len:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def redact_excerpt(self, text: str, limit: int, suffix: str = "…") -> str:
        """``text`` redacted, then cut to ``limit`` chars, masking a form cut in half at the edge."""
        text = self.redact_str(text)
        if len(text) <= limit:
            return text
        cut = text[:limit]
        start = text.find(REDACTED, max(0, limit - len(REDACTED) + 1), limit + len(REDACTED))
        if -1 < start < limit:  # the cut fell inside a marker: keep the marker whole
            return text[:start] + REDACTED + suffix
        return self.mask_cut_edge(cut) + suffix

    def mask_cut_edge(self, text: str) -> str:
        """Mask a partial secret form (at least MIN_PARTIAL chars) at the end of cut ``text``."""
        if not self._forms:
            return text
        best = 0
        for form in self._forms:
            for k in range(min(len(form) - 1, len(text)), MIN_PARTIAL - 1, -1):
                if k <= best:
                    break
                if text.endswith(form[:k]):
                    best = k
                    break
        return text[: len(text) - best] + REDACTED if best else text

    def redact(self, obj: Any) -> Any:
        """A copy of ``obj`` with every secret value replaced; ``obj`` itself if none occur."""
        if not self._values:
            return obj
        return self._redact(obj)

    def _redact(self, obj: Any) -> Any:
        cls = obj.__class__
        if cls is str:  # the common case first: exact types, no isinstance chain
            for form in self._detect:
                if form in obj:
                    return self._replace(obj)
            return obj
        if cls is dict:
            return {self._redact(k): self._redact(v) for k, v in obj.items()}
        if cls is list:
            return [self._redact(v) for v in obj]
        if cls is SecretStr:
            # Taint-marked, even a fragment too short to register: hidden whole.
            return REDACTED
        if cls is int or cls is float or cls is bool or obj is None:
            return obj
        if isinstance(obj, str):
            return self.redact_str(obj)
        if isinstance(obj, Mapping):
            return {self._redact(k): self._redact(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self._redact(v) for v in obj]
        if isinstance(obj, bytes):
            # Both the text and its repr()-escaped form (b'...\n...') are forms.
            return self.redact_str(obj.decode("utf-8", "replace")).encode()
        return obj
