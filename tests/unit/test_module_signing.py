"""Module signing: manifests, signatures, the verification policy and the verified import
(gxo/modules/signing.py, gxo/modules/thirdparty.py, gxo/userconfig.py)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gxo.errors import ModuleSignatureError, RegistryError, UsageError
from gxo.modules import signing, thirdparty
from gxo.modules.base import REGISTRY
from gxo.modules.signing import (
    generate_keys,
    load_private_key,
    parse_public_key,
    read_trusted_key,
    sign_package,
    signature_path,
    verify_package,
)
from gxo.modules.thirdparty import Policy, install, load_all, resolve_policy
from gxo.userconfig import UserConfig, VerificationMode, load_user_config
from tests.support.module_packages import PLAYBOOK, write_package


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two key pairs: ``a`` (trusted in these tests) and ``b`` (someone else's)."""
    base = tmp_path_factory.mktemp("keys")
    out = {}
    for who in ("a", "b"):
        private, public, _ = generate_keys(base / who)
        out[who], out[f"{who}.pub"] = private, public
    return out


@pytest.fixture
def fresh() -> Iterator[Callable[[], str]]:
    """Unique package names; their imports, finders and the loader are undone after."""
    names: list[str] = []

    def new() -> str:
        names.append(f"tpm_{uuid.uuid4().hex[:10]}")
        return names[-1]

    yield new
    REGISTRY.use_third_party(None)
    for finder in [f for f in sys.meta_path if isinstance(f, thirdparty._VerifiedSource)]:
        sys.meta_path.remove(finder)
    for mod in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[mod]


def signed(tmp_path: Path, name: str, key: Path, **kw: bool) -> tuple[Path, Path]:
    marker = tmp_path / f"{name}.imported"
    pkg = write_package(tmp_path / "mods", name, marker, **kw)
    sign_package(pkg, load_private_key(key))
    return pkg, marker


def trusted(keys: dict[str, Path], who: str = "a") -> list[signing.TrustedKey]:
    return [read_trusted_key(str(keys[f"{who}.pub"]))]


# -- sign and verify ----------------------------------------------------------------------


def test_sign_then_verify(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    name = fresh()
    pkg, marker = signed(tmp_path, name, keys["a"])
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "x.pyc").write_bytes(b"\0")  # bytecode is never read: not signed
    document = json.loads(signature_path(pkg).read_text())
    manifest = document["manifest"]
    assert signature_path(pkg) == pkg.parent / f"{name}.gxo-sig"
    assert manifest["module"] == name and manifest["format"] == signing.FORMAT
    assert sorted(manifest["files"]) == ["__init__.py", "helper.py"]
    assert manifest["key_id"] == trusted(keys)[0].key_id
    result = verify_package(pkg, trusted(keys))
    assert result.trusted and result.key_id == manifest["key_id"]
    assert result.files["helper.py"] == b'greeting = "hello"\n'
    assert verify_package(pkg, None).trusted is False  # integrity only
    assert not marker.exists()  # verification never imports


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("tamper", r"file changed after signing: helper\.py"),
        ("add", r"file added after signing: extra\.py"),
        ("remove", r"file removed after signing: helper\.py"),
        (
            "untrusted",
            r"signed by key [0-9a-f]{16}, which is not trusted \(trusted keys: [0-9a-f]{16}\)",
        ),
        ("unsigned", r"unsigned \(no signature file .*\.gxo-sig\)"),
        ("forged", r"the signature does not match its manifest"),
        ("garbage", r"is not a valid gxo-module-signature/1 signature file"),
        ("renamed", r"the signature is for module package 'tpm_"),
        ("symlink", r"cannot be verified: link\.py is not a regular file"),
        ("wrong_id", r"the signature's key id does not match its key"),
    ],
)
def test_verification_refuses(
    tmp_path: Path, keys: dict[str, Path], fresh, change: str, reason: str
) -> None:
    name = fresh()
    pkg, _ = signed(tmp_path, name, keys["b" if change == "untrusted" else "a"])
    sig = signature_path(pkg)
    document = json.loads(sig.read_text())
    if change == "tamper":  # one byte
        data = bytearray((pkg / "helper.py").read_bytes())
        data[0] ^= 1
        (pkg / "helper.py").write_bytes(bytes(data))
    elif change == "add":
        (pkg / "extra.py").write_text("x = 1\n")
    elif change == "remove":
        (pkg / "helper.py").unlink()
    elif change == "unsigned":
        sig.unlink()
    elif change == "forged":  # a manifest edited to match a tampered file
        document["manifest"]["files"]["helper.py"] = "0" * 64
        sig.write_text(json.dumps(document))
    elif change == "garbage":
        sig.write_text("{not json")
    elif change == "renamed":
        other = pkg.parent / fresh()
        pkg.rename(other)
        sig.rename(signature_path(other))
        pkg = other
    elif change == "symlink":
        (pkg / "link.py").symlink_to(pkg / "helper.py")
    elif change == "wrong_id":
        document["manifest"]["key_id"] = "0" * 16
        sig.write_text(json.dumps(document))
    with pytest.raises(ModuleSignatureError, match=reason) as info:
        verify_package(pkg, trusted(keys))
    assert info.value.exit_code == 2 and info.value.module == pkg.name


