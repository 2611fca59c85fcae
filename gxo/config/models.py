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
from gxo.config.security import SecurityContext, merge, new_list

__all__ = [
    "NAME_PATTERN",
    "REGISTER_PATTERN",
    "AccessMode",
    "BackoffConfig",
    "CatchupPolicy",
    "ChannelPolicy",
    "ConcurrencyPolicy",
    "Import",
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
TAG_PATTERN = r"^[A-Za-z0-9_.:-]+$"
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


class ConcurrencyPolicy(StrEnum):
    forbid = "forbid"
    allow = "allow"
    # Not ``replace``: a member of that name would shadow str.replace on every member.
    replace_ = "replace"


class CatchupPolicy(StrEnum):
    none = "none"
    one = "one"
    all = "all"


class BackoffConfig(_Model):
    """Restart back-off of a supervised workload: capped exponential with jitter."""

    initial: Duration = Field(1.0, description="Delay before the first restart.")
    max: Duration = Field(300.0, description="Upper bound of the restart delay (jitter included).")
    factor: float = Field(2.0, ge=1.0, description="Multiplier applied after each restart.")
    jitter: float = Field(
        0.2, ge=0.0, le=1.0, description="± fraction of randomisation of each delay."
    )
    reset_after: Duration = Field(
        60.0,
        description="A run that lasts this long counts as healthy: the back-off starts again "
        "from 'initial'.",
    )

    @model_validator(mode="after")
    def _initial_within_max(self) -> BackoffConfig:
        if self.initial > self.max:
            raise ValueError("backoff 'initial' must not exceed 'max'")
        return self


# The fields each policy owns; a field set under another policy is an error.
_SUPERVISE_FIELDS = ("restart_policy", "backoff", "max_restarts", "restart_window", "stop_timeout")
_SCHEDULED_FIELDS = ("cron", "timezone", "concurrency", "catchup")
_EVENT_FIELDS = ("max_concurrency", "queue", "overflow", "filter")


class LifecyclePolicy(_Model):
    """How the kernel manages a workload: once, supervised, on events or on a schedule.

    The fields of ``supervise``, ``scheduled`` and ``event_driven`` are ``None`` under
    any other policy and filled with their defaults under their own, so a reconciler
    reads them directly and a dumped model validates again.
    """

    policy: Policy = Field(
        Policy.run_once, description="run_once | supervise | event_driven | scheduled"
    )
    restart_policy: RestartPolicy | None = Field(
        None, description="supervise only: always | on_failure | never (default on_failure)"
    )
    backoff: BackoffConfig | None = Field(
        None,
        description="supervise only: restart back-off "
        "(default {initial: 1s, max: 5m, factor: 2.0, jitter: 0.2, reset_after: 60s})",
    )
    max_restarts: int | None = Field(
        None,
        ge=0,
        description="supervise only: more restarts than this within restart_window is a crash "
        "loop and the workload becomes Failed (default 5)",
    )
    restart_window: Duration | None = Field(
        None, description="supervise only: the window of the crash-loop guard (default 60s)"
    )
    stop_timeout: Duration | None = Field(
        None,
        description="supervise only: wait after SIGTERM before SIGKILL on stop (default 10s)",
    )
    cron: str | None = Field(
        None,
        description="scheduled only: 5-field cron, @hourly/@daily/@weekly/@monthly/@yearly/"
        "@annually/@midnight, or '@every <duration>' (e.g. @every 30s)",
    )
    timezone: str | None = Field(
        None,
        description="scheduled only: IANA time zone of the cron expression, e.g. Europe/Berlin "
        "(default: the daemon's local time zone)",
    )
    concurrency: ConcurrencyPolicy | None = Field(
        None,
        description="scheduled only: forbid | allow | replace a still-running instance when "
        "the next fire comes (default forbid)",
    )
    catchup: CatchupPolicy | None = Field(
        None,
        description="scheduled only: none | one | all fires missed while the daemon was down "
        "(default none; 'all' runs at most the 1000 most recent)",
    )
    source: str | None = Field(None, description="event_driven only: the event source")
    max_concurrency: int | None = Field(
        None, ge=1, description="event_driven only: instances running at once (default 4)"
    )
    queue: int | None = Field(
        None,
        ge=1,
        description="event_driven only: events waiting for a free instance slot (default 1000)",
    )
    overflow: OverflowStrategy | None = Field(
        None,
        description="event_driven only: block (stop reading the source) | drop_new | "
        "drop_oldest when the queue is full (default block; dropped events are acked)",
    )
    filter: str | bool | None = Field(
        None,
        description="event_driven only: condition over 'event', braced or bare like 'when'; "
        "events it rejects are acked and counted, no instance starts",
    )

    @field_validator("filter")
    @classmethod
    def _valid_filter(cls, value: str | bool | None) -> str | bool | None:
        if isinstance(value, str):
            from gxo.errors import TemplateError
            from gxo.template import find_references

            try:
                find_references(value, bare=True)
            except TemplateError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            # Imported here: only playbooks with a schedule pay for croniter.
            from gxo.config.cron import check_cron

            check_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            from gxo.config.cron import check_timezone

            check_timezone(value)
        return value

    @field_validator("restart_window")
    @classmethod
    def _positive_window(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("restart_window must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _fields_match_policy(self) -> LifecyclePolicy:
        if self.policy == Policy.scheduled and not self.cron:
            raise ValueError("lifecycle 'scheduled' needs a 'cron' expression")
        if self.policy == Policy.event_driven and not self.source:
            raise ValueError("lifecycle 'event_driven' needs a 'source'")
        if self.source and self.policy != Policy.event_driven:
            raise ValueError("'source' is only valid with policy 'event_driven'")
        for policy, owned in (
            (Policy.supervise, _SUPERVISE_FIELDS),
            (Policy.scheduled, _SCHEDULED_FIELDS),
            (Policy.event_driven, _EVENT_FIELDS),
        ):
            wrong = [f for f in owned if getattr(self, f) is not None]
            if wrong and self.policy != policy:
                keys = " and ".join(f"'{f}'" for f in wrong)
                verb = "is" if len(wrong) == 1 else "are"
                raise ValueError(f"{keys} {verb} only valid with policy '{policy.value}'")
        if self.policy == Policy.supervise:
            self._fill(
                restart_policy=RestartPolicy.on_failure,
                backoff=BackoffConfig(),
                max_restarts=5,
                restart_window=60.0,
                stop_timeout=10.0,
            )
        elif self.policy == Policy.scheduled:
            self._fill(concurrency=ConcurrencyPolicy.forbid, catchup=CatchupPolicy.none)
        elif self.policy == Policy.event_driven:
            self._fill(max_concurrency=4, queue=1000, overflow=OverflowStrategy.block)
        return self

    def _fill(self, **defaults: Any) -> None:
        # Bypasses __setattr__ so the defaults do not count as "set" by the author.
        for key, value in defaults.items():
            if getattr(self, key) is None:
                self.__dict__[key] = value


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
    until: str | None = Field(
        None,
        description="Condition over the attempt's summary ('result'), braced or bare: "
        "retry while it is false",
    )

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
    when: str | bool | None = Field(
        None,
        description="Condition, braced or bare; may call the status functions success(), "
        "failure(), always(), cancelled(), paused()",
    )
    loop: list[Any] | dict[str, Any] | str | None = Field(
        None,
        description="A list, a mapping (one {key, value} item per entry) or a template "
        "yielding one",
    )
    loop_control: LoopControl | None = Field(None, description="loop_var and parallel")
    retry: RetryConfig | None = Field(None, description="Retry on error")
    timeout: Duration | None = Field(None, description="Per-attempt timeout")
    ignore_errors: bool = Field(
        False, description="A failure does not fail the run or block dependents"
    )
    stream_inputs: list[WorkloadName] = Field(
        default_factory=new_list, description="Producers to consume"
    )
    depends_on: list[WorkloadName] = Field(
        default_factory=new_list, description="Explicit ordering"
    )
    state_policy: StatePolicy | None = Field(
        None, description="Overrides the playbook's state policy"
    )
    security_context: SecurityContext | None = Field(
        None, description="Sandbox the module (docs/sandbox.md); overrides the playbook's"
    )
    tags: list[Annotated[str, Field(pattern=TAG_PATTERN)]] = Field(
        default_factory=new_list,
        description="Labels for selecting workloads: gxo run --tags / --skip-tags",
    )

    @field_validator("loop")
    @classmethod
    def _mapping_items(cls, value: Any) -> Any:
        # Like Ansible's dict2items: a mapping loops over {key, value} items.
        if isinstance(value, dict):
            return [{"key": k, "value": v} for k, v in value.items()]
        return value

    @field_validator("stream_inputs", "depends_on")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        for v in value:
            if v in seen:
                raise ValueError(f"'{v}' is listed twice")
            seen.add(v)
        return value


class Import(_Model):
    """Another playbook file whose workloads join this one (docs/authoring.md)."""

    path: str = Field(
        ..., min_length=1, description="The playbook file, relative to the importing file"
    )
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Vars of the imported file, scoped to its workloads"
    )
    prefix: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
        description="Prepended to the imported workload names, register keys and vars",
    )


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
    imports: list[Import | str] = Field(
        default_factory=new_list,
        description="Other playbook files whose workloads join this one: "
        "{path, vars, prefix} (or just the path)",
    )
    security_context: SecurityContext | None = Field(
        None, description="Default sandbox of every workload (docs/sandbox.md)"
    )

    @model_validator(mode="after")
    def _default_security_context(self) -> Playbook:
        if self.security_context is not None:  # each workload merges over the default
            for w in self.workloads:
                w.security_context = merge(self.security_context, w.security_context)
        return self

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
