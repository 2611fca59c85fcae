"""Configuration: playbook models, loading, validation, schema and legacy migration."""

from gxo.config.loader import LoadedPlaybook, load_playbook
from gxo.config.models import (
    ChannelPolicy,
    LifecyclePolicy,
    LoopControl,
    Playbook,
    Process,
    RetryConfig,
    StatePolicy,
    Workload,
)

__all__ = [
    "ChannelPolicy",
    "LifecyclePolicy",
    "LoadedPlaybook",
    "LoopControl",
    "Playbook",
    "Process",
    "RetryConfig",
    "StatePolicy",
    "Workload",
    "load_playbook",
]
