"""``ssh:upload``: copy a local file to a remote host over SFTP."""

from __future__ import annotations

from gxo.modules.base import register
from gxo.modules.protocol._ssh_sftp import Transfer, upload


@register("ssh:upload", layer="protocol")
class SshUpload(Transfer):
    """Copy a local file to a remote host over SFTP.

    ``local`` is relative to the workspace; ``remote`` is the path as the SFTP
    server sees it. Idempotent: when the remote file already has the same
    content (SHA-256) and mode, nothing is written and the summary says
    ``changed: false``. Otherwise the file is written to a temporary name next
    to it and renamed over it (a reader never sees half a file). A ``remote``
    that is an existing directory receives the file under its own name.
    ``mode`` (``"0640"``) sets the permissions; without it a new file gets the
    local file's.

    Connection: ``connection_id`` from ``ssh:connect``, or the connection params
    inline (pooled per run), host key verified as in ``ssh:connect``.

    Example:
        - name: config
          process:
            module: ssh:upload
            params:
              connection_id: "{{ web1.connection_id }}"
              local: files/nginx.conf
              remote: /etc/nginx/nginx.conf
              mode: "0644"
    """

    transfer = staticmethod(upload)
