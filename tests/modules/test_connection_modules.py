"""``connection:*``: real sockets on 127.0.0.1 through real runs (TCP, TLS, UDP, errors, fds)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gxo.api import Engine, EventBus, EventKind, load_playbook
from gxo.modules.testkit import run_module

HEAD = 'schemaVersion: "1.0.0"\nname: net\n'


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def fds_back_to(expected: int) -> int:
    for _ in range(500):
        if open_fds() <= expected:
            break
        await asyncio.sleep(0.01)
    return open_fds()


class Running:
    """A playbook running in this process; ``port(name)`` waits for a listener's port."""

    def __init__(self, engine: Engine, events: list[Any]) -> None:
        self.engine = engine
        self.events = events
        self.result: Any = None

    async def port(self, workload: str) -> int:
        for _ in range(500):
            for event in self.events:
                if event.workload == workload and event.kind == EventKind.WORKLOAD_SUMMARY:
                    port = (event.data.get("summary") or {}).get("port")
                    if port:
                        return int(port)
            await asyncio.sleep(0.01)
        raise AssertionError(f"{workload} never published its port: {self.events}")

    def state(self, name: str) -> Any:
        return self.engine.states[name]


@contextlib.asynccontextmanager
async def running(text: str, **extra_vars: Any) -> AsyncIterator[Running]:
    """Run ``text`` until the block ends, then cancel it (a service) and wait for the end."""
    loaded = load_playbook(text=HEAD + text, extra_names=set(extra_vars))
    bus = EventBus()
    events: list[Any] = []
    bus.add_listener(events.append)
    engine = Engine(loaded, bus=bus, extra_vars=extra_vars, workspace=Path.cwd())
    task = asyncio.create_task(engine.run())
    run = Running(engine, events)
    try:
        yield run
    finally:
        if not task.done():
            engine.cancel()
        run.result = await asyncio.wait_for(task, 20)


async def run_text(text: str, **extra_vars: Any) -> Any:
    loaded = load_playbook(text=HEAD + text, extra_names=set(extra_vars))
    return await Engine(loaded, extra_vars=extra_vars, workspace=Path.cwd()).run()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP server answering each line upper-cased; b'bye' closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.strip() == b"bye":
                    break
                writer.write(line.upper())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


# -- connection:open / write / read / close in one run ---------------------------------


CHAIN = """
workloads:
  - name: conn
    process: { module: connection:open, params: { address: "127.0.0.1:{{ port }}", timeout: 2s } }
    register: conn
  - name: send
    process:
      module: connection:write
      params: { connection_id: "{{ conn.connection_id }}", data: "ping {{ word }}\\nbye\\n" }
    register: sent
  - name: line
    depends_on: [send]
    process:
      module: connection:read
      params: { connection_id: "{{ conn.connection_id }}", read_until: "\\n", timeout: 2s }
    register: line
  - name: rest
    depends_on: [line]
    process: { module: connection:read, params: { connection_id: "{{ conn.connection_id }}", encoding: hex } }
    register: rest
  - name: hang_up
    depends_on: [rest]
    process: { module: connection:close, params: { connection_id: "{{ conn.connection_id }}" } }
"""


async def test_open_write_read_close_chain(echo_port: int) -> None:
    before = open_fds()
    result = await run_text(CHAIN, port=echo_port, word="secret-ish")
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    conn = result.states["conn"].summary
    assert conn["network"] == "tcp" and conn["remote_addr"] == f"127.0.0.1:{echo_port}"
    assert result.states["send"].summary["bytes_written"] == len("ping secret-ish\nbye\n")
    line = result.states["line"].summary
    assert line == {
        "connection_id": conn["connection_id"],
        "data": "PING SECRET-ISH\n",
        "bytes_read": 16,
        "eof": False,
    }
    assert result.states["rest"].summary["eof"] is True  # the server closed after bye
    assert result.states["rest"].summary["data"] == ""
    assert result.states["hang_up"].summary == {
        "connection_id": conn["connection_id"],
        "closed": True,
        "was_open": True,
    }
    assert await fds_back_to(before) <= before


