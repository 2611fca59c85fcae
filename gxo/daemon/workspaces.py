"""Where the daemon's playbooks keep their files, and where else they may reach.

Each applied playbook works in ``<state dir>/workspaces/<playbook>`` (the state dir is
the SQLite file's directory; with a PostgreSQL or in-memory state, ``~/.gxo``), created
0700 on the playbook's first run. Its path params are confined to that directory plus
the ``--allow-path`` directories (gxo/engine/confine.py, docs/confinement.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gxo.engine.confine import Confinement, allowed_dirs

__all__ = ["Workspaces", "workspace_dir_name"]

_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$")


def workspace_dir_name(playbook: str) -> str:
    """One directory name per playbook name: the name itself when it is a plain file
    name, else a cleaned form plus a hash (``../x`` or ``a/b`` never leave the parent)."""
    if _SAFE.match(playbook):
        return playbook
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", playbook).strip("._-")[:60] or "playbook"
    return f"{cleaned}-{hashlib.sha256(playbook.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Workspaces:
    """The daemon's workspaces directory and its ``--allow-path`` directories."""

    root: Path
    allow: tuple[str, ...] = ()

    @classmethod
    def for_state(cls, state_url: str, allow_paths: Iterable[str] = ()) -> Workspaces:
        """From the (expanded) state URL; each ``--allow-path`` must be a directory."""
        return cls(_state_dir(state_url) / "workspaces", allowed_dirs(allow_paths))

    def confinement(self, playbook: str) -> Confinement:
        return Confinement(self.root / workspace_dir_name(playbook), self.allow)


def _state_dir(state_url: str) -> Path:
    match = re.match(r"^sqlite(\+\w+)?:///(?P<db>[^?]*)", state_url)
    db = match["db"] if match else ""
    if db and db != ":memory:" and not db.startswith("file:"):
        return Path(db).expanduser().absolute().parent
    return Path("~/.gxo").expanduser()
