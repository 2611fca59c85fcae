"""Event sources of the ``event_driven`` lifecycle (see :mod:`gxo.daemon.sources.base`)."""
