"""The ``gxo admin`` typer app. Only typer here: each command imports what it needs."""

from __future__ import annotations

import typer

from gxo.admin import pki, state

__all__ = ["admin_app"]

admin_app = typer.Typer(
    help="Offline administration: control-plane PKI, state keys.", no_args_is_help=True
)
pki.register(admin_app)
state.register(admin_app)
