"""``crypto:hash``: a message digest of text or a file."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._crypto import HASHES, input_bytes

Algorithm = Literal[
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
]


@register("crypto:hash", layer="integration")
class CryptoHash(Module):
    """Hash ``content`` (text; JSON for other values) or the file ``src``.

    ``algorithm``: sha256 (default), sha384, sha512, sha224, sha1, md5, sha3_256,
    sha3_512, blake2b, blake2s. ``output``: hex (default) or base64.

    Example:
        - name: checksum
          process:
            module: crypto:hash
            params: { src: dist/app.tar.gz, algorithm: sha512 }
    """

    class Params(ModuleParams):
        content: Any = Field(None, description="Text to hash (non-strings as JSON)")
        src: str | None = Field(None, min_length=1, description="File to hash instead")
        binary: bool = Field(False, description="content is base64: hash the decoded bytes")
        algorithm: Algorithm = Field("sha256", description="Hash algorithm")
        output: Literal["hex", "base64"] = Field("hex", description="Encoding of the digest")

    summary = {
        "digest": "the digest (hex or base64)",
        "algorithm": "the algorithm used",
        "size": "bytes hashed",
    }
    path_params = ("src",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        assert params.algorithm in HASHES
        data = await input_bytes(ctx, params.content, params.src, binary=params.binary)
        raw = await ctx.to_thread(_digest, params.algorithm, data)
        return {
            "digest": raw.hex() if params.output == "hex" else base64.b64encode(raw).decode(),
            "algorithm": params.algorithm,
            "size": len(data),
        }


def _digest(algorithm: str, data: bytes) -> bytes:
    if algorithm == "md5":
        return hashlib.md5(data, usedforsecurity=False).digest()
    return hashlib.new(algorithm, data).digest()
