"""object_storage:* against moto's standalone S3 server on loopback (tests/support/moto_s3.py)."""
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


def new_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def make_bucket(endpoint: str) -> str:
    bucket = new_bucket()
    r = await run_module("object_storage:manage_bucket", conn(endpoint, bucket=bucket))
    assert r.ok, r.error
    return bucket


async def test_manage_bucket_idempotent(moto_server: str) -> None:
    bucket = new_bucket()
    params = conn(moto_server, bucket=bucket)
    r = await run_module("object_storage:manage_bucket", params)
    assert r.ok, r.error
    assert r.summary == {"bucket": bucket, "state": "present", "changed": True}
    r = await run_module("object_storage:manage_bucket", params)
    assert r.summary["changed"] is False
    # not empty: absent refuses without force
    put = await run_module(
        "object_storage:put_object", conn(moto_server, bucket=bucket, key="a.txt", content="x")
    )
    assert put.ok, put.error
    r = await run_module("object_storage:manage_bucket", {**params, "state": "absent"})
    assert r.status == "Failed"
    assert "not empty" in str(r.error) and "force: true" in str(r.error)
    r = await run_module(
        "object_storage:manage_bucket", {**params, "state": "absent", "force": True}
    )
    assert r.ok, r.error
    assert r.summary == {"bucket": bucket, "state": "absent", "changed": True, "objects_deleted": 1}
    r = await run_module("object_storage:manage_bucket", {**params, "state": "absent"})
    assert r.summary == {"bucket": bucket, "state": "absent", "changed": False}


async def test_bucket_in_other_region(moto_server: str) -> None:
    bucket = new_bucket()
    params = conn(moto_server, bucket=bucket, region="eu-west-1")
    r = await run_module("object_storage:manage_bucket", params)
    assert r.ok, r.error
    r = await run_module("object_storage:manage_bucket", {**params, "state": "absent"})
    assert r.summary["changed"] is True


async def test_put_get_content_and_skip_when_same(moto_server: str, tmp_path: Path) -> None:
    bucket = await make_bucket(moto_server)
    params = conn(moto_server, bucket=bucket, key="dir/hello.txt", content="héllo\n")
    r = await run_module("object_storage:put_object", {**params, "content_type": "text/plain"})
    assert r.ok, r.error
    sha = hashlib.sha256("héllo\n".encode()).hexdigest()
    assert r.summary["changed"] is True
    assert r.summary["sha256"] == sha
    assert r.summary["size"] == 7
    assert r.summary["location"] == f"s3://{bucket}/dir/hello.txt"
    etag = r.summary["etag"]
    again = await run_module("object_storage:put_object", params)
    assert again.summary["changed"] is False
    assert again.summary["etag"] == etag
    other = await run_module("object_storage:put_object", {**params, "content": "changed"})
    assert other.summary["changed"] is True

    got = await run_module(
        "object_storage:get_object", conn(moto_server, bucket=bucket, key="dir/hello.txt")
    )
    assert got.ok, got.error
    assert got.summary["content"] == "changed"
    assert got.summary["size"] == 7
    assert got.summary["metadata"] == {"gxo-sha256": hashlib.sha256(b"changed").hexdigest()}
    assert got.summary["last_modified"]


