"""``gxo admin state-key generate`` and ``gxo admin rekey-state``."""

from __future__ import annotations

import typer


def register(admin_app: typer.Typer) -> None:
    """Add the state-key commands to ``gxo admin``."""