async def test_connections_left_open_are_closed_at_run_end(echo_port: int) -> None:
    before = open_fds()
    text = """
workloads:
  - name: conns
    loop: [1, 2, 3, 4, 5]
    process: { module: connection:open, params: { address: 127.0.0.1, port: "{{ port }}" } }
"""
    result = await run_text(text, port=echo_port)
    assert result.status == "Completed"
    assert await fds_back_to(before) <= before  # no close anywhere: the run end did it


async def test_size_read_and_binary_write(echo_port: int) -> None:
    text = """
workloads:
  - name: conn
    process: { module: connection:open, params: { address: "127.0.0.1:{{ port }}" } }
    register: conn
  - name: send
    process:
      module: connection:write
      params: { connection_id: "{{ conn.connection_id }}", data_b64: "{{ 'abc\\n' | b64encode }}" }
  - name: three
    depends_on: [send]
    process: { module: connection:read, params: { connection_id: "{{ conn.connection_id }}", size: 3, encoding: base64 } }
    register: three
  - name: nl
    depends_on: [three]
    process: { module: connection:read, params: { connection_id: "{{ conn.connection_id }}", size: 1, encoding: latin-1 } }
"""
    result = await run_text(text, port=echo_port)
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert result.states["three"].summary["data"] == "QUJD"  # base64 of ABC
    assert result.states["nl"].summary["data"] == "\n"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"address": "127.0.0.1"}, "no port in '127.0.0.1'"),
        ({"address": "127.0.0.1:99999"}, "malformed port"),
        ({"address": "[::1:80"}, "missing ']'"),
        ({"address": "127.0.0.1:1"}, "cannot connect to 127.0.0.1:1/tcp: Connect call failed"),
        ({"address": "no-such-host.invalid:80"}, "cannot resolve host"),
        ({"address": "127.0.0.1:53", "network": "udp", "tls": True}, "TLS is for tcp"),
        ({"address": "127.0.0.1:9", "tls": True, "ca": "missing-ca.pem"}, "ca: cannot load"),
    ],
)
async def test_open_errors(params: dict[str, Any], message: str) -> None:
    run = await run_module("connection:open", params)
    assert run.status == "Failed" and message in (run.error or ""), run.error


async def test_unknown_ids_and_bad_input_fail_clearly() -> None:
    run = await run_module("connection:read", {"connection_id": "nope"})
    assert "unknown or closed connection_id 'nope'" in (run.error or "")
    run = await run_module("connection:write", {"connection_id": "nope", "data": "x"})
    assert "unknown or closed connection_id 'nope'" in (run.error or "")
    run = await run_module("connection:write", {"connection_id": "x", "data_b64": "**"})
    assert "data_b64: not valid base64" in (run.error or "")
    run = await run_module("connection:write", {"connection_id": "x"})
    assert "exactly one of 'data' or 'data_b64'" in (run.error or "")
    run = await run_module("connection:read", {"connection_id": "x", "encoding": "klingon"})
    assert "unknown encoding 'klingon'" in (run.error or "")
    run = await run_module("connection:read", {"connection_id": "x", "repeat": True})
    assert "repeat: needs stream_inputs" in (run.error or "")
    run = await run_module("connection:close", {"connection_id": "gone"})
    assert run.ok and run.summary["was_open"] is False


async def test_read_timeout_invalid_text_and_wrong_kind(echo_port: int) -> None:
    text = """
workloads:
  - name: conn
    process: { module: connection:open, params: { address: "127.0.0.1:{{ port }}" } }
    register: conn
  - name: quiet
    process: { module: connection:read, params: { connection_id: "{{ conn.connection_id }}", timeout: 50ms } }
  - name: send
    depends_on: [quiet]
    ignore_errors: true
    process: { module: connection:write, params: { connection_id: "{{ conn.connection_id }}", data_b64: "/wo=" } }
  - name: raw
    depends_on: [send]
    process: { module: connection:read, params: { connection_id: "{{ conn.connection_id }}", size: 1, timeout: 2s } }
"""
    result = await run_text(
        text.replace("quiet\n", "quiet\n    ignore_errors: true\n", 1), port=echo_port
    )
    assert "no data within 0.05s" in (result.states["quiet"].error or "")
    assert "is not utf-8 text" in (result.states["raw"].error or "")
    assert "use encoding: base64" in (result.states["raw"].error or "")


