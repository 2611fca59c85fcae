"""``gxo admin pki init | issue-server | issue-client``."""

from __future__ import annotations

import typer


def register(admin_app: typer.Typer) -> None:
    """Add the ``pki`` commands to ``gxo admin``."""
