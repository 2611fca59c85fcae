"""Modules: the registry and the API module authors write against.

Built-in modules live one per file in ``gxo/modules/<layer>/`` and are imported on
first use of the registry (``REGISTRY.get``/``all``), not at ``import gxo``.
"""

from gxo.modules.base import (
    LAYERS,
    REGISTRY,
    FreeParams,
    Module,
    ModuleParams,
    ModuleSpec,
    StreamRole,
    raw_template,
    register,
)

__all__ = [
    "LAYERS",
    "REGISTRY",
    "FreeParams",
    "Module",
    "ModuleContext",
    "ModuleParams",
    "ModuleSpec",
    "StreamRole",
    "raw_template",
    "register",
]


def __getattr__(name: str):  # ModuleContext lives in the engine; import it lazily
    if name == "ModuleContext":
        from gxo.engine.context import ModuleContext

        return ModuleContext
    raise AttributeError(name)
