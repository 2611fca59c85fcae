"""Where the daemon's socket is (shared by ``gxo daemon`` and ``gxo ctl``; imports nothing heavy)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_socket"]


def default_socket(explicit: str | Path | None = None) -> Path:
    """--socket, else GXO_SOCKET, else $XDG_RUNTIME_DIR/gxo/daemon.sock, else ~/.gxo/daemon.sock."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("GXO_SOCKET"):
        return Path(os.environ["GXO_SOCKET"]).expanduser()
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "gxo" / "daemon.sock"
    return Path.home() / ".gxo" / "daemon.sock"
