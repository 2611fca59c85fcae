"""Third-party modules as a user meets them: `gxo admin keys/sign-module/verify-module`,
`gxo run --modules-dir --trusted-key`, `gxo modules`, entry points, `gxo daemon`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.module_packages import playbook, write_package

NAME = "acme_mods"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from gxo.modules.signing import generate_keys

    base = tmp_path_factory.mktemp("e2e-keys")
    out = {}
    for who in ("trusted", "other"):
        private, public, _ = generate_keys(base / who)
        out[who], out[f"{who}.pub"] = private, public
    return out


def sign(pkg: Path, key: Path) -> None:
    """What `gxo admin sign-module` does (the command: tests/unit/test_module_signing.py)."""
    from gxo.modules.signing import load_private_key, sign_package

    sign_package(pkg, load_private_key(key))


@pytest.fixture
def project(tmp_path: Path, keys: dict[str, Path]) -> dict[str, Path]:
    """A modules dir with one package signed by the trusted key, and a playbook using it."""
    marker = tmp_path / "imported"
    pkg = write_package(tmp_path / "mods", NAME, marker)
    sign(pkg, keys["trusted"])
    return {
        "pkg": pkg,
        "mods": tmp_path / "mods",
        "marker": marker,
        "playbook": playbook(tmp_path / "p.gxo.yaml", NAME),
    }


def run(gxo, project: dict[str, Path], *flags: str, env: dict[str, str] | None = None):
    return gxo(
        "run",
        str(project["playbook"]),
        "--modules-dir",
        str(project["mods"]),
        "-v",
        *flags,
        env=env,
    )


def test_signed_module_runs(gxo, keys: dict[str, Path], project) -> None:
    proc = run(gxo, project, "--trusted-key", str(keys["trusted.pub"]))
    assert proc.returncode == 0, proc.stderr
    assert '"greeting": "hello gxo"' in proc.stderr and "warning" not in proc.stderr
    assert project["marker"].exists()


def test_tampered_module_is_refused_before_import(gxo, keys: dict[str, Path], project) -> None:
    helper = project["pkg"] / "helper.py"
    data = bytearray(helper.read_bytes())
    data[-2] ^= 1  # one byte
    helper.write_bytes(bytes(data))
    proc = run(gxo, project, "--trusted-key", str(keys["trusted.pub"]))
    assert proc.returncode == 2, proc.stderr
    assert f"third-party module package '{NAME}'" in proc.stderr
    assert "file changed after signing: helper.py" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not project["marker"].exists()


def test_unsigned_under_enforce_from_the_user_config(gxo, keys: dict[str, Path], project) -> None:
    (project["pkg"].parent / f"{NAME}.gxo-sig").unlink()
    config = Path(os.environ["HOME"]) / ".gxo" / "config.yaml"
    config.parent.mkdir()
    config.write_text(
        json.dumps({"module_verification": {"trusted_keys": [str(keys["trusted.pub"])]}})
    )
    proc = run(gxo, project)  # a trusted key is configured: enforce is the default
    assert proc.returncode == 2, proc.stderr
    assert f"'{NAME}'" in proc.stderr and "unsigned (no signature file" in proc.stderr
    assert "refused: module verification is enforce" in proc.stderr
    assert not project["marker"].exists()
    proc = run(gxo, project, "--module-verification", "warn")  # warn: runs, with a warning
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "loaded anyway: module verification is warn" in proc.stderr
    assert '"greeting": "hello gxo"' in proc.stderr


def test_modules_lists_third_party_and_validate_sees_it(gxo, keys, project) -> None:
    proc = gxo(
        "modules",
        "--json",
        "--modules-dir",
        str(project["mods"]),
        "--trusted-key",
        str(keys["trusted.pub"]),
    )
    assert proc.returncode == 0, proc.stderr
    entry = [m for m in json.loads(proc.stdout) if m["name"] == f"{NAME}:greet"]
    assert entry == [
        {"name": f"{NAME}:greet", "layer": "application", "synopsis": "Greet someone."}
    ]
    bad = project["playbook"].with_name("bad.gxo.yaml")
    bad.write_text(project["playbook"].read_text().replace("who: gxo", "whom: gxo"))
    proc = gxo(
        "validate",
        str(bad),
        "--modules-dir",
        str(project["mods"]),
        "--trusted-key",
        str(keys["trusted.pub"]),
    )
    assert proc.returncode == 2 and "whom" in proc.stderr


def test_entry_point_package(gxo, tmp_path: Path, keys: dict[str, Path]) -> None:
    """An installed distribution exposing `gxo.modules` (a dist-info on PYTHONPATH)."""
    site = tmp_path / "site"
    marker = tmp_path / "ep-imported"
    pkg = write_package(site, "acme_ep", marker)
    dist = site / "acme_ep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-ep\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gxo.modules]\ngreet = acme_ep\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    book = playbook(tmp_path / "ep.gxo.yaml", "acme_ep")
    proc = gxo("run", str(book), "--trusted-key", str(keys["trusted.pub"]), env=env)
    assert proc.returncode == 2 and "'acme_ep'" in proc.stderr and "unsigned" in proc.stderr
    assert "entry point 'greet' of acme-ep" in proc.stderr and not marker.exists()
    sign(pkg, keys["trusted"])
    proc = gxo("run", str(book), "--trusted-key", str(keys["trusted.pub"]), "-v", env=env)
    assert proc.returncode == 0, proc.stderr
    assert '"greeting": "hello gxo"' in proc.stderr and marker.exists()


def test_daemon_refuses_an_unsigned_module_at_start(gxo, tmp_path: Path, project) -> None:
    (project["pkg"].parent / f"{NAME}.gxo-sig").unlink()
    proc = gxo(
        "daemon",
        "--socket",
        str(tmp_path / "d.sock"),
        "--state",
        f"sqlite:///{tmp_path / 'state.db'}",
        "--modules-dir",
        str(project["mods"]),
        timeout=30,
    )  # no trusted key at all: the daemon still enforces
    assert proc.returncode == 2, proc.stderr
    assert "unsigned" in proc.stderr and "trusted keys: none configured" not in proc.stderr
    assert not project["marker"].exists() and not (tmp_path / "d.sock").exists()
