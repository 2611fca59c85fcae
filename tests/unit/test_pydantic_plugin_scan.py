"""gxo.config skips pydantic's plugin scan only where it would find nothing (issue 19):
an installed pydantic plugin is still loaded and called for GXO's models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECK = (
    "import gxo.config\n"
    "from pydantic.plugin import _loader\n"
    "print(sorted(_loader._plugins))\n"
    "import fake_plugin; print('Playbook' in fake_plugin.SEEN)\n"
)


def _run(tmp_path: Path, *, with_plugin: bool) -> str:
    (tmp_path / "fake_plugin.py").write_text(
        "SEEN = []\n"
        "class _Plugin:\n"
        "    def new_schema_validator(self, schema, schema_type, *args, **kwargs):\n"
        "        SEEN.append(getattr(schema_type, '__name__', '?'))\n"
        "        return None, None, None\n"
        "plugin = _Plugin()\n"
    )
    if with_plugin:
        dist = tmp_path / "fake_plugin-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-plugin\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text("[pydantic]\nfake = fake_plugin:plugin\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_installed_plugin_still_loads_and_sees_gxo_models(tmp_path: Path) -> None:
    out = _run(tmp_path, with_plugin=True)
    assert out.splitlines() == ["['fake_plugin:plugin']", "True"]


def test_no_plugin_installed_no_scan(tmp_path: Path) -> None:
    out = _run(tmp_path, with_plugin=False)
    assert out.splitlines() == ["[]", "False"]
