"""vault:encrypt / vault:decrypt round trips against ansible-core's own vault library."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

vault_lib = pytest.importorskip("ansible.parsing.vault", reason="ansible-core (dev dependency)")

PASSWORD = "correct-horse-battery"
REDACTED = "[REDACTED]"


def ansible(password: str = PASSWORD) -> object:
    return vault_lib.VaultLib([("default", vault_lib.VaultSecret(password.encode()))])


@pytest.mark.parametrize("vault_id", [None, "prod"])
async def test_gxo_encrypts_ansible_decrypts(vault_id: str | None) -> None:
    plaintext = "db_password: s3cr3t-value\nlist:\n  - é\n"
    params = {"content": plaintext, "password": PASSWORD}
    if vault_id:
        params["vault_id"] = vault_id
    r = await run_module("vault:encrypt", params)
    assert r.ok, r.error
    text = r.summary["ciphertext"]
    header = text.splitlines()[0]
    assert header == ("$ANSIBLE_VAULT;1.2;AES256;prod" if vault_id else "$ANSIBLE_VAULT;1.1;AES256")
    assert r.summary["format"] == ("1.2" if vault_id else "1.1")
    assert all(len(line) <= 80 for line in text.splitlines()[1:])
    assert ansible().decrypt(text) == plaintext.encode()
    assert "s3cr3t-value" not in repr(r.summary)


@pytest.mark.parametrize("vault_id", [None, "dev"])
async def test_ansible_encrypts_gxo_decrypts(vault_id: str | None, tmp_path: Path) -> None:
    lib = ansible()
    secret = vault_lib.VaultSecret(PASSWORD.encode())
    text = lib.encrypt(b"api_token: tok-123456\n", secret=secret, vault_id=vault_id).decode()
    (tmp_path / "vars.yml").write_text(text)
    r = await run_module(
        "vault:decrypt", {"src": "vars.yml", "password": PASSWORD}, workspace=tmp_path
    )
    assert r.ok, r.error
    assert r.summary == {
        "format": "1.2" if vault_id else "1.1",
        "vault_id": vault_id,
        "size": 22,
        "plaintext": REDACTED,
    }
    # the true value, as test:assert sees it (the unredacted view of the run)
    out = await run_module(
        "vault:decrypt",
        {"src": "vars.yml", "password": PASSWORD, "dest": "out/vars.yml"},
        workspace=tmp_path,
    )
    assert out.ok, out.error
    assert (tmp_path / "out" / "vars.yml").read_text() == "api_token: tok-123456\n"
    assert (tmp_path / "out" / "vars.yml").stat().st_mode & 0o777 == 0o600
    assert out.summary["changed"] is True
    again = await run_module(
        "vault:decrypt",
        {"src": "vars.yml", "password": PASSWORD, "dest": "out/vars.yml"},
        workspace=tmp_path,
    )
    assert again.summary["changed"] is False
    # an inline `!vault |` value: indented lines
    indented = "\n".join("          " + line for line in text.splitlines())
    inline = await run_module("vault:decrypt", {"content": indented, "password": PASSWORD})
    assert inline.ok, inline.error


async def test_file_round_trip_and_idempotence(tmp_path: Path) -> None:
    (tmp_path / "plain.yml").write_text("a: 1\n")
    params = {"src": "plain.yml", "dest": "secret.yml", "password": PASSWORD, "vault_id": "ci"}
    r = await run_module("vault:encrypt", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary == {
        "format": "1.2",
        "vault_id": "ci",
        "path": str(tmp_path / "secret.yml"),
        "changed": True,
    }
    written = (tmp_path / "secret.yml").read_text()
    assert (tmp_path / "secret.yml").stat().st_mode & 0o777 == 0o600
    assert ansible().decrypt(written) == b"a: 1\n"
    again = await run_module("vault:encrypt", params, workspace=tmp_path)
    assert again.summary["changed"] is False
    assert (tmp_path / "secret.yml").read_text() == written
    (tmp_path / "plain.yml").write_text("a: 2\n")
    changed = await run_module("vault:encrypt", {**params, "mode": "0640"}, workspace=tmp_path)
    assert changed.summary["changed"] is True
    assert (tmp_path / "secret.yml").stat().st_mode & 0o777 == 0o640
    back = await run_module(
        "vault:decrypt", {"src": "secret.yml", "password": PASSWORD}, workspace=tmp_path
    )
    assert back.summary["vault_id"] == "ci" and back.summary["size"] == 5


async def test_errors(tmp_path: Path) -> None:
    text = (await run_module("vault:encrypt", {"content": "x", "password": PASSWORD})).summary[
        "ciphertext"
    ]
    wrong = await run_module("vault:decrypt", {"content": text, "password": "wrong-password"})
    assert wrong.status == "Failed"
    assert "decryption failed: wrong password" in str(wrong.error)
    assert "wrong-password" not in str(wrong.error)
    lines = text.splitlines()
    body = list(lines[1])
    body[10] = "0" if body[10] != "0" else "1"
    tampered = "\n".join([lines[0], "".join(body), *lines[2:]])
    r = await run_module("vault:decrypt", {"content": tampered, "password": PASSWORD})
    assert r.status == "Failed"
    for content, message in [
        ("plain text", "no $ANSIBLE_VAULT header"),
        ("$ANSIBLE_VAULT;1.0;AES", "unsupported vault format version 1.0"),
        ("$ANSIBLE_VAULT;1.1;DES", "unsupported vault cipher DES"),
        ("$ANSIBLE_VAULT;1.1;AES256\nzz", "malformed vault data"),
    ]:
        r = await run_module("vault:decrypt", {"content": content, "password": PASSWORD})
        assert message in str(r.error), (content, r.error)
    r = await run_module("vault:encrypt", {"content": "x", "password": PASSWORD, "vault_id": "a;b"})
    assert "invalid vault_id" in str(r.error)
    r = await run_module("vault:encrypt", {"password": PASSWORD})
    assert "exactly one of content or src" in str(r.error)
    r = await run_module(
        "vault:decrypt", {"src": "missing.yml", "password": PASSWORD}, workspace=tmp_path
    )
    assert "does not exist" in str(r.error)
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    r = await run_module("vault:decrypt", {"src": "bin", "password": PASSWORD}, workspace=tmp_path)
    assert "not ansible-vault data" in str(r.error)
    binary = ansible().encrypt(b"\xff\x00binary").decode()
    r = await run_module("vault:decrypt", {"content": binary, "password": PASSWORD})
    assert "not utf-8 text" in str(r.error)
    (tmp_path / "f").write_text("file")
    r = await run_module(
        "vault:encrypt", {"content": "x", "password": PASSWORD, "dest": "f/x"}, workspace=tmp_path
    )
    assert "cannot write dest" in str(r.error)
