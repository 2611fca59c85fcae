"""Encryption at rest of the SQL state store: an AES-256-GCM codec and its key sources.

Every value column of the store (see ``gxo.state._sql_crypto.CELLS``) is written as one
envelope of ASCII text::

    gxo1:<key id>:<base64 of nonce (12 bytes) + ciphertext + tag (16 bytes)>

- a random 96-bit nonce per write (never reused: 2^-32 collision odds only after
  ~2^32 writes under one key, far beyond a state store's life);
- associated data = the table, the row's key and the column (length-prefixed, so no
  two rows share it): a value copied into another row, another column or another
  table fails authentication instead of being read as that row's;
- the key id (8 hex digits of a SHA-256 of the key, not a secret) says which key wrote
  the value, so a wrong key is named as such rather than as tampering.

Key format (``--state-key-file``, ``--state-key-cmd``'s stdout, ``~/.gxo/state.key``):
one line, the standard base64 of 32 random bytes; surrounding whitespace is ignored.
``gxo admin state-key generate --out F`` writes one.

``cryptography`` is imported only when a key is used: ``gxo run`` without ``--state``
never loads it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import shlex
import stat
import subprocess
from pathlib import Path
from typing import Any

from gxo.state._sql_schema import StateError

__all__ = [
    "ENVELOPE",
    "KEY_BYTES",
    "AesGcmCodec",
    "PlainCodec",
    "StateCodec",
    "default_key_path",
    "format_key",
    "generate_key",
    "key_from_command",
    "key_id",
    "parse_key",
    "read_key_file",
    "write_key_file",
]

ENVELOPE = "gxo1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_CMD_TIMEOUT = 30.0  # seconds a --state-key-cmd may take (a KMS or pass prompt)
KEY_HINT = "pass its key with --state-key-file FILE or --state-key-cmd CMD"


def key_id(key: bytes) -> str:
    """A short public name of a key: 8 hex digits of SHA-256 (domain-separated)."""
    return hashlib.sha256(b"gxo-state-key-id\0" + key).hexdigest()[:8]


def envelope_key_id(value: str) -> str | None:
    """The key id of an encrypted value, None when ``value`` is not an envelope."""
    parts = value.split(":", 2)
    if len(parts) == 3 and parts[0] == ENVELOPE:
        return parts[1]
    return None


@functools.lru_cache(maxsize=4096)  # the same rows are written again and again
def _associated(table: str, keys: tuple[str, ...], column: str) -> bytes:
    # Length-prefixed parts: ("a:b", "c") and ("a", "b:c") never give the same bytes.
    return "".join(f"{len(p)}:{p};" for p in (table, *keys, column)).encode("utf-8")


def _where(table: str, keys: tuple[str, ...], column: str) -> str:
    return f"state row {'/'.join((table, *keys))} ({column})"


class StateCodec:
    """How values are sealed on write and opened on read (plaintext or AES-256-GCM)."""

    encrypted = False
    kid: str | None = None

    def seal(self, text: str, table: str, *keys: str, column: str) -> str:
        raise NotImplementedError

    def open(self, value: str | None, table: str, *keys: str, column: str) -> str | None:
        raise NotImplementedError


class PlainCodec(StateCodec):
    """No encryption: values are stored as given (a store opened without a key)."""

    def seal(self, text: str, table: str, *keys: str, column: str) -> str:
        return text

    def open(self, value: str | None, table: str, *keys: str, column: str) -> str | None:
        return value


class AesGcmCodec(StateCodec):
    """AES-256-GCM with a random nonce per value and the row's address as associated data."""

    encrypted = True

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise StateError(f"a state key is {KEY_BYTES} bytes, not {len(key)}")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._invalid_tag = InvalidTag
        self.kid = key_id(key)
        self._prefix = f"{ENVELOPE}:{self.kid}:"

    def __repr__(self) -> str:  # never the key
        return f"AesGcmCodec(kid={self.kid!r})"

    def seal(self, text: str, table: str, *keys: str, column: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode("utf-8"), _associated(table, keys, column))
        return self._prefix + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str | None, table: str, *keys: str, column: str) -> str | None:
        if value is None:
            return None
        if not value.startswith(self._prefix):
            kid = envelope_key_id(value)
            if kid is None:
                raise StateError(
                    f"{_where(table, keys, column)} is not encrypted in an encrypted store "
                    "(written by something other than gxo, or altered)"
                )
            raise StateError(
                f"{_where(table, keys, column)} was encrypted with key {kid}, "
                f"not with the key given ({self.kid})"
            )
        return self._open(value[len(self._prefix) :], table, keys, column)

    def _open(self, body: str, table: str, keys: tuple[str, ...], column: str) -> str:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise StateError(
                f"{_where(table, keys, column)} is corrupt (not base64: truncated or altered)"
            ) from None
        if len(raw) < NONCE_BYTES + TAG_BYTES:
            raise StateError(f"{_where(table, keys, column)} is corrupt (truncated)")
        try:
            plain = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(table, keys, column)
            )
        except self._invalid_tag:
            raise StateError(
                f"{_where(table, keys, column)} fails authentication: altered, truncated "
                "or moved from another row"
            ) from None
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError:  # authenticated, so only a bug could get here
            raise StateError(f"{_where(table, keys, column)} is not UTF-8 text") from None


