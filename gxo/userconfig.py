"""The user's GXO settings: ``~/.gxo/config.yaml``, or the file ``--config`` names.

Only what a command needs before it loads a playbook lives here::

    module_verification:
      mode: enforce            # enforce | warn | off (docs/module-signing.md)
      trusted_keys:
        - ~/.gxo/keys/signing.pub          # a file (relative: to this file's directory)
        - "ed25519:kq0y...="               # or the key itself
    modules_dirs:
      - ~/gxo-modules                      # third-party module packages (as --modules-dir)

A missing default file is no settings at all; a missing ``--config`` file, bad YAML or
an unknown key is a usage error naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gxo.errors import UsageError

__all__ = ["DEFAULT_PATH", "UserConfig", "VerificationMode", "load_user_config"]

DEFAULT_PATH = "~/.gxo/config.yaml"


class VerificationMode(StrEnum):
    enforce = "enforce"  # an unverifiable third-party module is an error (exit 2)
    warn = "warn"  # it is loaded, with a warning
    off = "off"  # third-party modules load without checks


class _ModuleVerification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: VerificationMode | None = Field(None, description="enforce, warn or off")
    trusted_keys: list[str] = Field(
        default_factory=list, description="Public key files or inline 'ed25519:...' keys"
    )


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    module_verification: _ModuleVerification = Field(
        default_factory=_ModuleVerification, description="Third-party module signature policy"
    )
    modules_dirs: list[str] = Field(
        default_factory=list, description="Directories of third-party module packages"
    )


@dataclass(frozen=True)
class UserConfig:
    """Settings read from a file; paths in it are relative to ``base_dir``."""

    path: Path | None = None
    mode: VerificationMode | None = None
    trusted_keys: tuple[str, ...] = ()
    modules_dirs: tuple[Path, ...] = ()
    base_dir: Path | None = field(default=None)


def load_user_config(path: Path | str | None = None) -> UserConfig:
    """``path`` (``--config``) or the default file; an empty config when neither exists."""
    import yaml

    explicit = path is not None
    target = Path(path if path is not None else DEFAULT_PATH).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"--config {target}: no such file") from None
        return UserConfig()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a UTF-8 text file"
        raise UsageError(f"config {target}: cannot read it ({reason})") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"config {target}{where}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"config {target}: expected a mapping of settings")
    try:
        settings = _Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UsageError(f"config {target}: {loc}: {first['msg']}") from None
    base = target.parent
    dirs = tuple(_relative(base, d) for d in settings.modules_dirs)
    return UserConfig(
        path=target,
        mode=settings.module_verification.mode,
        trusted_keys=tuple(settings.module_verification.trusted_keys),
        modules_dirs=dirs,
        base_dir=base,
    )


def _relative(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
