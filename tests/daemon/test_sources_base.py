"""The event-source interface: payload decoding, the scheme registry, template value."""

from __future__ import annotations

import pytest

from gxo.daemon.sources import base
from gxo.daemon.sources.base import Event, SourceError, decode_payload, open_source


def test_decode_payload_json_text_and_bytes() -> None:
    assert decode_payload(b'{"a": [1, 2]}') == ({"a": [1, 2]}, None)
    assert decode_payload(b"plain text") == ("plain text", None)
    assert decode_payload(b"") == ("", None)
    assert decode_payload(b"\xff\x00") == (None, "/wA=")


def test_event_template_value_has_b64_only_for_bytes() -> None:
    event = Event(id="1", source="s://", subject="x", data={"k": 1}, headers={"h": "v"})
    value = event.as_template_value()
    assert value["data"] == {"k": 1} and "data_b64" not in value
    assert value["received_at"].endswith("Z")
    raw = Event(id="2", source="s://", subject="x", data=None, data_b64="AA==")
    assert raw.as_template_value()["data_b64"] == "AA=="


def test_unknown_scheme_is_a_clear_error_with_credentials_redacted() -> None:
    with pytest.raises(SourceError) as info:
        open_source("zz://user:hunter2@host/x", name="w")
    assert "hunter2" not in str(info.value)
    assert "unknown scheme 'zz'" in str(info.value)


def test_registered_factory_gets_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    def factory(url: str, **kwargs: object) -> object:
        seen.update(kwargs, url=url)
        return object()

    monkeypatch.setitem(base._FACTORIES, "memtest", factory)
    open_source("memtest://q", name="w", max_concurrency=3, group="g")
    assert seen == {"url": "memtest://q", "name": "w", "max_concurrency": 3, "group": "g"}


def test_factory_value_error_becomes_source_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def factory(url: str, **kwargs: object) -> object:
        raise ValueError("bad query parameter 'x'")

    monkeypatch.setitem(base._FACTORIES, "memtest", factory)
    with pytest.raises(SourceError, match="bad query parameter"):
        open_source("memtest://q", name="w")
