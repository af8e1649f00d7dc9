"""The upstream HTTP/1.1 client against scripted servers on 127.0.0.1: framing, reuse, limits, TLS.

Each server is a raw asyncio server that reads one request head (and its ``Content-Length`` body)
at a time and writes exactly the bytes a test scripts, so the answers can be what no well-behaved
server sends: cut short, doubled, unframed, oversized, compressed, interim.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from support.builders import self_signed

from gateway.upstream import http1
from gateway.upstream.http1 import ConnectionFailed, Http1Client, LookupFailed
from gateway.upstream.publicdns import PrivateAddress, PublicOnlyResolver

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n" + b'{"access_token":1}'[:17]


@dataclass
class Seen:
    """What a scripted server saw: each request's head and body, and each connection's number."""

    requests: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0


Script = Callable[[int, bytes], "bytes | tuple[bytes, str]"]


@asynccontextmanager
async def scripted(script: Script, *, delay: float = 0.0, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[int, Seen]]:
    """A server answering each request with ``script(connection number, head)``'s bytes.

    A script may return ``(bytes, "close")`` to close the connection after writing, or
    ``(bytes, "hold")`` to keep it open without another answer.
    """
    seen = Seen()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        number = seen.connections
        seen.open_now += 1
        seen.most_open = max(seen.most_open, seen.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                seen.requests.append((number, head, body))
                if delay:
                    await asyncio.sleep(delay)
                answer = script(number, head)
                data, then = answer if isinstance(answer, tuple) else (answer, "")
                writer.write(data)
                await writer.drain()
                if then == "close":
                    break
                if then == "hold":
                    await asyncio.sleep(30)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            seen.open_now -= 1
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        server.close()


async def call(client: Http1Client, url: str, body: bytes = b"grant_type=x", headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    async with asyncio.timeout(5):
        async with client.request("POST", url, params=None, data=body, headers=headers or {}) as answer:
            data = b"".join([chunk async for chunk in answer.content.iter_any()])
            return answer.status, answer.headers.get("content-type", ""), data


async def test_an_answer_is_read_and_its_connection_kept_for_the_next_call() -> None:
    async with scripted(lambda n, head: OK) as (port, seen):
        client = Http1Client()
        for _ in range(3):
            assert await call(client, f"http://127.0.0.1:{port}/token") == (200, "application/json", b'{"access_token":1')
        await client.close()
    assert seen.connections == 1, "one kept connection serves the three calls (RFC 9112 §9.3)"
    head = seen.requests[0][1].decode()
    assert head.startswith(f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n")
    assert "Content-Length: 12\r\n" in head and "User-Agent: gateway\r\n" in head
    assert seen.requests[0][2] == b"grant_type=x"


async def test_the_query_is_kept_encoded_and_params_are_appended() -> None:
    async with scripted(lambda n, head: OK) as (port, seen):
        client = Http1Client()
        async with client.request("POST", f"http://127.0.0.1:{port}/t ok?a=1%2F", params={"b": "x y&"}, data=None, headers={}) as answer:
            assert answer.status == 200
        await client.close()
    assert seen.requests[0][1].startswith(b"POST /t%20ok?a=1%2F&b=x+y%26 HTTP/1.1\r\n")
    assert b"Content-Length: 0\r\n" in seen.requests[0][1]


async def test_chunked_and_close_delimited_answers_are_read_whole() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    unframed = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"
    async with scripted(lambda n, head: chunked) as (port, seen):
        client = Http1Client()
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b"abcde"
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b"abcde"
        await client.close()
    assert seen.connections == 1
    async with scripted(lambda n, head: (unframed, "close")) as (port, seen):
        client = Http1Client()
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b"until the end"
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b"until the end"
        await client.close()
    assert seen.connections == 2, "an answer framed by the connection's end leaves no connection to keep"


async def test_an_interim_answer_is_skipped() -> None:
    async with scripted(lambda n, head: b"HTTP/1.1 100 Continue\r\n\r\n" + OK) as (port, _):
        client = Http1Client()
        assert (await call(client, f"http://127.0.0.1:{port}/"))[0] == 200
        await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhalf", "close"),  # cut short
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "close"),  # the head cut short
        (b"", "close"),  # closed before a byte
        (b"SMTP ready\r\n\r\n", "close"),  # not HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",  # two lengths (RFC 9112 §6.3)
        b"HTTP/1.1 200 OK\r\nX-A: " + b"a" * (70 * 1024) + b"\r\n\r\n",  # a head no token endpoint sends
    ],
)
async def test_a_broken_answer_is_a_failure_never_an_answer(answer: bytes | tuple[bytes, str]) -> None:
    async with scripted(lambda n, head: answer) as (port, _):
        client = Http1Client()
        with pytest.raises(ConnectionFailed):
            await call(client, f"http://127.0.0.1:{port}/")
        await client.close()


async def test_a_second_answer_behind_the_first_closes_the_connection() -> None:
    # A server (or something between) that answers twice: the extra answer must never be read as
    # the next call's.
    doubled = OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"
    async with scripted(lambda n, head: doubled if n == 1 else OK) as (port, seen):
        client = Http1Client()
        first = await call(client, f"http://127.0.0.1:{port}/")
        await asyncio.sleep(0.05)
        second = await call(client, f"http://127.0.0.1:{port}/")
        await client.close()
    assert first[2] == second[2] == b'{"access_token":1'
    assert seen.connections == 2


async def test_bytes_after_an_answer_on_an_idle_connection_close_it() -> None:
    late = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"

    def script(number: int, head: bytes) -> bytes | tuple[bytes, str]:
        return OK if number > 1 else (OK, "hold")

    async with scripted(script) as (port, seen):
        client = Http1Client()
        await call(client, f"http://127.0.0.1:{port}/")
        # the server pushes an answer nobody asked for onto the idle connection
        pool = next(iter(client._pools.values()))
        connection = pool.idle[0]
        assert connection.transport is not None
        connection.data_received(late)
        assert connection.lost
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b'{"access_token":1'
        await client.close()
    assert seen.connections == 2


async def test_a_body_over_the_limit_is_cut_to_limit_plus_one_and_its_connection_closed() -> None:
    big = b"x" * 5000
    async with scripted(lambda n, head: b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big) as (port, seen):
        client = Http1Client(max_body=1000)
        assert len((await call(client, f"http://127.0.0.1:{port}/"))[2]) == 1001
        await call(client, f"http://127.0.0.1:{port}/")
        await client.close()
    assert seen.connections == 2


async def test_gzip_and_deflate_answers_are_decoded_within_the_limit() -> None:
    body = b'{"access_token":"at"}'
    answers = {
        1: b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gzip.compress(body)) + gzip.compress(body),
        2: b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n" % len(zlib.compress(body)) + zlib.compress(body),
    }
    bomb = gzip.compress(b"0" * 10_000_000)
    answers[3] = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
    async with scripted(lambda n, head: (answers[n], "close")) as (port, seen):
        client = Http1Client(max_body=64 * 1024)
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == body
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == body
        assert len((await call(client, f"http://127.0.0.1:{port}/"))[2]) == 64 * 1024 + 1, "a bomb stays small"
        await client.close()
    assert b"Accept-Encoding: gzip, deflate\r\n" in seen.requests[0][1]


async def test_a_header_that_would_split_the_head_is_refused_before_a_byte_is_sent() -> None:
    async with scripted(lambda n, head: OK) as (port, seen):
        client = Http1Client()
        for headers in ({"X-A": "a\r\nX-Injected: 1"}, {"X A": "a"}, {"X-A:": "a"}):
            with pytest.raises(ConnectionFailed, match="not a valid field"):
                await call(client, f"http://127.0.0.1:{port}/", headers=headers)
        await client.close()
    assert seen.requests == []


async def test_the_client_says_how_the_request_is_framed_whatever_the_headers_say() -> None:
    async with scripted(lambda n, head: OK) as (port, seen):
        client = Http1Client()
        await call(client, f"http://127.0.0.1:{port}/", headers={"Content-Length": "999", "Host": "elsewhere", "Transfer-Encoding": "chunked"})
        await client.close()
    head = seen.requests[0][1].decode().lower()
    assert head.count("content-length") == 1 and "content-length: 12" in head
    assert "elsewhere" not in head and "transfer-encoding" not in head


async def test_no_more_connections_per_host_than_the_limit() -> None:
    async with scripted(lambda n, head: OK, delay=0.05) as (port, seen):
        client = Http1Client(limit_per_host=2)
        answers = await asyncio.gather(*(call(client, f"http://127.0.0.1:{port}/") for _ in range(8)))
        await client.close()
    assert all(status == 200 for status, _, _ in answers)
    assert seen.most_open <= 2 and seen.connections == 2


async def test_a_waiting_call_that_gives_up_passes_its_turn_on() -> None:
    async with scripted(lambda n, head: OK, delay=0.2) as (port, seen):
        client = Http1Client(limit_per_host=1)
        first = asyncio.create_task(call(client, f"http://127.0.0.1:{port}/"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await call(client, f"http://127.0.0.1:{port}/")
        assert (await first)[0] == 200
        assert (await call(client, f"http://127.0.0.1:{port}/"))[0] == 200
        await client.close()


async def test_a_call_cut_by_its_deadline_never_leaves_its_answer_to_the_next() -> None:
    answers = iter([b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow", OK])
    async with scripted(lambda n, head: next(answers), delay=0.1) as (port, seen):
        client = Http1Client()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await call(client, f"http://127.0.0.1:{port}/")
        assert (await call(client, f"http://127.0.0.1:{port}/"))[2] == b'{"access_token":1'
        await client.close()
    assert seen.connections == 2, "the cut call's connection was closed, not kept"


async def test_idle_connections_close_after_their_time() -> None:
    async with scripted(lambda n, head: OK) as (port, seen):
        client = Http1Client(idle_seconds=0.05)
        await call(client, f"http://127.0.0.1:{port}/")
        await asyncio.sleep(0.2)
        assert client._pools == {}, "the sweep closed the idle connection and forgot its host"
        await call(client, f"http://127.0.0.1:{port}/")
        await client.close()
    assert seen.connections == 2


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with scripted(lambda n, head: (OK, "close")) as (port, seen):
        client = Http1Client()
        await call(client, f"http://127.0.0.1:{port}/")
        await asyncio.sleep(0.05)
        assert (await call(client, f"http://127.0.0.1:{port}/"))[0] == 200
        # at once: the server's end is on the socket before the loop has read it
        await asyncio.sleep(0)
        for _ in range(5):
            assert (await call(client, f"http://127.0.0.1:{port}/"))[0] == 200
        await client.close()
    assert seen.connections == 7


async def test_no_connection_is_a_failure() -> None:
    from support.sockets import refusing_port

    client = Http1Client()
    with pytest.raises(ConnectionFailed, match="no connection"):
        await call(client, f"http://127.0.0.1:{refusing_port()}/")
    with pytest.raises(ConnectionFailed, match="scheme"):
        await call(client, "ftp://127.0.0.1/")
    await client.close()
    with pytest.raises(ConnectionFailed, match="closed"):
        await call(client, "http://127.0.0.1:1/")


class Scripted(AbstractResolver):
    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.lookups = 0

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups += 1
        return [
            ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)
            for address in self.addresses
        ]

    async def close(self) -> None:
        pass


async def test_with_a_resolver_only_its_addresses_are_connected_to_and_each_connection_looks_up_anew() -> None:
    async with scripted(lambda n, head: (OK, "close")) as (port, seen):
        resolver = Scripted("127.0.0.1")
        client = Http1Client(resolver=resolver)
        for _ in range(2):
            assert (await call(client, f"http://upstream.test:{port}/"))[0] == 200
        await client.close()
    assert resolver.lookups == 2
    assert b"Host: upstream.test:%d\r\n" % port in seen.requests[0][1]


async def test_a_refused_address_is_a_lookup_failure_with_its_reason() -> None:
    client = Http1Client(resolver=PublicOnlyResolver(Scripted("10.0.0.1")))
    with pytest.raises(LookupFailed) as raised:
        await call(client, "http://tenant.example/token")
    assert isinstance(raised.value.os_error, PrivateAddress)
    await client.close()


async def test_tls_verifies_the_server_against_the_trust_given(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    async with scripted(lambda n, head: OK, tls=server_side) as (port, seen):
        trusting = Http1Client(ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert (await call(trusting, f"https://127.0.0.1:{port}/"))[0] == 200
        await trusting.close()
        default = Http1Client()
        with pytest.raises(ConnectionFailed, match="SSLCertVerificationError"):
            await call(default, f"https://127.0.0.1:{port}/")
        await default.close()
    assert seen.requests[0][1].startswith(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)


async def test_an_observer_sees_each_call_and_may_add_headers() -> None:
    ended: list[tuple[int | None, str]] = []

    def observe(method: str, url: str, headers: dict[str, str]) -> http1.CallEnd:
        headers["traceparent"] = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        return lambda status, error: ended.append((status, type(error).__name__ if error else ""))

    http1.add_observer(observe)
    try:
        async with scripted(lambda n, head: OK if n == 1 else (b"", "close")) as (port, seen):
            client = Http1Client()
            await call(client, f"http://127.0.0.1:{port}/")
            client._pools.clear()  # a fresh connection, which the server closes at once
            with pytest.raises(ConnectionFailed):
                await call(client, f"http://127.0.0.1:{port}/")
            await client.close()
    finally:
        http1.remove_observer(observe)
    assert b"traceparent: 00-" in seen.requests[0][1]
    assert ended == [(200, ""), (None, "ConnectionFailed")]


def test_on_uvloop_too() -> None:
    """``gateway serve`` runs on uvloop when it is installed: its transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")

    async def calls() -> tuple[list[int], int]:
        async with scripted(lambda n, head: OK) as (port, seen):
            client = Http1Client()
            statuses = [(await call(client, f"http://127.0.0.1:{port}/"))[0] for _ in range(3)]
            await client.close()
        return statuses, seen.connections

    assert uvloop.run(calls()) == ([200, 200, 200], 1)


