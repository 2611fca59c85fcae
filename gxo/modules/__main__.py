"""``python -m gxo.modules [--write|--check]``: the module index used for lazy loading."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

from gxo.modules.base import INDEX_FILE, build_index


def main(argv: list[str]) -> int:
    path = Path(str(resources.files("gxo.modules").joinpath(INDEX_FILE)))
    text = json.dumps(build_index(), indent=2) + "\n"
    if "--write" in argv:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
        return 0
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != text:
        print(f"{path} is stale: run 'make docs' (python -m gxo.modules --write)")
        return 1
    print(f"{path} is current")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
