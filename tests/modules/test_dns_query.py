"""dns:query against a real DNS server on 127.0.0.1 (dnslib, UDP and TCP, in threads)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from gxo.modules.testkit import run_module

ZONE = """
www.example.test.        300 IN A     192.0.2.10
www.example.test.        300 IN A     192.0.2.11
www.example.test.        300 IN AAAA  2001:db8::10
alias.example.test.      120 IN CNAME www.example.test.
example.test.            600 IN MX    10 mail.example.test.
example.test.            600 IN MX    20 backup.example.test.
example.test.            60  IN TXT   "v=spf1 -all"
example.test.            86400 IN NS  ns1.example.test.
example.test.            3600 IN SOA  ns1.example.test. hostmaster.example.test. 2024010101 3600 600 86400 300
example.test.            300 IN CAA   0 issue "ca.example"
_sip._tcp.example.test.  60  IN SRV   10 5 5060 sip.example.test.
10.2.0.192.in-addr.arpa. 300 IN PTR   www.example.test.
"""
BIG_TXT = "x" * 200  # three of these do not fit in 512 bytes: UDP answers truncated


class Resolver(BaseResolver):
    """Answers from ZONE; follows a CNAME; NXDOMAIN for unknown names; SERVFAIL on demand."""

    def __init__(self) -> None:
        self.zone = RR.fromZone(ZONE)
        self.zone += [
            RR.fromZone(f'big.example.test. 60 IN TXT "{BIG_TXT}{i}"')[0] for i in range(3)
        ]
        self.protocols: list[str] = []

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        self.protocols.append(handler.protocol)
        reply = request.reply()
        qname, qtype = request.q.qname, QTYPE[request.q.qtype]
        if str(qname) == "servfail.example.test.":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        names = {str(rr.rname) for rr in self.zone}
        if str(qname) not in names:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for rr in self.zone:
            if rr.rname == qname and QTYPE[rr.rtype] == "CNAME" and qtype != "CNAME":
                reply.add_answer(rr)
                qname = rr.rdata.label
        for rr in self.zone:
            if rr.rname == qname and QTYPE[rr.rtype] == qtype:
                reply.add_answer(rr)
        return reply


class Handler(DNSHandler):
    udplen = 512  # a real server truncates over UDP: the module falls back to TCP


@dataclass
class Dns:
    port: int
    resolver: Resolver
    servers: list[DNSServer] = field(default_factory=list)


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


@pytest.fixture(scope="module")
def dns_server() -> Iterator[Dns]:
    resolver = Resolver()
    logger = DNSLogger(prefix=False, logf=lambda _s: None)
    port = _free_port()
    srv = Dns(port, resolver)
    for tcp in (False, True):
        server = DNSServer(
            resolver, address="127.0.0.1", port=port, tcp=tcp, logger=logger, handler=Handler
        )
        server.start_thread()
        srv.servers.append(server)
    try:
        yield srv
    finally:
        for server in srv.servers:
            server.stop()
            server.server.server_close()
            server.thread.join(5)


@pytest.fixture
def silent_udp() -> Iterator[int]:
    """A UDP socket that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


async def query(srv: Dns, **params: Any) -> Any:
    return await run_module(
        "dns:query", {"server": "127.0.0.1", "port": srv.port, "timeout": "3s", **params}
    )


# -- every record type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rtype", "answers", "ttl"),
    [
        ("www.example.test", "A", ["192.0.2.10", "192.0.2.11"], 300),
        ("www.example.test", "AAAA", ["2001:db8::10"], 300),
        ("alias.example.test", "CNAME", ["www.example.test"], 120),
        ("example.test", "MX", ["10 mail.example.test", "20 backup.example.test"], 600),
        ("example.test", "TXT", ["v=spf1 -all"], 60),
        ("example.test", "NS", ["ns1.example.test"], 86400),
        ("_sip._tcp.example.test", "SRV", ["10 5 5060 sip.example.test"], 60),
        ("10.2.0.192.in-addr.arpa", "PTR", ["www.example.test"], 300),
        (
            "example.test",
            "SOA",
            ["ns1.example.test hostmaster.example.test 2024010101 3600 600 86400 300"],
            3600,
        ),
        ("example.test", "CAA", ['0 issue "ca.example"'], 300),
    ],
)
async def test_record_types(
    dns_server: Dns, name: str, rtype: str, answers: list[str], ttl: int
) -> None:
    r = await query(dns_server, name=name, type=rtype.lower() if rtype == "MX" else rtype)
    assert r.ok, r.error
    s = r.summary
    assert sorted(s["answers"]) == answers
    assert (s["rcode"], s["type"], s["name"], s["tcp"]) == ("NOERROR", rtype, name, False)
    assert {rec["type"] for rec in s["records"]} == {rtype}
    assert all(rec["ttl"] == ttl and rec["name"] == name for rec in s["records"])
    assert s["server"] == f"127.0.0.1:{dns_server.port}"
    assert s["latency_ms"] > 0
    assert any(
        f"{rtype} {name} @127.0.0.1:{dns_server.port} -> NOERROR" in line for _, line in r.logs
    )


async def test_cname_chain_answers_only_the_asked_type(dns_server: Dns) -> None:
    r = await query(dns_server, name="alias.example.test")
    assert r.ok, r.error
    assert sorted(r.summary["answers"]) == ["192.0.2.10", "192.0.2.11"]
    assert r.summary["records"][0] == {
        "name": "alias.example.test",
        "type": "CNAME",
        "ttl": 120,
        "value": "www.example.test",
    }
    assert [rec["type"] for rec in r.summary["records"]] == ["CNAME", "A", "A"]


