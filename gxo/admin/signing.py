"""``gxo admin sign-module`` and ``gxo admin verify-module`` (docs/module-signing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gxo.admin.keys import _fail

__all__ = ["register"]


def sign_module(
    path: Annotated[Path, typer.Argument(help="Module package directory (or a single .py file)")],
    key: Annotated[
        Path, typer.Option("--key", help="The private key (DIR/signing.key, mode 0600)")
    ],
) -> None:
    """Sign a module package: writes PATH.gxo-sig next to it (SHA-256 of every file + key id)."""
    from gxo.errors import GxoError
    from gxo.modules.signing import load_private_key, sign_package

    if not path.exists():
        _fail(f"{path}: no such module package")
    try:
        target, manifest = sign_package(path, load_private_key(key))
    except GxoError as exc:
        _fail(str(exc), exc.exit_code)
    n = len(manifest["files"])
    typer.echo(
        f"signed '{manifest['module']}' ({n} file{'s' if n != 1 else ''}) with key "
        f"{manifest['key_id']}: wrote {target}"
    )


def verify_module(
    path: Annotated[Path, typer.Argument(help="Module package directory (or a single .py file)")],
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-key",
            metavar="FILE",
            help="A public key the signature must come from (repeatable; default: the "
            "user config's module_verification.trusted_keys)",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="User config (default: ~/.gxo/config.yaml)"),
    ] = None,
) -> None:
    """Check a module package against its signature. Exit 0 valid, 1 invalid, 2 usage.

    Without a trusted key (flag or config) only integrity is checked: the files match
    what the key named in the signature signed.
    """
    from gxo.errors import GxoError, ModuleSignatureError
    from gxo.modules.signing import TrustedKey, read_trusted_key, verify_package
    from gxo.userconfig import load_user_config

    if not path.exists():
        _fail(f"{path}: no such module package")
    try:
        keys: list[TrustedKey] | None
        if trusted_key:
            keys = [read_trusted_key(k) for k in trusted_key]
        else:
            user = load_user_config(config)
            keys = [read_trusted_key(k, user.base_dir) for k in user.trusted_keys] or None
        result = verify_package(path, keys)
    except ModuleSignatureError as exc:
        _fail(f"invalid: {exc.reason}", 1)
    except GxoError as exc:
        _fail(str(exc), exc.exit_code)
    n = len(result.files)
    trust = "a trusted key" if result.trusted else "the key it names (no trusted key given)"
    typer.echo(
        f"valid: {path} ({n} file{'s' if n != 1 else ''}) signed by key {result.key_id}, {trust}"
    )


def register(admin_app: typer.Typer) -> None:
    """Add ``sign-module`` and ``verify-module`` to ``gxo admin``."""
    admin_app.command("sign-module")(sign_module)
    admin_app.command("verify-module")(verify_module)
