"""The gateway against what users compare it with, in one command and one run, as a table of ratios.

    .venv/bin/pip install -e '.[bench]'       # flask, gunicorn, requests for the WSGI baseline
    .venv/bin/python bench/bench.py [--rounds 3] [--seconds 5] [--profile full|smoke]
    .venv/bin/python bench/bench.py --cases relay,gw-refresh    # some cases only, without the extras

Every server is its own process on 127.0.0.1, loaded by ``wrk --latency`` (``apt-get install wrk``)
in another process:

* baselines (``bench/servers.py``): aiohttp hello-world, a bare 302, a bare aiohttp-session 302
  (encrypted cookie), a hand-written aiohttp token relay; and (``bench/flask_relay.py``) the relay
  as Flask + requests under gunicorn with 1 sync worker, with and without a ``requests.Session``;
* the relays people would write instead today: FastAPI + httpx (``bench/fastapi_relay.py``, one
  shared ``AsyncClient``) under uvicorn with one worker, on asyncio's loop and on uvloop, and a
  Node.js relay (``bench/node_relay.mjs``: Node's ``http`` server and built-in ``fetch``, one process);
* the gateway (``gateway serve``) with the production logging and metrics configuration of
  ``deploy/gateway.yaml``: JSON log lines at info (to a file) and the ops listener for /metrics;
* the same gateway's refresh with ``refresh: {grace: 0}`` (a second mapping), to show what the
  grace window and single flight cost;
* the same gateway on uvloop's event loop (``GATEWAY_LOOP=uvloop``), when uvloop is installed
  (the ``bench`` extra has it); every other gateway figure is on asyncio's own loop;
* a fake upstream token endpoint that both relays and the gateway call.

Each ``/token`` refresh carries a new refresh token (the gateway answers a token it saw within
the grace window from memory, and that is not the relay being compared).

Each figure is taken at 1 and at 50 connections: req/s, p50 and p99 latency, and the **CPU time
of the server process per request** (utime + stime from ``/proc/PID/stat``, summed over the
process and its children, which counts gunicorn's worker). On a shared machine CPU per request is
far steadier than req/s. The cases run interleaved, round after round, and each cell shows the
min–max over the rounds; a ratio is taken within one round, then min–max. Beside them: the
gateway's peak RSS after 500 connections, its start-up time with 200 mappings, and one process
against two on ``/authorize``. Ratios from one run on one machine compare across machines;
absolute numbers do not.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PLATFORM_ID, PLATFORM_SECRET = "alexa-skill", "alexa-skill-secret"
REDIRECT = "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA"
CONCURRENCY = (1, 50)
CLOCK_TICK_US = 1_000_000 / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes ------------------------------------------------------------------------------


@dataclass
class Server:
    """One server under load: its process (gunicorn's master) and the port it answers on."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    health: str = "/healthz"
    log: Path | None = None

    def pids(self) -> list[int]:
        """The process and its descendants (gunicorn forks its worker), read from /proc."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu_us(self) -> float:
        """utime + stime of every process of the server so far, in µs (fields 14 and 15 of stat)."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total * CLOCK_TICK_US

    def peak_rss_mb(self) -> float:
        """VmHWM of the server's processes: the largest resident set each has had, summed, in MB."""
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"VmHWM:\s+(\d+) kB", status)
            total += int(found.group(1)) if found else 0
        return total / 1024


