"""``gxo admin``: offline administration (PKI for the control plane, state keys)."""
