"""Signatures of third-party module packages (docs/module-signing.md).

A module package is a directory with ``__init__.py`` (or a single ``.py`` file). Its
signature lives next to it, never inside it: ``hello/`` is signed by ``hello.gxo-sig``,
``hello.py`` by ``hello.py.gxo-sig``. The signature file is JSON::

    {"manifest": {"format": "gxo-module-signature/1", "module": "hello",
                  "key_id": "3f2a...", "public_key": "ed25519:...",
                  "files": {"__init__.py": "<sha256 hex>", "util/x.py": "..."}},
     "signature": "<base64 Ed25519 signature of the canonical manifest JSON>"}

Every regular file of the package is listed, except ``__pycache__`` directories
(GXO never reads bytecode of a third-party package: it compiles the verified source,
see gxo/modules/thirdparty.py). Verification reads each file once and returns those
bytes, so what is imported is exactly what was checked. ``cryptography`` loads only
when a key is made, read or used.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gxo.errors import ModuleSignatureError, UsageError

__all__ = [
    "FORMAT",
    "PUBLIC_PREFIX",
    "SIGNATURE_SUFFIX",
    "TrustedKey",
    "Verified",
    "generate_keys",
    "key_id",
    "load_private_key",
    "package_files",
    "parse_public_key",
    "read_trusted_key",
    "sign_package",
    "signature_path",
    "verify_package",
]

FORMAT = "gxo-module-signature/1"
SIGNATURE_SUFFIX = ".gxo-sig"
PUBLIC_PREFIX = "ed25519:"
PRIVATE_NAME = "signing.key"
PUBLIC_NAME = "signing.pub"
_SKIPPED_DIRS = frozenset({"__pycache__"})


@dataclass(frozen=True)
class TrustedKey:
    """An Ed25519 public key: its 32 raw bytes and id (16 hex digits of their SHA-256)."""

    raw: bytes
    source: str = ""

    @property
    def key_id(self) -> str:
        return key_id(self.raw)

    @property
    def text(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode("ascii")


@dataclass(frozen=True)
class Verified:
    """A verified package: the bytes of each file as checked, and who signed it.
    ``key_id`` is None when nothing was checked (mode ``off``)."""

    files: dict[str, bytes]
    key_id: str | None
    trusted: bool


def key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def signature_path(package: Path) -> Path:
    """``hello/`` → ``hello.gxo-sig``; ``hello.py`` → ``hello.py.gxo-sig`` (next to it)."""
    package = Path(package)
    return package.parent / (package.name + SIGNATURE_SUFFIX)


def module_name(package: Path) -> str:
    """The import name of a package directory or single-file module."""
    return package.stem if package.is_file() else package.name


# -- keys --------------------------------------------------------------------------------


def parse_public_key(text: str, source: str = "") -> TrustedKey:
    """``ed25519:<base64 of 32 bytes>`` (what ``signing.pub`` holds) or a PEM public key."""
    text = text.strip()
    where = f"{source}: " if source else ""
    if text.startswith(PUBLIC_PREFIX):
        token = text[len(PUBLIC_PREFIX) :].split()[0] if text[len(PUBLIC_PREFIX) :] else ""
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{where}not a valid ed25519 public key (bad base64)") from None
        if len(raw) != 32:
            raise UsageError(f"{where}not a valid ed25519 public key (expected 32 bytes)")
        return TrustedKey(raw, source)
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except ValueError:
            raise UsageError(f"{where}not a valid PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise UsageError(f"{where}not an Ed25519 public key")
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return TrustedKey(raw, source)
    raise UsageError(
        f"{where}not a public key (expected 'ed25519:<base64>' as in signing.pub, or PEM)"
    )


def read_trusted_key(spec: str, base_dir: Path | None = None) -> TrustedKey:
    """A trusted key given inline (``ed25519:...``) or as a file (relative to ``base_dir``)."""
    if spec.strip().startswith((PUBLIC_PREFIX, "-----BEGIN")):
        return parse_public_key(spec, "inline trusted key")
    path = Path(spec).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        raise UsageError(f"trusted key {path}: cannot read it ({reason})") from None
    return parse_public_key(text, f"trusted key {path}")


def generate_keys(out: Path) -> tuple[Path, Path, str]:
    """Write ``out/signing.key`` (PKCS#8 PEM, 0600) and ``out/signing.pub``; never overwrite."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out).expanduser()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the directory ({exc.strerror})") from None
    private, public = out / PRIVATE_NAME, out / PUBLIC_NAME
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise UsageError(f"{path} already exists; remove it first to make a new key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = TrustedKey(raw)
    _write_new(private, pem, 0o600)
    _write_new(public, f"{pub.text} gxo-module-signing {pub.key_id}\n".encode("ascii"), 0o644)
    return private, public, pub.key_id


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def load_private_key(path: Path) -> Any:
    """The Ed25519 private key in ``path``, which only its owner may read (0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"--key {path}: cannot read it ({exc.strerror})") from None
    if mode & 0o077:
        raise UsageError(
            f"--key {path}: readable by others (mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise UsageError(f"--key {path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"--key {path}: not an Ed25519 key (make one: gxo admin keys generate)")
    return key


# -- manifests -----------------------------------------------------------------------------


def package_files(package: Path) -> dict[str, bytes]:
    """Every file of a package (relative POSIX path → bytes), ``__pycache__`` left out.

    Raises ValueError for what cannot be verified: a symlink, a device, a FIFO.
    """
    package = Path(package)
    if package.is_symlink():
        raise ValueError(f"{package} is a symlink")
    if package.is_file():
        return {package.name: package.read_bytes()}
    if not (package / "__init__.py").is_file():
        raise ValueError(f"{package} is not a module package (no __init__.py)")
    files: dict[str, bytes] = {}
    for root, dirs, names in os.walk(package, followlinks=False):
        base = Path(root)
        for name in list(dirs):
            if name in _SKIPPED_DIRS:
                dirs.remove(name)
            elif (base / name).is_symlink():
                raise ValueError(f"{(base / name).relative_to(package)} is a symlink")
        for name in names:
            path = base / name
            info = path.lstat()
            rel = path.relative_to(package).as_posix()
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{rel} is not a regular file (symlinks are not allowed)")
            files[rel] = path.read_bytes()
    return dict(sorted(files.items()))


def _canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_package(package: Path, private_key: Any) -> tuple[Path, dict[str, Any]]:
    """Write the package's signature file; returns (its path, the manifest)."""
    from cryptography.hazmat.primitives import serialization

    package = Path(package)
    try:
        files = package_files(package)
    except ValueError as exc:
        raise UsageError(f"cannot sign {package}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot sign {package}: {exc.strerror}") from None
    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public = TrustedKey(raw)
    manifest = {
        "format": FORMAT,
        "module": module_name(package),
        "key_id": public.key_id,
        "public_key": public.text,
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()},
    }
    signature = private_key.sign(_canonical(manifest))
    document = {"manifest": manifest, "signature": base64.b64encode(signature).decode("ascii")}
    target = signature_path(package)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    return target, manifest


def _read_signature(package: Path, name: str) -> tuple[dict[str, Any], bytes]:
    sig = signature_path(package)
    try:
        text = sig.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModuleSignatureError(
            name, f"unsigned (no signature file {sig.name})", path=str(package)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModuleSignatureError(
            name, f"cannot read {sig.name}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        document = json.loads(text)
        manifest = document["manifest"]
        signature = base64.b64decode(document["signature"], validate=True)
        ok = (
            isinstance(manifest, dict)
            and manifest.get("format") == FORMAT
            and isinstance(manifest.get("files"), dict)
            and all(isinstance(v, str) for v in manifest["files"].values())
            and isinstance(manifest.get("key_id"), str)
            and isinstance(manifest.get("public_key"), str)
            and isinstance(manifest.get("module"), str)
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise ModuleSignatureError(
            name, f"{sig.name} is not a valid {FORMAT} signature file", path=str(package)
        )
    return manifest, signature


def verify_package(
    package: Path, trusted: list[TrustedKey] | None, *, name: str | None = None
) -> Verified:
    """Check ``package`` against its signature file; the verified bytes of each file.

    ``trusted``: the keys a signature must come from; None checks the signature with
    the key the file names (integrity only: ``gxo admin verify-module`` without keys).
    Raises :class:`ModuleSignatureError` naming the reason: unsigned, a bad signature,
    an untrusted key, a file changed, added or removed after signing.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    package = Path(package)
    name = name or module_name(package)
    where = str(package)
    manifest, signature = _read_signature(package, name)
    try:
        embedded = parse_public_key(manifest["public_key"])
    except UsageError:
        raise ModuleSignatureError(name, "the signature names no valid key", path=where) from None
    if embedded.key_id != manifest["key_id"]:
        raise ModuleSignatureError(
            name, "the signature's key id does not match its key", path=where
        )
    if trusted is None:
        key = embedded
    else:
        match = [k for k in trusted if k.raw == embedded.raw]
        if not match:
            known = ", ".join(sorted({k.key_id for k in trusted})) or "none configured"
            raise ModuleSignatureError(
                name,
                f"signed by key {embedded.key_id}, which is not trusted (trusted keys: {known})",
                path=where,
            )
        key = match[0]
    try:
        Ed25519PublicKey.from_public_bytes(key.raw).verify(signature, _canonical(manifest))
    except InvalidSignature:
        raise ModuleSignatureError(
            name, f"the signature does not match its manifest (key {key.key_id})", path=where
        ) from None
    if manifest["module"] != name:
        raise ModuleSignatureError(
            name, f"the signature is for module package '{manifest['module']}'", path=where
        )
    try:
        files = package_files(package)
    except ValueError as exc:
        raise ModuleSignatureError(name, f"cannot be verified: {exc}", path=where) from None
    except OSError as exc:
        raise ModuleSignatureError(name, f"cannot be read: {exc.strerror}", path=where) from None
    expected: dict[str, str] = manifest["files"]
    added = sorted(set(files) - set(expected))
    removed = sorted(set(expected) - set(files))
    changed = sorted(
        rel
        for rel in set(files) & set(expected)
        if hashlib.sha256(files[rel]).hexdigest() != expected[rel]
    )
    problems = []
    if changed:
        problems.append("file changed after signing: " + ", ".join(changed))
    if added:
        problems.append("file added after signing: " + ", ".join(added))
    if removed:
        problems.append("file removed after signing: " + ", ".join(removed))
    if problems:
        raise ModuleSignatureError(name, "; ".join(problems), path=where)
    return Verified(files, key.key_id, trusted is not None)
