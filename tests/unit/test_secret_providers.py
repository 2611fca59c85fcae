"""secret() providers: file://, vault:// (against the test Vault KV server), aws-sm://
(against moto's server), caching per run, redaction, and errors."""
# ruff: noqa: F811  (the moto_server fixture is imported, then requested by name)

from __future__ import annotations

import asyncio
import json
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.moto_s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_server  # noqa: F401
from support.vault_kv import ROOT_TOKEN, VaultKV, serve_vault

from gxo.errors import SecretError
from gxo.modules.testkit import run_playbook_text
from gxo.template.secret_providers import RunProviders, _run_async, resolve, timeout
from gxo.template.secrets import REDACTED, SecretRegistry


def test_file_provider(tmp_path: Path) -> None:
    plain = tmp_path / "db"
    plain.write_text("pa55-word-1\n")
    assert resolve(f"file://{plain}") == "pa55-word-1"
    crlf = tmp_path / "crlf"
    crlf.write_text("windows-pw\r\n", newline="")
    assert resolve(f"file://{crlf}") == "windows-pw"
    doc = tmp_path / "app.json"
    doc.write_text(json.dumps({"password": "json-pw-99", "port": 5432, "user": "app"}))
    assert resolve(f"file://{doc}#password") == "json-pw-99"
    assert resolve(f"file://{doc}#port") == "5432"
    with pytest.raises(SecretError, match="has no key 'nope' \\(keys: password, port, user\\)"):
        resolve(f"file://{doc}#nope")
    with pytest.raises(SecretError, match="is not JSON"):
        resolve(f"file://{plain}#k")
    with pytest.raises(SecretError, match="does not exist"):
        resolve(f"file://{tmp_path}/missing")
    with pytest.raises(SecretError, match="is a directory"):
        resolve(f"file://{tmp_path}")
    with pytest.raises(SecretError, match="ABSOLUTE"):
        resolve("file://relative/path")
    with pytest.raises(SecretError, match="no \\?parameters"):
        resolve(f"file://{plain}?x=1")
    with pytest.raises(SecretError, match="unknown provider 'gopher'"):
        resolve("gopher://x")
    array = tmp_path / "array.json"
    array.write_text("[1, 2]")
    with pytest.raises(SecretError, match="not a JSON object"):
        resolve(f"file://{array}#k")