# -- connection:listen ---------------------------------------------------------------------

ECHO_SERVICE = """
workloads:
  - name: listener
    process: { module: connection:listen, params: { address: 127.0.0.1, port: 0, max_connections: "{{ max }}" } }
  - name: lines
    stream_inputs: [listener]
    process:
      module: connection:read
      params: { connection_id: "{{ record.connection_id }}", read_until: "\\n", repeat: true, timeout: 5s }
  - name: replies
    stream_inputs: [lines]
    process:
      module: connection:write
      params:
        connection_id: "{{ record.connection_id }}"
        data: "{{ '' if record.eof else 'echo ' ~ record.data }}"
        close: "{{ record.eof }}"
"""


async def test_listen_serves_concurrent_clients_and_closes_everything() -> None:
    before = open_fds()
    async with running(ECHO_SERVICE, max=50) as run:
        port = await run.port("listener")
        logged = [e for e in run.events if e.data.get("event") == "listening"]
        assert logged and logged[0].data["port"] == port

        async def client(i: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"a{i}\nb{i}\n".encode())
            writer.write_eof()
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

        answers = await asyncio.gather(*(client(i) for i in range(30)))
        assert answers == [f"echo a{i}\necho b{i}\n".encode() for i in range(30)]
        # A client that stays: closed by the run's end.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hold\n")
        assert await reader.readline() == b"echo hold\n"
    assert run.result.status == "Interrupted"
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await writer.wait_closed()
    summary = run.state("listener").summary
    assert summary["accepted"] == 31 and summary["refused"] == 0 and summary["port"] == port
    assert await fds_back_to(before) <= before


async def test_listen_max_connections_refuses_extra_clients() -> None:
    async with running(ECHO_SERVICE, max=1) as run:
        port = await run.port("listener")
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        w1.write(b"one\n")
        assert await r1.readline() == b"echo one\n"
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r2.read(), 5) == b""  # refused: closed at once
        for w in (w1, w2):
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
    assert run.state("listener").counters.get("refused") == 1