def wait_ready(server: Server, timeout: float = 30.0) -> float:
    """Seconds until the server answers its health URL with 200; exits with its log if it dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if server.process.poll() is not None:
            tail = server.log.read_text(errors="replace")[-3000:] if server.log else ""
            raise SystemExit(f"{server.name} exited with {server.process.returncode}:\n{tail}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1)
            connection.request("GET", server.health)
            if connection.getresponse().status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{server.name} did not answer {server.health} within {timeout} s")


@dataclass
class Fleet:
    """Every process the bench started, stopped together however the bench ends."""

    work: Path
    servers: dict[str, Server] = field(default_factory=dict)

    def start(self, name: str, args: Sequence[str], port: int, *, env: dict[str, str] | None = None, health: str = "/healthz") -> Server:
        path = self.work / f"{name}.log"
        with path.open("wb") as log:
            process = subprocess.Popen(list(args), cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT)
        server = Server(name, process, port, health, path)
        self.servers[name] = server
        return server

    def stop(self, name: str) -> None:
        server = self.servers.pop(name)
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()

    def stop_all(self) -> None:
        for name in list(self.servers):
            self.stop(name)


# --- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """One wrk run: throughput, latency percentiles (ms), and the server's CPU µs per request."""

    rps: float
    p50: float
    p99: float
    requests: int
    cpu_us_per_request: float


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    """Requests/sec, p50 and p99 (ms) and the request count from ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    count = re.search(r"(\d+) requests in", output)
    if not (rps and p50 and p99 and count):
        raise SystemExit(f"can not read wrk's output:\n{output}")
    return float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), int(count.group(1))


def wrk_args(url: str, *, seconds: float, connections: int, script: Path | None) -> list[str]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s"]
    return [*args, *(["-s", str(script)] if script else []), url]


def check_answers(url: str, output: str) -> None:
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed:
        raise SystemExit(f"{url}: {failed.group(1)} failed requests:\n{output}")


def load(server: Server, path: str, *, seconds: float, connections: int, script: Path | None) -> Load:
    """Load ``path`` on ``server`` with wrk, reading the server's CPU time before and after."""
    url = f"http://127.0.0.1:{server.port}{path}"
    before = server.cpu_us()
    output = subprocess.run(wrk_args(url, seconds=seconds, connections=connections, script=script), capture_output=True, text=True, check=True).stdout
    spent = server.cpu_us() - before
    check_answers(url, output)
    rps, p50, p99, count = parse_wrk(output)
    return Load(rps, p50, p99, count, spent / max(count, 1))


def parallel_rps(targets: Sequence[tuple[Server, str]], *, seconds: float, connections: int) -> float:
    """Aggregate req/s of one wrk per target, all running at the same time."""
    runs = [
        subprocess.Popen(wrk_args(f"http://127.0.0.1:{s.port}{p}", seconds=seconds, connections=connections, script=None), stdout=subprocess.PIPE, text=True)
        for s, p in targets
    ]
    total = 0.0
    for (server, path), run in zip(targets, runs, strict=True):
        output, _ = run.communicate()
        check_answers(f"{server.name}{path}", output)
        total += parse_wrk(output)[0]
    return total


# --- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One endpoint of one server; ``script`` builds the wrk Lua script for a run (None: plain GET)."""

    key: str
    server: str
    label: str
    path: str
    script: Callable[[Path, float], str] | None = None


def _basic() -> str:
    return base64.b64encode(f"{PLATFORM_ID}:{PLATFORM_SECRET}".encode()).decode()


def refresh_script() -> Callable[[Path, float], str]:
    """A wrk script POSTing a refresh with a new refresh token per request.

    The gateway answers a refresh token it saw within ``refresh_grace`` from its grace window
    without calling the upstream (gateway/oauth/refresh.py): one fixed token would measure that
    cache, not the relay. The tokens of each run start with a fresh random prefix.
    """

    def script(work: Path, seconds: float) -> str:
        prefix = f"rt-{secrets.token_hex(6)}-"
        return textwrap.dedent(
            f"""\
            local n = 0
            local headers = {{["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "Basic {_basic()}"}}
            request = function()
              n = n + 1
              return wrk.format("POST", nil, headers, "grant_type=refresh_token&refresh_token={prefix}" .. n)
            end
            """
        )

    return script


def code_script(keys: Sequence[str]) -> Callable[[Path, float], str]:
    """A wrk script redeeming a fresh sealed code per request: a code is single use (RFC 6749 §4.1.2).

    The codes are sealed here with the gateway's key, exactly as its /callback seals them, enough
    for the run at a rate no 2-core machine reaches.
    """
    from gateway.oauth.seal import Sealer
    from gateway.oauth.state import CodePayload, seal_code

    sealer = Sealer(keys)
    serial = iter(range(10**9))

    def script(work: Path, seconds: float) -> str:
        codes = work / "codes.txt"
        count = int(max(seconds, 1) * 8000)
        with codes.open("w") as out:
            for n in (next(serial) for _ in range(count)):
                payload = CodePayload(f"up-code-{n}", PLATFORM_ID, REDIRECT, "p")
                out.write(quote(seal_code(sealer, payload, ttl=600), safe="") + "\n")
        return textwrap.dedent(
            f"""\
            local codes = {{}}
            for line in io.lines("{codes}") do codes[#codes + 1] = line end
            local n = 0
            local headers = {{["Content-Type"] = "application/x-www-form-urlencoded", ["Authorization"] = "Basic {_basic()}"}}
            local tail = "&redirect_uri={quote(REDIRECT, safe='')}"
            request = function()
              n = n % #codes + 1
              return wrk.format("POST", nil, headers, "grant_type=authorization_code&code=" .. codes[n] .. tail)
            end
            """
        )

    return script