async def test_put_file_json_and_plain_etag(moto_server: str, tmp_path: Path) -> None:
    bucket = await make_bucket(moto_server)
    src = tmp_path / "blob.bin"
    src.write_bytes(bytes(range(256)) * 100)
    params = conn(moto_server, bucket=bucket, key="blob.bin", src="blob.bin")
    r = await run_module("object_storage:put_object", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["size"] == 25600 and r.summary["changed"] is True
    r = await run_module("object_storage:put_object", params, workspace=tmp_path)
    assert r.summary["changed"] is False
    # JSON content
    r = await run_module(
        "object_storage:put_object",
        conn(moto_server, bucket=bucket, key="data.json", content={"a": [1, 2]}),
    )
    assert r.ok, r.error
    # an object uploaded by someone else (no gxo-sha256 metadata): the MD5 ETag decides
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    try:
        client.put_object(Bucket=bucket, Key="foreign.txt", Body=b"plain")
    finally:
        client.close()
    r = await run_module(
        "object_storage:put_object",
        conn(moto_server, bucket=bucket, key="foreign.txt", content="plain"),
    )
    assert r.summary["changed"] is False
    # download to a file, binary
    got = await run_module(
        "object_storage:get_object",
        conn(moto_server, bucket=bucket, key="blob.bin", dest="out/copy.bin"),
        workspace=tmp_path,
    )
    assert got.ok, got.error
    assert (tmp_path / "out" / "copy.bin").read_bytes() == src.read_bytes()
    assert got.summary["path"] == str(tmp_path / "out" / "copy.bin")
    assert "content" not in got.summary
    assert not list((tmp_path / "out").glob("*.gxo-tmp"))
    # binary without dest: a clear error
    bad = await run_module(
        "object_storage:get_object", conn(moto_server, bucket=bucket, key="blob.bin")
    )
    assert bad.status == "Failed"
    assert "not valid utf-8 text" in str(bad.error)
    big = await run_module(
        "object_storage:get_object",
        conn(moto_server, bucket=bucket, key="blob.bin", max_size=10),
    )
    assert "more than max_size=10: use dest" in str(big.error)


async def test_delete_object(moto_server: str) -> None:
    bucket = await make_bucket(moto_server)
    await run_module(
        "object_storage:put_object", conn(moto_server, bucket=bucket, key="k", content="v")
    )
    params = conn(moto_server, bucket=bucket, key="k")
    r = await run_module("object_storage:delete_object", params)
    assert r.summary == {"bucket": bucket, "key": "k", "changed": True}
    r = await run_module("object_storage:delete_object", params)
    assert r.summary == {"bucket": bucket, "key": "k", "changed": False}


async def test_list_objects_paginates(moto_server: str) -> None:
    bucket = await make_bucket(moto_server)
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    try:
        for i in range(7):
            client.put_object(Bucket=bucket, Key=f"p/{i:02d}", Body=b"x" * i)
        client.put_object(Bucket=bucket, Key="other", Body=b"")
    finally:
        client.close()
    r = await run_module(
        "object_storage:list_objects", conn(moto_server, bucket=bucket, prefix="p/", page_size=3)
    )
    assert r.ok, r.error
    assert [rec["key"] for rec in r.records] == [f"p/{i:02d}" for i in range(7)]
    assert [rec["size"] for rec in r.records] == list(range(7))
    assert set(r.records[0]) == {"key", "size", "etag", "last_modified"}
    assert r.records[1]["etag"] == hashlib.md5(b"x", usedforsecurity=False).hexdigest()
    assert r.summary == {
        "bucket": bucket,
        "prefix": "p/",
        "count": 7,
        "pages": 3,
        "truncated": False,
    }
    r = await run_module(
        "object_storage:list_objects",
        conn(moto_server, bucket=bucket, page_size=2, max_objects=3),
    )
    assert len(r.records) == 3 and r.summary["truncated"] is True
    r = await run_module(
        "object_storage:list_objects",
        conn(moto_server, bucket=bucket, page_size=4, max_objects=4),
    )
    assert len(r.records) == 4 and r.summary["truncated"] is True and r.summary["pages"] == 1
    r = await run_module(
        "object_storage:list_objects", conn(moto_server, bucket=bucket, max_objects=8)
    )
    assert len(r.records) == 8 and r.summary["truncated"] is False


async def test_errors_are_clear_and_redacted(moto_server: str, tmp_path: Path) -> None:
    missing = await run_module(
        "object_storage:get_object", conn(moto_server, bucket="no-such-bucket-x", key="k")
    )
    assert missing.status == "Failed"
    assert "s3://no-such-bucket-x/k" in str(missing.error)
    assert "NoSuchBucket" in str(missing.error)
    bucket = await make_bucket(moto_server)
    nokey = await run_module(
        "object_storage:get_object",
        conn(moto_server, bucket=bucket, key="nope", dest="x.bin"),
        workspace=tmp_path,
    )
    assert "NoSuchKey" in str(nokey.error)
    assert not (tmp_path / "x.bin").exists()
    listing = await run_module(
        "object_storage:list_objects", conn(moto_server, bucket="no-such-bucket-y")
    )
    assert "the bucket does not exist" in str(listing.error)
    delete = await run_module(
        "object_storage:delete_object", conn(moto_server, bucket="no-such-bucket-z", key="k")
    )
    # HEAD cannot tell a missing bucket from a missing key: either way nothing to delete
    assert delete.summary["changed"] is False
    bad_bucket = await run_module(
        "object_storage:manage_bucket", conn(moto_server, bucket="Bad_Bucket_Name")
    )
    assert bad_bucket.status == "Failed"
    assert "bucket" in str(bad_bucket.error)
    # one key only
    half = await run_module(
        "object_storage:put_object",
        {
            "endpoint_url": moto_server,
            "access_key": "x",
            "bucket": bucket,
            "key": "k",
            "content": "v",
        },
    )
    assert "give both access_key and secret_key" in str(half.error)
    both = await run_module(
        "object_storage:put_object", conn(moto_server, bucket=bucket, key="k", content="v", src="f")
    )
    assert "exactly one of src" in str(both.error)
    nofile = await run_module(
        "object_storage:put_object",
        conn(moto_server, bucket=bucket, key="k", src="missing.txt"),
        workspace=tmp_path,
    )
    assert "does not exist" in str(nofile.error)
    (tmp_path / "adir").mkdir()
    isdir = await run_module(
        "object_storage:put_object",
        conn(moto_server, bucket=bucket, key="k", src="adir"),
        workspace=tmp_path,
    )
    assert "is a directory" in str(isdir.error)
    enc = await run_module(
        "object_storage:get_object", conn(moto_server, bucket=bucket, key="k", encoding="klingon")
    )
    assert "unknown encoding" in str(enc.error)
    unreachable = await run_module(
        "object_storage:put_object",
        conn("http://127.0.0.1:9", bucket=bucket, key="k", content="v"),
    )
    assert unreachable.status == "Failed"
    assert "cannot reach the endpoint" in str(unreachable.error)
    # wrong secret: moto accepts any key, but the secret never shows up anywhere
    wrong = await run_module(
        "object_storage:get_object",
        {
            **conn(moto_server, bucket="no-such-bucket-x", key="k"),
            "secret_key": "Wr0ng-S3cret-Value",
        },
    )
    assert "Wr0ng-S3cret-Value" not in str(wrong.error)
    assert "Wr0ng-S3cret-Value" not in repr(wrong.summary)


async def test_aws_chain_from_environment(moto_server: str) -> None:
    # no access_key/secret_key: the session fixture's AWS_* environment is used
    bucket = new_bucket()
    r = await run_module(
        "object_storage:manage_bucket", {"endpoint_url": moto_server, "bucket": bucket}
    )
    assert r.ok, r.error
    assert r.summary["changed"] is True
