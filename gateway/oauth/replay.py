"""Single use of the gateway's codes, as far as one process can see (RFC 6749 §4.1.2, §10.5).

The code the platform holds is a sealed value, so the gateway needs no database to trust it —
but a sealed value can be presented twice. The real guard is the upstream's own code inside it,
which a compliant upstream accepts once. This module adds a process-local guard in front of it:
a code is *claimed* before the upstream call, kept once the exchange succeeded (until it would
have expired anyway), and released if the exchange failed, so a platform may retry after an
outage. With a shared store (``store: {url: …}``, :mod:`gateway.store`) the claim is also taken there
(``SET NX PX``), so a code replayed at another replica is refused without reaching the upstream;
without one, or while the store is down, a compliant upstream still refuses the replay.

Codes are remembered by a fingerprint of their opened payload, not their text
(:meth:`gateway.oauth.state.CodePayload.fingerprint`).
"""

from __future__ import annotations

import time
from collections import OrderedDict

from aiohttp import web

from gateway.store import STORE

__all__ = ["RedeemedCodes", "REDEEMED", "claim_shared", "release_shared", "claim_state"]


class RedeemedCodes:
    """Fingerprints of codes claimed in this process, each with the time it may be forgotten."""

    def __init__(self, *, capacity: int = 100_000) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def claim(self, key: str, *, ttl: float, now: float | None = None) -> bool:
        """True if ``key`` was free and is now claimed; False if it was claimed already."""
        current = time.monotonic() if now is None else now
        while self._until and (next(iter(self._until.values())) <= current or len(self._until) >= self._capacity):
            self._until.popitem(last=False)  # the oldest claims expire first
        if key in self._until:
            return False
        self._until[key] = current + ttl
        return True

    def release(self, key: str) -> None:
        """Forget a claim whose exchange failed, so the platform may try the code again."""
        self._until.pop(key, None)

    def clear(self) -> None:
        """Forget every claim (a fuzzer that presents the same genuine codes again and again)."""
        self._until.clear()

    def __len__(self) -> int:
        return len(self._until)


REDEEMED = web.AppKey("redeemed_codes", RedeemedCodes)


async def claim_shared(app: web.Application, claim: str, *, ttl: float) -> bool:
    """Claim ``claim`` in the shared store too; True without one (the process guard is enough)."""
    store = app[STORE]
    return not store.shared or await store.claim(store.key("c", claim), ttl)


async def release_shared(app: web.Application, claim: str) -> None:
    store = app[STORE]
    if store.shared:
        await store.delete(store.key("c", claim))


async def claim_state(app: web.Application, nonce: str, *, ttl: float) -> bool:
    """A flow's ``state`` nonce is single use: claimed at its callback, in every kind of store."""
    store = app[STORE]
    return await store.claim(store.key("s", nonce), ttl)
