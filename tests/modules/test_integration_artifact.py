"""artifact:upload / artifact:download against moto's S3 server (tests/support/moto_s3.py)."""
# ruff: noqa: F811  (the moto_server fixture is imported, then requested by name)

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.moto_s3 import ACCESS_KEY, SECRET_KEY, moto_server  # noqa: F401

from gxo.modules.testkit import run_module

pytestmark = pytest.mark.services


def conn(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint_url": endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **extra}


@pytest.fixture
async def bucket(moto_server: str) -> str:
    name = f"art-{uuid.uuid4().hex[:12]}"
    r = await run_module("object_storage:manage_bucket", conn(moto_server, bucket=name))
    assert r.ok, r.error
    return name


async def test_upload_download_round_trip(moto_server: str, bucket: str, tmp_path: Path) -> None:
    data = b"\x00binary artifact\xff" * 1000
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.tar.gz").write_bytes(data)
    params = conn(
        moto_server, src="dist/app.tar.gz", name="app", version=1.2, bucket=bucket, prefix="/rel/"
    )
    up = await run_module("artifact:upload", params, workspace=tmp_path)
    assert up.ok, up.error
    handle = {k: v for k, v in up.summary.items() if k != "changed"}
    assert handle == {
        "name": "app",
        "version": "1.2",
        "checksum": hashlib.sha256(data).hexdigest(),
        "location": f"s3://{bucket}/rel/app/1.2/app.tar.gz",
        "size": len(data),
    }
    assert up.summary["changed"] is True
    again = await run_module("artifact:upload", params, workspace=tmp_path)
    assert again.summary["changed"] is False

    down = await run_module(
        "artifact:download",
        conn(moto_server, handle=up.summary, dest="deploy/"),
        workspace=tmp_path,
    )
    assert down.ok, down.error
    target = tmp_path / "deploy" / "app.tar.gz"
    assert target.read_bytes() == data
    assert down.summary == {
        "name": "app",
        "version": "1.2",
        "checksum": handle["checksum"],
        "size": len(data),
        "path": str(target),
        "changed": True,
    }
    same = await run_module(
        "artifact:download",
        conn(moto_server, handle=handle, dest="deploy/app.tar.gz"),
        workspace=tmp_path,
    )
    assert same.summary["changed"] is False
    # sha256:-prefixed checksum is accepted too
    other = await run_module(
        "artifact:download",
        conn(
            moto_server, handle={**handle, "checksum": "sha256:" + handle["checksum"]}, dest="x.bin"
        ),
        workspace=tmp_path,
    )
    assert other.ok, other.error
    assert (tmp_path / "x.bin").read_bytes() == data


async def test_versions_are_immutable(moto_server: str, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one")
    params = conn(moto_server, src="a.txt", name="lib", version="2.0.0", bucket=bucket)
    assert (await run_module("artifact:upload", params, workspace=tmp_path)).ok
    (tmp_path / "a.txt").write_text("two")
    clash = await run_module("artifact:upload", params, workspace=tmp_path)
    assert clash.status == "Failed"
    assert "already exists" in str(clash.error) and "overwrite: true" in str(clash.error)
    forced = await run_module("artifact:upload", {**params, "overwrite": True}, workspace=tmp_path)
    assert forced.ok and forced.summary["changed"] is True
    assert forced.summary["checksum"] == hashlib.sha256(b"two").hexdigest()


async def test_checksum_mismatch_fails_and_leaves_no_file(
    moto_server: str, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("genuine")
    up = await run_module(
        "artifact:upload",
        conn(moto_server, src="a.txt", name="x", version="1", bucket=bucket),
        workspace=tmp_path,
    )
    assert up.ok, up.error
    # tamper with the stored object behind the handle's back
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    try:
        client.put_object(Bucket=bucket, Key="x/1/a.txt", Body=b"tampered")
    finally:
        client.close()
    down = await run_module(
        "artifact:download",
        conn(moto_server, handle=up.summary, dest="out/a.txt"),
        workspace=tmp_path,
    )
    assert down.status == "Failed"
    assert "checksum mismatch" in str(down.error)
    assert not (tmp_path / "out" / "a.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


async def test_bad_input(moto_server: str, bucket: str, tmp_path: Path) -> None:
    missing = await run_module(
        "artifact:upload",
        conn(moto_server, src="nope.bin", name="x", version="1", bucket=bucket),
        workspace=tmp_path,
    )
    assert "does not exist" in str(missing.error)
    (tmp_path / "d").mkdir()
    folder = await run_module(
        "artifact:upload",
        conn(moto_server, src="d", name="x", version="1", bucket=bucket),
        workspace=tmp_path,
    )
    assert "is a directory" in str(folder.error)
    slash = await run_module(
        "artifact:upload",
        conn(moto_server, src="d", name="x", version="1/2", bucket=bucket),
        workspace=tmp_path,
    )
    assert slash.status == "Failed" and "version" in str(slash.error)
    bad_handle = await run_module(
        "artifact:download",
        conn(moto_server, handle={"name": "x", "location": "http://x/y"}, dest="f"),
        workspace=tmp_path,
    )
    assert bad_handle.status == "Failed"
    message = str(bad_handle.error)
    assert "handle is not an artifact handle" in message
    assert "location" in message and "checksum" in message
    gone = await run_module(
        "artifact:download",
        conn(
            moto_server,
            handle={
                "name": "x",
                "version": "9",
                "checksum": "0" * 64,
                "location": f"s3://{bucket}/x/9/none",
                "size": 1,
            },
            dest="f",
        ),
        workspace=tmp_path,
    )
    assert "NoSuchKey" in str(gone.error)
    assert not (tmp_path / "f").exists()


async def test_upload_then_download_in_a_playbook(
    moto_server: str, bucket: str, tmp_path: Path, run_yaml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build.txt").write_text("built\n")
    monkeypatch.setenv("T15_S3_SECRET", SECRET_KEY)
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: artifacts
        workloads:
          - name: up
            process:
              module: artifact:upload
              params:
                src: build.txt
                name: build
                version: "7"
                bucket: {bucket}
                endpoint_url: {moto_server}
                access_key: {ACCESS_KEY}
                secret_key: "{{{{ secret('T15_S3_SECRET') }}}}"
            register: art
          - name: down
            process:
              module: artifact:download
              params:
                handle: "{{{{ art }}}}"
                dest: fetched/
                endpoint_url: {moto_server}
        """
    )
    assert result.status == "Completed", {k: v.error for k, v in result.states.items()}
    assert (tmp_path / "fetched" / "build.txt").read_text() == "built\n"