def test_registry_caches_per_run_and_redacts(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "token"
    path.write_text("first-secret-value")
    monkeypatch.setenv("GXO_TEST_PLAIN", "env-value-1")
    registry = SecretRegistry()
    assert registry.lookup("GXO_TEST_PLAIN") == "env-value-1"  # NAME: the environment
    assert registry.lookup(f"file://{path}") == "first-secret-value"
    path.write_text("second-secret-value")
    assert registry.lookup(f"file://{path}") == "first-secret-value"  # cached for the run
    assert registry.redact("x first-secret-value y") == f"x {REDACTED} y"
    assert SecretRegistry().lookup(f"file://{path}") == "second-secret-value"  # a new run
    # a failure is cached too, and raised each time
    missing = f"file://{tmp_path}/missing"
    with pytest.raises(SecretError, match="does not exist"):
        registry.lookup(missing)
    path_missing = tmp_path / "missing"
    path_missing.write_text("late")
    with pytest.raises(SecretError, match="does not exist"):
        registry.lookup(missing)
    assert registry.preload(missing) is False


def test_one_fetch_when_threads_ask_at_once(tmp_path: Path) -> None:
    calls: list[str] = []
    gate = threading.Event()

    def env(name: str) -> str | None:
        return None

    providers = RunProviders(env)
    path = tmp_path / "s"
    path.write_text("shared-secret")
    import gxo.template.secret_providers as sp

    real = sp._RESOLVERS["file"]

    def slow(*args: Any) -> str:
        calls.append(args[0])
        gate.wait(2)
        return real(*args)

    sp._RESOLVERS["file"] = slow
    try:
        results: list[Any] = []
        threads = [
            threading.Thread(target=lambda: results.append(providers(f"file://{path}")))
            for _ in range(4)
        ]
        for t in threads:
            t.start()
        gate.set()
        for t in threads:
            t.join(5)
    finally:
        sp._RESOLVERS["file"] = real
    assert results == ["shared-secret"] * 4
    assert len(calls) == 1
    assert providers("PLAIN_NAME") is None


def test_run_async_timeout_and_errors(monkeypatch: Any) -> None:
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(SecretError, match="timed out"):
        _run_async(slow, 0.2)

    async def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        _run_async(broken, 1)
    monkeypatch.setenv("GXO_SECRET_TIMEOUT", "2.5")
    assert timeout() == 2.5
    monkeypatch.setenv("GXO_SECRET_TIMEOUT", "nonsense")
    assert timeout() == 10.0


async def test_playbook_uses_file_secret_redacted(tmp_path: Path) -> None:
    path = tmp_path / "api_token"
    path.write_text("tok-abcdef-123456\n")
    text = f"""
    schemaVersion: "1.0.0"
    name: s
    workloads:
      - name: show
        process:
          module: exec
          params: {{ command: echo, args: ["{{{{ secret('file://{path}') }}}}"] }}
      - name: missing
        ignore_errors: true
        process:
          module: exec
          params: {{ command: echo, args: ["{{{{ secret('file://{tmp_path}/nope') }}}}"] }}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip())
    show = result.states["show"]
    assert show.status.value == "Completed", show.error
    assert show.summary["stdout"].strip() == REDACTED
    missing = result.states["missing"]
    assert missing.status.value == "Failed"
    assert "does not exist" in missing.error


# -- vault:// ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vault() -> Iterator[VaultKV]:
    with serve_vault() as server:
        yield server


def vault_write(vault: VaultKV, path: str, data: dict[str, Any], *, kv1: bool = False) -> None:
    import httpx

    url = f"{vault.url}/v1/kv1/{path}" if kv1 else f"{vault.url}/v1/secret/data/{path}"
    body = data if kv1 else {"data": data}
    answer = httpx.post(url, json=body, headers={"X-Vault-Token": ROOT_TOKEN})
    assert answer.status_code < 300, answer.text


def test_vault_provider(vault: VaultKV, monkeypatch: Any) -> None:
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", ROOT_TOKEN)
    app = f"app-{uuid.uuid4().hex[:8]}"
    vault_write(vault, f"{app}/db", {"password": "vault-pw-1", "user": "app"})
    vault_write(vault, f"{app}/db", {"password": "vault-pw-2", "user": "app"})
    vault_write(vault, f"{app}/one", {"token": "only-value-1"})
    vault_write(vault, f"{app}/old", {"k": "kv1-value"}, kv1=True)
    assert resolve(f"vault://secret/{app}/db#password") == "vault-pw-2"
    assert resolve(f"vault://secret/{app}/db?version=1#password") == "vault-pw-1"
    assert resolve(f"vault://secret/{app}/one") == "only-value-1"
    assert resolve(f"vault://kv1/{app}/old?kv_version=1#k") == "kv1-value"
    with pytest.raises(SecretError, match="several keys \\(password, user\\): add #KEY"):
        resolve(f"vault://secret/{app}/db")
    with pytest.raises(SecretError, match="no secret at secret/"):
        resolve(f"vault://secret/{app}/none#k")
    with pytest.raises(SecretError, match="MOUNT/PATH"):
        resolve("vault://secret")
    with pytest.raises(SecretError, match="kv_version must be 1 or 2"):
        resolve(f"vault://secret/{app}/db?kv_version=3")
    with pytest.raises(SecretError, match="unknown parameter"):
        resolve(f"vault://secret/{app}/db?mount=x")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.wrong-token")
    with pytest.raises(SecretError) as info:
        resolve(f"vault://secret/{app}/db#password")
    assert "403" in str(info.value) and "hvs.wrong-token" not in str(info.value)
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(SecretError, match="no Vault address"):
        resolve(f"vault://secret/{app}/db#password")


# -- aws-sm:// -----------------------------------------------------------------------------


def test_aws_secrets_manager_provider(moto_server: str, monkeypatch: Any) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_server)
    client = boto3.client(
        "secretsmanager",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    name = f"prod/db-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=name, SecretString=json.dumps({"password": "aws-pw-77", "n": 1}))
    plain = f"plain-{uuid.uuid4().hex[:8]}"
    client.create_secret(Name=plain, SecretString="just-text-secret")
    client.close()
    assert resolve(f"aws-sm://{name}#password") == "aws-pw-77"
    assert resolve(f"aws-sm://{plain}") == "just-text-secret"
    assert resolve(f"aws-sm://{plain}?region={REGION}") == "just-text-secret"
    with pytest.raises(SecretError, match="ResourceNotFoundException"):
        resolve("aws-sm://does-not-exist")
    with pytest.raises(SecretError, match="unknown parameter"):
        resolve(f"aws-sm://{plain}?regoin=x")
    with pytest.raises(SecretError, match="SECRET_NAME"):
        resolve("aws-sm://")
