"""``dns:query``: look up DNS records (dnspython, async)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from gxo.config.durations import Duration
from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register

if TYPE_CHECKING:
    import dns.message
    import dns.rdata

TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "PTR", "SOA", "CAA")
_NAME_TYPES = frozenset({"CNAME", "NS", "PTR"})
RESOLV_CONF = "/etc/resolv.conf"  # where the default server comes from


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


@register("dns:query", layer="protocol")
class DnsQuery(Module):
    """Look up DNS records of a name, from the system resolver or a given server.

    One query is sent (UDP, retried over TCP when the answer is truncated, or
    TCP only with ``tcp: true``) to ``server`` (default: the first nameserver of
    ``/etc/resolv.conf``). The summary's ``answers`` are the values of the
    records of the asked ``type`` (an ``A`` query of an alias also returns the
    ``CNAME`` in ``records``, not in ``answers``); ``records`` has every record
    of the answer section as ``{name, type, ttl, value}``. Names are given
    without their final dot. Values: an address (A, AAAA), a name (CNAME, NS,
    PTR), ``"10 mail.example.com"`` (MX), the joined text (TXT),
    ``"priority weight port target"`` (SRV), ``"mname rname serial refresh
    retry expire minimum"`` (SOA), ``'0 issue "ca.example"'`` (CAA).

    A ``PTR`` query of an IP address asks for its reverse name
    (``4.3.2.1.in-addr.arpa``). A name that does not exist (NXDOMAIN) fails the
    workload unless ``allow_nxdomain: true`` (then ``answers`` is empty and
    ``rcode`` is ``NXDOMAIN``); any other error code (SERVFAIL, REFUSED) fails
    it. No answer within ``timeout`` fails it too.

    Example:
        - name: mx
          process:
            module: dns:query
            params: { name: example.com, type: MX }
          register: mx
        - name: internal
          process:
            module: dns:query
            params:
              name: db.internal.example
              server: 10.0.0.53
              timeout: 2s
              allow_nxdomain: true
    """

    class Params(ModuleParams):
        name: str = Field(
            ...,
            min_length=1,
            description="The name to look up (an IP address for a PTR query)",
        )
        type: Annotated[Literal[TYPES], BeforeValidator(_upper)] = Field(  # type: ignore[valid-type]
            "A",
            description="Record type: A, AAAA, CNAME, MX, TXT, NS, SRV, PTR, SOA or CAA",
        )
        server: str | None = Field(
            None,
            min_length=1,
            description="IP address of the DNS server to ask (default: the system's first nameserver)",
        )
        port: int = Field(53, ge=1, le=65535, description="Port of the DNS server")
        timeout: Duration = Field(
            "5s", validate_default=True, description="Time to wait for the answer (2s, 500ms)"
        )
        tcp: bool = Field(False, description="Ask over TCP instead of UDP")
        allow_nxdomain: bool = Field(
            False,
            description="A name that does not exist is not a failure (empty answers, rcode NXDOMAIN)",
        )

        @field_validator("server")
        @classmethod
        def _address(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise ValueError(
                        f"server must be an IP address (e.g. 127.0.0.53), got {value!r}"
                    ) from None
            return value

        @field_validator("timeout")
        @classmethod
        def _positive(cls, value: float) -> float:
            if value <= 0:
                raise ValueError("timeout must be more than 0")
            return value

    summary = {
        "answers": "values of the records of the asked type",
        "records": "every answer record: {name, type, ttl, value}",
        "rcode": "the response code: NOERROR, NXDOMAIN ...",
        "name": "the name asked (absolute, without the final dot)",
        "type": "the record type asked",
        "server": "the server that answered (address:port)",
        "tcp": "true when the answer came over TCP",
        "latency_ms": "time from sending the query to the answer",
    }

    check_mode = CheckMode.safe  # a lookup changes nothing: it runs under --check

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        import time

        import dns.asyncquery
        import dns.exception
        import dns.message
        import dns.name
        import dns.rcode
        import dns.rdatatype
        import dns.reversename

        qname = _query_name(ctx, params)
        server = params.server
        if server is None:
            server = await ctx.to_thread(_system_nameserver, ctx)
        where = f"{server}:{params.port}" if ":" not in server else f"[{server}]:{params.port}"
        query = dns.message.make_query(qname, dns.rdatatype.from_text(params.type))
        started = time.perf_counter()
        used_tcp = params.tcp
        try:
            if params.tcp:
                response = await dns.asyncquery.tcp(
                    query, server, timeout=params.timeout, port=params.port
                )
            else:
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    query, server, timeout=params.timeout, port=params.port
                )
        except dns.exception.Timeout:
            raise ctx.fail(
                f"DNS query {params.type} {_text(qname)} to {where} timed out after {params.timeout:g}s"
            ) from None
        except (OSError, dns.exception.DNSException) as exc:
            raise ctx.fail(
                f"DNS query {params.type} {_text(qname)} to {where} failed: {exc}"
            ) from None
        latency = (time.perf_counter() - started) * 1000
        records = _records(response)
        rcode = dns.rcode.to_text(response.rcode())
        summary = {
            "answers": [r["value"] for r in records if r["type"] == params.type],
            "records": records,
            "rcode": rcode,
            "name": _text(qname),
            "type": params.type,
            "server": where,
            "tcp": used_tcp,
            "latency_ms": round(latency, 3),
        }
        ctx.log(
            f"{params.type} {_text(qname)} @{where} -> {rcode}, {len(summary['answers'])} answer(s)"
        )
        if rcode == "NXDOMAIN" and not params.allow_nxdomain:
            raise ctx.fail(
                f"{_text(qname)} does not exist (NXDOMAIN from {where}); "
                "set allow_nxdomain: true to accept it",
                summary=summary,
            )
        if rcode not in ("NOERROR", "NXDOMAIN"):
            raise ctx.fail(
                f"DNS query {params.type} {_text(qname)} to {where} answered {rcode}",
                summary=summary,
            )
        return summary


def _query_name(ctx: ModuleContext, params: DnsQuery.Params) -> Any:
    import dns.exception
    import dns.name
    import dns.reversename

    if params.type == "PTR":
        try:
            ipaddress.ip_address(params.name)
        except ValueError:
            pass
        else:
            return dns.reversename.from_address(params.name)
    try:
        return dns.name.from_text(params.name)
    except dns.exception.DNSException as exc:
        raise ctx.fail(f"invalid name {params.name!r} (param name): {exc}") from None


def _system_nameserver(ctx: ModuleContext) -> str:
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver(filename=RESOLV_CONF)
    except dns.resolver.NoResolverConfiguration:
        raise ctx.fail(f"no nameserver configured in {RESOLV_CONF}: set server") from None
    return str(resolver.nameservers[0])


def _text(name: Any) -> str:
    text = name.to_text(omit_final_dot=True) if hasattr(name, "to_text") else str(name)
    return text or "."


def _records(response: dns.message.Message) -> list[dict[str, Any]]:
    import dns.rdatatype

    out = []
    for rrset in response.answer:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        for rdata in rrset:
            out.append(
                {
                    "name": _text(rrset.name),
                    "type": rtype,
                    "ttl": rrset.ttl,
                    "value": _value(rtype, rdata),
                }
            )
    return out


def _value(rtype: str, rdata: dns.rdata.Rdata) -> str:
    r: Any = rdata
    if rtype in _NAME_TYPES:
        return _text(r.target)
    if rtype == "MX":
        return f"{r.preference} {_text(r.exchange)}"
    if rtype == "TXT":
        return b"".join(r.strings).decode("utf-8", "replace")
    if rtype == "SRV":
        return f"{r.priority} {r.weight} {r.port} {_text(r.target)}"
    if rtype == "SOA":
        return (
            f"{_text(r.mname)} {_text(r.rname)} {r.serial} {r.refresh} "
            f"{r.retry} {r.expire} {r.minimum}"
        )
    return str(r.to_text())
