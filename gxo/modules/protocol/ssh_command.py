"""``ssh:command``: run a command on a remote host over SSH."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.protocol._ssh import UsingParams, connection, run_remote, strip_nl, with_env


class RunParams(UsingParams):
    """Params shared by ssh:command and ssh:script."""

    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables exported for the command"
    )
    timeout: Duration | None = Field(
        None,
        description="Longest time the command may run; then it is killed (SIGTERM, SIGKILL 2s later) and the workload fails",
    )
    check: bool = Field(True, description="Fail the workload when the exit code is not 0")
    stdin: str | None = Field(None, description="Text written to the command's standard input")

    @field_validator("env", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                str(k): ("true" if v is True else "false" if v is False else str(v))
                for k, v in value.items()
            }
        return value

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        bad = [k for k in value if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ValueError(f"invalid environment variable name(s): {', '.join(bad)}")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("timeout must be more than 0")
        return value


SUMMARY = {
    "stdout": "standard output (one trailing newline removed)",
    "stderr": "standard error (one trailing newline removed)",
    "stdout_lines": "stdout split into lines",
    "exit_code": "the exit code (negative: killed by that signal; null: timed out)",
    "timed_out": "true when the timeout killed the command",
    "connection_id": "the SSH connection used",
}


async def execute(
    ctx: ModuleContext, params: RunParams, command: str, shown: str, cid: str, conn: Any
) -> dict[str, Any]:
    """Run ``command`` on ``conn`` and build the summary (``shown`` names it in messages)."""
    code, stdout, stderr, timed_out = await run_remote(
        ctx,
        conn,
        with_env(command, params.env),
        stdin=params.stdin.encode() if params.stdin is not None else None,
        limit=params.timeout,
    )
    summary = {
        "stdout": strip_nl(stdout),
        "stderr": strip_nl(stderr),
        "stdout_lines": stdout.splitlines(),
        "exit_code": code,
        "timed_out": timed_out,
        "connection_id": cid,
    }
    if timed_out:
        raise ctx.fail(
            f"{shown} timed out after {params.timeout:g}s; the remote command was killed",
            summary=summary,
        )
    if code is None:  # no exit status, no signal: the session ended underneath it
        why = "the connection was lost" if conn.is_closed() else "the channel closed without one"
        raise ctx.fail(f"{shown} ended without an exit status: {why}", summary=summary)
    if params.check and code != 0:
        detail = (
            strip_nl(stderr).strip().splitlines()[-1:] or strip_nl(stdout).strip().splitlines()[-1:]
        )
        suffix = f": {ctx.redact_excerpt(detail[0], 300, '')}" if detail else ""
        raise ctx.fail(f"{shown} exited with code {code}{suffix}", summary=summary)
    return summary


@register("ssh:command", layer="protocol")
class SshCommand(Module):
    """Run a command on a remote host over SSH; its output is logged line by line as it comes.

    Give the ``connection_id`` of an ``ssh:connect`` workload, or the same
    connection params inline (``host``, ``username``, ``password`` or
    ``private_key``/``private_key_file``, ``known_hosts`` or ``host_key`` ...):
    inline connections are pooled per run by ``user@host:port``, so ten commands
    to one host log in once. The host key is verified as in ``ssh:connect``.

    The command runs through the remote user's shell. ``env`` variables are
    exported before it (not sent as SSH env requests, which sshd drops unless
    ``AcceptEnv`` allows them). ``stdin`` is written to its standard input.

    Under ``gxo run --check`` the command is not run unless it declares
    ``check_mode: safe`` (a read-only command such as ``df`` or ``cat``).

    A ``timeout`` kills the remote command (SIGTERM, then SIGKILL 2 s later,
    then the channel is closed) and fails the workload. With ``check: true``
    (the default) an exit code other than 0 fails the workload; stdout, stderr
    and exit_code are in the summary either way.

    Example:
        - name: disk
          process:
            module: ssh:command
            params:
              host: db1.example.com
              username: ops
              private_key_file: keys/ops_ed25519
              known_hosts: keys/known_hosts
              command: df -h /var/lib/postgresql
              timeout: 30s
          register: disk
    """

    class Params(RunParams):
        command: str = Field(
            ..., min_length=1, description="Shell command line to run on the remote host"
        )
        check_mode: Literal["safe", "unsupported"] = Field(
            "unsupported",
            description="gxo run --check: safe runs the command anyway (declare it only for a read-only command); unsupported skips it",
        )

    summary = SUMMARY
    path_params = ("private_key_file", "known_hosts")
    check_hint = "set check_mode: safe on a read-only command to run it under --check"

    def check_mode_for(self, params: Params) -> CheckMode:
        return CheckMode.safe if params.check_mode == "safe" else CheckMode.unsupported

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        cid, conn, _ = await connection(ctx, params)
        ctx.log(f"$ {params.command}")
        return await execute(ctx, params, params.command, "command", cid, conn)
