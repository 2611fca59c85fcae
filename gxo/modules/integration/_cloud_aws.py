"""boto3 clients of the ``aws:*`` / ``aws_secretsmanager:*`` modules (imported lazily).

The connection params and error wording are those of the S3 modules
(:mod:`gxo.modules.integration._s3`); this adds clients of other services.
The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import threading
from typing import Any

from pydantic import Field

from gxo.modules.base import ModuleParams
from gxo.modules.integration._s3 import describe_error

__all__ = ["AwsParams", "describe_error", "open_aws_client"]


class AwsParams(ModuleParams):
    """Connection params common to the AWS modules."""

    endpoint_url: str | None = Field(
        None, description="Service endpoint (an emulator such as moto); omit for AWS"
    )
    region: str | None = Field(
        None, description="Region (default: the AWS chain's, else us-east-1)"
    )
    access_key: str | None = Field(
        None, description="Access key id; omit both keys to use the AWS chain"
    )
    secret_key: str | None = Field(
        None, description="Secret access key, e.g. \"{{ secret('AWS_SECRET') }}\""
    )
    session_token: str | None = Field(None, description="Session token of temporary credentials")


_LOCK = threading.Lock()
_SESSION: Any = None


def make_aws_client(service: str, params: AwsParams) -> Any:
    """A boto3 client of ``service`` (blocking; the caller closes it)."""
    import boto3.session
    from botocore.config import Config

    global _SESSION
    with _LOCK:  # boto3 sessions are not thread-safe
        if params.access_key is not None:
            # Explicit keys: one shared session (its loaded service models make a client
            # far cheaper to create); the AWS chain gets a fresh one, so that a changed
            # environment or profile counts.
            if _SESSION is None:
                _SESSION = boto3.session.Session()
            session = _SESSION
        else:
            session = boto3.session.Session(region_name=params.region)
        region = params.region or session.region_name or "us-east-1"
        config = Config(
            region_name=region,
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return session.client(
            service,
            endpoint_url=params.endpoint_url,
            region_name=region,
            aws_access_key_id=params.access_key,
            aws_secret_access_key=params.secret_key,
            aws_session_token=params.session_token,
            config=config,
        )


async def open_aws_client(ctx: Any, service: str, params: AwsParams) -> Any:
    """Check the credentials params, register secrets for redaction, build a client."""
    if (params.access_key is None) != (params.secret_key is None):
        raise ctx.fail(
            "give both access_key and secret_key, or neither (to use the AWS credential chain)"
        )
    for value in (params.secret_key, params.session_token):
        if value:
            ctx.run.secrets.add(value)
    try:
        return await ctx.to_thread(make_aws_client, service, params)
    except Exception as exc:
        raise ctx.fail(describe_error(exc, f"cannot create the {service} client")) from None
