"""``ssh:connect``: open an SSH connection for the other ``ssh:*`` workloads."""

from __future__ import annotations

from typing import Any

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.protocol._ssh import ConnectParams, local_user, pooled


@register("ssh:connect", layer="protocol")
class SshConnect(Module):
    """Log in to an SSH server and return a ``connection_id`` for the other ssh:* modules.

    The server's host key is verified, always, unless told otherwise: against
    ``known_hosts`` (an OpenSSH known_hosts file; default ``~/.ssh/known_hosts``)
    or a pinned ``host_key`` (a public key line, or its ``SHA256:`` fingerprint
    as ``ssh-keygen -lf`` prints it). A key that is not trusted refuses the
    connection before any credential is sent. ``insecure_skip_host_key_check:
    true`` accepts any key and logs a warning; it is never implied.

    Log in with ``password``, ``private_key`` (the key text) or
    ``private_key_file`` (plus ``passphrase`` when the key is encrypted), or
    ``agent: true`` for the SSH agent's keys. Passwords, keys and passphrases
    never appear in the summary, logs or errors (take them from ``secret()``).

    The connection stays open until the run ends (then it is closed) and is
    pooled: a later ``ssh:connect`` or an inline-params ``ssh:command`` to the
    same ``user@host:port`` in this run reuses it (``reused: true``).

    Example:
        - name: web1
          process:
            module: ssh:connect
            params:
              host: web1.example.com
              username: deploy
              private_key: "{{ secret('DEPLOY_KEY') }}"
              known_hosts: ssh/known_hosts
          register: web1
        - name: uptime
          process:
            module: ssh:command
            params: { connection_id: "{{ web1.connection_id }}", command: uptime }
    """

    Params = ConnectParams

    summary = {
        "connection_id": "handle for ssh:command, ssh:script, ssh:upload, ssh:download",
        "host": "the server",
        "port": "its SSH port",
        "user": "the user logged in as",
        "host_key_fingerprint": "SHA256 fingerprint of the server's host key",
        "host_key_verified": "false only with insecure_skip_host_key_check",
        "reused": "true when an open connection of this run was reused",
    }

    path_params = ("private_key_file", "known_hosts")
    check_mode = CheckMode.safe  # logging in changes nothing on the host

    async def perform(self, ctx: ModuleContext, params: ConnectParams) -> dict[str, Any]:
        cid, _conn, reused = await pooled(ctx, params)
        info = ctx.connections.info(cid)
        return {
            "connection_id": cid,
            "host": params.host,
            "port": params.port,
            "user": params.username or local_user(),
            "host_key_fingerprint": info.get("host_key_fingerprint"),
            "host_key_verified": info.get("verified", True),
            "reused": reused,
        }
