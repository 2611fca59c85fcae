"""Filters and tests added to the Jinja2 environment (Ansible users expect these)."""

from __future__ import annotations

import base64
import hashlib
import json
import os.path
from collections.abc import Mapping
from typing import Any

from gxo.template.limits import run_regex
from gxo.template.sizes import MAX_TEMPLATE_SIZE, check_json_indent, too_large

__all__ = ["FILTERS", "GLOBALS", "STATUS_FUNCTIONS", "TESTS", "is_truthy", "now"]

_FALSY_STRINGS = frozenset({"", "false", "0", "none", "no", "off"})


def is_truthy(value: Any) -> bool:
    """SPEC truthiness: false, 0, "", "false", "0", none and empty collections are falsy."""
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip().lower() not in _FALSY_STRINGS
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, list | tuple | dict | set):
        return len(value) > 0
    return bool(value)


def _to_json(value: Any, indent: int | None = None, sort_keys: bool = False) -> str:
    check_json_indent(value, indent)  # indent=999999999 repeats on every line
    return json.dumps(value, indent=indent, sort_keys=sort_keys, default=str)


def _from_json(value: str) -> Any:
    return json.loads(value)


def _to_yaml(value: Any) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(value, buf)
    return buf.getvalue()


def _from_yaml(value: str) -> Any:
    # The hardened reader: an alias bomb or deep nesting in rendered data is refused.
    from gxo.config.yamlsafe import load_yaml_text
    from gxo.errors import GxoError

    try:
        return load_yaml_text(str(value), "from_yaml")
    except GxoError as exc:
        raise ValueError(str(exc)) from None  # "from_yaml:LINE:COL: why"


def _b64encode(value: str | bytes) -> str:
    data = value.encode() if isinstance(value, str) else value
    return base64.b64encode(data).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", "replace")


# The `regex` package (re-compatible syntax) because it takes a timeout: a
# backtracking pattern ('(a|aa)+$') would otherwise block the event loop for hours.
# Imported on first use: it costs ~9 ms of every `gxo run` start-up otherwise.


def _regex_replace(
    value: str, pattern: str, replacement: str = "", ignorecase: bool = False
) -> str:
    import regex

    flags = regex.IGNORECASE if ignorecase else 0
    text = str(value)
    size = [len(text)]

    def expand(match: Any) -> str:
        # Each substitution is sized as it is made: 'a' -> 1,000 characters on a
        # long string would otherwise build gigabytes before any check.
        out: str = match.expand(replacement)
        size[0] += len(out) - (match.end() - match.start())
        if size[0] > MAX_TEMPLATE_SIZE:
            raise too_large("regex_replace")
        return out

    return run_regex(regex.sub, pattern, expand, text, flags=flags)  # type: ignore[no-any-return]


def _regex_search(value: str, pattern: str, ignorecase: bool = False) -> str | None:
    import regex

    flags = regex.IGNORECASE if ignorecase else 0
    m = run_regex(regex.search, pattern, str(value), flags=flags)
    return m.group(0) if m else None


