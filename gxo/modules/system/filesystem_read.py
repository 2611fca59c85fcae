"""``filesystem:read``: read a whole file into the summary."""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.system._fsutil import describe_os_error


@register("filesystem:read", layer="system")
class FilesystemRead(Module):
    """Read a file's content into the summary.

    Relative paths resolve against the run's workspace. Text is decoded with
    ``encoding`` (UTF-8 by default); a file that does not decode fails with the
    byte offset and a hint. ``binary: true`` returns the raw bytes base64-encoded
    instead (``filesystem:write`` with ``binary: true`` writes them back).
    ``max_size`` guards against reading a huge file into memory by mistake.

    Example:
        - name: load_config
          process:
            module: filesystem:read
            params: { path: config/app.json }
          register: app_config
        - name: use_it
          process:
            module: control:assert
            params: { condition: "(app_config.content | from_json).enabled" }
    """

    class Params(ModuleParams):
        path: str = Field(..., min_length=1, description="File to read (relative to the workspace)")
        encoding: str = Field(
            "utf-8", min_length=1, description="Text encoding used to decode the file"
        )
        binary: bool = Field(
            False, description="Return the bytes base64-encoded instead of decoding them as text"
        )
        max_size: int | None = Field(
            64 * 1024 * 1024,
            ge=0,
            description="Fail rather than read a file larger than this many bytes (null: no limit)",
        )

    summary = {
        "content": "the file's text (base64 of its bytes with binary: true)",
        "encoding": "the encoding of content: the text encoding, or base64",
        "size": "file size in bytes",
        "path": "absolute path of the file",
    }

    path_params = ("path",)

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        import codecs

        path = ctx.resolve_path(params.path)
        if not params.binary:
            try:
                codecs.lookup(params.encoding)
            except LookupError:
                raise ctx.fail(f"unknown encoding '{params.encoding}'") from None
        try:
            opened = functools.partial(
                ctx.run.paths.check_opened, text=params.path, workload=ctx.workload
            )
            data = await ctx.to_thread(_read, path, params.max_size, opened)
        except OSError as exc:
            raise ctx.fail(describe_os_error(exc, "read", path)) from None
        except _TooLarge as exc:
            raise ctx.fail(
                f"{path} is {exc.size} bytes, more than max_size={params.max_size} (raise max_size, or set it to null)"
            ) from None
        if params.binary:
            content, encoding = base64.b64encode(data).decode("ascii"), "base64"
        else:
            try:
                content, encoding = data.decode(params.encoding), params.encoding
            except UnicodeDecodeError as exc:
                raise ctx.fail(
                    f"{path} is not valid {params.encoding} text (byte {exc.start}): set 'encoding', or 'binary: true' for base64"
                ) from None
        return {"content": content, "encoding": encoding, "size": len(data), "path": str(path)}


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def _read(path: Path, max_size: int | None, opened: Callable[[int], None]) -> bytes:
    with path.open("rb") as fh:
        opened(fh.fileno())  # a confined run: the file opened is the one checked
        if max_size is not None:
            size = os.fstat(fh.fileno()).st_size
            if size > max_size:
                raise _TooLarge(size)
            # A file growing while read is cut at the limit + 1 byte and reported.
            data = fh.read(max_size + 1)
            if len(data) > max_size:
                raise _TooLarge(len(data))
            return data
        return fh.read()
