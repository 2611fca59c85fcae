"""crypto:generate_key / encrypt / decrypt / hash / hmac on the cryptography library."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gxo.modules.testkit import run_module

REDACTED = "[REDACTED]"
AES_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("params", "cls", "bits"),
    [
        ({"type": "ed25519"}, ed25519.Ed25519PrivateKey, None),
        ({"type": "ec", "curve": "secp384r1"}, ec.EllipticCurvePrivateKey, 384),
        ({"type": "rsa", "bits": 2048}, rsa.RSAPrivateKey, 2048),
    ],
)
async def test_generate_key_pairs_written_and_redacted(
    tmp_path: Path, params: dict, cls: type, bits: int | None
) -> None:
    r = await run_module("crypto:generate_key", {**params, "dest": "keys/id"}, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["private_key"] == REDACTED
    assert r.summary["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert r.summary["fingerprint"].startswith("SHA256:")
    assert r.summary.get("bits") == bits
    key_file = tmp_path / "keys" / "id"
    assert (key_file.stat().st_mode & 0o777) == 0o600
    private = serialization.load_pem_private_key(key_file.read_bytes(), None)
    assert isinstance(private, cls)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert r.summary["public_key"] == public_pem.decode()
    assert (tmp_path / "keys" / "id.pub").read_text() == public_pem.decode()
    # nothing of the private key in logs or events
    body = key_file.read_text().splitlines()[1]
    assert not any(body in str(e) for e in r.events)
    again = await run_module(
        "crypto:generate_key", {**params, "dest": "keys/id"}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
    assert again.summary["public_key"] == r.summary["public_key"]
    forced = await run_module(
        "crypto:generate_key", {**params, "dest": "keys/id", "force": True}, workspace=tmp_path
    )
    assert forced.summary["changed"] is True
    assert forced.summary["public_key"] != r.summary["public_key"]


async def test_generate_openssh_and_passphrase(tmp_path: Path) -> None:
    r = await run_module(
        "crypto:generate_key",
        {"type": "ed25519", "format": "openssh", "comment": "ci@gxo", "dest": "k"},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["public_key"].startswith("ssh-ed25519 ")
    assert r.summary["public_key"].endswith(" ci@gxo")
    data = (tmp_path / "k").read_bytes()
    assert b"OPENSSH PRIVATE KEY" in data
    assert isinstance(serialization.load_ssh_private_key(data, None), ed25519.Ed25519PrivateKey)
    again = await run_module(
        "crypto:generate_key",
        {"type": "ed25519", "format": "openssh", "dest": "k"},
        workspace=tmp_path,
    )
    assert again.summary["changed"] is False
    assert again.summary["public_key"].split()[1] == r.summary["public_key"].split()[1]
    wrong_type = await run_module(
        "crypto:generate_key", {"type": "rsa", "dest": "k"}, workspace=tmp_path
    )
    assert "holds a ed25519 key, not rsa" in str(wrong_type.error)
    # a passphrase-protected PEM key, kept and read back with it
    params = {"type": "ec", "passphrase": "hunter2-pass", "dest": "p"}
    r = await run_module("crypto:generate_key", params, workspace=tmp_path)
    assert r.ok, r.error
    key = serialization.load_pem_private_key((tmp_path / "p").read_bytes(), b"hunter2-pass")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert (await run_module("crypto:generate_key", params, workspace=tmp_path)).summary[
        "changed"
    ] is False
    wrong_pass = await run_module(
        "crypto:generate_key", {**params, "passphrase": "nope-nope"}, workspace=tmp_path
    )
    assert "no usable private key" in str(wrong_pass.error)
    assert "hunter2-pass" not in str(wrong_pass.error)
    (tmp_path / "junk").write_text("not a key")
    junk = await run_module(
        "crypto:generate_key", {"type": "ec", "dest": "junk"}, workspace=tmp_path
    )
    assert "force: true" in str(junk.error)


async def test_generate_aes_and_param_errors(tmp_path: Path) -> None:
    r = await run_module("crypto:generate_key", {"type": "aes"})
    assert r.ok, r.error
    assert r.summary == {"type": "aes", "bits": 256, "key": REDACTED, "changed": True}
    r = await run_module(
        "crypto:generate_key", {"type": "aes", "bits": 128, "dest": "k"}, workspace=tmp_path
    )
    key = (tmp_path / "k").read_text().strip()
    assert len(base64.b64decode(key)) == 16
    again = await run_module(
        "crypto:generate_key", {"type": "aes", "dest": "k"}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
    for bad, message in [
        ({"type": "rsa", "bits": 1024}, "between 2048 and 8192"),
        ({"type": "aes", "bits": 100}, "128, 192 or 256"),
        ({"type": "ed25519", "bits": 256}, "bits does not apply"),
        ({"type": "rsa", "curve": "secp256r1"}, "curve applies to type: ec"),
        ({"type": "aes", "format": "openssh"}, "not aes"),
        ({"type": "dsa"}, "type"),
    ]:
        r = await run_module("crypto:generate_key", bad)
        assert r.status == "Failed"
        assert message in str(r.error), (bad, r.error)


async def test_aes_gcm_round_trip_and_tamper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T15_DATA_KEY", AES_KEY)
    sealed = await run_module(
        "crypto:encrypt",
        {
            "content": "top secret text",
            "key": "{{ secret('T15_DATA_KEY') }}",
            "associated_data": "v1",
        },
    )
    assert sealed.ok, sealed.error
    assert sealed.summary["algorithm"] == "aes-256-gcm" and sealed.summary["size"] == 15
    blob = base64.b64decode(sealed.summary["ciphertext"])
    assert len(blob) == 12 + 15 + 16
    # interoperable: decrypt with cryptography directly
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    assert AESGCM(bytes(range(32))).decrypt(blob[:12], blob[12:], b"v1") == b"top secret text"
    params = {"ciphertext": sealed.summary["ciphertext"], "key": AES_KEY, "associated_data": "v1"}
    opened = await run_module("crypto:decrypt", params)
    assert opened.ok, opened.error
    assert opened.summary == {"size": 15, "plaintext": REDACTED}
    to_file = await run_module(
        "crypto:decrypt", {**params, "dest": "plain.txt"}, workspace=tmp_path
    )
    assert (tmp_path / "plain.txt").read_text() == "top secret text"
    assert (tmp_path / "plain.txt").stat().st_mode & 0o777 == 0o600
    assert to_file.summary["changed"] is True
    hex_key = await run_module(
        "crypto:decrypt", {**params, "key": bytes(range(32)).hex(), "binary": True}
    )
    assert hex_key.ok, hex_key.error
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    bad = await run_module(
        "crypto:decrypt", {**params, "ciphertext": base64.b64encode(bytes(tampered)).decode()}
    )
    assert "authentication failed" in str(bad.error)
    wrong_aad = await run_module("crypto:decrypt", {**params, "associated_data": "v2"})
    assert "authentication failed" in str(wrong_aad.error)
    short_key = await run_module(
        "crypto:encrypt", {"content": "x", "key": base64.b64encode(b"short").decode()}
    )
    assert "32 bytes, this one is 5" in str(short_key.error)
    assert "not valid base64" in str(
        (await run_module("crypto:decrypt", {**params, "ciphertext": "%%%"})).error
    )
    assert "too short" in str(
        (await run_module("crypto:decrypt", {**params, "ciphertext": "AAAA"})).error
    )
    assert "neither base64 nor hex" in str(
        (await run_module("crypto:encrypt", {"content": "x", "key": "not a key!"})).error
    )


async def test_file_and_binary_inputs(tmp_path: Path) -> None:
    (tmp_path / "blob").write_bytes(bytes(range(256)))
    sealed = await run_module("crypto:encrypt", {"src": "blob", "key": AES_KEY}, workspace=tmp_path)
    assert sealed.ok, sealed.error
    opened = await run_module(
        "crypto:decrypt", {"ciphertext": sealed.summary["ciphertext"], "key": AES_KEY}
    )
    assert "not utf-8 text" in str(opened.error)
    opened = await run_module(
        "crypto:decrypt",
        {"ciphertext": sealed.summary["ciphertext"], "key": AES_KEY, "dest": "out"},
        workspace=tmp_path,
    )
    assert (tmp_path / "out").read_bytes() == bytes(range(256))
    b64 = base64.b64encode(b"\x00\x01").decode()
    assert (await run_module("crypto:encrypt", {"content": b64, "binary": True, "key": AES_KEY})).ok
    bad = await run_module("crypto:encrypt", {"content": "@@", "binary": True, "key": AES_KEY})
    assert "not valid base64" in str(bad.error)
    both = await run_module(
        "crypto:encrypt", {"content": "a", "src": "blob", "key": AES_KEY}, workspace=tmp_path
    )
    assert "exactly one of content or src" in str(both.error)
    missing = await run_module("crypto:hash", {"src": "nope"}, workspace=tmp_path)
    assert "does not exist" in str(missing.error)
    (tmp_path / "d").mkdir()
    assert "is a directory" in str(
        (await run_module("crypto:hash", {"src": "d"}, workspace=tmp_path)).error
    )


async def test_rsa_oaep_round_trip() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"kpass-123"),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    sealed = await run_module(
        "crypto:encrypt", {"content": "data key", "key": public_pem, "algorithm": "rsa-oaep"}
    )
    assert sealed.ok, sealed.error
    assert len(base64.b64decode(sealed.summary["ciphertext"])) == 256
    params = {
        "ciphertext": sealed.summary["ciphertext"],
        "key": private_pem,
        "algorithm": "rsa-oaep",
    }
    opened = await run_module(
        "crypto:decrypt", {**params, "key_passphrase": "kpass-123", "dest": "k.txt"}
    )
    assert opened.ok, opened.error
    nopass = await run_module("crypto:decrypt", params)
    assert "not a usable RSA private key" in str(nopass.error)
    too_big = await run_module(
        "crypto:encrypt", {"content": "x" * 300, "key": public_pem, "algorithm": "rsa-oaep"}
    )
    assert "too much for RSA-OAEP" in str(too_big.error)
    not_rsa = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    r = await run_module(
        "crypto:encrypt", {"content": "x", "key": not_rsa, "algorithm": "rsa-oaep"}
    )
    assert "needs an RSA key" in str(r.error)
    r = await run_module(
        "crypto:encrypt", {"content": "x", "key": "garbage", "algorithm": "rsa-oaep"}
    )
    assert "not a usable RSA public key" in str(r.error)
    r = await run_module(
        "crypto:encrypt",
        {"content": "x", "key": public_pem, "algorithm": "rsa-oaep", "associated_data": "a"},
    )
    assert "aes-256-gcm only" in str(r.error)
    wrong = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    r = await run_module("crypto:decrypt", {**params, "key": wrong})
    assert "decryption failed" in str(r.error)


async def test_hash_and_hmac(tmp_path: Path) -> None:
    r = await run_module("crypto:hash", {"content": "abc"})
    assert r.summary == {
        "digest": hashlib.sha256(b"abc").hexdigest(),
        "algorithm": "sha256",
        "size": 3,
    }
    r = await run_module("crypto:hash", {"content": "abc", "algorithm": "md5", "output": "base64"})
    assert r.summary["digest"] == base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    r = await run_module("crypto:hash", {"content": {"b": 1, "a": 2}, "algorithm": "sha3_256"})
    assert r.summary["digest"] == hashlib.sha3_256(b'{"a": 2, "b": 1}').hexdigest()
    (tmp_path / "f").write_bytes(b"file-bytes")
    r = await run_module("crypto:hash", {"src": "f", "algorithm": "blake2b"}, workspace=tmp_path)
    assert r.summary["digest"] == hashlib.blake2b(b"file-bytes").hexdigest()

    mac = hmac.new(b"hook-key-123", b"payload", hashlib.sha256).hexdigest()
    r = await run_module("crypto:hmac", {"content": "payload", "key": "hook-key-123"})
    assert r.summary == {"digest": mac, "algorithm": "sha256", "size": 7}
    ok = await run_module(
        "crypto:hmac", {"content": "payload", "key": "hook-key-123", "expected": f"sha256={mac}"}
    )
    assert ok.summary["valid"] is True
    bad = await run_module(
        "crypto:hmac", {"content": "payloaX", "key": "hook-key-123", "expected": mac}
    )
    assert bad.status == "Failed" and "HMAC mismatch" in str(bad.error)
    b64 = await run_module(
        "crypto:hmac",
        {"content": "payload", "key": "hook-key-123", "output": "base64", "algorithm": "sha512"},
    )
    assert (
        b64.summary["digest"]
        == base64.b64encode(hmac.new(b"hook-key-123", b"payload", hashlib.sha512).digest()).decode()
    )
