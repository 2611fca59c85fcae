"""``crypto:encrypt``: AES-256-GCM or RSA-OAEP encryption."""

from __future__ import annotations

import base64
import os
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._crypto import (
    decode_key_bytes,
    input_bytes,
    register_secret,
)

NONCE = 12


@register("crypto:encrypt", layer="integration")
class CryptoEncrypt(Module):
    """Encrypt text or a file with AES-256-GCM (a symmetric key) or RSA-OAEP (a public key).

    ``aes-256-gcm`` (default): ``key`` is 32 bytes in base64 or hex, typically
    ``"{{ secret('DATA_KEY') }}"``; the output is base64 of ``nonce (12 bytes) ||
    ciphertext || tag (16 bytes)``, with a fresh random nonce per call;
    ``associated_data`` is authenticated but not encrypted. ``rsa-oaep``: ``key`` is
    a PEM public key (a private key works too), OAEP with SHA-256; the plaintext
    must be small (at most key bytes - 66). ``crypto:decrypt`` reverses both.

    Example:
        - name: seal
          process:
            module: crypto:encrypt
            params:
              content: "{{ report_text }}"
              key: "{{ secret('DATA_KEY') }}"
    """

    class Params(ModuleParams):
        content: Any = Field(None, description="Text to encrypt (non-strings as JSON)")
        src: str | None = Field(None, min_length=1, description="File to encrypt instead")
        binary: bool = Field(False, description="content is base64: encrypt the decoded bytes")
        key: str = Field(
            ..., min_length=1, description="AES key (base64/hex) or RSA public key PEM"
        )
        algorithm: Literal["aes-256-gcm", "rsa-oaep"] = Field(
            "aes-256-gcm", description="aes-256-gcm or rsa-oaep"
        )
        associated_data: str | None = Field(
            None, description="aes-256-gcm: authenticated, unencrypted data"
        )

    summary = {
        "ciphertext": "base64 (aes-256-gcm: nonce || ciphertext || tag)",
        "algorithm": "the algorithm used",
        "size": "plaintext size in bytes",
    }
    path_params = ("src",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_secret(ctx, params.key if params.algorithm == "aes-256-gcm" else None)
        data = await input_bytes(ctx, params.content, params.src, binary=params.binary)
        try:
            if params.algorithm == "aes-256-gcm":
                sealed = aes_encrypt(params.key, data, params.associated_data)
            else:
                if params.associated_data is not None:
                    raise ValueError("associated_data applies to aes-256-gcm only")
                sealed = rsa_encrypt(params.key, data)
        except ValueError as exc:
            raise ctx.fail(f"cannot encrypt ({params.algorithm}): {exc}") from None
        return {
            "ciphertext": base64.b64encode(sealed).decode(),
            "algorithm": params.algorithm,
            "size": len(data),
        }


def aes_key(key: str) -> bytes:
    raw = decode_key_bytes(key)
    if len(raw) != 32:
        raise ValueError(f"an AES-256 key is 32 bytes, this one is {len(raw)}")
    return raw


def aes_encrypt(key: str, data: bytes, associated: str | None) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE)
    aad = associated.encode() if associated is not None else None
    return nonce + AESGCM(aes_key(key)).encrypt(nonce, data, aad)


def _public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = pem.encode()
    try:
        if b"PRIVATE KEY" in data:
            key: Any = serialization.load_pem_private_key(data, None).public_key()
        elif data.startswith(b"ssh-rsa "):
            key = serialization.load_ssh_public_key(data)
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"key is not a usable RSA public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("rsa-oaep needs an RSA key")
    return key


def oaep() -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


def rsa_encrypt(pem: str, data: bytes) -> bytes:
    key = _public_key(pem)
    limit = key.key_size // 8 - 2 * 32 - 2
    if len(data) > limit:
        raise ValueError(
            f"{len(data)} bytes is too much for RSA-OAEP with a {key.key_size}-bit key "
            f"(at most {limit}): encrypt a data key with RSA and the data with aes-256-gcm"
        )
    return bytes(key.encrypt(data, oaep()))