async def test_connections_past_descriptor_1024_are_kept_too() -> None:
    """A busy gateway holds thousands of sockets: the idle check must not be ``select()``'s (1024 at most)."""
    import os
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"the descriptor limit ({soft}) is too low to open descriptors past 1024")
    spare = [os.dup(0) for _ in range(1100)]
    try:
        async with scripted(lambda n, head: OK) as (port, seen):
            client = Http1Client()
            for _ in range(3):
                assert (await call(client, f"http://127.0.0.1:{port}/"))[0] == 200
            connection = next(iter(client._pools.values())).idle[0]
            assert connection.transport is not None and connection.transport.get_extra_info("socket").fileno() > 1024
            await client.close()
    finally:
        for descriptor in spare:
            os.close(descriptor)
    assert seen.connections == 1


async def test_an_address_that_does_not_answer_costs_a_moment_not_the_deadline() -> None:
    """Happy Eyeballs (RFC 8305): the first address takes SYNs and never completes (a listener on
    127.0.0.2 whose accept queue is full drops them); the second answers at once."""
    silent = socket.socket()
    silent.bind(("127.0.0.2", 0))
    silent.listen(0)
    silent_port = silent.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: later SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.2", silent_port))
        fillers.append(filler)
    await asyncio.sleep(0.05)

    class TwoAddresses(AbstractResolver):
        def __init__(self, good_port: int) -> None:
            self.good_port = good_port

        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
            return [
                ResolveResult(hostname=host, host="127.0.0.2", port=silent_port, family=socket.AF_INET, proto=0, flags=0),
                ResolveResult(hostname=host, host="127.0.0.1", port=self.good_port, family=socket.AF_INET, proto=0, flags=0),
            ]

        async def close(self) -> None:
            pass

    try:
        async with scripted(lambda n, head: OK) as (port, seen):
            client = Http1Client(resolver=TwoAddresses(port))
            async with asyncio.timeout(2.0):  # the silent address alone would hold the call for minutes
                assert (await call(client, f"http://upstream.test:{port}/"))[0] == 200
            await client.close()
    finally:
        for sock in [*fillers, silent]:
            sock.close()
