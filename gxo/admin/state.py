"""``gxo admin state-key generate`` and ``gxo admin rekey-state``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

state_key_app = typer.Typer(help="Keys of the encrypted daemon state.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> None:
    from gxo.console import err_console, print_error

    print_error(err_console(), message)
    raise typer.Exit(code)


@state_key_app.command("generate")
def generate(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the key (a new file, mode 0600)")
    ],
) -> None:
    """Write a new state key (base64 of 32 random bytes, one line); never overwrites."""
    from gxo.state._sql_schema import StateError
    from gxo.state.crypto import generate_key, key_id, write_key_file

    key = generate_key()
    try:
        path = write_key_file(out, key)
    except StateError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {path} (key {key_id(key)}, mode 0600)")


def _expand(url: str) -> str:
    """``sqlite:///~/x.db`` → an absolute path, as ``gxo daemon --state`` reads it."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix) :].startswith("~"):
        return prefix + str(Path(url[len(prefix) :]).expanduser())
    return url


def rekey_state(
    state: Annotated[
        str, typer.Option("--state", help="The store: sqlite:///PATH or postgresql://...")
    ],
    old_key_file: Annotated[
        Path, typer.Option("--old-key-file", help="The key the store is encrypted with now")
    ],
    new_key_file: Annotated[
        Path, typer.Option("--new-key-file", help="The key to encrypt it with (0600)")
    ],
) -> None:
    """Encrypt the state with a new key, offline (stop the daemon first); crash-safe.

    SQLite: a re-encrypted copy is verified, fsync'd and renamed over the file;
    PostgreSQL: one transaction. Every value is verified with the new key afterwards.
    """
    from gxo.state._sql_crypto import rekey_state as rekey
    from gxo.state._sql_schema import StateError, parse_url, redacted
    from gxo.state.crypto import AesGcmCodec, read_key_file

    url = _expand(state)
    try:
        old = AesGcmCodec(read_key_file(old_key_file, "--old-key-file"))
        new = AesGcmCodec(read_key_file(new_key_file, "--new-key-file"))
        count = rekey(url, old, new)
    except StateError as exc:
        _fail(str(exc))
    typer.echo(
        f"rekeyed {redacted(parse_url(url))}: {count} values now under key {new.kid} "
        f"(was {old.kid}), all verified"
    )


def register(admin_app: typer.Typer) -> None:
    """Add the state-key commands to ``gxo admin``."""
    admin_app.add_typer(state_key_app, name="state-key")
    admin_app.command("rekey-state")(rekey_state)
