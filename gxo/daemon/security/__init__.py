"""The daemon's control-plane security: who is calling, and may they.

- :mod:`.tls` terminates mutual TLS 1.3 on ``--listen``: the handshake (chain, dates,
  clientAuth usage, allowlist) decides before a byte reaches gRPC; an accepted
  connection is relayed to the daemon's own unix socket from a bound peer address
  that names the client's :class:`~.identity.Identity`.
- :mod:`.rbac` reads ``--rbac FILE`` (roles → methods and playbook globs, subjects →
  roles) and decides, deny by default.
- :mod:`.interceptor` enforces the decision for unary and streaming RPCs before
  their body runs, and :mod:`.audit` appends each decision as a JSON line.

Everything here imports grpc or cryptography: the daemon loads it, ``gxo run`` never.
"""
