"""Start test servers on a socket that is already bound, instead of guessing a free port.

``free_port()`` (conftest) binds port 0, reads the number and closes the socket; the server binds
again later, and in between any other process may take the port. Here the socket the test binds is
the one the server listens on, as aiohttp's own ``TestServer`` does with ``SockSite``.
"""

from __future__ import annotations

import socket

from aiohttp import web

__all__ = ["bound_socket", "start_site"]


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to ``host`` on a port the kernel picked; the caller listens on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def start_site(runner: web.AppRunner, host: str = "127.0.0.1") -> str:
    """Serve ``runner`` (set up already) on a freshly bound socket; return its base URL.

    The site owns the socket: ``runner.cleanup()`` closes it."""
    sock = bound_socket(host)
    port = int(sock.getsockname()[1])
    try:
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        raise
    return f"http://{host}:{port}"
