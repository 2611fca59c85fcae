"""``control:wait_for_signal``: pause until a human answers (or the timeout)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext, Status
from gxo.engine.runner import set_status
from gxo.engine.signals import (
    NoAnswer,
    PauseRequest,
    Rejected,
    Resolution,
    check_payload,
)
from gxo.errors import GxoError, ModuleError
from gxo.modules.base import CheckMode, Module, ModuleParams, register

NO_ANSWER_HINT = (
    "nobody can answer it here: run the playbook under `gxo daemon` (then "
    "`gxo ctl resume`), on a terminal, or pass `gxo run --resume-payload-file F`"
)


class OnTimeout(StrEnum):
    fail = "fail"
    continue_ = "continue"
    default = "default"


@register("control:wait_for_signal", layer="system")
class WaitForSignal(Module):
    """Pause the workload until someone resumes it with a payload, or rejects it.

    The workload shows ``Paused`` with its prompt; downstream workloads wait while
    independent branches keep running. Who answers depends on where the playbook
    runs: ``gxo ctl resume --token T --payload '{...}'`` under the daemon, a prompt on
    the terminal under ``gxo run`` (``--resume-payload-file F`` answers without one),
    the Resume tab of ``gxo ui``, ``:resume`` in ``gxo repl``. The payload is checked
    against ``payload_schema`` (JSON Schema) before it is accepted; a bad one leaves
    the workload paused. Every later template sees it as ``_gxo.resume_payload``.

    Example:
        - name: approve_deploy
          process:
            module: control:wait_for_signal
            params:
              prompt: "Deploy {{ version }} to production?"
              payload_schema:
                type: object
                properties: { approved: { type: boolean }, note: { type: string } }
                required: [approved]
              timeout: 1h
              on_timeout: fail
          register: approval
        - name: deploy
          depends_on: [approve_deploy]
          when: "approval.payload.approved"
          process: { module: exec, params: { command: ./deploy.sh } }
    """

    class Params(ModuleParams):
        prompt: str = Field(..., description="What the human is asked (templated)")
        payload_schema: dict[str, Any] | None = Field(
            None, description="JSON Schema the resume payload must match"
        )
        timeout: Duration | None = Field(
            None, description="How long to wait (e.g. 30m); no timeout when unset"
        )
        on_timeout: OnTimeout = Field(
            OnTimeout.fail,
            description="fail: the workload fails | continue: completes with no payload | "
            "default: completes with default_payload",
        )
        default_payload: Any = Field(None, description="The payload used by on_timeout: default")
        approvers: list[str] = Field(
            default_factory=list,
            description="Identities or roles allowed to resume (daemon); empty = any operator",
        )

        @field_validator("payload_schema")
        @classmethod
        def _valid_schema(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
            if schema:
                import jsonschema

                try:
                    jsonschema.validators.validator_for(schema).check_schema(schema)
                except jsonschema.SchemaError as exc:
                    raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
            return schema

        @field_validator("timeout")
        @classmethod
        def _positive(cls, timeout: float | None) -> float | None:
            if timeout is not None and timeout <= 0:
                raise ValueError("must be more than 0")
            return timeout

    summary = {
        "payload": "the payload the workload was resumed with (default_payload or null "
        "after a timeout)",
        "resumed_by": "who resumed it (an identity; null after a timeout)",
        "resumed_at": "when (UTC, ISO 8601)",
        "waited_ms": "how long the workload was paused",
        "timed_out": "true when the timeout decided",
    }

    check_mode = CheckMode.safe  # read-only: runs for real under gxo run --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        if params.on_timeout is OnTimeout.default:
            try:
                check_payload(params.payload_schema, params.default_payload)
            except GxoError as exc:
                raise ModuleError(f"default_payload: {exc}") from None
        broker = ctx.run.signals
        if broker is None:
            raise ModuleError(f"workload {ctx.workload!r} waits for a signal, but {NO_ANSWER_HINT}")
        request = PauseRequest(
            run_id=ctx.run_id,
            workload=ctx.workload,
            prompt=params.prompt,
            schema=params.payload_schema,
            timeout=params.timeout,
            on_timeout=params.on_timeout.value,
            default_payload=params.default_payload,
            approvers=tuple(params.approvers),
        )
        started = time.monotonic()
        paused = False

        def announce(**data: Any) -> None:
            nonlocal paused
            paused = True
            expires = request.expires_at
            set_status(
                ctx.run.bus,
                ctx.state,
                Status.PAUSED,
                prompt=request.prompt,
                payload_schema=request.schema,
                expires_at=expires,
                **data,
            )

        try:
            resolution = await broker.wait(request, announce)
        except Rejected as exc:
            raise ModuleError(str(exc)) from None
        except NoAnswer as exc:
            raise ModuleError(f"workload {ctx.workload!r}: {exc}") from None
        finally:
            if paused and ctx.state.status is Status.PAUSED:
                set_status(ctx.run.bus, ctx.state, Status.RUNNING)
        waited_ms = round((time.monotonic() - started) * 1000, 1)
        if resolution.timed_out:
            resolution = self._timed_out(ctx, params, waited_ms)
        ctx.run.gxo["resume_payload"] = ctx.run.secrets.redact(resolution.payload)
        return {
            "payload": resolution.payload,
            "resumed_by": resolution.resumed_by,
            "resumed_at": resolution.resumed_at,
            "waited_ms": waited_ms,
            "timed_out": resolution.timed_out,
        }

    @staticmethod
    def _timed_out(ctx: ModuleContext, params: Params, waited_ms: float) -> Resolution:
        if params.on_timeout is OnTimeout.fail:
            raise ModuleError(
                f"no answer within {params.timeout:g}s (on_timeout: fail; waited {waited_ms} ms)"
            )
        payload = params.default_payload if params.on_timeout is OnTimeout.default else None
        ctx.log(f"no answer within {params.timeout:g}s: on_timeout {params.on_timeout.value}")
        return Resolution(payload, resumed_by=None, timed_out=True)