async def test_ptr_of_an_ip_address_asks_the_reverse_name(dns_server: Dns) -> None:
    r = await query(dns_server, name="192.0.2.10", type="PTR")
    assert r.ok, r.error
    assert r.summary["answers"] == ["www.example.test"]
    assert r.summary["name"] == "10.2.0.192.in-addr.arpa"


# -- transport ---------------------------------------------------------------------------


async def test_tcp_mode(dns_server: Dns) -> None:
    before = len(dns_server.resolver.protocols)
    r = await query(dns_server, name="www.example.test", tcp=True)
    assert r.ok, r.error
    assert r.summary["tcp"] is True
    assert sorted(r.summary["answers"]) == ["192.0.2.10", "192.0.2.11"]
    assert dns_server.resolver.protocols[before:] == ["tcp"]


async def test_truncated_udp_answer_is_retried_over_tcp(dns_server: Dns) -> None:
    before = len(dns_server.resolver.protocols)
    r = await query(dns_server, name="big.example.test", type="TXT")
    assert r.ok, r.error
    assert r.summary["tcp"] is True
    assert sorted(r.summary["answers"]) == [f"{BIG_TXT}{i}" for i in range(3)]
    assert dns_server.resolver.protocols[before:] == ["udp", "tcp"]


async def test_timeout_against_a_silent_server(silent_udp: int) -> None:
    started = time.monotonic()
    r = await run_module(
        "dns:query",
        {"name": "www.example.test", "server": "127.0.0.1", "port": silent_udp, "timeout": "300ms"},
    )
    assert time.monotonic() - started < 2
    assert r.status == "Failed"
    assert r.error == (
        f"DNS query A www.example.test to 127.0.0.1:{silent_udp} timed out after 0.3s"
    )


async def test_connection_refused_over_tcp(silent_udp: int) -> None:
    # Nothing listens on TCP there (the UDP socket holds the port number only for UDP).
    with socket.socket() as t:
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
    r = await run_module(
        "dns:query",
        {"name": "x.test", "server": "127.0.0.1", "port": port, "tcp": True, "timeout": "1s"},
    )
    assert r.status == "Failed"
    assert r.error.startswith(f"DNS query A x.test to 127.0.0.1:{port} failed: ")


# -- response codes ----------------------------------------------------------------------


async def test_nxdomain_fails_by_default(dns_server: Dns) -> None:
    r = await query(dns_server, name="nope.example.test")
    assert r.status == "Failed"
    assert r.error == (
        f"nope.example.test does not exist (NXDOMAIN from 127.0.0.1:{dns_server.port}); "
        "set allow_nxdomain: true to accept it"
    )
    assert r.summary["rcode"] == "NXDOMAIN"
    assert r.summary["answers"] == []


async def test_nxdomain_allowed(dns_server: Dns) -> None:
    r = await query(dns_server, name="nope.example.test", allow_nxdomain=True)
    assert r.ok, r.error
    assert (r.summary["rcode"], r.summary["answers"], r.summary["records"]) == ("NXDOMAIN", [], [])


async def test_servfail_is_a_failure(dns_server: Dns) -> None:
    r = await query(dns_server, name="servfail.example.test", allow_nxdomain=True)
    assert r.status == "Failed"
    assert r.error == (
        f"DNS query A servfail.example.test to 127.0.0.1:{dns_server.port} answered SERVFAIL"
    )


async def test_no_record_of_that_type_is_an_empty_answer(dns_server: Dns) -> None:
    r = await query(dns_server, name="www.example.test", type="MX")
    assert r.ok, r.error
    assert (r.summary["rcode"], r.summary["answers"]) == ("NOERROR", [])


# -- bad params --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"name": "x.test", "type": "ANY"}, "type"),
        ({"name": ""}, "name"),
        ({"name": "x.test", "server": "dns.example"}, "server must be an IP address"),
        ({"name": "x.test", "port": 0}, "port"),
        ({"name": "x.test", "timeout": "soon"}, "invalid duration"),
        ({"name": "x.test", "timeout": 0}, "timeout must be more than 0"),
        ({"name": "x.test", "recursive": True}, "recursive"),
    ],
)
async def test_bad_params(params: dict[str, Any], message: str) -> None:
    r = await run_module("dns:query", params)
    assert r.status == "Failed"
    assert message in r.error


async def test_invalid_name(dns_server: Dns) -> None:
    r = await query(dns_server, name="a..b")
    assert r.status == "Failed"
    assert r.error.startswith("invalid name 'a..b' (param name): ")


async def test_system_nameserver_is_the_default(
    dns_server: Dns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxo.modules.protocol import dns_query

    conf = tmp_path / "resolv.conf"
    conf.write_text("# test\nnameserver 127.0.0.1\n")
    monkeypatch.setattr(dns_query, "RESOLV_CONF", str(conf))
    r = await run_module("dns:query", {"name": "www.example.test", "port": dns_server.port})
    assert r.ok, r.error
    assert r.summary["server"] == f"127.0.0.1:{dns_server.port}"
    conf.write_text("search example.test\n")
    r = await run_module("dns:query", {"name": "www.example.test", "port": dns_server.port})
    assert r.status == "Failed"
    assert r.error == f"no nameserver configured in {conf}: set server"
