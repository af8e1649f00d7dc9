"""What the flow trace costs under abuse: RSS per MiB of junk ``/token`` requests, and the event
loop's longest stall while ``/_trace/`` is served from a full buffer.

    .venv/bin/python bench/trace_amplification.py [--mib 4] [--fill-mib 8] [--python PATH]

One gateway process (``gateway serve``, tracing on with its default size) on 127.0.0.1, its
upstream a refused port (nothing here reaches an upstream):

1. **Unauthenticated amplification.** ``--mib`` MiB of ``POST /p/token`` bodies with a wrong
   client secret, each body 15 KiB of distinct 8-character parameter names, the code cycling over
   200 values (so on a trace that records before client authentication they join 200 flows of many hops).
   Reported: the growth of the process's ``VmRSS`` (``/proc/PID/status``) per MiB sent.
2. **Filling the buffer as the platform could.** Bodies of 64-character names *with* the right
   client secret (``invalid_grant`` answers), which a trace must keep, the code cycling over 50
   values, until ``--fill-mib`` MiB were sent; reported: RSS after, and the KiB the trace says it keeps.
3. **Stall.** ``/healthz`` is polled back to back while ``/_trace/`` and ``/_trace/flows.json``
   are fetched three times each; reported: the longest ``/healthz`` round trip, and the same with
   no trace request in flight, for comparison.

``--python`` runs the gateway of another environment, so the same sitting can measure the code
before a change: ``git worktree add /tmp/before <commit>``, a venv there with ``pip install -e .``,
then ``--python /tmp/before/.venv/bin/python`` (an editable install wins over ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

TRACE_TOKEN = "bench-trace-token-" + "0123456789abcdef" * 2
CLIENT_ID, CLIENT_SECRET = "bench-platform", "bench-platform-secret"
VENDOR = "M1BENCHVENDOR"
BODY_BYTES = 15 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write_config(directory: Path, port: int, trace: bool) -> Path:
    (directory / "mappings").mkdir()
    refused = _free_port()
    (directory / "mappings" / "p.yaml").write_text(
        "platform:\n  profile: alexa\n"
        f"  vendor_ids: [{VENDOR}]\n  client_id: {CLIENT_ID}\n  client_secret: {CLIENT_SECRET}\n"
        "upstream:\n  client_id: up\n  client_secret: up-secret\n"
        f"  authorize: {{url: 'http://127.0.0.1:{refused}/authorize'}}\n"
        f"  token: {{url: 'http://127.0.0.1:{refused}/token'}}\n"
    )
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    (directory / "gateway.yaml").write_text(
        f"listen: {{host: 127.0.0.1, port: {port}}}\npublic_url: http://127.0.0.1:{port}\n"
        f'keys: ["{key}"]\ncookie: {{secure: false}}\nlog: {{level: error}}\n'
        + (f"trace: {{token: {TRACE_TOKEN}}}\n" if trace else "")
    )
    return directory / "gateway.yaml"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _body(code: str, name_bytes: int) -> bytes:
    """About ``BODY_BYTES`` of a token request, nearly all distinct parameter names of ``2 * name_bytes`` characters."""
    head = f"grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fexample.com%2Fcb"
    names, size = [], len(head)
    while size < BODY_BYTES - 16:
        name = secrets.token_hex(name_bytes)
        names.append(f"&{name}=")
        size += len(name) + 2
    return (head + "".join(names)).encode()


async def _send(url: str, mib: float, secret: str, *, codes: int, name_bytes: int) -> None:
    auth = "Basic " + base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    total, n, limit = 0, 0, int(mib * 1024 * 1024)
    async with aiohttp.ClientSession() as client:

        async def one(body: bytes) -> None:
            async with client.post(url, data=body, headers=headers) as response:
                await response.read()

        while total < limit:
            bodies = [_body(f"code-{(n + i) % codes}", name_bytes) for i in range(8)]
            n += len(bodies)
            total += sum(len(body) for body in bodies)
            await asyncio.gather(*(one(body) for body in bodies))


async def _longest_healthz(base: str, during: bool) -> float:
    """The longest /healthz round trip (seconds) while the trace pages are fetched (or not)."""
    longest, done = 0.0, asyncio.Event()
    bearer = {"Authorization": f"Bearer {TRACE_TOKEN}"}
    async with aiohttp.ClientSession() as client:

        async def poll() -> None:
            nonlocal longest
            while not done.is_set():
                began = time.perf_counter()
                async with client.get(f"{base}/healthz") as response:
                    await response.read()
                longest = max(longest, time.perf_counter() - began)
                await asyncio.sleep(0.005)

        async def pages() -> None:
            if during:
                for _ in range(3):
                    for path in ("/_trace/", "/_trace/flows.json"):
                        async with client.get(base + path, headers=bearer) as response:
                            await response.read()
            else:
                await asyncio.sleep(2)
            done.set()

        await asyncio.gather(poll(), pages())
    return longest


async def _trace_kib(base: str) -> float:
    """The trace's own count of the KiB it keeps, where its page says (``N of M KiB``), else -1."""
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/_trace/", headers={"Authorization": f"Bearer {TRACE_TOKEN}"}) as response:
            found = re.search(r"(\d+) of \d+ KiB", await response.text())
    return float(found.group(1)) if found else -1.0


async def _wait_up(base: str) -> None:
    for _ in range(200):
        try:
            async with aiohttp.ClientSession() as client, client.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError("the gateway did not start")


async def measure(python: str, mib: float, fill_mib: float, trace: bool = True) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        config = _write_config(Path(tmp), port, trace)
        process = subprocess.Popen([python, "-m", "gateway", "serve", "--config", str(config)], cwd=tmp,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_up(base)
            before = _rss_kib(process.pid)
            await _send(f"{base}/p/token", mib, "wrong-secret", codes=200, name_bytes=4)
            after = _rss_kib(process.pid)
            await _send(f"{base}/p/token", fill_mib, CLIENT_SECRET, codes=50, name_bytes=32)
            filled = _rss_kib(process.pid)
            idle = await _longest_healthz(base, during=False)
            stalled = await _longest_healthz(base, during=True)
            kept = await _trace_kib(base)
        finally:
            process.terminate()
            process.wait(10)
    return {
        "rss_kib_per_mib_unauthenticated": round((after - before) / mib, 1),
        "rss_mib_after_fill": round(filled / 1024, 1),
        "healthz_longest_ms_idle": round(idle * 1000, 1),
        "healthz_longest_ms_while_trace_served": round(stalled * 1000, 1),
        "trace_kib_kept": kept,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=float, default=4.0, help="MiB of unauthenticated /token bodies")
    parser.add_argument("--fill-mib", type=float, default=8.0, help="MiB of authenticated /token bodies to fill the buffer")
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose gateway runs")
    parser.add_argument("--no-trace", action="store_true", help="the same run with tracing off, for comparison")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.python, args.mib, args.fill_mib, trace=not args.no_trace)), indent=1))


if __name__ == "__main__":
    main()
