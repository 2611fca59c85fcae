"""``ssh:download``: copy a remote file to the local host over SFTP."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.protocol._ssh import connection
from gxo.modules.protocol._ssh_sftp import SUMMARY, TransferParams, download


@register("ssh:download", layer="protocol")
class SshDownload(Module):
    """Copy a remote file to the local host over SFTP.

    ``remote`` is the path as the SFTP server sees it; ``local`` is relative to
    the workspace. Idempotent: when the local file already has the same
    content (SHA-256) and mode, it is left alone and the summary says
    ``changed: false``. Otherwise the file is written to a temporary name next
    to it and renamed over it. A ``local`` that is an existing directory
    receives the file under the remote file's name. ``mode`` (``"0600"``) sets
    the local permissions; without it a new file gets the remote file's and an
    existing one keeps its own.

    Connection: ``connection_id`` from ``ssh:connect``, or the connection params
    inline (pooled per run), host key verified as in ``ssh:connect``.

    Example:
        - name: fetch_log
          process:
            module: ssh:download
            params:
              connection_id: "{{ web1.connection_id }}"
              remote: /var/log/nginx/error.log
              local: logs/web1-error.log
          register: log
    """

    Params = TransferParams
    summary = SUMMARY
    check_mode = CheckMode.predict
    path_params = ("local", "private_key_file", "known_hosts")

    async def perform(self, ctx: ModuleContext, params: TransferParams) -> dict[str, Any]:
        local = ctx.resolve_path(params.local, param="local")
        cid, conn, _ = await connection(ctx, params)
        summary = await download(ctx, conn, params, local)
        summary["connection_id"] = cid
        return summary

    async def check(self, ctx: ModuleContext, params: TransferParams) -> dict[str, Any]:
        """Compare as ``perform`` does; write nothing (``changed``: whether it would)."""
        local = ctx.resolve_path(params.local, param="local")
        cid, conn, _ = await connection(ctx, params)
        summary = await download(ctx, conn, params, local, dry=True)
        summary["connection_id"] = cid
        return summary
