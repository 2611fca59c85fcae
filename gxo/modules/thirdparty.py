"""Third-party modules: discovery, verification and import (docs/module-signing.md).

Two sources, both using the built-ins' ``register``/``Module`` API:

* packages exposing the entry-point group ``gxo.modules`` (the value names the Python
  module that calls ``register``: ``hello_mods = "hello_mods"``);
* ``--modules-dir DIR`` (and ``modules_dirs`` in the user config): each subdirectory
  of DIR with an ``__init__.py`` is a module package, imported under its own name.

Nothing is imported until the registry needs a name the built-ins do not have (or the
full list: ``gxo modules``). Then every package is located *without importing it*,
verified under the policy's mode (``enforce``: an unsigned, tampered or untrusted
package raises :class:`~gxo.errors.ModuleSignatureError` before any third-party code
runs; ``warn``: a warning; ``off``: no check), and imported from the very bytes that
were verified: a meta-path finder compiles the checked source, never a ``.pyc`` and
never a file re-read from disk after the check.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from gxo.errors import GxoError, ModuleSignatureError, RegistryError, UsageError
from gxo.modules.signing import TrustedKey, Verified, package_files, read_trusted_key
from gxo.userconfig import UserConfig, VerificationMode

__all__ = ["ENTRY_POINT_GROUP", "Candidate", "Policy", "install", "load_all", "resolve_policy"]

ENTRY_POINT_GROUP = "gxo.modules"


@dataclass
class Policy:
    """What third-party modules a process may load, and how they are checked."""

    mode: VerificationMode
    trusted_keys: tuple[str, ...] = ()  # --trusted-key: files or inline keys
    config_keys: tuple[str, ...] = ()  # the user config's (relative to base_dir)
    modules_dirs: tuple[Path, ...] = ()
    entry_points: bool = True
    base_dir: Path | None = None  # config-relative trusted key files
    #: where warnings go (``warn`` mode, a package that registers nothing)
    warn: Callable[[str], None] | None = None
    warnings: list[str] = field(default_factory=list)
    #: module names each loaded package registered, by package name
    loaded: dict[str, list[str]] = field(default_factory=dict)

    def emit(self, message: str) -> None:
        self.warnings.append(message)
        if self.warn is not None:
            self.warn(message)

    def keys(self) -> list[TrustedKey]:
        """The trusted public keys, read now (flags' files, then the config's)."""
        out = [read_trusted_key(k) for k in self.trusted_keys]
        out += [read_trusted_key(k, self.base_dir) for k in self.config_keys]
        return out


def resolve_policy(
    *,
    config: UserConfig,
    modules_dirs: Sequence[str | Path] = (),
    trusted_keys: Sequence[str] = (),
    mode: str | None = None,
    daemon: bool = False,
) -> Policy:
    """Flags over the user config. The mode defaults to ``enforce`` for the daemon and
    whenever a trusted key is configured, else ``warn``."""
    keys = tuple(trusted_keys)
    if mode is not None:
        try:
            chosen = VerificationMode(mode)
        except ValueError:
            raise UsageError(
                f"--module-verification {mode!r}: expected enforce, warn or off"
            ) from None
    elif config.mode is not None:
        chosen = config.mode
    else:
        configured = bool(keys or config.trusted_keys)
        chosen = VerificationMode.enforce if daemon or configured else VerificationMode.warn
    dirs = tuple(Path(d).expanduser() for d in modules_dirs) + config.modules_dirs
    return Policy(chosen, keys, config.trusted_keys, dirs, base_dir=config.base_dir)


@dataclass(frozen=True)
class Candidate:
    """A third-party module package found but not imported."""

    name: str  # top-level import name
    path: Path  # the package directory or single-file module
    target: str  # what to import (an entry point may name a submodule)
    origin: str  # for messages: "modules dir DIR" or "entry point ..."


def _modules_dir_candidates(directory: Path) -> list[Candidate]:
    if not directory.is_dir():
        raise UsageError(f"modules dir {directory}: not a directory")
    out = []
    for sub in sorted(directory.iterdir()):
        if sub.name.startswith((".", "_")) or not sub.is_dir() or sub.is_symlink():
            continue
        if not (sub / "__init__.py").is_file():
            continue
        if not sub.name.isidentifier():
            raise UsageError(
                f"modules dir {directory}: '{sub.name}' is not a valid Python package name"
            )
        out.append(Candidate(sub.name, sub, sub.name, f"modules dir {directory}"))
    return out


def _entry_point_candidates() -> list[Candidate]:
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        target = ep.module
        top = target.split(".", 1)[0]
        dist = getattr(getattr(ep, "dist", None), "name", None)
        origin = f"entry point '{ep.name}'" + (f" of {dist}" if dist else "")
        # PathFinder finds a top-level name without importing anything.
        spec = importlib.machinery.PathFinder.find_spec(top)
        if spec is None or spec.origin is None or not spec.has_location:
            raise RegistryError(
                f"{origin}: cannot find the package '{top}' of '{ep.value}' on sys.path "
                "(namespace packages cannot be verified)"
            )
        origin_path = Path(spec.origin)
        path = origin_path.parent if spec.submodule_search_locations else origin_path
        if path.suffix not in ("", ".py"):
            raise RegistryError(f"{origin}: '{top}' is not Python source ({path.name})")
        out.append(Candidate(top, path, target, origin))
    return out


def discover(policy: Policy) -> list[Candidate]:
    """Every third-party package, modules dirs first; a name found twice is an error."""
    found: list[Candidate] = []
    for directory in policy.modules_dirs:
        found.extend(_modules_dir_candidates(directory))
    if policy.entry_points:
        found.extend(_entry_point_candidates())
    by_name: dict[str, Candidate] = {}
    unique = []
    for c in found:
        seen = by_name.get(c.name)
        if seen is not None:
            if seen.path == c.path:
                continue  # several entry points of one package
            raise RegistryError(
                f"third-party module package '{c.name}' is found twice: {seen.path} "
                f"({seen.origin}) and {c.path} ({c.origin})"
            )
        by_name[c.name] = c
        unique.append(c)
    return unique


def _verify(c: Candidate, policy: Policy, keys: list[TrustedKey] | None) -> Verified:
    from gxo.modules.signing import verify_package

    if policy.mode is VerificationMode.off:
        return Verified(_read_unchecked(c), None, False)
    try:
        return verify_package(c.path, keys, name=c.name)
    except ModuleSignatureError as exc:
        if policy.mode is VerificationMode.enforce:
            raise ModuleSignatureError(
                exc.module,
                f"{exc.reason} ({c.origin}; refused: module verification is enforce)",
                path=exc.path,
            ) from None
        policy.emit(f"{exc} ({c.origin}; loaded anyway: module verification is warn)")
        return Verified(_read_unchecked(c), None, False)


def _read_unchecked(c: Candidate) -> dict[str, bytes]:
    try:
        return package_files(c.path)
    except ValueError as exc:
        raise RegistryError(f"third-party module package '{c.name}' ({c.path}): {exc}") from None
    except OSError as exc:
        raise RegistryError(
            f"third-party module package '{c.name}' ({c.path}): {exc.strerror}"
        ) from None


class _VerifiedSource(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds and loads ``top`` and ``top.*`` from the verified bytes of one package."""

    def __init__(self, top: str, root: Path, files: dict[str, bytes]) -> None:
        self.top = top
        self.root = root
        self.files = files
        self.single = root.is_file()
        self._where: dict[str, tuple[str, bool]] = {}  # module → (relative file, package?)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != self.top and not fullname.startswith(self.top + "."):
            return None
        parts = fullname.split(".")[1:]
        if self.single:
            if parts:
                raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
            rel, is_pkg = self.root.name, False
            location = self.root
        else:
            base = "/".join(parts)
            init = f"{base}/__init__.py" if base else "__init__.py"
            if init in self.files:
                rel, is_pkg = init, True
            elif parts and f"{base}.py" in self.files:
                rel, is_pkg = f"{base}.py", False
            elif any(f.startswith(f"{base}.") and f.endswith((".so", ".pyd")) for f in self.files):
                return None  # a verified extension module: the path finder loads it
            else:
                raise ModuleNotFoundError(
                    f"No module named {fullname!r} in the verified package '{self.top}'",
                    name=fullname,
                )
            location = self.root / rel
        self._where[fullname] = (rel, is_pkg)
        spec = importlib.util.spec_from_file_location(
            fullname,
            location,
            loader=self,
            submodule_search_locations=[str(location.parent)] if is_pkg else None,
        )
        return spec

    def is_package(self, fullname: str) -> bool:
        return self._where[fullname][1]

    def get_source(self, fullname: str) -> str:
        return importlib.util.decode_source(self.files[self._where[fullname][0]])

    def get_resource_reader(self, fullname: str) -> Any:
        """``importlib.resources.files(package)``: the package directory on disk (data
        files are verified at load, read when the module reads them)."""
        from importlib.readers import FileReader
        from types import SimpleNamespace

        rel, is_pkg = self._where[fullname]
        if not is_pkg:
            return None
        return FileReader(SimpleNamespace(path=str(self.root / rel)))  # type: ignore[arg-type]

    def get_code(self, fullname: str) -> Any:
        rel = self._where[fullname][0]
        origin = str(self.root if self.single else self.root / rel)
        return compile(self.files[rel], origin, "exec", dont_inherit=True)


