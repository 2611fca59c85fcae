"""The playbook model (schemaVersion 1.0.0) as pydantic v2 models.

Every model forbids unknown keys so that a typo is an error, not a silently
ignored setting. The shipped JSON Schema is generated from these classes.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gxo.config.durations import Duration

__all__ = [
    "NAME_PATTERN",
    "REGISTER_PATTERN",
    "AccessMode",
    "ChannelPolicy",
    "LifecyclePolicy",
    "LoopControl",
    "OverflowStrategy",
    "Playbook",
    "Policy",
    "Process",
    "RestartPolicy",
    "RetryConfig",
    "StatePolicy",
    "Workload",
]

NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
REGISTER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
SCHEMA_VERSIONS = ("1.0.0", "v1.0.0")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Policy(StrEnum):
    run_once = "run_once"
    supervise = "supervise"
    event_driven = "event_driven"
    scheduled = "scheduled"


class RestartPolicy(StrEnum):
    always = "always"
    on_failure = "on_failure"
    never = "never"


class AccessMode(StrEnum):
    deep_copy = "deep_copy"
    unsafe_direct_reference = "unsafe_direct_reference"


class OverflowStrategy(StrEnum):
    block = "block"
    drop_new = "drop_new"
    drop_oldest = "drop_oldest"


class BackoffConfig(_Model):
    """Restart back-off of a supervised workload."""

    initial: Duration = Field(1.0, description="Delay before the first restart.")
    max: Duration = Field(60.0, description="Upper bound of the restart delay.")
    factor: float = Field(2.0, ge=1.0, description="Multiplier applied after each restart.")


class LifecyclePolicy(_Model):
    """How the kernel manages a workload: once, supervised, on events or on a schedule."""

    policy: Policy = Field(
        Policy.run_once, description="run_once | supervise | event_driven | scheduled"
    )
    restart_policy: RestartPolicy | None = Field(
        None, description="supervise only: always | on_failure | never"
    )
    backoff: BackoffConfig | None = Field(None, description="supervise only: restart back-off")
    cron: str | None = Field(None, description="scheduled only: a cron expression")
    source: str | None = Field(None, description="event_driven only: the event source")

    @model_validator(mode="after")
    def _fields_match_policy(self) -> LifecyclePolicy:
        if self.policy == Policy.scheduled and not self.cron:
            raise ValueError("lifecycle 'scheduled' needs a 'cron' expression")
        if self.policy == Policy.event_driven and not self.source:
            raise ValueError("lifecycle 'event_driven' needs a 'source'")
        if self.cron and self.policy != Policy.scheduled:
            raise ValueError("'cron' is only valid with policy 'scheduled'")
        if self.source and self.policy != Policy.event_driven:
            raise ValueError("'source' is only valid with policy 'event_driven'")
        if (self.restart_policy or self.backoff) and self.policy != Policy.supervise:
            raise ValueError(
                "'restart_policy' and 'backoff' are only valid with policy 'supervise'"
            )
        return self


class Process(_Model):
    """What a workload does: a module and its parameters."""

    module: str = Field(
        ..., min_length=1, description="Canonical module name, e.g. exec or data:map"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Module parameters (templated)"
    )


class StatePolicy(_Model):
    access_mode: AccessMode = Field(
        AccessMode.deep_copy,
        description="deep_copy (safe, default) or unsafe_direct_reference (fast, shares objects)",
    )


class ChannelPolicy(_Model):
    buffer_size: int = Field(100, ge=1, description="Records buffered per stream link")
    overflow_strategy: OverflowStrategy = Field(
        OverflowStrategy.block, description="block | drop_new | drop_oldest when a link is full"
    )


class RetryConfig(_Model):
    attempts: int = Field(1, ge=1, description="Total attempts, including the first")
    delay: Duration = Field(1.0, description="Delay before the first retry")
    backoff_factor: float = Field(1.0, ge=1.0, description="Delay multiplier per retry")
    max_delay: Duration | None = Field(None, description="Cap on the delay")
    jitter: float = Field(0.0, ge=0.0, le=1.0, description="± fraction of randomisation")

    def delay_for(self, retry_index: int) -> float:
        """Delay before retry number ``retry_index`` (0-based), without jitter."""
        delay = self.delay * (self.backoff_factor**retry_index)
        if self.max_delay is not None:
            delay = min(delay, self.max_delay)
        return delay


class LoopControl(_Model):
    loop_var: str = Field("item", pattern=REGISTER_PATTERN, description="Name of the loop variable")
    parallel: int = Field(
        1, ge=1, description="Iterations run at the same time, within the run's --concurrency"
    )


WorkloadName = Annotated[str, Field(pattern=NAME_PATTERN)]


class Workload(_Model):
    """The unit of automation: a Process under a Lifecycle, with flow-control settings."""

    name: WorkloadName = Field(..., description="Unique name, ^[A-Za-z0-9_-]+$")
    lifecycle: LifecyclePolicy = Field(default_factory=LifecyclePolicy, description="Lifecycle")
    process: Process = Field(..., description="Module and params")
    register_key: str | None = Field(
        None, alias="register", pattern=REGISTER_PATTERN, description="State key for the summary"
    )
    when: str | bool | None = Field(None, description="Condition, braced or bare")
    loop: list[Any] | str | None = Field(None, description="A list or a template yielding one")
    loop_control: LoopControl | None = Field(None, description="loop_var and parallel")
    retry: RetryConfig | None = Field(None, description="Retry on error")
    timeout: Duration | None = Field(None, description="Per-attempt timeout")
    ignore_errors: bool = Field(
        False, description="A failure does not fail the run or block dependents"
    )
    stream_inputs: list[WorkloadName] = Field(
        default_factory=list, description="Producers to consume"
    )
    depends_on: list[WorkloadName] = Field(default_factory=list, description="Explicit ordering")
    state_policy: StatePolicy | None = Field(
        None, description="Overrides the playbook's state policy"
    )
    security_context: dict[str, Any] | None = Field(None, description="Sandboxing (daemon only)")

    @field_validator("stream_inputs", "depends_on")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for v in value:
            if v in seen:
                raise ValueError(f"'{v}' is listed twice")
            seen.add(v)
        return value


class Playbook(_Model):
    """A GXO playbook."""

    schema_version: Literal["1.0.0", "v1.0.0"] = Field(
        ..., alias="schemaVersion", description='Must be "1.0.0"'
    )
    name: str = Field(..., min_length=1, description="Playbook name")
    vars: dict[str, Any] = Field(default_factory=dict, description="Playbook variables")
    state_policy: StatePolicy = Field(
        default_factory=StatePolicy, description="Default state policy"
    )
    channel_policy: ChannelPolicy = Field(default_factory=ChannelPolicy, description="Stream links")
    workloads: list[Workload] = Field(..., min_length=1, description="The workloads")

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if not re.match(REGISTER_PATTERN, str(key)):
                raise ValueError(f"variable name {key!r} must match {REGISTER_PATTERN}")
        return value

    def workload(self, name: str) -> Workload:
        for w in self.workloads:
            if w.name == name:
                return w
        raise KeyError(name)
