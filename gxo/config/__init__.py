"""Configuration: playbook models, loading, validation, schema and legacy migration."""

from gxo.config._plugins import skip_empty_plugin_scan

skip_empty_plugin_scan()  # before the first model is built

from gxo.config.loader import LoadedPlaybook, load_playbook  # noqa: E402
from gxo.config.models import (  # noqa: E402
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