async def test_listen_port_in_use_and_bad_params(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = await run_module("connection:listen", {"address": "127.0.0.1", "port": port})
    assert run.status == "Failed"
    assert f"cannot listen on 127.0.0.1:{port}/tcp" in (run.error or "")
    run = await run_module("connection:listen", {"address": "1.2.3.4:x"})
    assert "address: malformed port" in (run.error or "")
    run = await run_module(
        "connection:listen", {"network": "udp", "tls": {"cert": "c", "key": "k"}}
    )
    assert "TLS is for tcp" in (run.error or "")
    (tmp_path / "k.pem").write_text("not a key")
    run = await run_module(
        "connection:listen",
        {"tls": {"cert": str(tmp_path / "k.pem"), "key": str(tmp_path / "k.pem")}},
    )
    assert "tls: cannot load certificate" in (run.error or "") and "not a key" not in run.error


async def test_tls_listen_and_open_verify_by_default(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    text = (
        ECHO_SERVICE.replace(
            "port: 0,", f"port: '{{{{ lport }}}}', tls: {{ cert: '{cert}', key: '{key}' }},"
        )
        + """
  - name: client
    depends_on: [wait]
    process:
      module: connection:open
      params: { address: "localhost:{{ lport }}", tls: true, ca: "{{ ca }}" }
    register: client
  - name: untrusted
    depends_on: [wait]
    ignore_errors: true
    process:
      module: connection:open
      params: { address: "127.0.0.1:{{ lport }}", tls: true }
  - name: unverified
    depends_on: [wait]
    process:
      module: connection:open
      params: { address: "127.0.0.1:{{ lport }}", tls: true, verify: false }
  - name: hello
    process: { module: connection:write, params: { connection_id: "{{ client.connection_id }}", data: "hi\\n" } }
    register: hello
  - name: answer
    depends_on: [hello]
    process: { module: connection:read, params: { connection_id: "{{ client.connection_id }}", read_until: "\\n" } }
    register: answer
  - name: wait
    process: { module: exec, params: { command: sleep, args: ["0.3"] } }
"""
    )
    async with running(text, max=10, ca=str(cert), lport=free_port()) as run:
        await run.port("listener")
        for _ in range(500):
            if run.state("answer").status.terminal and run.state("unverified").status.terminal:
                break
            await asyncio.sleep(0.01)
    states = run.result.states
    assert states["answer"].summary["data"] == "echo hi\n", states["answer"].error
    assert "certificate verification failed" in (states["untrusted"].error or "")
    assert states["unverified"].status == "Completed"
    assert any("NOT verified" in line for _, _, line in states["unverified"].logs)
    assert run.state("listener").summary["tls"] is True


async def test_udp_listen_and_open() -> None:
    text = """
workloads:
  - name: listener
    process: { module: connection:listen, params: { network: udp, address: 127.0.0.1, port: "{{ lport }}" } }
  - name: datagrams
    stream_inputs: [listener]
    process:
      module: connection:read
      params: { connection_id: "{{ record.connection_id }}", repeat: true, timeout: 5s }
  - name: replies
    stream_inputs: [datagrams]
    process: { module: connection:write, params: { connection_id: "{{ record.connection_id }}", data: "got {{ record.data }}" } }
  - name: client
    process:
      module: connection:open
      params: { network: udp, address: "127.0.0.1:{{ lport }}" }
    depends_on: [pause]
    register: client
  - name: ask
    process: { module: connection:write, params: { connection_id: "{{ client.connection_id }}", data: "one" } }
    register: ask
  - name: answer
    depends_on: [ask]
    process: { module: connection:read, params: { connection_id: "{{ client.connection_id }}", timeout: 5s } }
  - name: pause
    process: { module: exec, params: { command: sleep, args: ["0.2"] } }
"""
    async with running(text, lport=free_port(socket.SOCK_DGRAM)) as run:
        port = await run.port("listener")

        def exchange() -> list[bytes]:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.settimeout(5)
                got = []
                for word in (b"x", b"y"):  # the same peer: the same connection
                    udp.sendto(word, ("127.0.0.1", port))
                    got.append(udp.recvfrom(100)[0])
                return got

        assert await asyncio.to_thread(exchange) == [b"got x", b"got y"]
        for _ in range(500):
            if run.state("answer").status.terminal:
                break
            await asyncio.sleep(0.01)
    assert run.result.states["answer"].summary["data"] == "got one"
    assert run.state("listener").summary["accepted"] == 2


async def test_stream_mode_errors_are_counted_not_fatal() -> None:
    run = await run_module(
        "connection:write",
        {"connection_id": "{{ record.connection_id }}", "data": "x"},
        inputs=[{"connection_id": "a"}, {"connection_id": "b"}],
    )
    assert run.ok and run.summary == {"writes": 0, "errors": 2}
    assert run.counters["errors"] == 2
    run = await run_module(
        "connection:read",
        {"connection_id": "{{ record.connection_id }}"},
        inputs=[{"connection_id": "a"}],
    )
    assert run.ok and run.summary == {"reads": 0, "errors": 1}
    run = await run_module(
        "connection:close",
        {"connection_id": "{{ record.connection_id }}"},
        inputs=[{"connection_id": "a", "n": 1}],
    )
    assert run.records == [{"connection_id": "a", "n": 1, "closed": True, "was_open": False}]


# -- the socket handles themselves ----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [
        ("example.org", None, ("example.org", None)),
        ("example.org:80", None, ("example.org", 80)),
        ("example.org:80", 81, ("example.org", 81)),
        (":6380", None, ("0.0.0.0", 6380)),
        ("[::1]:8080", None, ("::1", 8080)),
        ("[::1]", 5, ("::1", 5)),
        ("::1", None, ("::1", None)),
    ],
)
def test_split_address(address: str, port: int | None, expected: tuple[str, int | None]) -> None:
    from gxo.modules.connection._streams import split_address

    assert split_address(address, port, default_host="0.0.0.0") == expected


@pytest.mark.parametrize("address", ["[::1]x", "h:-1", "h:70000"])
def test_split_address_errors(address: str) -> None:
    from gxo.modules.connection._streams import split_address

    with pytest.raises(ValueError, match="malformed"):
        split_address(address, None, default_host="")


def test_format_addr() -> None:
    from gxo.modules.connection._streams import format_addr

    assert format_addr(("::1", 80, 0, 0)) == "[::1]:80"
    assert format_addr(("1.2.3.4", 5)) == "1.2.3.4:5"
    assert format_addr("/tmp/sock") == "/tmp/sock" and format_addr(None) == ""


