"""Start test servers on a socket that is already bound, instead of guessing a free port.

Binding port 0, reading the number and closing the socket, then binding again later (the old
``free_port()``) leaves a window in which any other process may take the port. Here the socket the test binds is
the one the server listens on, as aiohttp's own ``TestServer`` does with ``SockSite``.
"""

from __future__ import annotations

import atexit
import functools
import socket
import ssl
from collections.abc import Sequence

from aiohttp import web

__all__ = ["bound_socket", "bound_sockets", "port_of", "refusing_port", "start_site", "unused_port"]


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to ``host`` on a port the kernel picked; the caller listens on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def bound_sockets(hosts: Sequence[str]) -> list[socket.socket]:
    """One socket per host, all bound to one port (a server answering on several loopback
    addresses as several hosts). The port is the kernel's pick on the first host; if another
    process holds it on one of the others, a new pick is tried."""
    for _ in range(20):
        first = bound_socket(hosts[0])
        socks = [first]
        try:
            for host in hosts[1:]:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(sock)
                sock.bind((host, port_of(first)))
        except OSError:
            for sock in socks:
                sock.close()
            continue
        return socks
    raise OSError(f"no port free on all of {', '.join(hosts)}")


def port_of(sock: socket.socket) -> int:
    """The port ``sock`` is bound to (what a config file or a URL needs before the server starts)."""
    return int(sock.getsockname()[1])


async def start_site(
    runner: web.BaseRunner, host: str = "127.0.0.1", *, sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None
) -> str:
    """Serve ``runner`` (set up already) on ``sock``, or on a freshly bound socket; return its base URL.

    Pass ``sock`` when the port had to be known before (a config file names it). The site owns
    the socket: ``runner.cleanup()`` closes it."""
    sock = bound_socket(host) if sock is None else sock
    host, port = sock.getsockname()[:2]
    try:
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        sock.close()
        raise
    return f"{'https' if ssl_context else 'http'}://{host}:{port}"


@functools.cache
def refusing_port(host: str = "127.0.0.1") -> int:
    """A port where connections are refused for the whole session: "nobody listens here".

    The socket is bound and never listens (the kernel answers a SYN with RST), and it stays
    bound until the session ends, so no other process can start listening on the port meanwhile
    (as it could on a port that was merely free a moment ago)."""
    sock = bound_socket(host)
    atexit.register(sock.close)
    return port_of(sock)


def unused_port() -> int:
    """A port that was free a moment ago: only for a server that must bind a port number itself.

    Two do: redis-server (no option to take a bound socket, and ``--port 0`` turns TCP off; its
    restart must come back on the same port anyway) and the gateway's ops listener, whose port
    is a number in gateway.yaml that ``gateway health`` reads back. Everything else starts on a
    socket the test holds (:func:`bound_socket`)."""
    with bound_socket() as sock:
        return port_of(sock)
