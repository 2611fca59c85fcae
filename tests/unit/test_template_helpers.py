"""Template helpers: now(), ipaddr/ipv4/ipv6, and the ones that already existed
(to_yaml, regex_replace, regex_search, b64encode/b64decode, hash)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gxo.errors import TemplateError
from gxo.template.engine import TemplateEngine
from gxo.template.secrets import SecretRegistry

T = TemplateEngine()


def ev(expression: str, **context: Any) -> Any:
    return T.evaluate(expression, context)


def test_now_is_aware_utc_and_takes_a_zone_and_a_format() -> None:
    value = ev("now()")
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - value) < timedelta(seconds=5)
    paris = ev("now(tz='Europe/Paris')")
    assert paris.tzinfo.key == "Europe/Paris"  # type: ignore[union-attr]
    assert ev("now(fmt='%Y')") == str(datetime.now(UTC).year)
    assert T.render("{{ now().year }}-x", {}) == f"{datetime.now(UTC).year}-x"
    with pytest.raises(TemplateError, match="unknown time zone 'Mars/Olympus'"):
        ev("now(tz='Mars/Olympus')")
    with pytest.raises(TemplateError, match="fmt is longer than 1000"):
        ev("now(fmt='x' * 2000)")


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'192.168.1.7' | ipaddr", "192.168.1.7"),
        ("' 2001:DB8::1 ' | ipaddr", "2001:db8::1"),
        ("'10.0.0.5/24' | ipaddr", "10.0.0.5/24"),
        ("'nope' | ipaddr", False),
        ("none | ipaddr", False),
        ("true | ipaddr", False),
        ("'10.0.0.5/24' | ipaddr('address')", "10.0.0.5"),
        ("'10.0.0.5/24' | ipaddr('network')", "10.0.0.0"),
        ("'10.0.0.5/24' | ipaddr('cidr')", "10.0.0.0/24"),
        ("'10.0.0.5/24' | ipaddr('netmask')", "255.255.255.0"),
        ("'10.0.0.5/24' | ipaddr('prefix')", 24),
        ("'10.0.0.5/24' | ipaddr('broadcast')", "10.0.0.255"),
        ("'2001:db8::/64' | ipaddr('broadcast')", False),
        ("'10.0.0.5/30' | ipaddr('size')", 4),
        ("'10.0.0.5/24' | ipaddr('host')", "10.0.0.5/24"),
        ("'10.0.0.5' | ipaddr('version')", 4),
        ("'10.0.0.5' | ipaddr('private')", "10.0.0.5"),
        ("'8.8.8.8' | ipaddr('private')", False),
        ("'8.8.8.8' | ipaddr('public')", "8.8.8.8"),
        ("'::1' | ipv4", False),
        ("'::1' | ipv6", "::1"),
        ("'1.2.3.4' | ipv6", False),
        ("['1.2.3.4', 'x', '::1'] | ipv4", ["1.2.3.4"]),
        ("['1.2.3.4', 'x', '::1'] | ipaddr", ["1.2.3.4", "::1"]),
    ],
)
def test_ipaddr_filters(expression: str, expected: Any) -> None:
    assert ev(expression) == expected


def test_ipaddr_unknown_query_is_a_clear_error() -> None:
    with pytest.raises(TemplateError, match="ipaddr: unknown query 'nope'"):
        ev("'1.2.3.4' | ipaddr('nope')")


def test_existing_helpers_users_reach_for() -> None:
    assert ev("{'a': [1, 2]} | to_yaml") == "a:\n- 1\n- 2\n"
    assert ev("'v1.2.3' | regex_replace('^v', '')") == "1.2.3"
    assert ev("'id=42;' | regex_search('[0-9]+')") == "42"
    assert ev("'hi' | b64encode") == "aGk="
    assert ev("'aGk=' | b64decode") == "hi"
    assert ev("'abc' | hash('sha256')").startswith("ba7816bf")
    assert ev("'abc' | hash('md5')") == "900150983cd24fb0d6963f7d28e17f72"


def test_helpers_of_a_secret_stay_secret() -> None:
    registry = SecretRegistry(provider=lambda name: "s3cr3t-value" if name == "K" else None)
    engine = TemplateEngine(registry)
    encoded = engine.render("{{ secret('K') | b64encode }}", {})
    assert registry.is_secret(encoded)


def test_repl_completion_offers_the_new_names() -> None:
    from gxo.repl.completion import _GLOBALS

    for name in ("now", "success", "failure", "always", "cancelled", "paused"):
        assert name in _GLOBALS
    assert {"ipaddr", "ipv4", "ipv6"} <= set(T.env.filters)