def _install_finder(c: Candidate, files: dict[str, bytes]) -> None:
    for finder in list(sys.meta_path):
        if isinstance(finder, _VerifiedSource) and finder.top == c.name:
            _forget(c.name)
            sys.meta_path.remove(finder)
    existing = sys.modules.get(c.name)
    if existing is not None or c.name in sys.stdlib_module_names:
        raise RegistryError(
            f"third-party module package '{c.name}' ({c.origin}) has the name of a Python "
            "module already in use; rename the package"
        )
    if c.origin.startswith("modules dir ") and importlib.machinery.PathFinder.find_spec(c.name):
        raise RegistryError(
            f"third-party module package '{c.name}' ({c.origin}) would shadow the installed "
            f"Python package '{c.name}'; rename it"
        )
    sys.meta_path.insert(0, _VerifiedSource(c.name, c.path, files))


def _forget(top: str) -> None:
    """A reload (tests, a re-read policy): drop the old import and what it registered."""
    from gxo.modules.base import REGISTRY

    ours = {m for m in sys.modules if m == top or m.startswith(top + ".")}
    for spec in [s for s in REGISTRY._specs.values() if s.cls.__module__ in ours]:
        del REGISTRY._specs[spec.name]
        for alias in spec.aliases:
            REGISTRY._aliases.pop(alias, None)
    for mod in ours:
        del sys.modules[mod]


