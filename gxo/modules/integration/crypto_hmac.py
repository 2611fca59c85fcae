"""``crypto:hmac``: an HMAC of text or a file, or checking one."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._crypto import input_bytes, register_secret


@register("crypto:hmac", layer="integration")
class CryptoHmac(Module):
    """HMAC of ``content`` or the file ``src`` with ``key`` (a secret, never shown).

    With ``expected`` the module compares in constant time and fails when the
    HMAC differs (to check webhook signatures: ``expected`` may carry a
    ``sha256=`` prefix, as GitHub's ``X-Hub-Signature-256`` does).

    Example:
        - name: sign
          process:
            module: crypto:hmac
            params: { content: "{{ payload }}", key: "{{ secret('HOOK_KEY') }}" }
    """

    class Params(ModuleParams):
        content: Any = Field(None, description="Text to authenticate (non-strings as JSON)")
        src: str | None = Field(None, min_length=1, description="File to authenticate instead")
        binary: bool = Field(False, description="content is base64: use the decoded bytes")
        key: str = Field(..., min_length=1, description="The HMAC key (text)")
        algorithm: Literal["sha256", "sha384", "sha512", "sha1", "sha224", "md5"] = Field(
            "sha256", description="Hash algorithm"
        )
        output: Literal["hex", "base64"] = Field("hex", description="Encoding of the digest")
        expected: str | None = Field(
            None, description="Fail unless the HMAC equals this (hex/base64, optional algo= prefix)"
        )

    summary = {
        "digest": "the HMAC (hex or base64)",
        "algorithm": "the hash algorithm",
        "size": "bytes authenticated",
        "valid": "with expected: true (a mismatch fails the workload)",
    }
    path_params = ("src",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        register_secret(ctx, params.key)
        data = await input_bytes(ctx, params.content, params.src, binary=params.binary)
        raw = hmac.new(params.key.encode(), data, getattr(hashlib, params.algorithm)).digest()
        digest = raw.hex() if params.output == "hex" else base64.b64encode(raw).decode()
        out: dict[str, Any] = {"digest": digest, "algorithm": params.algorithm, "size": len(data)}
        if params.expected is not None:
            given = params.expected.strip()
            prefix = f"{params.algorithm}="
            if given.lower().startswith(prefix):
                given = given[len(prefix) :]
            ok = hmac.compare_digest(given.lower(), raw.hex()) or hmac.compare_digest(
                given, base64.b64encode(raw).decode()
            )
            if not ok:
                raise ctx.fail("HMAC mismatch: the data or the key differs from what was signed")
            out["valid"] = True
        return out
