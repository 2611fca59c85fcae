"""``pagerduty:trigger_event``: send an Events API v2 event (trigger, acknowledge, resolve)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, register
from gxo.modules.integration._cloud import ApiParams, post_json

DEFAULT_BASE_URL = "https://events.pagerduty.com"


@register("pagerduty:trigger_event", layer="integration")
class PagerDutyTriggerEvent(Module):
    """Send a PagerDuty Events API v2 event to ``base_url`` + ``/v2/enqueue``.

    ``event_action: trigger`` (the default) opens or updates an alert; a ``dedup_key``
    makes repeated triggers one alert (PagerDuty's deduplication), and the same key
    with ``acknowledge`` or ``resolve`` closes it. Without a ``dedup_key`` PagerDuty
    picks one: it is in the summary, so a later workload can resolve the alert. The
    ``routing_key`` (the integration key) is a secret. ``base_url`` points the module at
    a test server (``test:mock_http_server``). Under ``--check`` nothing is sent.

    Example:
        - name: page
          depends_on: [backup]
          when: "failure()"
          process:
            module: pagerduty:trigger_event
            params:
              routing_key: "{{ secret('PD_ROUTING_KEY') }}"
              summary: "nightly backup failed on {{ host }}"
              source: "{{ host }}"
              severity: critical
              dedup_key: "backup-{{ host }}"
    """

    class Params(ApiParams):
        routing_key: str = Field(..., min_length=1, description="Integration key: a secret")
        event_action: Literal["trigger", "acknowledge", "resolve"] = Field(
            "trigger", description="trigger, acknowledge or resolve"
        )
        dedup_key: str | None = Field(
            None, min_length=1, max_length=255, description="Deduplication key of the alert"
        )
        summary: str | None = Field(
            None, min_length=1, max_length=1024, description="Alert summary (trigger)"
        )
        source: str | None = Field(None, min_length=1, description="Affected system (trigger)")
        severity: Literal["critical", "error", "warning", "info"] = Field(
            "error", description="critical, error, warning or info"
        )
        component: str | None = Field(None, description="Affected component")
        group: str | None = Field(None, description="Logical group of components")
        event_class: str | None = Field(None, alias="class", description="Class/type of event")
        custom_details: Any = Field(None, description="Free-form details shown with the alert")
        links: list[dict[str, str]] = Field(
            default_factory=list, description="Links: [{href, text}]"
        )
        base_url: str = Field(
            DEFAULT_BASE_URL, description="Events API base URL (a test server in tests)"
        )

        @model_validator(mode="after")
        def _complete(self) -> PagerDutyTriggerEvent.Params:
            if self.event_action == "trigger":
                if self.summary is None or self.source is None:
                    raise ValueError("a trigger needs summary and source")
            elif self.dedup_key is None:
                raise ValueError(f"{self.event_action} needs the dedup_key of the alert")
            return self

    summary = {
        "dedup_key": "the alert's deduplication key (PagerDuty's when none was given)",
        "event_action": "trigger, acknowledge or resolve",
        "status": "PagerDuty's status (success)",
        "sent": "true when the event was accepted (false under --check)",
        "changed": "true: an event is a change",
    }
    path_params = ("ca_file",)
    check_mode = CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        ctx.run.secrets.add(params.routing_key)
        return {
            "dedup_key": params.dedup_key,
            "event_action": params.event_action,
            "status": None,
            "sent": False,
            "changed": True,
        }

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        ctx.run.secrets.add(params.routing_key)
        body: dict[str, Any] = {
            "routing_key": params.routing_key,
            "event_action": params.event_action,
        }
        if params.dedup_key is not None:
            body["dedup_key"] = params.dedup_key
        if params.event_action == "trigger":
            payload: dict[str, Any] = {
                "summary": params.summary,
                "source": params.source,
                "severity": params.severity,
            }
            for key, value in (
                ("component", params.component),
                ("group", params.group),
                ("class", params.event_class),
                ("custom_details", params.custom_details),
            ):
                if value is not None:
                    payload[key] = value
            body["payload"] = payload
            if params.links:
                body["links"] = params.links
        url = params.base_url.rstrip("/") + "/v2/enqueue"
        status, data, text = await post_json(
            ctx, url, body, params=params, what="cannot send the PagerDuty event"
        )
        if status != 202 or not isinstance(data, dict):
            detail = ""
            if isinstance(data, dict):
                errors = data.get("errors") or []
                detail = "; ".join(str(e) for e in errors) or str(data.get("message") or "")
            detail = ctx.redact_excerpt(detail or text.strip(), 300) or "no body"
            raise ctx.fail(f"PagerDuty refused the event: HTTP {status}: {detail}")
        return {
            "dedup_key": data.get("dedup_key", params.dedup_key),
            "event_action": params.event_action,
            "status": data.get("status"),
            "sent": True,
            "changed": True,
        }
