"""``aws_secretsmanager:read``: read a secret from AWS Secrets Manager (redacted)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud_aws import AwsParams, describe_error, open_aws_client
from gxo.template.secrets import SecretStr


@register("aws_secretsmanager:read", layer="integration")
class AwsSecretsManagerRead(Module):
    """Read a secret's value from AWS Secrets Manager.

    ``value`` is the SecretString; when it is a JSON object, ``data`` holds it parsed
    and ``key`` picks one field into ``value``. Every string in it is registered as a
    secret of the run, so it is redacted in logs, summaries, reports and in what later
    workloads read from the registered result (``[REDACTED]``). To hand the value to
    another module in clear, use ``secret('aws-sm://NAME#KEY')`` in that module's params
    (docs/cloud-messaging.md); this module is for checking that a secret exists, its
    version, and its non-secret fields.

    Example:
        - name: db_creds
          process:
            module: aws_secretsmanager:read
            params: { name: prod/db, key: password }
          register: db
    """

    class Params(AwsParams):
        name: str = Field(..., min_length=1, description="Secret name or ARN")
        key: str | None = Field(None, min_length=1, description="Field of a JSON secret")
        version_stage: str | None = Field(None, description="Version stage (default AWSCURRENT)")
        version_id: str | None = Field(None, description="Version id")

    summary = {
        "name": "the secret's name",
        "arn": "the secret's ARN",
        "version_id": "the version read",
        "value": "the value (or the key's value), redacted in outputs",
        "data": "the value parsed, when it is a JSON object (strings redacted)",
    }
    check_mode = CheckMode.safe

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        client = await open_aws_client(ctx, "secretsmanager", params)
        request: dict[str, Any] = {"SecretId": params.name}
        if params.version_stage:
            request["VersionStage"] = params.version_stage
        if params.version_id:
            request["VersionId"] = params.version_id
        try:
            answer = await ctx.to_thread(client.get_secret_value, **request)
        except Exception as exc:
            raise ctx.fail(describe_error(exc, f"cannot read secret {params.name!r}")) from None
        finally:
            await ctx.to_thread(client.close)
        text = answer.get("SecretString")
        if text is None:
            raise ctx.fail(f"secret {params.name!r} is binary (SecretBinary): not supported")
        ctx.run.secrets.add(text)
        data: Any = None
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            data = _mark(ctx, parsed)
        value: Any = SecretStr(text)
        if params.key is not None:
            if data is None:
                raise ctx.fail(f"secret {params.name!r} is not a JSON object: it has no key")
            if params.key not in data:
                keys = ", ".join(sorted(data)) or "none"
                raise ctx.fail(f"secret {params.name!r} has no key {params.key!r} (keys: {keys})")
            value = data[params.key]
        return {
            "name": answer.get("Name", params.name),
            "arn": answer.get("ARN"),
            "version_id": answer.get("VersionId"),
            "value": value,
            "data": data,
        }


def _mark(ctx: ModuleContext, value: Any) -> Any:
    """Register and taint-mark every string inside a parsed secret."""
    if isinstance(value, str):
        from gxo.modules.integration._crypto import register_secret

        register_secret(ctx, value, data=True)
        return SecretStr(value)
    if isinstance(value, dict):
        return {k: _mark(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(ctx, v) for v in value]
    return value
