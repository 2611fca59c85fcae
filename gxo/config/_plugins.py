"""Pydantic's plugin scan, skipped where it would find nothing (issue 19: start-up).

The first pydantic model of a process asks ``importlib.metadata`` for the entry points
of the ``pydantic`` group: every distribution on ``sys.path`` is listed and each
``entry_points.txt`` parsed (~31 M instructions of a ``gxo run``). Reading those same
files for the word "pydantic" costs a fraction of that; when no distribution mentions
it, pydantic's answer is known: no plugins. Anything unusual (a zip or a non-path
entry on ``sys.path``, another finder that lists distributions, the scan already made,
``PYDANTIC_DISABLE_PLUGINS`` set) leaves the scan to pydantic, so installed plugins
load exactly as before.
"""

from __future__ import annotations

import os
import sys

__all__ = ["skip_empty_plugin_scan"]


def _no_plugin_declared() -> bool:
    """True only when no distribution ``importlib.metadata`` can see declares an entry
    point mentioning "pydantic" (a superset of the ``pydantic`` group)."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not PathFinder:
            return False
    for entry in sys.path:
        if not isinstance(entry, str):
            return False
        root = entry or "."
        try:
            names = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip file: importlib.metadata reads inside it
                return False
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(root, name, "entry_points.txt"), "rb") as fh:
                    if b"pydantic" in fh.read().lower():
                        return False
            except FileNotFoundError:
                continue
            except OSError:  # e.g. a PKG-INFO-style .egg-info file
                if not os.path.isfile(os.path.join(root, name)):
                    return False
    return True


def skip_empty_plugin_scan() -> None:
    """Before the first model: tell pydantic it has no plugins when that is what its own
    scan would find."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") is not None:
        return  # pydantic reads it itself
    loader = sys.modules.get("pydantic.plugin._loader")
    if loader is not None and getattr(loader, "_plugins", None) is not None:
        return  # scanned already
    if not _no_plugin_declared():
        return
    from pydantic.plugin import _loader

    if _loader._plugins is None and not _loader._loading_plugins:
        _loader._plugins = {}