def test_single_file_module(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    name = fresh()
    module = tmp_path / f"{name}.py"
    module.write_text("x = 1\n")
    target, manifest = sign_package(module, load_private_key(keys["a"]))
    assert target.name == f"{name}.py.gxo-sig" and list(manifest["files"]) == [f"{name}.py"]
    assert verify_package(module, trusted(keys)).files == {f"{name}.py": b"x = 1\n"}


def test_sign_refuses_what_is_not_a_package(tmp_path: Path, keys: dict[str, Path]) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="is not a module package"):
        sign_package(tmp_path / "plain", load_private_key(keys["a"]))


# -- keys -----------------------------------------------------------------------------


def test_keys_files_and_errors(tmp_path: Path, keys: dict[str, Path]) -> None:
    assert keys["a"].stat().st_mode & 0o777 == 0o600
    with pytest.raises(UsageError, match="already exists"):
        generate_keys(keys["a"].parent)
    pub = keys["a.pub"].read_text()
    key = parse_public_key(pub)
    assert read_trusted_key(pub.split()[0]).raw == key.raw  # inline
    loose = tmp_path / "loose.key"
    loose.write_bytes(keys["a"].read_bytes())
    loose.chmod(0o644)
    with pytest.raises(UsageError, match="readable by others"):
        load_private_key(loose)
    loose.chmod(0o600)
    assert load_private_key(loose) is not None
    loose.write_text("nope")
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        load_private_key(loose)
    with pytest.raises(UsageError, match="cannot read it"):
        load_private_key(tmp_path / "missing.key")
    with pytest.raises(UsageError, match="cannot read it"):
        read_trusted_key("missing.pub", tmp_path)
    for text, msg in [
        ("ed25519:!!!", "bad base64"),
        ("ed25519:AAAA", "expected 32 bytes"),
        ("ssh-rsa AAAA", "not a public key"),
        ("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----", "not a valid PEM"),
    ]:
        with pytest.raises(UsageError, match=msg):
            parse_public_key(text)