def _combine(*dicts: Mapping[str, Any], recursive: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            if recursive and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
                out[k] = _combine(out[k], v, recursive=True)
            else:
                out[k] = v
    return out


def _dict2items(value: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in value.items()]


def _items2dict(value: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {item["key"]: item["value"] for item in value}


def _hash(value: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, str(value).encode()).hexdigest()


def _to_bool(value: Any) -> bool:
    return is_truthy(value)


# -- time --------------------------------------------------------------------------


def now(tz: str | None = None, fmt: str | None = None) -> Any:
    """``now()``: the current time, an aware datetime in UTC; ``now(tz='Europe/Paris')``
    in that IANA zone; ``fmt`` formats it with strftime (``now(fmt='%Y-%m-%d')``)."""
    from datetime import UTC, datetime

    zone: Any = UTC
    if tz is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone = ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"now(): unknown time zone {tz!r} (an IANA name, e.g. 'Europe/Paris')"
            ) from None
    value = datetime.now(zone)
    if fmt is not None:
        check_format_size(fmt)
        return value.strftime(str(fmt))
    return value


def check_format_size(fmt: Any) -> None:
    if len(str(fmt)) > 1000:
        raise ValueError("now(): fmt is longer than 1000 characters")


# -- IP addresses (the basics of Ansible's ipaddr filters, with the stdlib) ----------

_IP_QUERIES = (
    "", "address", "network", "netmask", "prefix", "broadcast", "version", "host",
    "private", "public", "size", "cidr",
)  # fmt: skip


def _ip_parse(value: Any) -> Any:
    import ipaddress

    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    try:
        if "/" in text:
            return ipaddress.ip_interface(text)
        return ipaddress.ip_interface(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ip_query(value: Any, query: str, version: int | None) -> Any:
    if query not in _IP_QUERIES:
        known = ", ".join(repr(q) for q in _IP_QUERIES)
        raise ValueError(f"ipaddr: unknown query {query!r} (one of: {known})")
    iface = _ip_parse(value)
    if iface is None or (version is not None and iface.version != version):
        return False
    text = str(value).strip()
    if query == "":
        # normalised: '2001:DB8::1' -> '2001:db8::1'; a network keeps its prefix
        return str(iface) if "/" in text else str(iface.ip)
    if query == "address":
        return str(iface.ip)
    if query == "network":
        return str(iface.network.network_address)
    if query == "cidr":
        return str(iface.network)
    if query == "netmask":
        return str(iface.network.netmask)
    if query == "prefix":
        return iface.network.prefixlen
    if query == "broadcast":
        return str(iface.network.broadcast_address) if iface.version == 4 else False
    if query == "version":
        return iface.version
    if query == "size":
        return iface.network.num_addresses
    if query == "host":
        return f"{iface.ip}/{iface.network.prefixlen}"
    if query == "private":
        return value if iface.ip.is_private else False
    return value if iface.ip.is_global else False  # public


def _ip_filter(version: int | None) -> Any:
    def ip_filter(value: Any, query: str = "") -> Any:
        if isinstance(value, list | tuple):  # a list keeps the items that qualify
            out = [_ip_query(v, query, version) for v in value]
            return [v for v in out if v is not False]
        return _ip_query(value, query, version)

    ip_filter.__name__ = {None: "ipaddr", 4: "ipv4", 6: "ipv6"}[version]
    return ip_filter


FILTERS = {
    "to_json": _to_json,
    "from_json": _from_json,
    "to_yaml": _to_yaml,
    "from_yaml": _from_yaml,
    "b64encode": _b64encode,
    "b64decode": _b64decode,
    "regex_replace": _regex_replace,
    "regex_search": _regex_search,
    "combine": _combine,
    "dict2items": _dict2items,
    "items2dict": _items2dict,
    "basename": os.path.basename,
    "dirname": os.path.dirname,
    "hash": _hash,
    "bool": _to_bool,
    "ipaddr": _ip_filter(None),
    "ipv4": _ip_filter(4),
    "ipv6": _ip_filter(6),
}

# ``when`` only: the outcome of a workload's dependencies (gxo/engine/runner.py binds
# them per workload). Elsewhere they raise: they have no meaning outside a ``when``.
STATUS_FUNCTIONS = ("success", "failure", "always", "cancelled", "paused")


def _status_outside_when(name: str) -> Any:
    def call(*args: Any, **kwargs: Any) -> bool:
        raise ValueError(
            f"{name}() is a status function: it can only be used in a workload's 'when'"
        )

    call.__name__ = name
    return call


GLOBALS: dict[str, Any] = {"now": now, **{n: _status_outside_when(n) for n in STATUS_FUNCTIONS}}

TESTS = {"truthy": is_truthy, "falsy": lambda v: not is_truthy(v)}