async def test_tcp_stream_limits_and_closed_writes() -> None:
    from gxo.modules.connection._streams import TcpStream

    left, right = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=left, limit=1024)
    r2, w2 = await asyncio.open_connection(sock=right)
    ours, theirs = TcpStream(r1, w1), TcpStream(r2, w2)
    try:
        await theirs.write(b"abcdef\nab\n")
        assert await ours.read(3, b"\n", 100) == (b"abc", False)  # size first
        assert await ours.read(9, b"\n", 100) == (b"def\n", False)  # delimiter first
        assert await ours.read(3, b"\n", 100) == (b"ab\n", False)  # both at once
        await theirs.write(b"x" * 2000)
        with pytest.raises(ValueError, match="no delimiter within 100 bytes"):
            await ours.read(None, b"\n", 100)
        ours.buffer.clear()
        await theirs.write(b"y" * 200)
        await theirs.aclose()
        with pytest.raises(ValueError, match="more than 100 bytes"):
            await ours.read(None, None, 100)
        with pytest.raises(ConnectionResetError):
            await theirs.write(b"late")
    finally:
        await ours.aclose()
        await theirs.aclose()
        await ours.aclose()  # twice: a no-op


async def test_udp_peer_cuts_datagrams_and_refuses_after_close() -> None:
    from gxo.modules.connection._streams import UdpPeer

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    closed: list[bool] = []
    peer = UdpPeer(transport, ("127.0.0.1", 9), owned=True, on_close=lambda: closed.append(True))
    peer.deliver(b"one\ntwo")
    peer.deliver(b"abcdef")
    assert await peer.read(None, b"\n", 100) == (b"one\n", False)
    assert await peer.read(3, None, 100) == (b"abc", False)
    await peer.aclose()
    await peer.aclose()
    assert closed == [True] and transport.is_closing()
    assert await peer.read(None, None, 100) == (b"", True)
    with pytest.raises(ConnectionResetError):
        await peer.write(b"x")


async def test_secrets_sent_and_read_back_are_redacted(
    echo_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "HUNTER2-NET-SECRET-77"  # upper case: the echo server sends it back as is
    monkeypatch.setenv("NET_TEST_SECRET", secret)
    text = CHAIN.replace("ping {{ word }}", "ping {{ secret('NET_TEST_SECRET') }}")
    result = await run_text(text, port=echo_port)
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    line = result.states["line"].summary
    assert line["data"].startswith("PING ") and secret not in line["data"]
    assert line["bytes_read"] == len(f"PING {secret}\n")
    everything = repr(result.report()) + repr([list(s.logs) for s in result.states.values()])
    assert secret not in everything


async def test_read_errors_on_handles_and_idle_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    from gxo.engine.connections import ConnectionManager
    from gxo.engine.context import RunContext
    from gxo.modules.connection._streams import TcpStream

    shared = ConnectionManager()
    monkeypatch.setattr(RunContext, "connections", property(lambda self: shared))
    not_a_socket = shared.add("http_request", object())
    run = await run_module("connection:read", {"connection_id": not_a_socket})
    assert f"'{not_a_socket}' is a http_request handle, not a socket" in (run.error or "")

    left, right = socket.socketpair()
    r1, w1 = await asyncio.open_connection(sock=left)
    r2, w2 = await asyncio.open_connection(sock=right)
    ours, theirs = TcpStream(r1, w1), TcpStream(r2, w2)
    cid = shared.add("tcp", ours)
    await theirs.write(b"x" * 10)
    run = await run_module("connection:read", {"connection_id": cid, "size": 4, "read_until": "\n"})
    assert run.summary["data"] == "xxxx"
    # repeat: a connection idle past timeout is closed, nothing is emitted for it
    run = await run_module(
        "connection:read",
        {"connection_id": "{{ record.connection_id }}", "repeat": True, "timeout": "50ms",
         "read_until": "\n"},
        inputs=[{"connection_id": cid}],
    )  # fmt: skip
    assert run.ok and run.records == [] and cid not in shared
    await theirs.aclose()
    await shared.aclose()
