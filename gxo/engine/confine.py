"""Filesystem confinement: the one resolver for every path a module is given.

Modules never turn a path param into a :class:`~pathlib.Path` themselves: they call
``ctx.resolve_path(value, param="path")`` (:class:`gxo.engine.context.ModuleContext`),
which asks the run's :class:`PathResolver`.

Unconfined (``gxo run`` by default): a relative path is joined to the run's workspace,
an absolute one is kept, ``~`` is expanded; nothing is refused.

Confined (every playbook applied to the daemon; ``gxo run --confine``): the same
joining, then the path must stay in one of the *roots*, the workspace and each
``--allow-path`` directory. The check runs on the real path (``os.path.realpath``:
every symlink followed, ``..`` applied after it, as the kernel does), so ``../x``, an
absolute path elsewhere, a symlink inside the workspace pointing out and a symlinked
parent directory are all refused. The parent directory is checked too, so a symlink
*to* the workspace placed outside it does not let a module rename or delete in a
directory outside.

The resolver returns the path with its parent directory resolved and the last
component kept as written: a module that acts on a symlink itself (``filesystem:stat``
with ``follow_symlinks: false``, ``filesystem:manage state: absent``) keeps doing so.

Residual risk (docs/confinement.md): the check and the module's open are two steps. A
process that can write in the workspace may swap a directory for a symlink in between
(time-of-check to time-of-use); confinement guards a playbook's paths, it is not a
sandbox against concurrent local writers. ``filesystem:read`` and ``filesystem:write``
close that window for the file they open: :meth:`PathResolver.check_opened` checks
the file descriptor they got (Linux), not the name.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from gxo.errors import GxoError, ModuleParamsError, PlaybookValidationError, UsageError

if TYPE_CHECKING:
    from gxo.config.loader import LoadedPlaybook

__all__ = [
    "Confinement",
    "ConfinementError",
    "PathResolver",
    "allowed_dirs",
    "check_literal_paths",
    "literal_path_problems",
]


class ConfinementError(ModuleParamsError):
    """A path param leaves the workspace and every allowed directory (never retried)."""


@dataclass(frozen=True)
class Confinement:
    """A confined workspace, given as an Engine's ``workspace``.

    ``root``: the workspace (as the plain ``workspace`` argument: a directory, ``None``
    for the current one, ``"temp"``); it is created 0700 when missing. ``allow``: more
    directories paths may reach (``--allow-path``).
    """

    root: str | Path | None = None
    allow: tuple[str, ...] = ()

    def resolver(self) -> PathResolver:
        """A resolver for checks before the run (the workspace need not exist yet)."""
        root = self.root
        if root is None:
            base = Path.cwd()
        elif str(root) == "temp":  # any fresh temporary directory: one that does not exist
            base = Path(tempfile.gettempdir(), "gxo-workspace-(temp)")
        else:
            base = Path(_real(root))  # as the Engine will: resolved
        return PathResolver(base, confined=True, allow=self.allow)


def allowed_dirs(paths: Iterable[str]) -> tuple[str, ...]:
    """``--allow-path`` values as real paths; each must be an existing directory."""
    out: list[str] = []
    for raw in paths:
        real = _real(raw)
        if not os.path.isdir(real):
            raise UsageError(f"--allow-path {raw}: not a directory")
        out.append(real)
    return tuple(out)


def _real(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


# The real paths of a resolver's roots, per (workspace, allow): a daemon makes a resolver
# per instance, and resolving costs an lstat per path component. Resolved again after
# ROOTS_RECHECK seconds (as the engine's workspace, gxo/engine/scheduler.py): a root
# replaced by a symlink meanwhile only makes the check stricter (the real path of a
# target then lies outside the cached root), never lets an escape through.
ROOTS_RECHECK = 1.0
_ROOTS: dict[tuple[str | Path, tuple[str | Path, ...]], tuple[tuple[str, ...], float]] = {}


def _roots(workspace: str | Path, allow: tuple[str | Path, ...]) -> tuple[str, ...]:
    key = (workspace, allow)
    now = time.monotonic()
    cached = _ROOTS.get(key)
    if cached is not None and now - cached[1] < ROOTS_RECHECK:
        return cached[0]
    roots: list[str] = []
    for root in (workspace, *allow):
        real = _real(root)
        if real not in roots:
            roots.append(real)
    if len(_ROOTS) > 256:  # many workspaces (tests): start afresh
        _ROOTS.clear()
    _ROOTS[key] = (tuple(roots), now)
    return _ROOTS[key][0]


def _inside(real: str, root: str) -> bool:
    return PurePath(real).is_relative_to(root)


class PathResolver:
    """Resolves path params against a workspace; refuses escapes when ``confined``."""

    def __init__(
        self, workspace: Path, *, confined: bool = False, allow: Iterable[str | Path] = ()
    ) -> None:
        self.workspace = workspace
        self.confined = confined
        self.roots: tuple[str, ...] = _roots(workspace, tuple(allow)) if confined else ()

    def describe_roots(self) -> str:
        if not self.roots:
            return ""
        allowed = ", ".join(self.roots[1:]) or "none"
        return f"the workspace {self.roots[0]}; allowed directories (--allow-path): {allowed}"

    def resolve(
        self, path: str | os.PathLike[str], *, workload: str | None = None, param: str = "path"
    ) -> Path:
        text = os.fspath(path) if isinstance(path, os.PathLike) else path
        if not isinstance(text, str):
            raise self._error(workload, param, repr(text), "is not a string")
        if "\0" in text:
            raise self._error(workload, param, text, "contains a NUL byte")
        try:
            joined = Path(text).expanduser()
        except RuntimeError:  # ~user with no such user, or no home directory
            raise self._error(workload, param, text, "has a '~' that cannot be expanded") from None
        if not joined.is_absolute():
            joined = self.workspace / joined
        if not self.confined:
            return joined
        return self._confine(joined, text, workload, param)

    def _confine(self, joined: Path, text: str, workload: str | None, param: str) -> Path:
        candidate = os.fspath(joined).rstrip(os.sep) or os.sep
        name = os.path.basename(candidate)
        if name in ("", ".", ".."):  # a directory named by its own path: no last link
            real = os.path.realpath(candidate)
            self._require_inside(real, candidate, text, workload, param)
            return Path(real)
        # The parent resolved once; the last component only when it is a symlink.
        parent = os.path.realpath(os.path.dirname(candidate))
        target = os.path.join(parent, name)
        is_link = os.path.islink(target)
        real = os.path.realpath(target) if is_link else target
        self._require_inside(real, candidate, text, workload, param)
        if real in self.roots and not is_link:  # the workspace (or an allowed dir) itself
            return Path(real)
        if not any(_inside(parent, root) for root in self.roots):
            raise self._error(workload, param, text, f"is in the directory {parent}, outside")
        return Path(target)

    def _require_inside(
        self, real: str, candidate: str, text: str, workload: str | None, param: str
    ) -> None:
        if not any(_inside(real, root) for root in self.roots):
            how = " (through a symlink)" if real != os.path.normpath(candidate) else ""
            raise self._error(workload, param, text, f"resolves to {real}{how}, outside")

    def contains(self, path: str | Path) -> bool:
        """True when ``path``'s real path is inside a root (always, unconfined). Blocking."""
        return not self.confined or any(_inside(_real(path), r) for r in self.roots)

    def check_opened(
        self, fd: int, text: str, *, workload: str | None = None, param: str = "path"
    ) -> None:
        """After a module opened ``fd``: the file really opened is inside a root.

        Closes the check-then-open window for the files a module opens itself
        (Linux: ``/proc/self/fd``; elsewhere the check before the open stands alone).
        Blocking: call it in the module's worker thread.
        """
        if not self.confined:
            return
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        if not any(_inside(real, root) for root in self.roots):
            raise self._error(workload, param, text, f"was opened as {real}, outside")

    def _error(self, workload: str | None, param: str, text: str, what: str) -> ConfinementError:
        shown = text if len(text) <= 200 else text[:200] + "..."
        if what.endswith("outside"):
            what = f"{what} {self.describe_roots()}"
        return ConfinementError(f"param '{param}': path {shown!r} {what}", workload=workload)


