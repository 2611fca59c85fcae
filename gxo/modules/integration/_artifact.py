"""The artifact handle shared by ``artifact:upload`` and ``artifact:download``.

The leading underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ArtifactHandle", "parse_location"]

_LOCATION = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")
_CHECKSUM = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


class ArtifactHandle(BaseModel):
    """``{name, version, checksum, location, size}`` as ``artifact:upload`` returns it."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(..., min_length=1, description="Artifact name")
    version: str = Field(..., min_length=1, description="Artifact version")
    checksum: str = Field(..., description="SHA-256 of the file (64 hex digits)")
    location: str = Field(..., description="s3://bucket/key of the stored file")
    size: int = Field(..., ge=0, description="Size in bytes")

    @field_validator("checksum")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower()
        if not _CHECKSUM.match(value):
            raise ValueError("checksum must be a SHA-256 in hex (64 digits)")
        return value.removeprefix("sha256:")

    @field_validator("location")
    @classmethod
    def _s3(cls, value: str) -> str:
        if not _LOCATION.match(value):
            raise ValueError(f"location must be s3://bucket/key, got {value!r}")
        return value

    @field_validator("version", "name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return (
            str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        )


def parse_location(location: str) -> tuple[str, str]:
    """``s3://bucket/key`` → ``(bucket, key)``."""
    m = _LOCATION.match(location)
    if not m:
        raise ValueError(f"location must be s3://bucket/key, got {location!r}")
    return m.group("bucket"), m.group("key")
