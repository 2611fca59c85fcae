"""Helpers shared by the ``crypto:*`` and ``vault:*`` modules (cryptography, imported lazily).

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from gxo.template.secrets import MIN_DERIVED

__all__ = [
    "HASHES",
    "decode_key_bytes",
    "input_bytes",
    "register_secret",
]

HASHES = (
    "sha256",
    "sha384",
    "sha512",
    "sha224",
    "sha1",
    "md5",
    "sha3_256",
    "sha3_512",
    "blake2b",
    "blake2s",
)
MAX_INPUT = 64 * 1024 * 1024


def register_secret(ctx: Any, value: str | bytes | None, *, data: bool = False) -> None:
    """Make the run redact ``value`` (text; bytes as text, else base64) everywhere.

    ``data=True`` marks a computed value (a plaintext): one shorter than
    ``MIN_DERIVED`` characters is not registered, or it would mask those letters in
    every output (``"x"`` inside ``"ciphertext"``); the module returns it as a
    taint-marked ``SecretStr``, which is redacted whole wherever it goes.
    """
    if not value:
        return
    text: str
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = base64.b64encode(value).decode()
    else:
        text = value
    if data and len(text) < MIN_DERIVED:
        return
    ctx.run.secrets.add(text)


def as_bytes(content: Any, encoding: str = "utf-8") -> bytes:
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode(encoding)
    return json.dumps(content, ensure_ascii=False, sort_keys=True, default=str).encode(encoding)


def read_file(path: Path, what: str = "src") -> bytes:
    """Read a small input file; ValueError with a clear message when it cannot be."""
    try:
        if path.is_dir():
            raise ValueError(f"cannot read {what} {path}: is a directory")
        size = path.stat().st_size
        if size > MAX_INPUT:
            raise ValueError(f"cannot read {what} {path}: {size} bytes, more than {MAX_INPUT}")
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"cannot read {what} {path}: does not exist") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


async def input_bytes(ctx: Any, content: Any, src: str | None, *, binary: bool = False) -> bytes:
    """The bytes of ``content`` (text; base64 with ``binary``) or of the file ``src``."""
    if (content is None) == (src is None):
        raise ctx.fail("give exactly one of content or src")
    if src is not None:
        path = ctx.resolve_path(src, param="src")
        try:
            return bytes(await ctx.to_thread(read_file, path))
        except ValueError as exc:
            raise ctx.fail(str(exc)) from None
    if binary:
        try:
            return base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise ctx.fail("content is not valid base64 (binary: true)") from None
    return as_bytes(content)


def decode_key_bytes(value: str) -> bytes:
    """A symmetric key given as base64 (standard or URL-safe) or hex."""
    text = value.strip()
    if len(text) in (32, 48, 64) and all(c in "0123456789abcdefABCDEF" for c in text):
        return bytes.fromhex(text)
    try:
        padded = text + "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the key is neither base64 nor hex") from None


def digest(algorithm: str, data: bytes) -> bytes:
    return hashlib.new(algorithm, data).digest()
