"""``slack:post_message``: post a message to Slack (Web API with a bot token, or a webhook)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud import ApiParams, post_json

DEFAULT_BASE_URL = "https://slack.com"


@register("slack:post_message", layer="integration")
class SlackPostMessage(Module):
    """Post ``text`` (and Block Kit ``blocks``) to a Slack channel.

    With a bot ``token`` the message goes to ``base_url`` + ``/api/chat.postMessage``
    (``Authorization: Bearer``); Slack's ``ok: false`` answers fail the workload with
    Slack's error code (``channel_not_found``, ``invalid_auth`` ...). With a
    ``webhook_url`` (an incoming webhook) the message is posted to that URL, and the
    channel is the webhook's own. The token and the webhook URL are secrets: they never
    appear in logs, summaries or errors. ``base_url`` points the module at a test server
    (``test:mock_http_server``: see docs/cloud-messaging.md). Under ``--check`` nothing
    is posted.

    Example:
        - name: tell_ops
          process:
            module: slack:post_message
            params:
              channel: "#ops"
              text: "deploy {{ _gxo.run_id }} finished"
              token: "{{ secret('SLACK_BOT_TOKEN') }}"
    """

    class Params(ApiParams):
        channel: str | None = Field(
            None, min_length=1, description="Channel name or id (required with token)"
        )
        text: str = Field(..., min_length=1, description="Message text (fallback with blocks)")
        blocks: list[dict[str, Any]] | None = Field(None, description="Block Kit blocks")
        thread_ts: str | None = Field(None, description="Reply in this thread (token only)")
        token: str | None = Field(None, description="Bot token (xoxb-...): a secret")
        webhook_url: str | None = Field(None, description="Incoming webhook URL: a secret")
        base_url: str = Field(
            DEFAULT_BASE_URL, description="Web API base URL (a test server in tests)"
        )

        @model_validator(mode="after")
        def _one_way(self) -> SlackPostMessage.Params:
            if (self.token is None) == (self.webhook_url is None):
                raise ValueError("give exactly one of token or webhook_url")
            if self.token is not None and self.channel is None:
                raise ValueError("channel is required with token")
            return self

    summary = {
        "channel": "the channel posted to (from Slack's answer with a token)",
        "ts": "the message's timestamp id (token only)",
        "sent": "true when the message was posted (false under --check)",
        "changed": "true: a message is a change",
    }
    path_params = ("ca_file",)
    check_mode = CheckMode.predict

    def _register_secrets(self, ctx: ModuleContext, params: Params) -> None:
        for value in (params.token, params.webhook_url):
            if value:
                ctx.run.secrets.add(value)

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        self._register_secrets(ctx, params)
        return {"channel": params.channel, "ts": None, "sent": False, "changed": True}

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        self._register_secrets(ctx, params)
        body: dict[str, Any] = {"text": params.text}
        if params.blocks is not None:
            body["blocks"] = params.blocks
        if params.channel is not None:
            body["channel"] = params.channel
        if params.webhook_url is not None:
            status, data, text = await post_json(
                ctx,
                params.webhook_url,
                body,
                params=params,
                what="cannot post to the Slack webhook",
                shown_url="the webhook URL",
            )
            if status != 200:
                detail = ctx.redact_excerpt(text.strip(), 200) or f"HTTP {status}"
                raise ctx.fail(f"Slack webhook refused the message: HTTP {status}: {detail}")
            return {"channel": params.channel, "ts": None, "sent": True, "changed": True}
        if params.thread_ts is not None:
            body["thread_ts"] = params.thread_ts
        url = params.base_url.rstrip("/") + "/api/chat.postMessage"
        status, data, text = await post_json(
            ctx,
            url,
            body,
            params=params,
            headers={"Authorization": f"Bearer {params.token}"},
            what="cannot post to Slack",
        )
        if not isinstance(data, dict):
            detail = ctx.redact_excerpt(text.strip(), 200) or "no body"
            raise ctx.fail(f"Slack answered HTTP {status} without JSON: {detail}")
        if not data.get("ok"):
            error = ctx.redact(str(data.get("error") or f"HTTP {status}"))
            raise ctx.fail(f"Slack refused the message to {params.channel!r}: {error}")
        return {
            "channel": data.get("channel", params.channel),
            "ts": data.get("ts"),
            "sent": True,
            "changed": True,
        }
