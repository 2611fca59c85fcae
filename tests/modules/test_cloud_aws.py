"""aws:s3_sync, aws:ec2_instance and aws_secretsmanager:read against moto's server on
loopback (tests/support/moto_s3.py: one server serves every AWS service)."""
# ruff: noqa: F811  (the moto_server fixture is imported, then requested by name)

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from support.moto_s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_server  # noqa: F401

from gxo.modules.testkit import run_module, run_playbook_text

pytestmark = pytest.mark.services


def conn(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint_url": endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY, **extra}


def client(endpoint: str, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


# -- aws:s3_sync ---------------------------------------------------------------------------


async def test_s3_sync(moto_server: str, tmp_path: Path) -> None:
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3 = client(moto_server, "s3")
    s3.create_bucket(Bucket=bucket)
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<h1>hi</h1>")
    (site / "css" / "a.css").write_text("body{}")
    (site / ".hidden").write_text("h")
    s3.put_object(Bucket=bucket, Key="v1/stale.txt", Body=b"old")
    s3.put_object(Bucket=bucket, Key="other/keep.txt", Body=b"keep")
    params = conn(moto_server, source="site", bucket=bucket, prefix="v1/", delete=True)

    dry = await run_module("aws:s3_sync", {**params, "dry_run": True}, workspace=tmp_path)
    assert dry.ok, dry.error
    assert dry.summary["uploaded"] == 3 and dry.summary["deleted"] == 1
    assert dry.summary["deleted_keys"] == ["v1/stale.txt"] and dry.summary["dry_run"] is True
    assert "Contents" in s3.list_objects_v2(Bucket=bucket, Prefix="v1/stale")

    r = await run_module("aws:s3_sync", params, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["uploaded"] == 3 and r.summary["deleted"] == 1
    assert r.summary["unchanged"] == 0 and r.summary["changed"] is True
    assert sorted(r.summary["uploaded_keys"]) == ["v1/.hidden", "v1/css/a.css", "v1/index.html"]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["other/keep.txt", "v1/.hidden", "v1/css/a.css", "v1/index.html"]
    head = s3.head_object(Bucket=bucket, Key="v1/index.html")
    assert head["ContentType"] == "text/html"

    again = await run_module("aws:s3_sync", params, workspace=tmp_path)
    assert again.summary["unchanged"] == 3 and again.summary["changed"] is False

    (site / "index.html").write_text("<h1>ho</h1>")  # same size, other content
    (site / "css" / "a.css").unlink()
    r = await run_module("aws:s3_sync", {**params, "exclude_hidden": True}, workspace=tmp_path)
    assert r.summary["uploaded_keys"] == ["v1/index.html"]
    assert r.summary["deleted_keys"] == ["v1/.hidden", "v1/css/a.css"]
    assert r.summary["unchanged"] == 0
    body = s3.get_object(Bucket=bucket, Key="v1/index.html")["Body"].read()
    assert body == b"<h1>ho</h1>"
    s3.close()


async def test_s3_sync_errors_and_check(moto_server: str, tmp_path: Path) -> None:
    r = await run_module(
        "aws:s3_sync", conn(moto_server, source="nope", bucket="abc"), workspace=tmp_path
    )
    assert r.status == "Failed" and "does not exist (expected a directory)" in str(r.error)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    r = await run_module(
        "aws:s3_sync", conn(moto_server, source="d", bucket="no-such-bucket-x"), workspace=tmp_path
    )
    assert r.status == "Failed" and "the bucket does not exist" in str(r.error)
    bucket = f"t-{uuid.uuid4().hex[:12]}"
    s3 = client(moto_server, "s3")
    s3.create_bucket(Bucket=bucket)
    text = f"""
    schemaVersion: "1.0.0"
    name: c
    workloads:
      - name: sync
        process:
          module: aws:s3_sync
          params:
            source: d
            bucket: {bucket}
            endpoint_url: {moto_server}
            access_key: {ACCESS_KEY}
            secret_key: {SECRET_KEY}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True, workspace=tmp_path)
    summary = result.states["sync"].summary
    assert summary["uploaded"] == 1 and summary["dry_run"] is True
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    s3.close()


# -- aws:ec2_instance ----------------------------------------------------------------------


async def test_ec2_instance_lifecycle(moto_server: str) -> None:
    ec2 = client(moto_server, "ec2")
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ec2.close()
    name = f"box-{uuid.uuid4().hex[:8]}"
    base = conn(moto_server, name=name, ami=ami, instance_type="t3.small", tags={"team": "ci"})

    r = await run_module("aws:ec2_instance", {**base, "state": "absent"})
    assert r.ok and r.summary["changed"] is False and r.summary["instance_id"] is None

    r = await run_module("aws:ec2_instance", base)
    assert r.ok, r.error
    s = r.summary
    assert s["actions"] == ["created"] and s["state"] == "running"
    assert s["instance_id"].startswith("i-") and s["private_ip"]
    assert s["tags"] == {"Name": name, "team": "ci"} and s["instance_type"] == "t3.small"
    instance_id = s["instance_id"]

    r = await run_module("aws:ec2_instance", base)
    assert r.summary["changed"] is False and r.summary["instance_id"] == instance_id

    r = await run_module("aws:ec2_instance", {**base, "state": "stopped", "tags": {"team": "ops"}})
    assert r.summary["actions"] == ["tagged", "stopped"] and r.summary["state"] == "stopped"
    assert r.summary["tags"]["team"] == "ops"
    base["tags"] = {"team": "ops"}

    r = await run_module("aws:ec2_instance", {**base, "state": "present"})
    assert r.summary["changed"] is False and r.summary["state"] == "stopped"

    r = await run_module("aws:ec2_instance", {**base, "instance_type": "m5.large"})
    assert r.summary["actions"] == ["started"] and r.summary["state"] == "running"
    assert any("not changed" in line for _, line in r.logs)

    r = await run_module("aws:ec2_instance", {**base, "state": "absent"})
    assert r.summary["actions"] == ["terminated"] and r.summary["state"] == "terminated"
    r = await run_module("aws:ec2_instance", {**base, "state": "absent"})
    assert r.summary["changed"] is False


async def test_ec2_instance_errors_and_check(moto_server: str) -> None:
    name = f"box-{uuid.uuid4().hex[:8]}"
    r = await run_module("aws:ec2_instance", conn(moto_server, name=name))
    assert r.status == "Failed" and "creating one needs ami" in str(r.error)
    r = await run_module("aws:ec2_instance", {**conn(moto_server, name=name), "secret_key": None})
    assert r.status == "Failed" and "both access_key and secret_key" in str(r.error)
    text = f"""
    schemaVersion: "1.0.0"
    name: c
    workloads:
      - name: box
        process:
          module: aws:ec2_instance
          params:
            name: {name}
            ami: ami-12345678
            state: stopped
            endpoint_url: {moto_server}
            access_key: {ACCESS_KEY}
            secret_key: {SECRET_KEY}
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip(), check=True)
    summary = result.states["box"].summary
    assert summary["actions"] == ["created", "stopped"] and summary["instance_id"] is None
    ec2 = client(moto_server, "ec2")
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
    assert found["Reservations"] == []
    ec2.close()


# -- aws_secretsmanager:read ---------------------------------------------------------------


async def test_secretsmanager_read(moto_server: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_server)
    sm = client(moto_server, "secretsmanager")
    name = f"prod/db-{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=name, SecretString=json.dumps({"password": "pw-secret-42", "port": 5432}))
    plain = f"plain-{uuid.uuid4().hex[:8]}"
    sm.create_secret(Name=plain, SecretString="text-secret-99")
    sm.close()
    r = await run_module("aws_secretsmanager:read", conn(moto_server, name=name, key="password"))
    assert r.ok, r.error
    assert r.summary["value"] == "[REDACTED]" and r.summary["data"]["password"] == "[REDACTED]"
    assert r.summary["data"]["port"] == 5432 and r.summary["arn"].startswith("arn:aws")
    r = await run_module("aws_secretsmanager:read", conn(moto_server, name=plain))
    assert r.ok and r.summary["value"] == "[REDACTED]" and r.summary["data"] is None
    r = await run_module("aws_secretsmanager:read", conn(moto_server, name=plain, key="k"))
    assert r.status == "Failed" and "not a JSON object" in str(r.error)
    r = await run_module("aws_secretsmanager:read", conn(moto_server, name=name, key="nope"))
    assert r.status == "Failed" and "keys: password, port" in str(r.error)
    r = await run_module("aws_secretsmanager:read", conn(moto_server, name="missing-x"))
    assert r.status == "Failed" and "ResourceNotFoundException" in str(r.error)
    # registered results are redacted for every later template; secret('aws-sm://...')
    # hands the value to a module in clear (and redacts it in that module's output)
    text = f"""
    schemaVersion: "1.0.0"
    name: s
    workloads:
      - name: read
        process:
          module: aws_secretsmanager:read
          params:
            name: {name}
            key: password
            endpoint_url: {moto_server}
            access_key: {ACCESS_KEY}
            secret_key: {SECRET_KEY}
        register: db
      - name: use
        process:
          module: exec
          params:
            command: sh
            args:
              - "-c"
              - 'test "$0" = pw-secret-42 && echo ok $0 $1'
              - "{{{{ secret('aws-sm://{name}#password') }}}}"
              - "{{{{ db.value }}}}"
    """
    result = await run_playbook_text(textwrap.dedent(text).lstrip())
    use = result.states["use"]
    assert use.status.value == "Completed", use.error
    assert use.summary["stdout"].strip() == "ok [REDACTED] [REDACTED]"
