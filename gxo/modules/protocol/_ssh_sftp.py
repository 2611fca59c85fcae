"""SFTP transfers of ``ssh:upload`` and ``ssh:download``: checksums, temp files, renames.

A transfer is idempotent: when the target already holds the same bytes (SHA-256)
nothing is written and the summary says ``changed: false``. A changed file is
written to a temporary name next to the target and renamed over it, so a reader
never sees half a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import stat
import uuid
from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module
from gxo.modules.protocol._ssh import UsingParams, connection, start_sftp
from gxo.modules.system._fsutil import OctalMode

CHUNK = 256 * 1024


class TransferParams(UsingParams):
    local: str = Field(
        ...,
        min_length=1,
        description="The local file (relative to the workspace); an existing directory receives a download under the remote file's name",
    )
    remote: str = Field(
        ...,
        min_length=1,
        description="The remote file, as the SFTP server sees it; an existing directory receives an upload under the local file's name",
    )
    mode: OctalMode | None = Field(
        None,
        description='Permissions of the copy, a quoted octal string ("0600"); default: a new file gets the source\'s, an existing one keeps its own',
    )


SUMMARY = {
    "local": "the local file",
    "remote": "the remote file",
    "size": "its size in bytes",
    "checksum": "SHA-256 of its content (hex)",
    "changed": "false when the target already had this content and mode",
    "mode": "permissions of the target afterwards, e.g. 0644",
    "connection_id": "the SSH connection used",
}


def local_digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


async def remote_digest(sftp: Any, path: str) -> str:
    h = hashlib.sha256()
    async with sftp.open(path, "rb") as f:
        while chunk := await f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


async def remote_stat(sftp: Any, path: str) -> Any | None:
    import asyncssh

    try:
        return await sftp.stat(path)
    except asyncssh.SFTPNoSuchFile:
        return None


def sftp_error(ctx: ModuleContext, what: str, exc: Exception) -> Exception:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return ctx.fail(f"{what}: {reason}")


async def upload(
    ctx: ModuleContext, conn: Any, params: TransferParams, src: Path, *, dry: bool = False
) -> dict[str, Any]:
    """Copy ``src`` (local) to ``params.remote``; ``dry``: only say what would change (``--check``)."""
    import asyncssh

    try:
        st = await ctx.to_thread(src.stat)
    except OSError as exc:
        raise ctx.fail(f"cannot read local file {src}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ctx.fail(f"local is not a regular file: {src}")
    digest, size = await ctx.to_thread(local_digest, src)
    want_mode = int(params.mode, 8) if params.mode else None
    dest = params.remote
    async with await start_sftp(ctx, conn) as sftp:
        try:
            attrs = await remote_stat(sftp, dest)
            if attrs is not None and attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                dest = posixpath.join(dest, src.name)
                attrs = await remote_stat(sftp, dest)
            same = (
                attrs is not None
                and attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
                and attrs.size == size
                and await remote_digest(sftp, dest) == digest
            )
            changed = not same
            if not same:
                mode = want_mode if want_mode is not None else stat.S_IMODE(st.st_mode)
                if not dry:
                    await _put(ctx, sftp, src, dest, mode)
                final = mode
            else:
                assert attrs is not None
                final = stat.S_IMODE(attrs.permissions)
                if want_mode is not None and final != want_mode:
                    if not dry:
                        await sftp.chmod(dest, want_mode)
                    final, changed = want_mode, True
        except (asyncssh.SFTPError, OSError) as exc:
            raise sftp_error(ctx, f"cannot upload {src} to {dest}", exc) from None
    ctx.log(f"{src} -> {dest}: {_outcome(changed, dry)} ({size} bytes)")
    return {
        "local": str(src),
        "remote": dest,
        "size": size,
        "checksum": digest,
        "changed": changed,
        "mode": f"{final:04o}",
    }


async def _put(ctx: ModuleContext, sftp: Any, src: Path, dest: str, mode: int) -> None:
    import asyncssh

    tmp = f"{dest}.gxo-{uuid.uuid4().hex[:12]}"
    f = await ctx.to_thread(src.open, "rb")
    try:
        async with sftp.open(tmp, "wb", asyncssh.SFTPAttrs(permissions=0o600)) as out:
            while chunk := await ctx.to_thread(f.read, CHUNK):
                await out.write(chunk)
        await sftp.chmod(tmp, mode)
        try:
            await sftp.posix_rename(tmp, dest)
        except asyncssh.SFTPOpUnsupported:  # pragma: no cover - servers without the extension
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await sftp.remove(dest)
            await sftp.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(Exception):
            await sftp.remove(tmp)
        raise
    finally:
        await ctx.to_thread(f.close)


async def download(
    ctx: ModuleContext, conn: Any, params: TransferParams, dest: Path, *, dry: bool = False
) -> dict[str, Any]:
    """Copy ``params.remote`` to ``dest`` (local); ``dry``: only say what would change (``--check``)."""
    import asyncssh

    src = params.remote
    want_mode = int(params.mode, 8) if params.mode else None
    if await ctx.to_thread(dest.is_dir):
        dest = dest / posixpath.basename(src.rstrip("/"))
    async with await start_sftp(ctx, conn) as sftp:
        try:
            attrs = await remote_stat(sftp, src)
            if attrs is None:
                raise ctx.fail(f"remote file not found: {src}")
            if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                raise ctx.fail(f"remote is not a regular file: {src}")
            local = await ctx.to_thread(_local_state, ctx, dest)
            if local is not None and local[1] == attrs.size:
                digest = await remote_digest(sftp, src)
                same = digest == local[0]
            else:
                same, digest = False, ""
            if same:
                changed = False
                final = local[2] if local is not None else 0
                if want_mode is not None and final != want_mode:
                    if not dry:
                        await ctx.to_thread(os.chmod, dest, want_mode)
                    final, changed = want_mode, True
                size = attrs.size
            else:
                mode = (
                    want_mode
                    if want_mode is not None
                    else local[2]
                    if local is not None
                    else stat.S_IMODE(attrs.permissions or 0o644)
                )
                if dry:
                    digest, size = digest or await remote_digest(sftp, src), attrs.size
                else:
                    digest, size = await _get(ctx, sftp, src, dest, mode)
                changed, final = True, mode
        except (asyncssh.SFTPError, OSError) as exc:
            raise sftp_error(ctx, f"cannot download {src} to {dest}", exc) from None
    ctx.log(f"{src} -> {dest}: {_outcome(changed, dry)} ({size} bytes)")
    return {
        "local": str(dest),
        "remote": src,
        "size": size,
        "checksum": digest,
        "changed": changed,
        "mode": f"{final:04o}",
    }


def _outcome(changed: bool, dry: bool) -> str:
    if not changed:
        return "unchanged"
    return "would change (check mode)" if dry else "written"


def _local_state(ctx: ModuleContext, path: Path) -> tuple[str, int, int] | None:
    """``(sha256, size, mode)`` of a local regular file, None when there is none."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise ctx.fail(f"local is not a regular file: {path}")
    digest, size = local_digest(path)
    return digest, size, stat.S_IMODE(st.st_mode)


