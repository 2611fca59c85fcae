"""``ssh:script``: copy a local script to a remote host, run it there, remove it."""

from __future__ import annotations

import asyncio
import shlex
from typing import Any

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import Module, register
from gxo.modules.protocol._ssh import connection, run_remote, strip_nl
from gxo.modules.protocol.ssh_command import SUMMARY, RunParams, execute

STAGE_TIMEOUT = 60.0  # seconds to copy the script over (or remove it)
# Creates a private temp file, fills it from stdin, makes it executable, prints its path.
STAGE = (
    'f=$(umask 077 && mktemp "${TMPDIR:-/tmp}/gxo-script.XXXXXX") '
    '&& cat > "$f" && chmod 700 "$f" && printf "%s\\n" "$f"'
)


@register("ssh:script", layer="protocol")
class SshScript(Module):
    """Copy a local script to a remote host, run it with arguments, then remove it.

    The script (``script_path``, relative to the workspace) is written to a
    private temporary file on the remote host (``mktemp`` in ``$TMPDIR`` or
    /tmp, mode 0700), run with ``script_args`` (each one quoted, no shell
    splitting) and removed afterwards, whether it succeeded or not. Its first
    line chooses the interpreter (``#!/bin/bash``, ``#!/usr/bin/env python3``).
    The remote host needs a POSIX shell, ``mktemp``, ``cat`` and ``chmod``.

    Connection params, ``env``, ``stdin``, ``timeout``, ``check`` and the
    summary are those of ``ssh:command``; output lines are logged as they come.

    Example:
        - name: migrate
          process:
            module: ssh:script
            params:
              connection_id: "{{ app1.connection_id }}"
              script_path: scripts/migrate.sh
              script_args: [--to, "{{ version }}"]
              env: { APP_ENV: production }
              timeout: 10m
    """

    class Params(RunParams):
        script_path: str = Field(
            ..., min_length=1, description="Local script file (relative to the workspace)"
        )
        script_args: list[str] = Field(
            default_factory=list, description="Arguments passed to the script, one item each"
        )

        @field_validator("script_args", mode="before")
        @classmethod
        def _stringify(cls, value: Any) -> Any:
            if isinstance(value, list):
                return [
                    v
                    if isinstance(v, str)
                    else ("true" if v is True else "false" if v is False else str(v))
                    for v in value
                ]
            return value

    summary = {**SUMMARY, "remote_path": "where the script ran (removed since)"}
    path_params = ("script_path", "private_key_file", "known_hosts")

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        path = ctx.resolve_path(params.script_path, param="script_path")
        try:
            script = await ctx.to_thread(path.read_bytes)
        except IsADirectoryError:
            raise ctx.fail(f"script_path is a directory: {path}") from None
        except OSError as exc:
            raise ctx.fail(f"cannot read script_path {path}: {exc.strerror or exc}") from None
        cid, conn, _ = await connection(ctx, params)
        code, out, err, timed_out = await run_remote(
            ctx, conn, STAGE, stdin=script, limit=STAGE_TIMEOUT, log=False
        )
        remote = strip_nl(out).strip()
        if code != 0 or timed_out or not remote:
            reason = "timed out" if timed_out else strip_nl(err).strip() or f"exit code {code}"
            raise ctx.fail(
                f"cannot copy script {params.script_path} to the remote host: {ctx.redact(reason)}"
            )
        ctx.log(f"copied {params.script_path} ({len(script)} bytes) to {remote}")
        command = " ".join(shlex.quote(a) for a in (remote, *params.script_args))
        try:
            summary = await execute(ctx, params, command, f"script {params.script_path}", cid, conn)
        finally:
            await asyncio.shield(_remove(ctx, conn, remote))
        summary["remote_path"] = remote
        return summary


async def _remove(ctx: ModuleContext, conn: Any, remote: str) -> None:
    try:
        code, _, err, _ = await run_remote(
            ctx, conn, f"rm -f -- {shlex.quote(remote)}", limit=STAGE_TIMEOUT, log=False
        )
    except Exception as exc:  # the connection dropped: nothing more to do
        ctx.log(f"could not remove {remote}: {exc}", level="warning")
        return
    if code != 0:
        ctx.log(f"could not remove {remote}: {strip_nl(err)}", level="warning")
