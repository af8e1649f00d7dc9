"""A redis-server of the test's own on 127.0.0.1 (Debian's real one), for the shared store's tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.sockets import unused_port

__all__ = ["REDIS_SERVER", "Redis"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Redis:
    """A redis-server of our own on 127.0.0.1, stoppable and restartable on the same port."""

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _ in range(5):
            if not self.port:
                self.port = unused_port()  # retried below if another process took it meanwhile
            self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return
            self.stop()
            self.port = 0
        raise AssertionError("redis-server did not start")

    def command(self) -> list[str]:
        """The redis-server command line (a subclass adds a password or TLS)."""
        return [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory)]

    def ping(self) -> bool:
        """True once the server answers PING on its port."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _wait_ready(self) -> bool:
        assert self.process is not None
        for _ in range(100):
            if self.process.poll() is not None:
                return False
            if self.ping():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        port = self.port
        self.start()
        assert self.port == port, "redis came back on another port"

    def scan(self) -> dict[str, str]:
        """Every key and its value (all the gateway writes are strings); each must have a TTL.

        A key may go between the scan and the look at it (a lock released, an entry expired):
        Redis then answers -2, which is no fault; -1 is a key that would live for ever."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        try:
            found: dict[str, str] = {}
            for key in client.scan_iter(count=1000):
                ttl, value = client.pttl(key), client.get(key)
                if ttl == -2 or value is None:
                    continue  # gone since the scan
                assert ttl > 0, f"{key} has no TTL"
                found[key] = str(value)
            return found
        finally:
            client.close()
