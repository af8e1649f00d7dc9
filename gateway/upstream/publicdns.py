"""Connecting only to public addresses, for upstream hosts a user named (the tenant form, kept values).

A URL whose host comes from a per-link value without ``allow_private``
(:func:`gateway.config.templates.host_needs_public_address`) must not reach the gateway's own
network (SSRF). Checking the name's addresses and then letting the HTTP client look the name up
again leaves two holes: a check whose lookup fails has nothing to refuse (and used to allow the
call), and a name that answers differently the second time (DNS rebinding, a TTL of 0) passes the
check with a public address and is connected to at a private one.

Here the check *is* the lookup the connection uses: :class:`PublicOnlyResolver` is the resolver of
an upstream client of its own (:class:`gateway.upstream.http1.Http1Client` with ``resolver=``),
which looks up anew for each connection and connects only to the addresses it vetted, all of them
public, or raises. A lookup that fails fails the call (closed). The upstream calls to hosts fixed
in a mapping keep the shared client: nothing here runs for them.

"Public" is :attr:`ipaddress.IPv4Address.is_global` and not multicast, minus what Python 3.11 still
calls global: NAT64 prefixes (RFC 6052 ``64:ff9b::/96``, RFC 8215 ``64:ff9b:1::/48``), which a
NAT64 gateway translates to any IPv4 address, private ones included, and the deprecated IPv6
site-local ``fec0::/10`` (RFC 3879), still routed inside some networks; an IPv4-mapped IPv6 address
is judged by its IPv4 address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

__all__ = ["NOT_PUBLIC", "PrivateAddress", "PublicOnlyResolver", "is_public"]

NOT_PUBLIC = tuple(ipaddress.ip_network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "fec0::/10"))


def is_public(text: str) -> bool:
    """Whether an address (``fe80::1%eth0`` forms included) is one the internet routes to someone else."""
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif any(address in network for network in NOT_PUBLIC):
            return False
    return address.is_global and not address.is_multicast


class PrivateAddress(OSError):
    """The name resolves to an address that is not public: the connection is not made."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves with ``base`` and returns the answer only when every address in it is public.

    ``base``: the lookup itself (aiohttp's threaded ``getaddrinfo`` by default; tests drive a
    resolver of their own). Any failure of the lookup propagates, an empty answer is a failure,
    and one non-public address refuses the whole answer (the client would try them in turn).
    """

    def __init__(self, base: AbstractResolver | None = None, *, public: Callable[[str], bool] = is_public) -> None:
        self._base = base
        self._public = public

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if self._base is None:
            self._base = ThreadedResolver()  # needs the running loop: made at the first lookup
        answer = await self._base.resolve(host, port, family)
        if not answer:
            raise OSError(f"no address for {host}")
        for result in answer:
            if not self._public(result["host"]):
                raise PrivateAddress(f"{host} resolves to an address that is not public")
        return answer

    async def close(self) -> None:
        if self._base is not None:
            await self._base.close()
