"""``gxo ctl --context NAME``: named daemons in ``~/.gxo/contexts.yaml``.

.. code-block:: yaml

    contexts:
      prod:
        server: gxo.example.com:7443   # the daemon's --listen HOST:PORT
        cert: pki/alice.pem            # this client's certificate ...
        key: pki/alice-key.pem         # ... and key (keep it 0600)
        ca: pki/ca.pem                 # the CA that signed the daemon's certificate
      local:
        socket: /run/user/1000/gxo/daemon.sock

Relative paths are relative to the file's directory; ``~`` is expanded. Flags given
on the command line (``--server``, ``--cert``, ``--key``, ``--ca``) override the
context's values. ``GXO_CONTEXTS`` names another file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Context", "ContextError", "contexts_file", "load_context"]

_KEYS = ("server", "cert", "key", "ca", "socket")


class ContextError(Exception):
    """A missing or bad context (exit 2); the message names the file and line."""


@dataclass(frozen=True)
class Context:
    name: str
    server: str | None = None
    cert: str | None = None
    key: str | None = None
    ca: str | None = None
    socket: str | None = None


def contexts_file() -> Path:
    return Path(os.environ.get("GXO_CONTEXTS") or Path.home() / ".gxo" / "contexts.yaml")


def load_context(name: str, path: Path | None = None) -> Context:
    from gxo.config.yamlsafe import parse_yaml, read_text_file
    from gxo.errors import GxoError

    path = path or contexts_file()
    shown = str(path)
    if not path.exists():
        raise ContextError(f"--context {name}: {shown} does not exist")
    try:
        data, positions = parse_yaml(read_text_file(path, "contexts file"), shown)
    except GxoError as exc:
        raise ContextError(str(exc)) from None

    def fail(where: tuple[Any, ...], message: str) -> ContextError:
        found = positions.nearest(where) if positions else None
        return ContextError(f"{shown}{f':{found[0]}' if found else ''}: {message}")

    contexts = data.get("contexts") if isinstance(data, dict) else None
    if not isinstance(contexts, dict):
        raise fail((), "expected a mapping 'contexts:' of NAME → {server, cert, key, ca}")
    if name not in contexts:
        known = ", ".join(sorted(str(k) for k in contexts)) or "none"
        raise ContextError(f"--context {name}: not in {shown} (defined: {known})")
    entry = contexts[name]
    where = ("contexts", name)
    if not isinstance(entry, dict):
        raise fail(where, f"context '{name}' must be a mapping of server, cert, key, ca")
    values: dict[str, str] = {}
    for key, value in entry.items():
        if key not in _KEYS:
            raise fail((*where, key), f"context '{name}': unknown key '{key}' ({', '.join(_KEYS)})")
        if not isinstance(value, str) or not value:
            raise fail((*where, key), f"context '{name}': {key} must be a non-empty string")
        if key != "server":
            value = str((path.parent / Path(value).expanduser()).absolute())
        values[key] = value
    if "server" in values and "socket" in values:
        raise fail(where, f"context '{name}': give server or socket, not both")
    if "server" not in values and "socket" not in values:
        raise fail(where, f"context '{name}' needs server (HOST:PORT) or socket")
    return Context(name, **values)
