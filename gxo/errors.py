"""GXO's error hierarchy.

Every error a user can provoke is a ``GxoError``; anything else escaping the
kernel is a bug. The CLI turns a ``GxoError`` into one readable message and an
exit code, never a traceback.

    GxoError
    ├── ConfigError                 the playbook cannot be used      (exit 2)
    │   ├── PlaybookSyntaxError     YAML does not parse
    │   ├── PlaybookValidationError wrong shape, unknown key, bad param, cycle, ...
    │   ├── MigrationError          legacy playbook cannot be migrated
    │   └── ModuleSignatureError    a third-party module is unsigned, tampered or untrusted
    ├── TemplateError               a template failed to compile or render
    │   └── UndefinedNameError      StrictUndefined: a name or attribute is missing
    ├── SecretError                 secret('NAME') cannot be resolved
    ├── ModuleError                 a module reported a failure while performing
    │   └── ModuleParamsError       rendered params do not match the module's model
    ├── StreamError                 misuse of a stream (write after close, ...)
    │   └── UpstreamFailedError     a stream producer failed; the consumer cannot go on
    ├── RegistryError               a module registration is invalid (raised at import)
    └── UsageError                  bad command-line input                (exit 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConfigError",
    "GxoError",
    "Location",
    "MigrationError",
    "ModuleError",
    "ModuleParamsError",
    "ModuleSignatureError",
    "PlaybookSyntaxError",
    "PlaybookValidationError",
    "RegistryError",
    "SecretError",
    "StreamError",
    "TemplateError",
    "UndefinedNameError",
    "UpstreamFailedError",
    "UsageError",
]


@dataclass(frozen=True)
class Location:
    """Where in a playbook file something is: 1-based line and column."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class GxoError(Exception):
    """Base of every error GXO reports to a user."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        workload: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.workload = workload
        self.warnings: list[str] = []  # printed before the error (e.g. legacy migration notes)

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        where = f"workload '{self.workload}': " if self.workload else ""
        return f"{prefix}{where}{self.message}"


class ConfigError(GxoError):
    exit_code = 2


class PlaybookSyntaxError(ConfigError):
    pass


class PlaybookValidationError(ConfigError):
    """One or more validation problems; ``problems`` holds each as its own error."""

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        workload: str | None = None,
        problems: list[GxoError] | None = None,
    ) -> None:
        super().__init__(message, location=location, workload=workload)
        self.problems = problems or []

    def __str__(self) -> str:
        if len(self.problems) > 1:
            return "\n".join(str(p) for p in self.problems)
        if self.problems:
            return str(self.problems[0])
        return super().__str__()


class MigrationError(ConfigError):
    pass


class ModuleSignatureError(ConfigError):
    """A third-party module package failed verification (docs/module-signing.md);
    raised before any of its code is imported."""

    def __init__(self, module: str, reason: str, *, path: str | None = None) -> None:
        where = f" ({path})" if path else ""
        super().__init__(f"third-party module package '{module}'{where}: {reason}")
        self.module = module
        self.reason = reason
        self.path = path


class TemplateError(GxoError):
    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        workload: str | None = None,
        param_path: str | None = None,
        template: str | None = None,
    ) -> None:
        super().__init__(message, location=location, workload=workload)
        self.param_path = param_path
        self.template = template

    def __str__(self) -> str:
        base = super().__str__()
        if self.param_path:
            prefix = f"{self.location}: " if self.location else ""
            where = f"workload '{self.workload}': " if self.workload else ""
            base = f"{prefix}{where}param '{self.param_path}': {self.message}"
        return base


class UndefinedNameError(TemplateError):
    def __init__(self, message: str, *, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.name = name


class SecretError(TemplateError):
    pass


class ModuleError(GxoError):
    """A module failed. ``summary`` keeps what it produced before failing (exec output)."""

    def __init__(self, message: str, *, summary: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.summary = summary


class ModuleParamsError(ModuleError):
    exit_code = 2


class StreamError(GxoError):
    pass


class UpstreamFailedError(StreamError):
    def __init__(self, producer: str) -> None:
        super().__init__(f"stream producer '{producer}' failed")
        self.producer = producer


class RegistryError(GxoError):
    pass


class UsageError(GxoError):
    exit_code = 2
