"""Throughput of the gateway as a ratio against bare aiohttp doing the same hop, in one run.

    .venv/bin/python bench/bench.py [--seconds 5] [--connections 32]

Three servers run as separate processes on 127.0.0.1:

* a fake upstream token endpoint (a static JSON answer);
* **baseline**: a bare aiohttp app doing the least any stateless linking proxy on aiohttp must
  do: ``/authorize`` keeps the redirect URI and state in an encrypted aiohttp-session cookie and
  answers 302; ``/token`` forwards the form to the upstream with one shared ClientSession and
  returns its JSON;
* **gateway**: ``gateway serve`` with a mapping pointing at the same upstream.

The load comes from ``wrk`` (``apt-get install wrk``) in its own process. Each endpoint is
measured on both servers back to back, and the ratio gateway/baseline is printed; ratios taken in
one run on one machine are comparable across machines, absolute numbers are not.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
PLATFORM_ID, PLATFORM_SECRET = "alexa-skill", "alexa-skill-secret"
REDIRECT = "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


UPSTREAM = """
from aiohttp import web
BODY = b'{"access_token":"at-123","token_type":"bearer","expires_in":3600,"refresh_token":"rt-456","scope":"a b"}'
async def token(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_post("/token", token)
web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), access_log=None, print=None)
"""

BASELINE = """
import secrets
import sys
import aiohttp
from aiohttp import web
from aiohttp_session import get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
UPSTREAM = sys.argv[2]
async def authorize(request):
    session = await get_session(request)
    nonce = secrets.token_urlsafe(24)
    session[nonce] = {"r": request.query["redirect_uri"], "s": request.query["state"]}
    return web.Response(status=302, headers={"Location": "https://auth.example/authorize?state=" + nonce})
async def token(request):
    form = await request.post()
    async with request.app["http"].post(UPSTREAM, data=dict(form)) as answer:
        body = await answer.json()
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
async def client(app):
    app["http"] = aiohttp.ClientSession()
    yield
    await app["http"].close()
app = web.Application(middlewares=[session_middleware(EncryptedCookieStorage(Fernet(Fernet.generate_key())))])
app.cleanup_ctx.append(client)
app.router.add_get("/p/authorize", authorize)
app.router.add_post("/p/token", token)
app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def start(args: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.request

    for _ in range(100):
        if process.poll() is not None:
            raise SystemExit(f"{url} exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not start")


def wrk(url: str, *, seconds: int, connections: int, script: str | None = None) -> tuple[float, float]:
    """Requests per second and 99th-percentile latency (ms) from one wrk run."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or "")
    if script:
        args += ["-s", lua.name]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    os.unlink(lua.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    assert p99 is not None, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} failed requests:\n{output}")
    return rps, float(p99.group(1)) * scale


def token_script(form: dict[str, str]) -> str:
    basic = base64.b64encode(f"{PLATFORM_ID}:{PLATFORM_SECRET}".encode()).decode()
    return textwrap.dedent(
        f"""
        wrk.method = "POST"
        wrk.body = {json.dumps(urlencode(form))}
        wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
        wrk.headers["Authorization"] = "Basic {basic}"
        """
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")

    upstream_port, baseline_port, gateway_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}/token"
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    (work / "mappings").mkdir()
    (work / "mappings" / "p.yaml").write_text(
        textwrap.dedent(
            f"""\
            platform: {{profile: alexa, client_id: {PLATFORM_ID}, client_secret: {PLATFORM_SECRET}}}
            upstream:
              client_id: up
              client_secret: up-secret
              authorize: {{url: "https://auth.example/authorize"}}
              token: {{url: "{upstream_url}", client_auth: body}}
            """
        )
    )
    from gateway.seal import generate_key

    (work / "gateway.yaml").write_text(
        f'keys: ["{generate_key()}"]\ncookie: {{secure: false}}\nlog: {{level: warning}}\n'
    )
    processes = [
        start([sys.executable, "-c", UPSTREAM, str(upstream_port)]),
        start([sys.executable, "-c", BASELINE, str(baseline_port), upstream_url]),
        start([sys.executable, "-m", "gateway", "serve", "--config", str(work / "gateway.yaml"), "--port", str(gateway_port)]),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{baseline_port}/healthz", processes[1])
        wait_ready(f"http://127.0.0.1:{gateway_port}/healthz", processes[2])
        query = urlencode(
            {"client_id": PLATFORM_ID, "redirect_uri": REDIRECT, "state": "s" * 40, "response_type": "code", "scope": "a b"}
        )
        refresh = token_script({"grant_type": "refresh_token", "refresh_token": "rt-456"})
        cases = [
            ("GET /p/authorize (302 + flow cookie)", f"/p/authorize?{query}", None),
            ("POST /p/token refresh (one upstream hop)", "/p/token", refresh),
        ]
        print(f"wrk, 1 thread, {options.connections} connections, {options.seconds} s per run; servers: 1 process each")
        print(f"{'endpoint':44} {'baseline rps':>13} {'gateway rps':>12} {'ratio':>6} {'p99 base':>9} {'p99 gw':>8}")
        for name, path, script in cases:
            for port in (baseline_port, gateway_port):  # warm up
                wrk(f"http://127.0.0.1:{port}{path}", seconds=1, connections=options.connections, script=script)
            base_rps, base_p99 = wrk(
                f"http://127.0.0.1:{baseline_port}{path}", seconds=options.seconds, connections=options.connections, script=script
            )
            gw_rps, gw_p99 = wrk(
                f"http://127.0.0.1:{gateway_port}{path}", seconds=options.seconds, connections=options.connections, script=script
            )
            print(f"{name:44} {base_rps:13.0f} {gw_rps:12.0f} {gw_rps / base_rps:6.2f} {base_p99:8.1f}ms {gw_p99:7.1f}ms")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
