"""``ssh:download``: copy a remote file to the local host over SFTP."""

from __future__ import annotations

from gxo.modules.base import register
from gxo.modules.protocol._ssh_sftp import Transfer, download


@register("ssh:download", layer="protocol")
class SshDownload(Transfer):
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

    transfer = staticmethod(download)
