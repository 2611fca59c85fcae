"""What a module is, and how it is registered.

A module is one class in one file under ``gxo/modules/<layer>/``::

    @register("exec", layer="system")
    class Exec(Module):
        '''Run a local command.

        Example:
            process:
              module: exec
              params: { command: uname, args: [-r] }
        '''

        class Params(ModuleParams):
            command: str = Field(..., description="Command to run")

        summary = {"stdout": "captured standard output", ...}

        async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
            ...

Registration validates at import time (pluggy-style): a duplicate name, a
non-async ``perform``, a wrong signature, a params model that allows unknown keys,
or a field without a description raises :class:`~gxo.errors.RegistryError`.

Check mode (``gxo run --check``, docs/check-mode.md): a module declares
``check_mode`` — ``safe`` (read-only: it runs for real), ``predict`` (its async
``check(ctx, params)`` says what ``perform`` would do, without doing it) or
``unsupported`` (the default: it is not run, and what needs its result is skipped).
"""

from __future__ import annotations

import inspect
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import SchemaValidator

from gxo.errors import RegistryError

if TYPE_CHECKING:
    from gxo.engine.context import ModuleContext

__all__ = [
    "LAYERS",
    "CheckMode",
    "CheckUnsupported",
    "FreeParams",
    "Module",
    "ModuleParams",
    "ModuleSpec",
    "ReadsUnlessDest",
    "StreamRole",
    "raw_template",
    "register",
]

LAYERS = ("system", "connection", "protocol", "data", "application", "integration", "test")
_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)?$")
RAW_KEY = "x-gxo-raw-template"