AUTHORIZE_QUERY = urlencode(
    {"client_id": PLATFORM_ID, "redirect_uri": REDIRECT, "state": "s" * 40, "response_type": "code", "scope": "a b"}
)


def flows_script(server: Server, per_second: int = 5000) -> Callable[[Path, float], str]:
    """A wrk script completing a fresh flow per request: a flow's ``state`` is single use (the
    gateway claims it at the callback), so each /callback needs its own /authorize first.

    The flows are started here, before the measured run, ``per_second`` for each second of it:
    the full profile's 5000 is more than a 2-core machine reaches. Their cost is not in the
    /callback figures. A run that uses them all up stops there (wrk's ``thread:stop()``) instead
    of replaying one, so its req/s is still the rate over the time it ran: the smoke profile
    starts fewer, as starting them one by one takes longer than the 1-second run.
    """

    def script(work: Path, seconds: float) -> str:
        flows = work / "flows.txt"
        count = int(max(seconds, 1) * per_second)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        with flows.open("w") as out:
            for _ in range(count):
                connection.request("GET", f"/p/authorize?{AUTHORIZE_QUERY}")
                answer = connection.getresponse()
                answer.read()
                cookie = (answer.getheader("Set-Cookie") or "").split(";", 1)[0]
                state = parse_qs(urlsplit(answer.getheader("Location") or "").query).get("state", [""])[0]
                if answer.status != 302 or not cookie or not state:
                    raise SystemExit(f"/p/authorize answered {answer.status} without a flow cookie")
                out.write(f"{quote(state, safe='')} {cookie}\n")
        connection.close()
        return textwrap.dedent(
            f"""\
            local flows = {{}}
            for line in io.lines("{flows}") do
              local state, cookie = line:match("^(%S+) (.+)$")
              flows[#flows + 1] = {{state, cookie}}
            end
            local n = 0
            request = function()
              if n == #flows then wrk.thread:stop() end
              n = n % #flows + 1
              local flow = flows[n]
              return wrk.format("GET", "/p/callback?code=up-code&state=" .. flow[1], {{["Cookie"] = flow[2]}})
            end
            """
        )

    return script


# --- the gateway's files --------------------------------------------------------------------


def mapping_yaml(upstream_url: str, *, grace: int | None = None) -> str:
    """The bench's provider; ``grace`` sets ``upstream.token.refresh.grace`` (default: the gateway's 60 s)."""
    refresh = f", refresh: {{grace: {grace}}}" if grace is not None else ""
    return textwrap.dedent(
        f"""\
        platform: {{profile: alexa, client_id: {PLATFORM_ID}, client_secret: {PLATFORM_SECRET}}}
        upstream:
          client_id: up
          client_secret: up-secret
          authorize: {{url: "https://auth.example/authorize"}}
          token: {{url: "{upstream_url}", client_auth: body{refresh}}}
        """
    )