# -- literal path params, checked before a run or at apply --------------------------------


def literal_path_problems(loaded: LoadedPlaybook, resolver: PathResolver) -> list[GxoError]:
    """Every literal (non-templated) path param that ``resolver`` refuses, with file:line.

    Templated values are checked when the workload runs, once rendered.
    """
    from gxo.modules import REGISTRY
    from gxo.template.engine import is_template

    problems: list[GxoError] = []
    for workload in loaded.playbook.workloads:
        spec = REGISTRY.get(workload.process.module)
        if spec is None:
            continue
        for param, value in spec.cls.literal_paths(workload.process.params):
            if not isinstance(value, str) or is_template(value):
                continue
            try:
                resolver.resolve(value, workload=workload.name, param=param)
            except ConfinementError as exc:
                where = loaded.workload_location(
                    workload.name, "process", "params", *param.split(".")
                )
                problems.append(
                    ConfinementError(exc.message, location=where, workload=workload.name)
                )
    return problems


def check_literal_paths(loaded: LoadedPlaybook, resolver: PathResolver) -> None:
    """Raise a :class:`PlaybookValidationError` listing every refused literal path."""
    problems = literal_path_problems(loaded, resolver)
    if problems:
        raise PlaybookValidationError(
            f"{len(problems)} path(s) outside the confinement", problems=problems
        )