async def _get(ctx: ModuleContext, sftp: Any, src: str, dest: Path, mode: int) -> tuple[str, int]:
    tmp = dest.with_name(f".{dest.name}.gxo-{uuid.uuid4().hex[:12]}")
    h = hashlib.sha256()
    size = 0

    def _open() -> Any:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return os.fdopen(fd, "wb")

    out = await ctx.to_thread(_open)
    try:
        try:
            async with sftp.open(src, "rb") as f:
                while chunk := await f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    await ctx.to_thread(out.write, chunk)
        finally:
            await ctx.to_thread(out.close)
        await ctx.to_thread(os.chmod, tmp, mode)
        await ctx.to_thread(os.replace, tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return h.hexdigest(), size


class Transfer(Module):
    """``ssh:upload`` and ``ssh:download``: one SFTP copy (``transfer``: :func:`upload` or
    :func:`download`), for real or, under ``gxo run --check``, only compared."""

    Params = TransferParams
    summary = SUMMARY
    check_mode = CheckMode.predict
    path_params = ("local", "private_key_file", "known_hosts")

    @staticmethod
    async def transfer(
        ctx: ModuleContext, conn: Any, params: TransferParams, local: Path, *, dry: bool
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def perform(self, ctx: ModuleContext, params: TransferParams) -> dict[str, Any]:
        return await self._copy(ctx, params, dry=False)

    async def check(self, ctx: ModuleContext, params: TransferParams) -> dict[str, Any]:
        """Compare as ``perform`` does; write nothing (``changed``: whether it would)."""
        return await self._copy(ctx, params, dry=True)

    async def _copy(
        self, ctx: ModuleContext, params: TransferParams, *, dry: bool
    ) -> dict[str, Any]:
        local = ctx.resolve_path(params.local, param="local")
        cid, conn, _ = await connection(ctx, params)
        summary = await self.transfer(ctx, conn, params, local, dry=dry)
        summary["connection_id"] = cid
        return summary
