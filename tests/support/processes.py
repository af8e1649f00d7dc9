"""``gateway serve`` as a real subprocess, the way operators run it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess:
    """A running ``python -m gateway serve``; its stdout and stderr are collected in ``output``."""

    process: asyncio.subprocess.Process
    url: str
    lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 15.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await self.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    async def wait_for_line(self, text: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in self.output:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{text!r} not in gateway output:\n{self.output}")
            await asyncio.sleep(0.05)


async def _collect(stream: asyncio.StreamReader, sink: list[str]) -> None:
    while line := await stream.readline():
        sink.append(line.decode(errors="replace"))


async def start_gateway_process(
    config: Path, *, sock: socket.socket, env: dict[str, str] | None = None, ssl_context: ssl.SSLContext | None = None
) -> GatewayProcess:
    """Start ``gateway serve --config config --fd N`` on ``sock`` (bound by the test, see
    :mod:`support.sockets`) and wait until /readyz answers 200.

    The child inherits the socket and listens on it; this process closes its copy, so the port
    is never free between the test choosing it and the gateway serving it."""
    port = int(sock.getsockname()[1])
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--config", str(config), "--fd", str(sock.fileno()),
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    finally:
        sock.close()
    scheme = "https" if ssl_context else "http"
    running = GatewayProcess(process, f"{scheme}://127.0.0.1:{port}")
    assert process.stdout is not None
    running._reader = asyncio.create_task(_collect(process.stdout, running.lines))
    deadline = asyncio.get_running_loop().time() + 15.0
    async with aiohttp.ClientSession() as probe:
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                await running.wait()
                raise AssertionError(f"gateway serve exited {process.returncode}:\n{running.output}")
            try:
                async with probe.get(f"{running.url}/readyz", ssl=ssl_context or False) as response:
                    if response.status == 200:
                        return running
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    await running.stop()
    raise AssertionError(f"gateway serve did not become ready:\n{running.output}")
