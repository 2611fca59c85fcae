"""``python -m gxo``: the same as the ``gxo`` command."""

from gxo.entry import main

if __name__ == "__main__":
    main()
