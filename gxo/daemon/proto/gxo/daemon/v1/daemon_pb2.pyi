from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyPlaybookRequest(_message.Message):
    __slots__ = ("source", "path", "variables_json")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_JSON_FIELD_NUMBER: _ClassVar[int]
    source: str
    path: str
    variables_json: str
    def __init__(self, source: _Optional[str] = ..., path: _Optional[str] = ..., variables_json: _Optional[str] = ...) -> None: ...

class ApplyPlaybookResponse(_message.Message):
    __slots__ = ("playbook", "added", "changed", "removed", "unchanged", "warnings", "started")
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    added: _containers.RepeatedScalarFieldContainer[str]
    changed: _containers.RepeatedScalarFieldContainer[str]
    removed: _containers.RepeatedScalarFieldContainer[str]
    unchanged: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    started: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, playbook: _Optional[str] = ..., added: _Optional[_Iterable[str]] = ..., changed: _Optional[_Iterable[str]] = ..., removed: _Optional[_Iterable[str]] = ..., unchanged: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., started: _Optional[_Iterable[str]] = ...) -> None: ...

class RemovePlaybookRequest(_message.Message):
    __slots__ = ("playbook",)
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    def __init__(self, playbook: _Optional[str] = ...) -> None: ...

class RemovePlaybookResponse(_message.Message):
    __slots__ = ("playbook", "removed")
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, playbook: _Optional[str] = ..., removed: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkloadStatus(_message.Message):
    __slots__ = ("playbook", "workload", "policy", "status", "reason", "restarts", "last_exit", "next_run", "updated_at", "last_run_id", "details_json")
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    workload: str
    policy: str
    status: str
    reason: str
    restarts: int
    last_exit: int
    next_run: str
    updated_at: str
    last_run_id: str
    details_json: str
    def __init__(self, playbook: _Optional[str] = ..., workload: _Optional[str] = ..., policy: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., restarts: _Optional[int] = ..., last_exit: _Optional[int] = ..., next_run: _Optional[str] = ..., updated_at: _Optional[str] = ..., last_run_id: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class ListWorkloadsRequest(_message.Message):
    __slots__ = ("playbook",)
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    def __init__(self, playbook: _Optional[str] = ...) -> None: ...

class ListWorkloadsResponse(_message.Message):
    __slots__ = ("workloads",)
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.RepeatedCompositeFieldContainer[WorkloadStatus]
    def __init__(self, workloads: _Optional[_Iterable[_Union[WorkloadStatus, _Mapping]]] = ...) -> None: ...

class GetWorkloadStatusRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "playbook", "workload", "status", "started_at", "ended_at", "reason", "report_json", "member")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    playbook: str
    workload: str
    status: str
    started_at: str
    ended_at: str
    reason: str
    report_json: str
    member: str
    def __init__(self, run_id: _Optional[str] = ..., playbook: _Optional[str] = ..., workload: _Optional[str] = ..., status: _Optional[str] = ..., started_at: _Optional[str] = ..., ended_at: _Optional[str] = ..., reason: _Optional[str] = ..., report_json: _Optional[str] = ..., member: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("name", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class StreamEventsRequest(_message.Message):
    __slots__ = ("playbook", "workload", "follow", "tail")
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    playbook: str
    workload: str
    follow: bool
    tail: int
    def __init__(self, playbook: _Optional[str] = ..., workload: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time", "kind", "playbook", "workload", "run_id", "data_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: float
    kind: str
    playbook: str
    workload: str
    run_id: str
    data_json: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[float] = ..., kind: _Optional[str] = ..., playbook: _Optional[str] = ..., workload: _Optional[str] = ..., run_id: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("name", "tail", "follow")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    name: str
    tail: int
    follow: bool
    def __init__(self, name: _Optional[str] = ..., tail: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("time", "playbook", "workload", "run_id", "stream", "level", "line")
    TIME_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    time: float
    playbook: str
    workload: str
    run_id: str
    stream: str
    level: str
    line: str
    def __init__(self, time: _Optional[float] = ..., playbook: _Optional[str] = ..., workload: _Optional[str] = ..., run_id: _Optional[str] = ..., stream: _Optional[str] = ..., level: _Optional[str] = ..., line: _Optional[str] = ...) -> None: ...

class WorkloadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WorkloadActionResponse(_message.Message):
    __slots__ = ("status", "run_id", "message")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    status: WorkloadStatus
    run_id: str
    message: str
    def __init__(self, status: _Optional[_Union[WorkloadStatus, _Mapping]] = ..., run_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("status", "version", "pid", "uptime_s", "state", "playbooks", "workloads", "socket")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOKS_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    SOCKET_FIELD_NUMBER: _ClassVar[int]
    status: str
    version: str
    pid: int
    uptime_s: float
    state: str
    playbooks: int
    workloads: int
    socket: str
    def __init__(self, status: _Optional[str] = ..., version: _Optional[str] = ..., pid: _Optional[int] = ..., uptime_s: _Optional[float] = ..., state: _Optional[str] = ..., playbooks: _Optional[int] = ..., workloads: _Optional[int] = ..., socket: _Optional[str] = ...) -> None: ...

class Paused(_message.Message):
    __slots__ = ("token_id", "playbook", "workload", "run_id", "prompt", "since", "expires_at", "payload_schema_json", "approvers", "member")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAYBOOK_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    playbook: str
    workload: str
    run_id: str
    prompt: str
    since: str
    expires_at: str
    payload_schema_json: str
    approvers: _containers.RepeatedScalarFieldContainer[str]
    member: str
    def __init__(self, token_id: _Optional[str] = ..., playbook: _Optional[str] = ..., workload: _Optional[str] = ..., run_id: _Optional[str] = ..., prompt: _Optional[str] = ..., since: _Optional[str] = ..., expires_at: _Optional[str] = ..., payload_schema_json: _Optional[str] = ..., approvers: _Optional[_Iterable[str]] = ..., member: _Optional[str] = ...) -> None: ...

class ListPausedRequest(_message.Message):
    __slots__ = ("playbook_filter",)
    PLAYBOOK_FILTER_FIELD_NUMBER: _ClassVar[int]
    playbook_filter: str
    def __init__(self, playbook_filter: _Optional[str] = ...) -> None: ...

class ListPausedResponse(_message.Message):
    __slots__ = ("paused",)
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    paused: _containers.RepeatedCompositeFieldContainer[Paused]
    def __init__(self, paused: _Optional[_Iterable[_Union[Paused, _Mapping]]] = ...) -> None: ...

class ResumeWorkloadRequest(_message.Message):
    __slots__ = ("token", "run_id", "workload", "payload_json")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    token: str
    run_id: str
    workload: str
    payload_json: str
    def __init__(self, token: _Optional[str] = ..., run_id: _Optional[str] = ..., workload: _Optional[str] = ..., payload_json: _Optional[str] = ...) -> None: ...

class RejectWorkloadRequest(_message.Message):
    __slots__ = ("token", "run_id", "workload", "reason")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    token: str
    run_id: str
    workload: str
    reason: str
    def __init__(self, token: _Optional[str] = ..., run_id: _Optional[str] = ..., workload: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseDecision(_message.Message):
    __slots__ = ("pause", "state", "decided_by", "decided_at", "message")
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    pause: Paused
    state: str
    decided_by: str
    decided_at: str
    message: str
    def __init__(self, pause: _Optional[_Union[Paused, _Mapping]] = ..., state: _Optional[str] = ..., decided_by: _Optional[str] = ..., decided_at: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...
