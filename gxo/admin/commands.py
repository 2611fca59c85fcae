"""The ``gxo admin`` typer app. Only typer here: each command imports what it needs."""

from __future__ import annotations

import typer

from gxo.admin import keys, pki, signing, state

__all__ = ["admin_app"]

admin_app = typer.Typer(
    help="Offline administration: control-plane PKI, state keys, module signing.",
    no_args_is_help=True,
)
pki.register(admin_app)
state.register(admin_app)
keys.register(admin_app)
signing.register(admin_app)