def _import(c: Candidate) -> ModuleType:
    try:
        return importlib.import_module(c.target)
    except GxoError:
        raise  # a RegistryError from register(): already names the class
    except Exception as exc:  # third-party code may raise anything
        raise RegistryError(
            f"third-party module package '{c.name}' ({c.origin}) failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def load_all(policy: Policy) -> None:
    """Verify every third-party package, then import them (they call ``register``)."""
    from gxo.modules.base import REGISTRY

    candidates = discover(policy)
    if not candidates:
        return
    keys = policy.keys() if policy.mode is not VerificationMode.off else None
    verified = [(c, _verify(c, policy, keys)) for c in candidates]  # all before any import
    for c, result in verified:
        _install_finder(c, result.files)
        before = set(REGISTRY._specs)
        _import(c)
        added = sorted(set(REGISTRY._specs) - before)
        policy.loaded[c.name] = added
        if not added:
            policy.emit(f"third-party module package '{c.name}' ({c.origin}) registers no module")


def install(policy: Policy) -> Policy:
    """Make the registry load third-party modules under ``policy`` when first needed.

    The trusted keys are read now: a missing or malformed key file is a usage error
    even when the playbook uses built-in modules only."""
    from gxo.modules.base import REGISTRY

    if policy.mode is not VerificationMode.off:
        policy.keys()
    REGISTRY.use_third_party(lambda: load_all(policy))
    return policy