def test_pem_keys(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    def pem(key) -> str:
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    ed = ed25519.Ed25519PrivateKey.generate()
    assert len(parse_public_key(pem(ed)).raw) == 32
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(UsageError, match="not an Ed25519 public key"):
        parse_public_key(pem(ecdsa))
    private = tmp_path / "ec.key"
    private.write_bytes(
        ecdsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    with pytest.raises(UsageError, match="not an Ed25519 key"):
        load_private_key(private)


# -- the policy -------------------------------------------------------------------------


def test_policy_defaults_and_flags(tmp_path: Path) -> None:
    empty = UserConfig()
    assert resolve_policy(config=empty).mode is VerificationMode.warn
    assert resolve_policy(config=empty, trusted_keys=["k.pub"]).mode is VerificationMode.enforce
    assert resolve_policy(config=empty, daemon=True).mode is VerificationMode.enforce
    assert resolve_policy(config=empty, daemon=True, mode="off").mode is VerificationMode.off
    in_config = UserConfig(trusted_keys=("k.pub",), base_dir=tmp_path)
    assert resolve_policy(config=in_config).mode is VerificationMode.enforce
    warn = UserConfig(mode=VerificationMode.warn, trusted_keys=("k.pub",))
    assert resolve_policy(config=warn).mode is VerificationMode.warn
    with pytest.raises(UsageError, match="--module-verification 'strict': expected enforce"):
        resolve_policy(config=empty, mode="strict")


def test_user_config(tmp_path: Path, keys: dict[str, Path]) -> None:
    assert load_user_config() == UserConfig()  # HOME is private: no file
    with pytest.raises(UsageError, match="no such file"):
        load_user_config(tmp_path / "none.yaml")
    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    path.write_text(
        "module_verification:\n  mode: warn\n  trusted_keys: [a.pub, 'ed25519:x']\n"
        "modules_dirs: [mods, /abs]\n"
    )
    config = load_user_config(path)
    assert config.mode is VerificationMode.warn
    assert config.trusted_keys == ("a.pub", "ed25519:x")
    assert config.modules_dirs == (path.parent / "mods", Path("/abs"))
    home = Path(os.environ["HOME"]) / ".gxo"
    home.mkdir()
    (home / "config.yaml").write_text("")
    assert load_user_config().mode is None
    for text, msg in [
        ("a: [", r"config\.yaml:\d+: not valid YAML"),
        ("- 1\n", "expected a mapping"),
        ("colour: red\n", "colour: Extra inputs are not permitted"),
        ("module_verification: {mode: strict}\n", "module_verification.mode"),
    ]:
        path.write_text(text)
        with pytest.raises(UsageError, match=msg):
            load_user_config(path)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(UsageError, match="cannot read it"):
        load_user_config(path)


# -- discovery, verification, import ------------------------------------------------------


def policy(tmp_path: Path, mode: str, keys: dict[str, Path] | None = None, **kw) -> Policy:
    return Policy(
        VerificationMode(mode),
        trusted_keys=(str(keys["a.pub"]),) if keys else (),
        modules_dirs=(tmp_path / "mods",),
        entry_points=False,
        **kw,
    )


def test_enforce_loads_signed_modules_from_verified_bytes(
    tmp_path: Path, keys: dict[str, Path], fresh
) -> None:
    name = fresh()
    pkg, marker = signed(tmp_path, name, keys["a"])
    (pkg / "data").mkdir()
    (pkg / "data" / "greeting.txt").write_text("hi")
    sign_package(pkg, load_private_key(keys["a"]))
    (tmp_path / "mods" / "not_a_package").mkdir()  # no __init__.py: ignored
    (tmp_path / "mods" / "_private").mkdir()
    p = install(policy(tmp_path, "enforce", keys))
    spec = REGISTRY.get(f"{name}:greet")
    assert spec is not None and spec.synopsis == "Greet someone."
    assert marker.exists() and p.loaded == {name: [f"{name}:greet"]} and p.warnings == []
    assert not (pkg / "__pycache__").exists()  # compiled from the verified source
    module = sys.modules[name]
    assert module.__file__ == str(pkg / "__init__.py")
    assert sys.modules[f"{name}.helper"].greeting == "hello"
    import inspect

    assert "Greet someone" in inspect.getsource(module)
    from importlib.resources import files

    assert files(name).joinpath("data/greeting.txt").read_text() == "hi"
    assert (
        sys.modules[f"{name}.helper"].__spec__.loader.get_resource_reader(f"{name}.helper") is None
    )
    with pytest.raises(ModuleNotFoundError, match="in the verified package"):
        __import__(f"{name}.missing")


async def test_a_loaded_module_runs(tmp_path: Path, keys: dict[str, Path], fresh, run_yaml) -> None:
    name = fresh()
    signed(tmp_path, name, keys["a"])
    install(policy(tmp_path, "enforce", keys))
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: p
        workloads:
          - name: g
            process: {{ module: "{name}:greet", params: {{ who: gxo }} }}
        """
    )
    assert result.status == "Completed", result
    assert result.states["g"].summary == {"greeting": "hello gxo"}


def test_enforce_refuses_before_import(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    _good, good_marker = signed(tmp_path, fresh(), keys["a"])
    bad = fresh()
    bad_marker = tmp_path / "bad.imported"
    write_package(tmp_path / "mods", bad, bad_marker)  # unsigned
    install(policy(tmp_path, "enforce", keys))
    with pytest.raises(ModuleSignatureError, match=rf"'{bad}' .*unsigned .*refused"):
        REGISTRY.get(f"{bad}:greet")
    with pytest.raises(ModuleSignatureError):  # still refused, not "unknown module"
        REGISTRY.names()
    # nothing third-party ran: every package is verified before any is imported
    assert not bad_marker.exists() and not good_marker.exists()
    assert REGISTRY.get("exec") is not None  # built-ins need no third-party load


def test_warn_and_off_modes(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    name = fresh()
    marker = tmp_path / "m"
    write_package(tmp_path / "mods", name, marker)
    seen: list[str] = []
    p = install(policy(tmp_path, "warn", keys, warn=seen.append))
    assert REGISTRY.get(f"{name}:greet") is not None and marker.exists()
    assert len(seen) == 1 and "unsigned" in seen[0] and "loaded anyway" in seen[0]
    marker.unlink()
    p = install(policy(tmp_path, "off"))  # a reload: the old import and module are forgotten
    REGISTRY.load_third_party()
    assert REGISTRY.get(f"{name}:greet") is not None
    assert marker.exists() and p.warnings == [] and p.loaded == {name: [f"{name}:greet"]}


def test_load_errors(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    mods = tmp_path / "mods"
    with pytest.raises(UsageError, match="not a directory"):
        load_all(policy(tmp_path, "off"))
    name = fresh()
    pkg = write_package(mods, name, tmp_path / "m", helper=False)
    (pkg / "__init__.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(RegistryError, match=rf"'{name}' .*failed to import: RuntimeError: boom"):
        load_all(policy(tmp_path, "off"))
    (pkg / "__init__.py").write_text("x = 1\n")
    p = policy(tmp_path, "off")
    load_all(p)
    assert p.warnings == [
        f"third-party module package '{name}' (modules dir {mods}) registers no module"
    ]
    (pkg / "__init__.py").write_text(
        "from gxo.modules.base import Module, register\n"
        "@register('exec', layer='system')\n"
        "class E(Module):\n"
        "    async def perform(self, ctx, params):\n"
        "        return {}\n"
    )
    with pytest.raises(RegistryError, match="'exec' is already registered by built-in"):
        load_all(policy(tmp_path, "off"))
    (mods / "json").mkdir()
    (mods / "json" / "__init__.py").write_text("")
    with pytest.raises(
        RegistryError, match=r"'json' .*has the name of a Python module already in use"
    ):
        load_all(policy(tmp_path, "off"))
    (mods / "json" / "__init__.py").unlink()
    (mods / "pytest").mkdir()
    (mods / "pytest" / "__init__.py").write_text("")
    with pytest.raises(RegistryError, match=r"'pytest' .*has the name"):
        load_all(policy(tmp_path, "off"))
    (mods / "pytest" / "__init__.py").unlink()


def test_shadowing_and_duplicates(tmp_path: Path, fresh, monkeypatch: pytest.MonkeyPatch) -> None:
    mods = tmp_path / "mods"
    installed = fresh()  # an installed package (not imported yet) of the same name
    (tmp_path / "site" / installed).mkdir(parents=True)
    (tmp_path / "site" / installed / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    write_package(mods, installed, tmp_path / "m0", helper=False)
    with pytest.raises(RegistryError, match="would shadow the installed Python package"):
        load_all(policy(tmp_path, "off"))
    monkeypatch.undo()
    name = fresh()
    write_package(mods, name, tmp_path / "m1", helper=False)
    other = tmp_path / "other"
    write_package(other, name, tmp_path / "m2", helper=False)
    twice = Policy(VerificationMode.off, modules_dirs=(mods, other), entry_points=False)
    with pytest.raises(RegistryError, match=rf"'{name}' is found twice"):
        load_all(twice)
    (other / "bad-name").mkdir()
    (other / "bad-name" / "__init__.py").write_text("")
    with pytest.raises(UsageError, match="'bad-name' is not a valid Python package name"):
        load_all(Policy(VerificationMode.off, modules_dirs=(other,), entry_points=False))


def test_entry_point_discovery(
    tmp_path: Path, keys: dict[str, Path], fresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = fresh()
    site = tmp_path / "site"
    site.mkdir()
    pkg, marker = signed(tmp_path, name, keys["a"])
    pkg.rename(site / name)  # "installed": the package and its signature next to it
    signature_path(pkg).rename(signature_path(site / name))
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[gxo.modules]\ngreet = {name}.helper\n")
    monkeypatch.syspath_prepend(str(site))
    candidates = thirdparty._entry_point_candidates()
    mine = [c for c in candidates if c.name == name]
    assert len(mine) == 1 and mine[0].path == site / name and mine[0].target == f"{name}.helper"
    assert mine[0].origin == f"entry point 'greet' of {name}"
    p = Policy(VerificationMode.enforce, trusted_keys=(str(keys["a.pub"]),))
    load_all(p)  # imports NAME.helper, so NAME (its parent) registers the module
    assert marker.exists() and p.loaded[name] == [f"{name}:greet"]
    (dist / "entry_points.txt").write_text(f"[gxo.modules]\ngreet = {name}_absent\n")
    with pytest.raises(RegistryError, match=rf"cannot find the package '{name}_absent'"):
        thirdparty._entry_point_candidates()


# -- the commands (in-process; the e2e file runs `gxo run` / `gxo daemon` for real) -------


def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from gxo.cli import app

    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def test_admin_keys_sign_verify(tmp_path: Path, keys: dict[str, Path], fresh) -> None:
    out = tmp_path / "k"
    result = cli("admin", "keys", "generate", "--out", str(out))
    assert result.exit_code == 0 and "(mode 0600)" in result.output
    assert (out / "signing.key").stat().st_mode & 0o777 == 0o600
    assert (out / "signing.pub").read_text().startswith("ed25519:")
    again = cli("admin", "keys", "generate", "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.output

    name = fresh()
    pkg = write_package(tmp_path / "mods", name, tmp_path / "m")
    result = cli("admin", "sign-module", str(pkg), "--key", str(out / "signing.key"))
    assert result.exit_code == 0, result.output
    assert f"signed '{name}' (2 files) with key" in result.output
    assert f"{name}.gxo-sig" in result.output
    pub = str(out / "signing.pub")
    result = cli("admin", "verify-module", str(pkg), "--trusted-key", pub)
    assert result.exit_code == 0 and "a trusted key" in result.output
    result = cli("admin", "verify-module", str(pkg))  # no key anywhere: integrity only
    assert result.exit_code == 0 and "no trusted key given" in result.output
    config = tmp_path / "config.yaml"
    config.write_text(f"module_verification: {{trusted_keys: [{keys['a.pub']}]}}\n")
    result = cli("admin", "verify-module", str(pkg), "--config", str(config))
    assert result.exit_code == 1 and "invalid: signed by key" in result.output
    (pkg / "helper.py").write_text("greeting = 'hi'\n")
    result = cli("admin", "verify-module", str(pkg), "--trusted-key", pub)
    assert result.exit_code == 1
    assert "invalid: file changed after signing: helper.py" in result.output

    for args, message in [
        (("sign-module", str(tmp_path / "none"), "--key", pub), "no such module package"),
        (("verify-module", str(tmp_path / "none")), "no such module package"),
        (("sign-module", str(pkg), "--key", pub), "readable by others (mode 0644)"),
        (("verify-module", str(pkg), "--trusted-key", "ed25519:AAAA"), "expected 32 bytes"),
    ]:
        result = cli("admin", *args)
        assert result.exit_code == 2 and message in result.output, result.output


def test_run_flags_are_checked_first(tmp_path: Path, fresh) -> None:
    book = tmp_path / "p.gxo.yaml"
    book.write_text('schemaVersion: "1.0.0"\nname: p\nworkloads: []\n')
    result = cli("run", str(book), "--module-verification", "sometimes")
    assert result.exit_code == 2 and "expected enforce, warn or off" in result.output
    result = cli("run", str(book), "--config", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2 and "--config" in result.output and "no such file" in result.output
    result = cli("run", str(book), "--trusted-key", str(tmp_path / "none.pub"))
    assert result.exit_code == 2 and "none.pub: cannot read it" in result.output
    result = cli("modules", "--modules-dir", str(tmp_path / "none"))
    assert result.exit_code == 2 and "not a directory" in result.output


@pytest.mark.parametrize("change", ["add", "remove", "untrusted"])
def test_run_refuses_a_changed_or_untrusted_module(
    tmp_path: Path, keys: dict[str, Path], fresh, change: str
) -> None:
    name = fresh()
    pkg, marker = signed(tmp_path, name, keys["b" if change == "untrusted" else "a"])
    if change == "add":
        (pkg / "backdoor.py").write_text("import os\n")
    elif change == "remove":
        (pkg / "helper.py").unlink()
    book = tmp_path / "p.gxo.yaml"
    book.write_text(PLAYBOOK.format(name=name))
    args = ("--modules-dir", str(tmp_path / "mods"), "--trusted-key", str(keys["a.pub"]))
    result = cli("run", str(book), *args)
    assert result.exit_code == 2, result.output
    expected = {
        "add": "file added after signing: backdoor.py",
        "remove": "file removed after signing: helper.py",
        "untrusted": "which is not trusted",
    }[change]
    assert f"third-party module package '{name}'" in result.output and expected in result.output
    assert not marker.exists()


def test_run_without_flags_finds_entry_points_lazily(
    tmp_path: Path, fresh, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = fresh()
    site = tmp_path / "site"
    write_package(site, name, tmp_path / "m")
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[gxo.modules]\ngreet = {name}\n")
    monkeypatch.syspath_prepend(str(site))
    builtins_only = tmp_path / "b.gxo.yaml"
    builtins_only.write_text(PLAYBOOK.format(name=name).replace(f"{name}:greet", "exec"))
    result = cli("validate", str(builtins_only))  # exec's params are wrong: a built-in, though
    assert "params" in result.output and not (tmp_path / "m").exists()  # nothing third-party
    book = tmp_path / "p.gxo.yaml"
    book.write_text(PLAYBOOK.format(name=name))
    result = cli("run", str(book), "-v")  # no trusted key anywhere: warn
    assert result.exit_code == 0, result.output
    assert (
        "unsigned" in result.output
        and "loaded anyway: module verification is warn" in result.output
    )
    assert '"greeting": "hello gxo"' in result.output