def gateway_config(directory: Path, key: str, *, mappings: dict[str, str]) -> Path:
    """A gateway.yaml with deploy/gateway.yaml's logging (JSON, info) and ops listener, plus mappings."""
    (directory / "mappings").mkdir(parents=True)
    for name, text in mappings.items():
        (directory / "mappings" / f"{name}.yaml").write_text(text)
    config = directory / "gateway.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            keys: ["{key}"]
            cookie: {{secure: false, max_age: 600, max_flows: 4}}
            upstream: {{timeout: 4.0}}
            code_ttl: 300
            log: {{format: json, level: info}}
            metrics: {{host: 127.0.0.1, port: 0}}  # the ops listener, as deployed; 0: each process its own
            mappings: mappings
            """
        )
    )
    return config


#: The gateway's figures are on asyncio's own loop, whatever is installed; uvloop's are beside them.
DEFAULT_LOOP = {"GATEWAY_LOOP": "asyncio"}


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


# --- the report -----------------------------------------------------------------------------


def span(values: Sequence[float], digits: int = 0) -> str:
    """``min–max`` of a figure over the rounds (one value when they agree at this precision)."""
    low, high = f"{min(values):,.{digits}f}", f"{max(values):,.{digits}f}"
    if low == high:
        return low
    return f"{low} to {high}" if min(values) < 0 else f"{low}–{high}"  # "-3–-1" would read badly


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


# Gateway case, baseline case: the pairs the ratio table compares.
PAIRS = [
    ("gw-authorize", "session302"),
    ("gw-authorize", "redirect"),
    ("gw-callback", "redirect"),
    ("gw-refresh", "relay"),
    ("gw-refresh-nograce", "relay"),
    ("gw-code", "relay"),
    ("gw-refresh", "flask"),
    ("gw-refresh", "flask-session"),
    ("gw-refresh", "fastapi"),
    ("gw-refresh", "fastapi-uvloop"),
    ("gw-refresh", "node"),
    ("gw-healthz", "hello"),
    ("uv-authorize", "session302"),
    ("uv-refresh", "relay"),
]

PROFILES: dict[str, dict[str, object]] = {
    "full": {"rounds": 3, "seconds": 5.0, "cases": None, "mappings": 200, "flows": 5000},
    "smoke": {
        "rounds": 1,
        "seconds": 1.0,
        "cases": ["hello", "session302", "relay", "fastapi", "node", "gw-authorize", "gw-callback", "gw-refresh", "gw-code"],
        "mappings": 20,
        "flows": 1000,  # flows per second of a /callback run (see flows_script)
    },
}


@contextmanager
def workdir() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (full: 3)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (full: 5)")
    parser.add_argument("--cases", help="comma-separated case keys to run instead of the profile's, without the extras (e.g. relay,gw-refresh)")
    options = parser.parse_args(argv)
    profile = PROFILES[options.profile]
    rounds = options.rounds or int(str(profile["rounds"]))
    seconds = options.seconds or float(str(profile["seconds"]))
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    from gateway.oauth.seal import generate_key

    with workdir() as work:
        fleet = Fleet(work)
        try:
            only = options.cases.split(",") if options.cases else profile["cases"]
            run(
                fleet, work, generate_key(), rounds=rounds, seconds=seconds, only=only,
                mappings=int(str(profile["mappings"])), flows=int(str(profile["flows"])), extras_wanted=not options.cases,
            )
        finally:
            fleet.stop_all()


def run(fleet: Fleet, work: Path, key: str, *, rounds: int, seconds: float, only: object, mappings: int, flows: int, extras_wanted: bool = True) -> None:
    python = sys.executable
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/token"
    fleet.start("upstream", [python, str(HERE / "servers.py"), "upstream", str(upstream_port)], upstream_port)
    # q: the same provider without the refresh grace window, to show what the window costs
    config = gateway_config(work / "gateway", key, mappings={"p": mapping_yaml(upstream_url), "q": mapping_yaml(upstream_url, grace=0)})
    cases = [
        Case("hello", "hello", "aiohttp hello-world", "/"),
        Case("redirect", "redirect", "bare aiohttp 302", "/p/callback"),
        Case("session302", "session", "bare aiohttp-session 302", f"/p/authorize?{AUTHORIZE_QUERY}"),
        Case("relay", "relay", "bare aiohttp relay, /token refresh", "/p/token", refresh_script()),
        Case("flask", "flask", "Flask + requests (gunicorn, 1 sync worker)", "/p/token", refresh_script()),
        Case("flask-session", "flask-session", "Flask + requests.Session (gunicorn, 1 sync worker)", "/p/token", refresh_script()),
        Case("fastapi", "fastapi", "FastAPI + httpx (uvicorn, 1 worker, asyncio)", "/p/token", refresh_script()),
        Case("fastapi-uvloop", "fastapi-uvloop", "FastAPI + httpx (uvicorn, 1 worker, uvloop)", "/p/token", refresh_script()),
        Case("node", "node", "Node.js http + fetch (1 process)", "/p/token", refresh_script()),
        Case("gw-authorize", "gateway", "gateway /authorize", f"/p/authorize?{AUTHORIZE_QUERY}"),
        Case("gw-callback", "gateway", "gateway /callback", "/p/callback"),  # the query comes with the flow cookie
        Case("gw-refresh", "gateway", "gateway /token refresh_token", "/p/token", refresh_script()),
        Case("gw-refresh-nograce", "gateway", "gateway /token refresh_token, grace 0", "/q/token", refresh_script()),
        Case("gw-code", "gateway", "gateway /token authorization_code", "/p/token", code_script([key])),
        Case("gw-healthz", "gateway", "gateway /healthz", "/healthz"),
    ]
    if _has_uvloop():  # the same gateway on uvloop's event loop (the `uvloop` extra; the image has it)
        cases += [
            Case("uv-authorize", "gateway-uvloop", "gateway on uvloop /authorize", f"/p/authorize?{AUTHORIZE_QUERY}"),
            Case("uv-refresh", "gateway-uvloop", "gateway on uvloop /token refresh_token", "/p/token", refresh_script()),
        ]
    if isinstance(only, list):
        cases = [case for case in cases if case.key in only]

    ports = {name: free_port() for name in {case.server for case in cases}}
    for name, port in ports.items():
        if name in ("hello", "redirect", "session", "relay"):
            fleet.start(name, [python, str(HERE / "servers.py"), name, str(port), upstream_url], port)
        elif name.startswith("flask"):
            app = "flask_relay:pooled_app" if name == "flask-session" else "flask_relay:plain_app"
            args = [python, "-m", "gunicorn", "-w", "1", "-k", "sync", "--chdir", str(HERE), "-b", f"127.0.0.1:{port}", "--log-level", "warning", app]
            fleet.start(name, args, port, env={"BENCH_UPSTREAM": upstream_url})
        elif name.startswith("fastapi"):
            loop = "uvloop" if name == "fastapi-uvloop" else "asyncio"
            args = [python, "-m", "uvicorn", "--app-dir", str(HERE), "fastapi_relay:app", "--workers", "1", "--loop", loop,
                    "--http", "httptools", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
            fleet.start(name, args, port, env={"BENCH_UPSTREAM": upstream_url})
        elif name == "node":
            fleet.start(name, ["node", str(HERE / "node_relay.mjs"), str(port), upstream_url], port)
    gateway_cmd = [python, "-m", "gateway", "serve", "--config", str(config), "--port"]
    fleet.start("gateway", [*gateway_cmd, str(ports["gateway"])], ports["gateway"], env=DEFAULT_LOOP)
    if "gateway-uvloop" in ports:
        fleet.start("gateway-uvloop", [*gateway_cmd, str(ports["gateway-uvloop"])], ports["gateway-uvloop"], env={"GATEWAY_LOOP": "uvloop"})
    second_port = free_port()
    fleet.start("gateway-2", [*gateway_cmd, str(second_port)], second_port, env=DEFAULT_LOOP)
    for server in fleet.servers.values():
        wait_ready(server)

    gateway = fleet.servers["gateway"]
    cases = [Case(c.key, c.server, c.label, c.path, flows_script(gateway, flows)) if c.key == "gw-callback" else c for c in cases]
    big = work / "startup"
    big_config = gateway_config(big, key, mappings={f"p{n:03}": mapping_yaml(upstream_url) for n in range(mappings)})

    results: dict[tuple[str, int], list[Load]] = {}
    extras: dict[str, list[float]] = {"rss": [], "startup": [], "one": [], "two": []}
    print(f"wrk 1 thread, {seconds:g} s per run, {rounds} interleaved round(s); CPU from /proc/PID/stat", file=sys.stderr)
    for round_no in range(rounds):
        for case in cases:
            server = fleet.servers[case.server]
            script = None
            if case.script is not None:
                script = work / f"{case.key}.lua"
            if round_no == 0 and seconds >= 2:  # warm up: connections, caches, the JIT-less interpreter's dicts
                if case.script is not None and script is not None:
                    script.write_text(case.script(work, 1))
                load(server, case.path, seconds=1, connections=50, script=script)
            for connections in CONCURRENCY:
                if case.script is not None and script is not None:
                    script.write_text(case.script(work, seconds))
                results.setdefault((case.key, connections), []).append(
                    load(server, case.path, seconds=seconds, connections=connections, script=script)
                )
            print(f"round {round_no + 1}: {case.label} done", file=sys.stderr)
        if not extras_wanted:
            continue

        # Start-up with many mappings: process start to a 200 from /healthz.
        port = free_port()
        starting = fleet.start("startup", [*gateway_cmd[:5], str(big_config), "--port", str(port)], port, env=DEFAULT_LOOP)
        extras["startup"].append(wait_ready(starting, timeout=60))
        fleet.stop("startup")

        # One process against two on /authorize: the same 50 connections, split over two processes.
        second = fleet.servers["gateway-2"]
        authorize = f"/p/authorize?{AUTHORIZE_QUERY}"
        extras["one"].append(parallel_rps([(gateway, authorize)], seconds=seconds, connections=50))
        extras["two"].append(parallel_rps([(gateway, authorize), (second, authorize)], seconds=seconds, connections=25))

        # Peak RSS after 500 connections on /authorize, on a fresh process.
        port = free_port()
        fresh = fleet.start("rss", [*gateway_cmd, str(port)], port, env=DEFAULT_LOOP)
        wait_ready(fresh)
        load(fresh, authorize, seconds=seconds, connections=500, script=None)
        extras["rss"].append(fresh.peak_rss_mb())
        fleet.stop("rss")
    report(cases, results, extras, rounds=rounds, seconds=seconds, mappings=mappings)


def report(cases: Sequence[Case], results: dict[tuple[str, int], list[Load]], extras: dict[str, list[float]], *, rounds: int, seconds: float, mappings: int) -> None:
    def figures(key: str, connections: int) -> list[Load]:
        return results[(key, connections)]

    rows = []
    for case in cases:
        one, fifty = figures(case.key, 1), figures(case.key, 50)
        rows.append(
            [
                case.label,
                span([r.rps for r in one]),
                f"{span([r.p50 for r in one], 2)} / {span([r.p99 for r in one], 2)}",
                span([r.rps for r in fifty]),
                f"{span([r.p50 for r in fifty], 1)} / {span([r.p99 for r in fifty], 1)}",
                f"{span([r.cpu_us_per_request for r in one])} / {span([r.cpu_us_per_request for r in fifty])}",
            ]
        )
    print(f"### Figures (wrk, {seconds:g} s runs, {rounds} round(s), min–max)\n")
    print(table(["server, endpoint", "req/s c=1", "p50 / p99 c=1 (ms)", "req/s c=50", "p50 / p99 c=50 (ms)", "CPU µs/req c=1 / c=50"], rows))

    labels = {case.key: case.label for case in cases}
    ratio_rows = []
    for gw, base in PAIRS:
        if gw not in labels or base not in labels:
            continue
        g50, b50, g1, b1 = figures(gw, 50), figures(base, 50), figures(gw, 1), figures(base, 1)
        ratio_rows.append(
            [
                labels[gw],
                labels[base],
                span([r.cpu_us_per_request for r in g50]),
                span([r.cpu_us_per_request for r in b50]),
                span([b.cpu_us_per_request / g.cpu_us_per_request for g, b in zip(g50, b50, strict=True)], 2),
                span([g.rps / b.rps for g, b in zip(g50, b50, strict=True)], 2),
                span([g.p99 - b.p99 for g, b in zip(g1, b1, strict=True)], 2),
            ]
        )
    print("\n### Ratios (c=50; a ratio is taken within a round)\n")
    print(
        table(
            ["gateway", "baseline", "CPU µs/req gateway", "CPU µs/req baseline", "CPU ratio baseline/gateway", "req/s ratio gateway/baseline", "added p99 c=1 (ms)"],
            ratio_rows,
        )
    )
    if not extras["one"]:
        return  # --cases: the extras were not measured
    two = [t / o for o, t in zip(extras["one"], extras["two"], strict=True)]
    print("\n### The gateway beside the table\n")
    print(
        table(
            ["figure", "value"],
            [
                ["peak RSS after 500 connections on /authorize", f"{span(extras['rss'])} MB"],
                [f"start-up to /healthz with {mappings} mappings", f"{span(extras['startup'], 2)} s"],
                ["/authorize, 1 process, c=50", f"{span(extras['one'])} req/s"],
                ["/authorize, 2 processes, c=25 each", f"{span(extras['two'])} req/s ({span(two, 2)}× one)"],
            ],
        )
    )


if __name__ == "__main__":
    main()
