"""The GXO daemon: long-running lifecycles behind a gRPC control plane (``gxo daemon``)."""
