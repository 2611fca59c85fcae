"""``template:render``: render a Jinja2 template file to a destination file, atomically."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._files import same_content, write_atomic
from gxo.modules.system._fsutil import OctalMode

MAX_SOURCE = 10_000_000


@register("template:render", layer="integration")
class TemplateRender(Module):
    """Render the Jinja2 template file ``src`` and write the result to ``dest``.

    The template is rendered by GXO's own engine, with its sandbox, limits and
    strict undefined names: it sees everything a workload's params see (``vars``,
    registered results, ``secret()``, ``_gxo``) plus the ``vars`` given here,
    which take precedence. ``{% include %}`` and ``{% extends %}`` are not
    available (there is no template loader). The result is written to a temporary
    file beside ``dest`` and renamed over it, so readers never see a half-written
    file; when ``dest`` already holds exactly this text (and mode) nothing is
    written and the summary says ``changed: false``. Secrets used by the template
    end up in the file, never in the summary or logs.

    ``mode`` is a quoted octal string; without it a new file gets 0644 and an
    existing file keeps its mode.

    ``gxo run --check`` renders the template and writes nothing: the summary says
    whether the file would change, and ``--diff`` shows how (also of real writes).

    Example:
        - name: nginx_conf
          process:
            module: template:render
            params:
              src: templates/nginx.conf.j2
              dest: out/nginx.conf
              vars: { port: 8080, upstreams: ["10.0.0.1", "10.0.0.2"] }
              mode: "0640"
    """

    class Params(ModuleParams):
        src: str = Field(..., min_length=1, description="Jinja2 template file to render")
        dest: str = Field(..., min_length=1, description="File to write the result to")
        vars: dict[str, Any] = Field(
            default_factory=dict, description="Extra names for the template (override others)"
        )
        mode: OctalMode | None = Field(
            None, description='Permissions as a quoted octal string, e.g. "0640"'
        )
        encoding: str = Field("utf-8", min_length=1, description="Encoding of src and dest")

    summary = {
        "path": "absolute path of the rendered file",
        "changed": "false when the file already had exactly this content (and mode)",
        "size": "size of the rendered file in bytes",
        "sha256": "SHA-256 (hex) of the rendered file",
        "mode": "permissions of the file afterwards, e.g. 0644",
    }
    path_params = ("src", "dest")
    check_mode = CheckMode.predict

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        dest, data, mode = await self._render(ctx, params)
        before = await ctx.to_thread(_snapshot, dest) if ctx.diff else None
        try:
            changed = await ctx.to_thread(write_atomic, dest, data, mode=mode)
            st = await ctx.to_thread(os.stat, dest)
        except OSError as exc:
            raise ctx.fail(f"cannot write dest {dest}: {exc.strerror or exc}") from None
        if changed:
            ctx.log(f"rendered {params.src} to {dest} ({len(data)} bytes)")
            if ctx.diff:
                ctx.add_diff(_diff(dest, before, data, f"{stat.S_IMODE(st.st_mode):04o}"))
        return _summary(dest, data, changed, stat.S_IMODE(st.st_mode))

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """Renders for real, writes nothing: would ``dest`` change?"""
        dest, data, mode = await self._render(ctx, params)
        try:
            changed = not await ctx.to_thread(same_content, dest, data, mode)
            before = await ctx.to_thread(_snapshot, dest)
        except OSError as exc:
            raise ctx.fail(f"cannot read dest {dest}: {exc.strerror or exc}") from None
        old_mode = before[1] if before is not None else None
        final = mode if mode is not None else (old_mode if old_mode is not None else 0o644)
        if changed:
            ctx.log(f"check mode: would render {params.src} to {dest} ({len(data)} bytes)")
            if ctx.diff:
                ctx.add_diff(_diff(dest, before, data, f"{final:04o}"))
        return _summary(dest, data, changed, final)

    async def _render(self, ctx: ModuleContext, params: Params) -> tuple[Path, bytes, int | None]:
        try:
            "".encode(params.encoding)
        except LookupError:
            raise ctx.fail(f"unknown encoding '{params.encoding}'") from None
        src = ctx.resolve_path(params.src, param="src")
        dest = ctx.resolve_path(params.dest, param="dest")
        try:
            source = await ctx.to_thread(_read, src, params.encoding)
        except _Unreadable as exc:
            raise ctx.fail(f"cannot read src {src}: {exc}") from None
        try:
            rendered = ctx.render(source, path="src", **params.vars)
        except GxoError as exc:
            raise ctx.fail(f"cannot render template {params.src}: {exc}") from None
        text = _as_text(rendered)
        try:
            data = text.encode(params.encoding)
        except UnicodeEncodeError as exc:
            raise ctx.fail(
                f"the rendered text cannot be encoded as {params.encoding} (character {exc.start})"
            ) from None
        return dest, data, int(params.mode, 8) if params.mode else None


def _summary(dest: Path, data: bytes, changed: bool, mode: int) -> dict[str, Any]:
    return {
        "path": str(dest),
        "changed": changed,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "mode": f"{mode:04o}",
    }


def _snapshot(path: Path) -> tuple[bytes | None, int] | None:
    """Blocking: ``(content or None when too large to diff, mode)`` of an existing
    regular file; None when there is none."""
    from gxo.modules.system._diff import DIFF_LIMIT

    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    content = path.read_bytes() if st.st_size <= DIFF_LIMIT else None
    return content, stat.S_IMODE(st.st_mode)


def _diff(dest: Path, before: tuple[bytes | None, int] | None, data: bytes, mode: str) -> str:
    from gxo.modules.system._diff import DIFF_LIMIT, content_diff

    after = data if len(data) <= DIFF_LIMIT else None
    if before is None:
        return content_diff(dest, b"", after, existed=False, size_after=len(data), mode_after=mode)
    content, old_mode = before
    return content_diff(
        dest,
        content,
        after,
        size_before=len(content) if content is not None else DIFF_LIMIT + 1,
        size_after=len(data),
        mode_before=f"{old_mode:04o}",
        mode_after=mode,
    )


class _Unreadable(Exception):
    pass


def _read(path: Path, encoding: str) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise _Unreadable("does not exist") from None
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise _Unreadable("is a directory")
    if st.st_size > MAX_SOURCE:
        raise _Unreadable(f"is {st.st_size} bytes, more than the {MAX_SOURCE}-byte template limit")
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"is not valid {encoding} text (byte {exc.start})") from None
    except OSError as exc:
        raise _Unreadable(exc.strerror or str(exc)) from None


def _as_text(value: Any) -> str:
    # A file that is one bare expression renders to its native value.
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return "" if value is None else str(value)