# -- keys -------------------------------------------------------------------------------


def generate_key() -> bytes:
    return os.urandom(KEY_BYTES)


def format_key(key: bytes) -> str:
    """The key file's text: one line of base64."""
    return base64.b64encode(key).decode("ascii") + "\n"


def parse_key(text: str | bytes, source: str) -> bytes:
    """The key in ``text`` (base64 of 32 bytes); ``source`` names where it came from.

    The error never quotes the text: it may be a key with a typo.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise StateError(
                f"{source}: not a state key (expected one line of base64 of "
                f"{KEY_BYTES} random bytes, as `gxo admin state-key generate` writes)"
            ) from None
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise StateError(
            f"{source}: not a state key (expected one line of base64 of {KEY_BYTES} "
            "random bytes, as `gxo admin state-key generate` writes)"
        )
    return key


def read_key_file(path: str | Path, flag: str = "--state-key-file") -> bytes:
    """Read a key file, refusing one that others could read or that another user owns."""
    path = Path(path).expanduser()
    where = f"{flag} {path}"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise StateError(f"{where}: no such file") from None
    except OSError as e:
        raise StateError(f"{where}: cannot open: {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateError(f"{where}: not a regular file")
        if info.st_uid != os.geteuid():
            raise StateError(
                f"{where}: owned by uid {info.st_uid}, not by this user ({os.geteuid()}): "
                "a state key must belong to the user running gxo"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise StateError(
                f"{where}: mode {mode:04o} lets others read it; a state key must be 0600 "
                f"(chmod 600 {path})"
            )
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(4096)
    finally:
        os.close(fd)
    return parse_key(data, where)


def key_from_command(command: str, timeout: float = KEY_CMD_TIMEOUT) -> bytes:
    """Run ``command`` (split like a shell line, no shell: wrap in ``sh -c '…'`` for
    pipes) and read the key from its stdout. Its stderr is shown on failure; its stdout
    never is."""
    where = "--state-key-cmd"
    try:
        argv = shlex.split(command)
    except ValueError as e:
        raise StateError(f"{where}: cannot parse the command: {e}") from None
    if not argv:
        raise StateError(f"{where}: empty command")
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        raise StateError(f"{where}: {argv[0]}: command not found") from None
    except PermissionError:
        raise StateError(f"{where}: {argv[0]}: permission denied") from None
    except subprocess.TimeoutExpired:
        raise StateError(f"{where}: {argv[0]} did not finish within {timeout:g}s") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip()
        tail = f": {err[-500:]}" if err else " (no stderr)"
        raise StateError(f"{where}: {argv[0]} exited {done.returncode}{tail}")
    return parse_key(done.stdout, f"{where} ({argv[0]}'s stdout)")


def write_key_file(path: str | Path, key: bytes) -> Path:
    """Write ``key`` to a new file, mode 0600 (missing parent directories 0700).

    Never overwrites: the file appears complete or not at all (written aside, then
    hard-linked into place, which fails if the name exists), so two processes creating
    the default key at once agree on one key.
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        raise StateError(f"{path} already exists: a state key is never overwritten")
    try:
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        for directory in missing:
            os.chmod(directory, 0o700)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, format_key(key).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            raise StateError(f"{path} already exists: a state key is never overwritten") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        _fsync_dir(path.parent)
    except OSError as e:
        raise StateError(f"cannot write the state key {path}: {e.strerror or e}") from None
    return path


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_key_path() -> Path:
    return Path.home() / ".gxo" / "state.key"


def codec_for(key: bytes | None) -> StateCodec:
    return PlainCodec() if key is None else AesGcmCodec(key)


def describe(codec: Any) -> str:
    kid = getattr(codec, "kid", None)
    return f"AES-256-GCM, key {kid}" if kid else "not encrypted"
