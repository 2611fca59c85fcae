"""``crypto:generate_key``: generate an RSA, Ed25519, EC or AES key."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, ModuleParams, ReadsUnlessDest, register
from gxo.modules.integration._crypto import register_secret
from gxo.modules.integration._files import write_atomic
from gxo.template.secrets import SecretStr

CURVES = ("secp256r1", "secp384r1", "secp521r1")


@register("crypto:generate_key", layer="integration")
class CryptoGenerateKey(ReadsUnlessDest, Module):
    """Generate a key pair (``rsa``, ``ed25519``, ``ec``) or a symmetric ``aes`` key.

    The summary has ``public_key`` and ``private_key`` (``format: pem`` — PKCS#8 /
    SubjectPublicKeyInfo — or ``openssh``), or ``key`` (base64) for ``aes``. The
    private key is a secret: it is registered with the run's secret registry, so it
    is redacted in the summary, logs and reports. To *use* it, give ``dest``: the
    private key is written there (mode 0600, atomically; the public key beside it
    as ``<dest>.pub``). With ``dest`` the module is idempotent: when the file
    already holds a key it is kept (``changed: false``; its public key is
    reported) unless ``force: true``.

    ``bits``: RSA 2048-8192 (default 3072), AES 128/192/256 (default 256).
    ``curve`` (EC): secp256r1 (default), secp384r1, secp521r1. ``passphrase``
    encrypts the private key.

    Example:
        - name: deploy_key
          process:
            module: crypto:generate_key
            params: { type: ed25519, format: openssh, dest: keys/deploy }
    """

    class Params(ModuleParams):
        type: Literal["rsa", "ed25519", "ec", "aes"] = Field(..., description="Key type")
        bits: int | None = Field(
            None, description="RSA: 2048-8192 (default 3072); AES: 128, 192 or 256 (default 256)"
        )
        curve: Literal["secp256r1", "secp384r1", "secp521r1"] | None = Field(
            None, description="EC curve (default secp256r1)"
        )
        format: Literal["pem", "openssh"] = Field(
            "pem", description="Encoding of the key pair: pem (PKCS#8) or openssh"
        )
        passphrase: str | None = Field(None, description="Encrypt the private key with this")
        comment: str = Field("", description="openssh: comment appended to the public key")
        dest: str | None = Field(
            None,
            min_length=1,
            description="Write the private key here (0600), public to <dest>.pub",
        )
        force: bool = Field(False, description="dest: replace an existing key")

        @model_validator(mode="after")
        def _consistent(self) -> CryptoGenerateKey.Params:
            if self.type == "rsa" and self.bits is not None and not 2048 <= self.bits <= 8192:
                raise ValueError("rsa bits must be between 2048 and 8192")
            if self.type == "aes" and self.bits not in (None, 128, 192, 256):
                raise ValueError("aes bits must be 128, 192 or 256")
            if self.type in ("ed25519", "ec") and self.bits is not None:
                raise ValueError(f"bits does not apply to {self.type} (use curve for ec)")
            if self.curve is not None and self.type != "ec":
                raise ValueError("curve applies to type: ec only")
            if self.type == "aes" and (self.format != "pem" or self.passphrase):
                raise ValueError("format and passphrase apply to key pairs, not aes")
            return self

    summary = {
        "type": "rsa, ed25519, ec or aes",
        "bits": "key size in bits",
        "curve": "EC curve",
        "format": "pem or openssh",
        "public_key": "the public key (key pairs)",
        "private_key": "the private key — a secret, redacted in outputs",
        "key": "aes: the key in base64 — a secret, redacted in outputs",
        "fingerprint": "SHA256:... fingerprint of the public key (OpenSSH style)",
        "path": "file holding the private key (with dest)",
        "changed": "false when dest already held a key and was kept",
    }
    path_params = ("dest",)

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        if params.passphrase:
            register_secret(ctx, params.passphrase)
        dest = ctx.resolve_path(params.dest, param="dest") if params.dest else None
        try:
            result = await ctx.to_thread(_generate, params, dest)
        except _Failure as exc:
            raise ctx.fail(str(exc)) from None
        except OSError as exc:
            raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
        for name in ("private_key", "key"):
            if name in result:
                register_secret(ctx, result[name])
                result[name] = SecretStr(result[name])
        return result


class _Failure(Exception):
    pass


def _generate(params: CryptoGenerateKey.Params, dest: Path | None) -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    out: dict[str, Any] = {"type": params.type}
    if params.type == "aes":
        bits = params.bits or 256
        key = base64.b64encode(os.urandom(bits // 8)).decode()
        out.update(bits=bits, key=key, changed=True)
        if dest is not None:
            if dest.exists() and not params.force:
                existing = dest.read_text().strip()
                return {**out, "key": existing, "path": str(dest), "changed": False}
            write_atomic(dest, (key + "\n").encode(), mode=0o600)
            out["path"] = str(dest)
        return out

    private: Any
    if dest is not None and dest.exists() and not params.force:
        private = _load(dest.read_bytes(), params.passphrase)
        kinds = {
            rsa.RSAPrivateKey: "rsa",
            ed25519.Ed25519PrivateKey: "ed25519",
            ec.EllipticCurvePrivateKey: "ec",
        }
        found = next((k for cls, k in kinds.items() if isinstance(private, cls)), "other")
        if found != params.type:
            raise _Failure(
                f"dest {dest} holds a {found} key, not {params.type}; set force: true to replace it"
            )
        changed = False
    else:
        if params.type == "rsa":
            private = rsa.generate_private_key(public_exponent=65537, key_size=params.bits or 3072)
        elif params.type == "ed25519":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            curves: dict[str, ec.EllipticCurve] = {
                "secp256r1": ec.SECP256R1(),
                "secp384r1": ec.SECP384R1(),
                "secp521r1": ec.SECP521R1(),
            }
            private = ec.generate_private_key(curves[params.curve or "secp256r1"])
        changed = True

    encryption: Any = (
        serialization.BestAvailableEncryption(params.passphrase.encode())
        if params.passphrase
        else serialization.NoEncryption()
    )
    if params.format == "openssh":
        private_text = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        ).decode()
        public_text = (
            private.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        if params.comment:
            public_text = f"{public_text} {params.comment}"
    else:
        private_text = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        ).decode()
        public_text = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    ssh_blob = (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .split()[1]
    )
    fingerprint = "SHA256:" + base64.b64encode(
        hashlib.sha256(base64.b64decode(ssh_blob)).digest()
    ).decode().rstrip("=")
    if params.type == "rsa":
        out["bits"] = private.key_size
    elif params.type == "ec":
        out["curve"] = private.curve.name
        out["bits"] = private.curve.key_size
    out.update(
        format=params.format,
        public_key=public_text,
        private_key=private_text,
        fingerprint=fingerprint,
        changed=changed,
    )
    if dest is not None:
        out["path"] = str(dest)
        if changed:
            write_atomic(dest, private_text.encode(), mode=0o600)
        pub = dest.with_name(dest.name + ".pub")
        write_atomic(pub, (public_text.rstrip("\n") + "\n").encode(), mode=0o644)
    return out


def _load(data: bytes, passphrase: str | None) -> Any:
    from cryptography.hazmat.primitives import serialization

    password = passphrase.encode() if passphrase else None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            return serialization.load_ssh_private_key(data, password)
        return serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise _Failure(
            f"dest holds no usable private key ({exc}); set force: true to replace it"
        ) from None