class ModuleParams(BaseModel):
    """Base of every module's params model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class FreeParams(BaseModel):
    """Params of modules that accept any mapping (``control:identity``)."""

    model_config = ConfigDict(extra="allow")


def raw_template(
    default: Any = ..., *, description: str, expression: bool = False, **kwargs: Any
) -> Any:
    """A params field the engine leaves unrendered: the module renders it itself.

    Used for per-record templates (``data:map`` fields see ``record``) and for
    conditions evaluated by the module. References inside still count for the DAG.
    ``expression=True`` marks a condition that may be written bare (``record.n > 2``):
    a plain string there is analysed as an expression, elsewhere as literal text.
    """
    extra = kwargs.pop("json_schema_extra", {}) or {}
    extra[RAW_KEY] = "expression" if expression else True
    return Field(default, description=description, json_schema_extra=extra, **kwargs)


class StreamRole(StrEnum):
    none = "none"  # neither reads nor writes records
    optional = "optional"
    required = "required"


class CheckMode(StrEnum):
    """What a module does under ``gxo run --check`` (docs/check-mode.md)."""

    safe = "safe"  # read-only: perform runs for real
    predict = "predict"  # check(ctx, params) predicts perform's summary, changing nothing
    unsupported = "unsupported"  # cannot predict: not run; what needs its result is skipped


class ReadsUnlessDest:
    """Check mode of a module that only reads unless its ``dest`` param makes it write a
    file: runs for real under ``gxo run --check`` without ``dest``, not run with it.
    Listed before :class:`Module` in the bases."""

    check_mode: ClassVar[CheckMode] = CheckMode.safe
    check_hint: ClassVar[str] = "it writes dest"

    def check_mode_for(self, params: Any) -> CheckMode:
        return CheckMode.safe if params.dest is None else CheckMode.unsupported


class CheckUnsupported(Exception):
    """Raised by :meth:`Module.check` when this call cannot be predicted (``reason`` says why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Module:
    """Base class of modules. Subclasses define ``Params`` and ``perform``."""

    Params: ClassVar[type[BaseModel]] = ModuleParams
    #: summary keys and what they mean (documentation, `gxo modules NAME`)
    summary: ClassVar[dict[str, str]] = {}
    #: does the module read ``stream_inputs`` / write an output stream?
    consumes: ClassVar[StreamRole] = StreamRole.none
    produces: ClassVar[bool] = False
    #: True when a ``stream_inputs`` entry that produces no stream is waited for
    #: like ``depends_on`` instead of being an error (control:barrier, as upstream)
    waits_for_any_input: ClassVar[bool] = False
    #: extra names the module supplies to its raw (module-rendered) templates
    template_names: ClassVar[frozenset[str]] = frozenset({"record"})
    #: False when the module itself handles undefined names in its raw templates
    #: (test:assert's ``is_defined``), so validation must not reject them
    strict_template_names: ClassVar[bool] = True
    #: params naming a filesystem path, dotted when nested (``dead_letter.path``).
    #: The module passes each through ``ctx.resolve_path(value, param=...)``; a
    #: confined run also refuses their literal values up front (gxo/engine/confine.py)
    path_params: ClassVar[tuple[str, ...]] = ()
    #: behaviour under ``gxo run --check``; modules that declare nothing cannot predict
    check_mode: ClassVar[CheckMode] = CheckMode.unsupported
    #: appended to the "cannot predict" reason (``exec``: how to make it run anyway)
    check_hint: ClassVar[str] = ""

    spec: ClassVar[ModuleSpec]

    async def perform(self, ctx: ModuleContext, params: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def check_mode_for(self, params: Any) -> CheckMode:
        """:attr:`check_mode` for these (validated) params; override to decide per call
        (``http:request``: a GET is ``safe``, a POST is ``predict``)."""
        return self.check_mode

    async def check(self, ctx: ModuleContext, params: Any) -> dict[str, Any] | None:
        """The summary ``perform`` would return, with ``changed``; nothing is changed.

        Called under ``--check`` when :meth:`check_mode_for` says ``predict``. With
        ``ctx.diff`` a module adds what it would change with ``ctx.add_diff(text)``.
        Raise :class:`CheckUnsupported` when this call cannot be predicted after all.
        """
        raise CheckUnsupported(f"module '{self.spec.name}' cannot predict what it would do")

    @classmethod
    def literal_paths(cls, params: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """``(param, raw value)`` for each :attr:`path_params` set in a workload's params."""
        for dotted in cls.path_params:
            value: Any = params
            for key in dotted.split("."):
                value = value.get(key) if isinstance(value, Mapping) else None
            if value is not None:
                yield dotted, value


class ModuleSpec:
    """Registry entry: everything known about a module without running it."""

    def __init__(self, name: str, layer: str, cls: type[Module], aliases: tuple[str, ...]) -> None:
        self.name = name
        self.layer = layer
        self.cls = cls
        self.aliases = aliases
        doc = inspect.cleandoc(cls.__doc__ or "")
        self.synopsis = doc.splitlines()[0] if doc else ""
        self.doc = doc
        self.raw_paths = frozenset(_raw_paths(cls.Params))
        self.expression_paths = frozenset(_raw_paths(cls.Params, expressions_only=True))
        self._validator: tuple[type[BaseModel], Callable[[Any], Any]] | None = None

    @property
    def params_model(self) -> type[BaseModel]:
        return self.cls.Params

    def validate_params(self, value: Any) -> Any:
        """``params_model.model_validate(value)``: the model's compiled validator, called
        without ``model_validate``'s Python wrapper (its keyword handling cost more than
        validating a small params dict). Raises ``ValidationError`` the same way."""
        model = self.cls.Params
        cached = self._validator
        if cached is None or cached[0] is not model:
            validator = model.__pydantic_validator__
            call = (
                validator.validate_python
                if isinstance(validator, SchemaValidator)
                else model.model_validate  # not built yet (a forward reference): as pydantic does
            )
            cached = self._validator = (model, call)
        return cached[1](value)

    @property
    def example(self) -> str:
        """The YAML example from the docstring (text after an ``Example:`` line)."""
        lines = self.doc.splitlines()
        for i, line in enumerate(lines):
            if line.strip().lower().rstrip(":") in ("example", "examples"):
                # dedent, not cleandoc: cleandoc strips the first line's indentation
                # alone, which breaks a YAML list whose items span several lines.
                return textwrap.dedent("\n".join(lines[i + 1 :])).strip("\n")
        return ""

    def is_raw(self, path: str) -> bool:
        """True if the param at ``path`` (``fields.name``) is rendered by the module itself."""
        if not self.raw_paths:
            return False
        top = path.split(".", 1)[0].split("[", 1)[0]
        return top in self.raw_paths

    def instantiate(self) -> Module:
        return self.cls()


def _raw_paths(model: type[BaseModel], *, expressions_only: bool = False) -> set[str]:
    out = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        mark = extra.get(RAW_KEY) if isinstance(extra, dict) else None
        if mark and (not expressions_only or mark == "expression"):
            out.add(field.alias or name)
    return out


class Registry:
    """Module name → spec. Built-ins load on first use; old names resolve with a warning."""

    def __init__(self) -> None:
        self._specs: dict[str, ModuleSpec] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False
        self._index: dict[str, str] | None = None
        # third-party modules (gxo/modules/thirdparty.py): loaded once, on first need
        self._third_party: Callable[[], None] | None = None
        self._third_party_state: BaseException | bool = False

    def use_third_party(self, loader: Callable[[], None] | None) -> None:
        """Install (None: remove) the loader of third-party modules. It runs when a
        name is not a built-in, or for the full list; an error it raises is raised
        again on every later use (a refused module stays refused)."""
        self._third_party = loader
        self._third_party_state = False

    def load_third_party(self) -> None:
        if self._third_party is None:
            return
        if isinstance(self._third_party_state, BaseException):
            raise self._third_party_state
        if self._third_party_state:
            return
        self._third_party_state = True
        try:
            self._third_party()
        except BaseException as exc:
            self._third_party_state = exc
            raise

    def add(self, spec: ModuleSpec) -> None:
        index = self._read_index()
        for name in (spec.name, *spec.aliases):
            owner = index.get(name)
            if owner is not None and owner != spec.cls.__module__:
                # A built-in owns this name even before its file is imported.
                raise RegistryError(
                    f"module name '{name}' is already registered by built-in {owner}"
                )
            if name in self._specs or name in self._aliases:
                existing = self._specs.get(name) or self._specs[self._aliases[name]]
                raise RegistryError(
                    f"module name '{name}' is already registered by {existing.cls.__module__}.{existing.cls.__qualname__}"
                )
        self._specs[spec.name] = spec
        for alias in spec.aliases:
            self._aliases[alias] = spec.name

    def load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import importlib
        import pkgutil

        import gxo.modules as pkg

        for layer in LAYERS:
            layer_pkg = importlib.import_module(f"{pkg.__name__}.{layer}")
            for info in pkgutil.iter_modules(layer_pkg.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{layer_pkg.__name__}.{info.name}")

    def _read_index(self) -> dict[str, str]:
        if self._index is None:
            import json
            from importlib import resources

            try:
                text = (
                    resources.files("gxo.modules").joinpath(INDEX_FILE).read_text(encoding="utf-8")
                )
                self._index = json.loads(text)
            except (OSError, ValueError):
                self._index = {}
        return self._index

    def _load_from_index(self, name: str) -> None:
        """Import only the file that defines ``name`` (from the generated index)."""
        target = self._read_index().get(name)
        if target is not None:
            import importlib

            try:
                importlib.import_module(target)
            except ImportError:
                pass  # a stale index: the full scan below finds it, or nothing does

    def resolve(self, name: str) -> tuple[ModuleSpec | None, str | None]:
        """``(spec, deprecation_warning)``; spec is None for an unknown name.

        Imports just the defining file when the index knows the name (start-up:
        a playbook pays for the modules it uses), else scans every built-in.
        """
        if not self._loaded and name not in self._specs and name not in self._aliases:
            self._load_from_index(name)
            if name not in self._specs and name not in self._aliases:
                self.load_builtins()
        if name not in self._specs and name not in self._aliases:
            self.load_third_party()
        spec = self._specs.get(name)
        if spec is not None:
            return spec, None
        target = self._aliases.get(name)
        if target is not None:
            return self._specs[target], f"module name '{name}' is deprecated: use '{target}'"
        return None, None

    def get(self, name: str) -> ModuleSpec | None:
        spec = self._specs.get(name)  # a registered name: once per workload run
        return spec if spec is not None else self.resolve(name)[0]

    def all(self) -> list[ModuleSpec]:
        self.load_builtins()
        self.load_third_party()
        return sorted(self._specs.values(), key=lambda s: (LAYERS.index(s.layer), s.name))

    def names(self) -> list[str]:
        self.load_builtins()
        self.load_third_party()
        return sorted(self._specs)

    def suggest(self, name: str) -> list[str]:
        import difflib

        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)


REGISTRY = Registry()
INDEX_FILE = "index.json"


def build_index() -> dict[str, str]:
    """Module name (and alias) → defining Python module, for every built-in."""
    REGISTRY.load_builtins()
    out: dict[str, str] = {}
    for spec in REGISTRY.all():
        if not spec.cls.__module__.startswith("gxo.modules."):
            continue  # a third-party module is never in the built-ins' index
        for name in (spec.name, *spec.aliases):
            out[name] = spec.cls.__module__
    return dict(sorted(out.items()))


M = TypeVar("M", bound=type[Module])


def _check_check_mode(cls: type[Module], where: str) -> None:
    """``check_mode`` is a :class:`CheckMode`; ``predict`` needs an ``async def check``."""
    mode = cls.check_mode
    if not isinstance(mode, CheckMode):
        try:
            cls.check_mode = mode = CheckMode(mode)
        except ValueError:
            raise RegistryError(
                f"{where}: check_mode must be one of {', '.join(m.value for m in CheckMode)}, got {mode!r}"
            ) from None
    check = getattr(cls, "check", None)
    if mode is CheckMode.predict and check is Module.check:
        raise RegistryError(
            f"{where}: check_mode predict needs 'async def check(self, ctx, params)'"
        )
    if check is not Module.check:
        if not inspect.iscoroutinefunction(check):
            raise RegistryError(f"{where}: check must be 'async def'")
        if list(inspect.signature(check).parameters) != ["self", "ctx", "params"]:
            raise RegistryError(f"{where}: check must have the signature (self, ctx, params)")


def register(name: str, *, layer: str, aliases: tuple[str, ...] = ()) -> Callable[[M], M]:
    """Class decorator registering a module; validates the class at import time."""

    def decorate(cls: M) -> M:
        where = f"{cls.__module__}.{cls.__qualname__}"
        for n in (name, *aliases):
            if not _NAME.match(n):
                raise RegistryError(
                    f"{where}: invalid module name '{n}' (expected e.g. exec or data:map)"
                )
        if layer not in LAYERS:
            raise RegistryError(f"{where}: unknown layer '{layer}' (one of {', '.join(LAYERS)})")
        if not (isinstance(cls, type) and issubclass(cls, Module)):
            raise RegistryError(f"{where}: a module must subclass gxo.modules.Module")
        perform = cls.__dict__.get("perform") or getattr(cls, "perform", None)
        if perform is None or perform is Module.perform:
            raise RegistryError(
                f"{where}: a module must define 'async def perform(self, ctx, params)'"
            )
        if not inspect.iscoroutinefunction(perform):
            raise RegistryError(f"{where}: perform must be 'async def'")
        if list(inspect.signature(perform).parameters) != ["self", "ctx", "params"]:
            raise RegistryError(f"{where}: perform must have the signature (self, ctx, params)")
        params = cls.Params
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise RegistryError(f"{where}: Params must be a pydantic model")
        if not issubclass(params, FreeParams) and params.model_config.get("extra") != "forbid":
            raise RegistryError(f"{where}: Params must forbid unknown keys (subclass ModuleParams)")
        for fname, field in params.model_fields.items():
            if not field.description:
                raise RegistryError(f"{where}: param '{fname}' needs a description")
        _check_check_mode(cls, where)
        spec = ModuleSpec(name, layer, cls, tuple(aliases))
        cls.spec = spec
        REGISTRY.add(spec)
        return cls

    return decorate
