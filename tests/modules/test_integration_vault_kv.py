"""vault:read / vault:write against a local server speaking Vault's KV API (tests/support/vault_kv.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.vault_kv import APPROLE_TOKEN, ROLE_ID, ROOT_TOKEN, SECRET_ID, VaultKV, serve_vault

from gxo.modules.testkit import run_module

REDACTED = "[REDACTED]"


@pytest.fixture(scope="module")
def vault_server() -> Iterator[VaultKV]:
    with serve_vault() as server:
        yield server


def conn(server: VaultKV, **extra: Any) -> dict[str, Any]:
    return {"url": server.url, "token": ROOT_TOKEN, **extra}


async def test_kv2_write_read_versions(vault_server: VaultKV) -> None:
    data = {"user": "billing", "password": "db-pa55word-1"}
    w = await run_module("vault:write", conn(vault_server, path="apps/db", data=data))
    assert w.ok, w.error
    assert w.summary["changed"] is True and w.summary["version"] == 1
    assert "created_time" in w.summary
    same = await run_module("vault:write", conn(vault_server, path="apps/db", data=data))
    assert same.summary == {"changed": False, "version": 1}
    assert len(vault_server.kv2["apps/db"]) == 1  # no new version
    w2 = await run_module(
        "vault:write",
        conn(vault_server, path="apps/db", data={**data, "password": "db-pa55word-2"}),
    )
    assert w2.summary["version"] == 2
    assert "db-pa55word-2" not in repr(w2.summary) + repr(w2.events)

    r = await run_module("vault:read", conn(vault_server, path="apps/db", key="password"))
    assert r.ok, r.error
    assert r.summary["found"] is True
    assert r.summary["data"] == {"user": REDACTED, "password": REDACTED}
    assert r.summary["value"] == REDACTED
    assert r.summary["version"] == 2 and r.summary["metadata"]["version"] == 2
    old = await run_module(
        "vault:read", conn(vault_server, path="apps/db", version=1, redact=False)
    )
    assert old.summary["data"] == data
    assert old.summary["version"] == 1


async def test_read_to_dest_and_missing(vault_server: VaultKV, tmp_path: Path) -> None:
    await run_module(
        "vault:write", conn(vault_server, path="apps/api", data={"key": "api-k3y-value", "n": 3})
    )
    r = await run_module(
        "vault:read",
        conn(vault_server, path="apps/api", key="key", dest="run/key"),
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert (tmp_path / "run" / "key").read_text() == "api-k3y-value"
    assert (tmp_path / "run" / "key").stat().st_mode & 0o777 == 0o600
    r = await run_module(
        "vault:read", conn(vault_server, path="apps/api", dest="all.json"), workspace=tmp_path
    )
    assert json.loads((tmp_path / "all.json").read_text()) == {"key": "api-k3y-value", "n": 3}
    missing = await run_module("vault:read", conn(vault_server, path="apps/none"))
    assert missing.status == "Failed"
    assert "no secret at secret/apps/none (kv v2)" in str(missing.error)
    ok = await run_module("vault:read", conn(vault_server, path="apps/none", missing_ok=True))
    assert ok.summary == {"found": False}
    nokey = await run_module("vault:read", conn(vault_server, path="apps/api", key="nope"))
    assert "has no key 'nope' (keys: key, n)" in str(nokey.error)


async def test_kv1_and_approle(vault_server: VaultKV) -> None:
    params = {
        "url": vault_server.url,
        "role_id": ROLE_ID,
        "secret_id": SECRET_ID,
        "mount": "kv1",
        "kv_version": 1,
        "path": "team/cfg",
    }
    w = await run_module("vault:write", {**params, "data": {"region": "eu"}})
    assert w.ok, w.error
    assert w.summary == {"changed": True}
    assert vault_server.kv1["team/cfg"] == {"region": "eu"}
    assert ("POST", "/v1/kv1/team/cfg", APPROLE_TOKEN) in vault_server.requests
    again = await run_module("vault:write", {**params, "data": {"region": "eu"}})
    assert again.summary == {"changed": False}
    r = await run_module("vault:read", {**params, "redact": False})
    assert r.summary == {"found": True, "data": {"region": "eu"}}
    cas = await run_module("vault:write", {**params, "data": {}, "cas": 1})
    assert "cas applies to kv_version 2 only" in str(cas.error)


async def test_cas_namespace_and_errors(
    vault_server: VaultKV, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await run_module(
        "vault:write", conn(vault_server, path="cas/x", data={"a": "1"}, cas=0)
    )
    assert first.ok, first.error
    clash = await run_module(
        "vault:write", conn(vault_server, path="cas/x", data={"a": "2"}, cas=0)
    )
    assert clash.status == "Failed"
    assert "check-and-set parameter did not match" in str(clash.error)
    denied = await run_module(
        "vault:read", {**conn(vault_server, path="cas/x"), "token": "wrong-token-xyz"}
    )
    assert "403 permission denied" in str(denied.error)
    assert "wrong-token-xyz" not in str(denied.error)
    bad_login = await run_module(
        "vault:read",
        {"url": vault_server.url, "role_id": ROLE_ID, "secret_id": "nope-nope", "path": "x"},
    )
    assert "Vault login failed" in str(bad_login.error) and "invalid role or secret ID" in str(
        bad_login.error
    )
    half = await run_module(
        "vault:read", {"url": vault_server.url, "role_id": ROLE_ID, "path": "x"}
    )
    assert "needs both role_id and secret_id" in str(half.error)
    both = await run_module(
        "vault:read", {**conn(vault_server, path="x"), "role_id": "a", "secret_id": "b"}
    )
    assert "either token or role_id" in str(both.error)
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    noaddr = await run_module("vault:read", {"path": "x", "token": "t"})
    assert "no Vault address" in str(noaddr.error)
    monkeypatch.setenv("VAULT_ADDR", vault_server.url)
    notoken = await run_module("vault:read", {"path": "x"})
    assert "no Vault credentials" in str(notoken.error)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    from_env = await run_module("vault:read", {"path": "cas/x", "redact": False})
    assert from_env.summary["data"] == {"a": "1"}
    down = await run_module(
        "vault:read", {"url": "http://127.0.0.1:9", "token": "tok-1234", "path": "x"}
    )
    assert "cannot reach Vault" in str(down.error)
    with serve_vault(namespace="team-a") as ns:
        r = await run_module(
            "vault:write", {**conn(ns, path="p", data={"k": "v"}), "namespace": "team-a"}
        )
        assert r.ok, r.error
        r = await run_module("vault:read", conn(ns, path="p"))
        assert "namespace" in str(r.error)
