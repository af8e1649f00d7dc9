"""The gateway's ``/token`` refresh (or ``/authorize``, ``/callback``: ``--path``), driven in one
process: a load-independent profile.

    .venv/bin/python bench/inprocess.py --requests 2000                  # µs per refresh (wall, CPU; c=1)
    .venv/bin/python bench/inprocess.py --path authorize --requests 2000 # the same per /authorize
    .venv/bin/python bench/inprocess.py --profile cprofile --requests 2000 # where the Python time goes
    valgrind --tool=callgrind --callgrind-out-file=cg.out \\
        .venv/bin/python bench/inprocess.py --requests 1000                # instructions (see --help)

``bench/bench.py`` measures CPU per request of a gateway process under ``wrk`` load; on a shared
machine that figure moves with the neighbours. This script runs the same production path —
:func:`gateway.web.app.create_app`, the :class:`gateway.web.runner.GatewayRunner` listener on
127.0.0.1, the JSON request line at info — and sends it ``/token`` refreshes one at a time, each
with a new refresh token (as the bench does: a token seen within the grace window is answered
from memory, and that is not the relay being measured), from a small raw-socket client in the
same process. Instruction counts from ``valgrind --tool=callgrind`` do not move with the load;
run the script twice (``--requests`` N and M) and divide the difference by M − N to leave out
start-up.

The upstream is either

* ``memory`` (default): an in-process :class:`gateway.upstream.client.UpstreamClient` (the seam
  the unit tests use) answering a fixed §5.1 JSON token, so the profile holds the gateway's own
  work and nothing of aiohttp's client; or
* ``loopback``: the bench's fake upstream (``bench/servers.py upstream``) in another process,
  called through the gateway's real ``aiohttp.ClientSession`` — the difference between the two
  is what the aiohttp client costs per refresh.

``--grant authorization_code`` sends code exchanges instead, each with a fresh code sealed by the
app's own sealer as ``/callback`` seals it (:func:`gateway.oauth.state.seal_code`). The codes are
sealed before the run, and never fewer than :data:`CODE_BATCH`, so two runs under callgrind of up
to that many requests (warm-up included) seal as many codes each and their difference leaves the
sealing out.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import io
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Literal, cast
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from bench import AUTHORIZE_QUERY, PLATFORM_ID, PLATFORM_SECRET, REDIRECT, free_port, gateway_config, mapping_yaml

HERE = Path(__file__).resolve().parent
#: The fake upstream's answer (the same as ``bench/servers.py``'s).
ANSWER = b'{"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt-2"}'


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def iter_any(self) -> AsyncIterator[bytes]:
        yield self._body


class _Answer:
    """One upstream answer, as much of an ``aiohttp.ClientResponse`` as ``send`` reads."""

    status = 200
    headers: Mapping[str, str] = {"Content-Type": "application/json"}

    def __init__(self, body: bytes) -> None:
        self.content = _Body(body)

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class MemoryUpstream:
    """An upstream token endpoint without a socket: every request gets :data:`ANSWER`."""

    def __init__(self) -> None:
        self.calls = 0

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> _Answer:
        self.calls += 1
        return _Answer(ANSWER)


@asynccontextmanager
async def fake_upstream() -> AsyncIterator[str]:
    """``bench/servers.py upstream`` in its own process (its CPU is not the gateway's)."""
    port = free_port()
    process = subprocess.Popen([sys.executable, str(HERE / "servers.py"), "upstream", str(port)])
    try:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield f"http://127.0.0.1:{port}/token"
    finally:
        process.terminate()
        process.wait()


def refresh_request(port: int, token: str) -> bytes:
    return token_request(port, f"grant_type=refresh_token&refresh_token={token}")


#: Codes sealed before an ``authorization_code`` run, at least (see the module docstring).
CODE_BATCH = 2000


def code_requests(app: web.Application, count: int) -> list[str]:
    """``count`` fresh form bodies of code exchanges, each code sealed as ``/callback`` seals one."""
    from gateway.oauth.state import CodePayload, seal_code
    from gateway.web.appkeys import RUNTIME

    runtime = app[RUNTIME].current
    prefix = secrets.token_hex(6)
    return [
        "grant_type=authorization_code&code="
        + quote(seal_code(runtime.sealer, CodePayload(f"up-{prefix}-{n}", PLATFORM_ID, REDIRECT, "bench"), ttl=runtime.config.code_ttl),
                safe="")
        + f"&redirect_uri={quote(REDIRECT, safe='')}"
        for n in range(max(count, CODE_BATCH))
    ]


def token_request(port: int, body_text: str) -> bytes:
    body = body_text.encode()
    basic = base64.b64encode(f"{PLATFORM_ID}:{PLATFORM_SECRET}".encode()).decode()
    head = (
        f"POST /bench/token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {basic}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def drive(
    app: web.Application, requests: int, warmup: int, profiler: cProfile.Profile | None, leg: Leg | None = None,
    *, grant: str = "refresh_token",
) -> tuple[float, float]:
    """Serve ``app`` on 127.0.0.1 and send it ``warmup`` + ``requests`` refreshes (or code
    exchanges: ``grant``; or ``leg``'s requests) on one keep-alive connection; return the wall and
    CPU seconds (this process: gateway and client) of the measured ``requests``."""
    from gateway.config.settings import ConnectionSettings
    from gateway.web.runner import GatewayRunner

    runner = GatewayRunner(app, ConnectionSettings(), access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    prefix = f"rt-{secrets.token_hex(6)}-"
    codes = code_requests(app, warmup + requests) if grant == "authorization_code" else []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = cpu = 0.0
        for n in range(warmup + requests):
            if n == warmup:
                started, cpu = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
            if leg is not None:
                writer.write(leg.request(port, n))
                leg.check(n, *await read_head_and_body(reader))
                continue
            writer.write(token_request(port, codes[n]) if codes else refresh_request(port, f"{prefix}{n}"))
            status, body = await read_answer(reader)
            if status != 200 or b'"access_token"' not in body:
                raise SystemExit(f"request {n} answered {status}: {body[:200]!r}")
        if profiler is not None:
            profiler.disable()
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        writer.close()
        await runner.cleanup()


async def main_async(args: argparse.Namespace) -> None:
    from gateway.config.settings import load_config
    from gateway.oauth.seal import generate_key
    from gateway.observe.logs import setup_logging
    from gateway.upstream.http1 import Http1Client
    from gateway.web.app import create_app
    from gateway.web.appkeys import HTTP_CLIENT

    upstream: Literal["memory", "loopback"] = args.upstream
    with tempfile.TemporaryDirectory() as work:
        async with _upstream_url(upstream) as url:
            if args.config:
                config_path = Path(args.config)
            else:
                config_path = gateway_config(Path(work), generate_key(), mappings={"bench": mapping_yaml(url)})
            config = load_config(config_path)
            leg = browser_leg(args, config_path, Path(work))
            log = open(args.log, "a")  # noqa: SIM115 - the handler keeps it open until the process ends
            sys.stderr, stderr = log, sys.stderr
            try:
                setup_logging(config.log_format, config.log_level)
            finally:
                sys.stderr = stderr
            app = create_app(config)
            memory = MemoryUpstream()
            if upstream == "memory":

                async def in_memory(app: web.Application) -> AsyncIterator[None]:
                    # after the real client's context: every upstream call goes to the seam instead
                    app[HTTP_CLIENT] = cast(Http1Client, memory)
                    yield

                app.cleanup_ctx.append(in_memory)
            profiler = cProfile.Profile() if args.profile == "cprofile" else None
            seconds, cpu = await drive(app, args.requests, args.warmup, profiler, leg, grant=args.grant)
            if leg is None and upstream == "memory" and memory.calls != args.requests + args.warmup:
                raise SystemExit(f"the in-memory upstream saw {memory.calls} calls, not {args.requests + args.warmup}")
            if isinstance(leg, AuthorizeLeg) and args.flows_out:
                leg.write(Path(args.flows_out))
    compiled = _compiled_modules()
    print(
        f"{args.requests} {'code exchanges' if args.path == 'token' and args.grant == 'authorization_code' else LEG_NOUNS[args.path]} "
        f"({upstream} upstream, {len(compiled)} compiled modules): "
        f"{seconds / args.requests * 1e6:.1f} µs wall, {cpu / args.requests * 1e6:.1f} µs CPU each (c=1, profiler {args.profile})"
    )
    if profiler is not None:
        _print_profile(profiler, args.requests, args.top)


@asynccontextmanager
async def _upstream_url(kind: Literal["memory", "loopback"]) -> AsyncIterator[str]:
    if kind == "memory":
        yield "https://upstream.example/token"
        return
    async with fake_upstream() as url:
        yield url


def _compiled_modules() -> list[str]:
    """The gateway modules loaded from a mypyc-built extension rather than from source."""
    return sorted(name for name, module in sys.modules.items()
                  if name.startswith("gateway") and (getattr(module, "__file__", None) or "").endswith(".so"))


def _print_profile(profiler: cProfile.Profile, requests: int, top: int) -> None:
    """Cumulative µs per request of the top functions (cProfile's own cost included: a share, not a price)."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"per {requests} requests; divide the cumtime column by {requests} for seconds per request")
    print(out.getvalue())


# --- the browser legs (--path authorize, --path callback) --------------------------------------

#: What the summary line calls one request of each path.
LEG_NOUNS = {"token": "refreshes", "authorize": "authorizations", "callback": "callbacks"}


async def read_head_and_body(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """An answer's status, headers (lower-case names; one value each) and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    return int(lines[0].split(" ", 2)[1]), headers, await reader.readexactly(int(headers.get("content-length", "0")))


class Leg:
    """One kind of browser request the loop sends instead of a refresh, and what its answer must be."""

    def request(self, port: int, n: int) -> bytes:
        raise NotImplementedError

    def check(self, n: int, status: int, headers: dict[str, str], body: bytes) -> None:
        raise NotImplementedError


class AuthorizeLeg(Leg):
    """``GET /bench/authorize`` with the bench's query (``bench/bench.py``'s): a 302 upstream with
    a flow cookie, or the run stops. With ``keep``, each flow (its ``state`` and cookie) is kept
    for a callback run."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
        self.flows: list[tuple[str, str]] = []

    def request(self, port: int, n: int) -> bytes:
        return f"GET /bench/authorize?{AUTHORIZE_QUERY} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    def check(self, n: int, status: int, headers: dict[str, str], body: bytes) -> None:
        location, cookie = headers.get("location", ""), headers.get("set-cookie", "")
        if status != 302 or not location.startswith("https://auth.example/authorize?") or not cookie:
            raise SystemExit(f"authorize {n} answered {status} ({location[:80]!r}): {body[:200]!r}")
        if self.keep:
            self.flows.append((parse_qs(urlsplit(location).query)["state"][0], cookie.split(";", 1)[0]))

    def write(self, path: Path) -> None:
        path.write_text("".join(f"{quote(state, safe='')} {cookie}\n" for state, cookie in self.flows))


class CallbackLeg(Leg):
    """``GET /bench/callback?code=…&state=…`` with a flow cookie: a 302 to the platform with a code."""

    def __init__(self, flows: list[tuple[str, str]]) -> None:
        self.flows = flows

    def request(self, port: int, n: int) -> bytes:
        state, cookie = self.flows[n]
        return (
            f"GET /bench/callback?code=up-code&state={state} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n"
        ).encode()

    def check(self, n: int, status: int, headers: dict[str, str], body: bytes) -> None:
        location = headers.get("location", "")
        if status != 302 or not location.startswith(f"{REDIRECT}?code="):
            raise SystemExit(f"callback {n} answered {status} ({location[:80]!r}): {body[:200]!r}")


def browser_leg(args: argparse.Namespace, config: Path, work: Path) -> Leg | None:
    """The leg ``--path`` names (``None``: refreshes). A callback run's flows come from a real
    ``/authorize`` of the same gateway.yaml (same keys) in another process, run first: its cost is
    in neither that run's wall and CPU figures nor, as valgrind follows no child, its instructions."""
    if args.path == "authorize":
        return AuthorizeLeg(keep=bool(args.flows_out))
    if args.path != "callback":
        return None
    flows = work / "flows.txt"
    count = str(args.requests + args.warmup)
    subprocess.run(
        [sys.executable, __file__, "--path", "authorize", "--config", str(config), "--flows-out", str(flows),
         "--requests", count, "--warmup", "0"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return CallbackLeg([(state, cookie) for state, cookie in (line.split(" ", 1) for line in flows.read_text().splitlines())])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="measured refreshes (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="refreshes before measuring (default 200)")
    parser.add_argument("--upstream", choices=["memory", "loopback"], default="memory")
    parser.add_argument(
        "--path", choices=list(LEG_NOUNS), default="token",
        help="token: /token refreshes (default); authorize: GET /authorize, each answered with a 302 upstream and a "
        "flow cookie; callback: GET /callback, each with a flow a real /authorize made in another process (not measured)",
    )
    # Internal: the process that makes a callback run's flows (--path authorize) reads the same gateway.yaml.
    parser.add_argument("--config", default="", help=argparse.SUPPRESS)
    parser.add_argument("--flows-out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--grant", choices=["refresh_token", "authorization_code"], default="refresh_token",
                        help="refreshes (default) or code exchanges, each with a fresh sealed code")
    parser.add_argument("--profile", choices=["none", "cprofile"], default="none")
    parser.add_argument("--top", type=int, default=60, help="functions in the cProfile table")
    parser.add_argument("--log", default=os.devnull, help="where the JSON log lines go (default: nowhere)")
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
