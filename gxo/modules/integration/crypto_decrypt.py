"""``crypto:decrypt``: reverse ``crypto:encrypt`` (AES-256-GCM or RSA-OAEP)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, ReadsUnlessDest, register
from gxo.modules.integration._crypto import register_secret
from gxo.modules.integration._files import write_atomic
from gxo.modules.integration.crypto_encrypt import NONCE, aes_key, oaep
from gxo.template.secrets import SecretStr


@register("crypto:decrypt", layer="integration")
class CryptoDecrypt(ReadsUnlessDest, Module):
    """Decrypt what ``crypto:encrypt`` produced; the plaintext is treated as a secret.

    ``ciphertext`` is the base64 text from ``crypto:encrypt``. The plaintext is
    registered as a secret of the run (redacted in the summary, logs and reports).
    To use it, write it to ``dest`` (mode 0600, atomically). A wrong key, tampered
    ciphertext or wrong ``associated_data`` fails with "authentication failed".

    Example:
        - name: unseal
          process:
            module: crypto:decrypt
            params:
              ciphertext: "{{ sealed.ciphertext }}"
              key: "{{ secret('DATA_KEY') }}"
              dest: out/report.txt
    """

    class Params(ModuleParams):
        ciphertext: str = Field(..., min_length=1, description="base64 output of crypto:encrypt")
        key: str = Field(
            ..., min_length=1, description="AES key (base64/hex) or RSA private key PEM"
        )
        algorithm: Literal["aes-256-gcm", "rsa-oaep"] = Field(
            "aes-256-gcm", description="aes-256-gcm or rsa-oaep"
        )
        associated_data: str | None = Field(
            None, description="aes-256-gcm: the associated data given to crypto:encrypt"
        )
        key_passphrase: str | None = Field(
            None, description="rsa-oaep: passphrase of the private key"
        )
        dest: str | None = Field(None, min_length=1, description="Write the plaintext here (0600)")
        binary: bool = Field(False, description="Return the plaintext as base64 (not text)")

    summary = {
        "plaintext": "the decrypted text (base64 with binary) — a secret, redacted in outputs",
        "size": "plaintext size in bytes",
        "path": "file written (with dest)",
        "changed": "with dest: false when the file already held this plaintext",
    }
    path_params = ("dest",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_secret(ctx, params.key)
        register_secret(ctx, params.key_passphrase)
        try:
            sealed = base64.b64decode(params.ciphertext.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ctx.fail("ciphertext is not valid base64") from None
        try:
            if params.algorithm == "aes-256-gcm":
                data = _aes_decrypt(params.key, sealed, params.associated_data)
            else:
                data = _rsa_decrypt(params.key, params.key_passphrase, sealed)
        except ValueError as exc:
            raise ctx.fail(f"cannot decrypt ({params.algorithm}): {exc}") from None
        register_secret(ctx, data, data=True)
        out: dict[str, Any] = {"size": len(data)}
        if params.dest:
            dest = ctx.resolve_path(params.dest, param="dest")
            try:
                out["changed"] = await ctx.to_thread(write_atomic, Path(dest), data, mode=0o600)
            except OSError as exc:
                raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
            out["path"] = str(dest)
            return out
        if params.binary:
            out["plaintext"] = SecretStr(base64.b64encode(data).decode())
        else:
            try:
                out["plaintext"] = SecretStr(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ctx.fail(
                    "the plaintext is not utf-8 text: set binary: true (base64) or dest"
                ) from None
        return out


def _aes_decrypt(key: str, sealed: bytes, associated: str | None) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    raw = aes_key(key)
    if len(sealed) < NONCE + 16:
        raise ValueError("ciphertext is too short to be AES-256-GCM output")
    aad = associated.encode() if associated is not None else None
    try:
        return bytes(AESGCM(raw).decrypt(sealed[:NONCE], sealed[NONCE:], aad))
    except InvalidTag:
        raise ValueError(
            "authentication failed (wrong key, wrong associated_data, or tampered ciphertext)"
        ) from None


def _rsa_decrypt(pem: str, passphrase: str | None, sealed: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(
            pem.encode(), passphrase.encode() if passphrase else None
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"key is not a usable RSA private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("rsa-oaep needs an RSA private key")
    try:
        return bytes(key.decrypt(sealed, oaep()))
    except ValueError:
        raise ValueError("decryption failed (wrong key or tampered ciphertext)") from None
