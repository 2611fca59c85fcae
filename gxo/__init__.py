"""GXO: a declarative automation kernel.

The public API for front ends and embedders lives in :mod:`gxo.api`.
"""

__version__ = "0.1.0"
