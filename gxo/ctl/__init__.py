"""``gxo ctl``: the daemon's command-line client (gRPC over the daemon's unix socket)."""
