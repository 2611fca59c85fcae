"""``gxo admin keys generate``: an Ed25519 key pair for signing third-party modules
(docs/module-signing.md). ``cryptography`` loads inside the command only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

keys_app = typer.Typer(
    help="Keys that sign third-party module packages (docs/module-signing.md).",
    no_args_is_help=True,
)


@keys_app.command("generate")
def generate(
    out: Annotated[
        Path,
        typer.Option("--out", help="Directory for signing.key (0600) and signing.pub (new files)"),
    ],
) -> None:
    """Write a new Ed25519 key pair: DIR/signing.key (private, 0600) and DIR/signing.pub.

    Give signing.pub to whoever runs your modules (``--trusted-key`` or
    ``module_verification.trusted_keys``); keep signing.key to yourself. Never overwrites.
    """
    from gxo.errors import GxoError
    from gxo.modules.signing import generate_keys

    try:
        private, public, kid = generate_keys(out)
    except GxoError as exc:
        _fail(str(exc), exc.exit_code)
    typer.echo(f"wrote {private} (mode 0600) and {public}: key {kid}")


def _fail(message: str, code: int = 2) -> None:
    from gxo.console import err_console, print_error

    print_error(err_console(), message)
    raise typer.Exit(code)


def register(admin_app: typer.Typer) -> None:
    """Add ``keys`` to ``gxo admin``."""
    admin_app.add_typer(keys_app, name="keys")
