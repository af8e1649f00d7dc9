"""Single use of the gateway's codes, as far as one process can see (RFC 6749 §4.1.2, §10.5).

The code the platform holds is a sealed value, so the gateway needs no database to trust it —
but a sealed value can be presented twice. The real guard is the upstream's own code inside it,
which a compliant upstream accepts once. This module adds a process-local guard in front of it:
a code is *claimed* before the upstream call, kept once the exchange succeeded (until it would
have expired anyway), and released if the exchange failed, so a platform may retry after an
outage. With a shared store (``store: {url: …}``, :mod:`gateway.oauth.store`) the claim is also taken there
(``SET NX PX``), so a code replayed at another replica is refused without reaching the upstream;
without one, or while the store is down, a compliant upstream still refuses the replay.

:class:`CodeClaims` is that guard for one app, built once from the store (and a clock) and called
by the handlers: codes at ``/token``, a flow's ``state`` nonce at ``/callback``.

Codes are remembered by a fingerprint of their opened payload, not their text
(:meth:`gateway.oauth.state.CodePayload.fingerprint`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from gateway.oauth.store import SharedStore

__all__ = ["RedeemedCodes", "CodeClaims"]


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


class CodeClaims:
    """Single use of codes and ``state`` nonces: this process's claims, then the shared store's.

    ``redeemed`` is this process's (a test may look into it); ``clock`` (monotonic seconds) times
    its claims.
    """

    def __init__(self, store: SharedStore, *, clock: Callable[[], float] = time.monotonic, capacity: int = 100_000) -> None:
        self.store = store
        self.clock = clock
        self.redeemed = RedeemedCodes(capacity=capacity)

    async def claim_code(self, claim: str, *, ttl: float) -> bool:
        """Claim a code (by its fingerprint) before its exchange: False if it was claimed already,
        here or, with a shared store, at another replica (then this process's claim is undone)."""
        if not self.redeemed.claim(claim, ttl=ttl, now=self.clock()):
            return False
        store = self.store
        if store.shared and not await store.claim(store.key("c", claim), ttl):
            self.redeemed.release(claim)  # another replica holds it; this process never spent it
            return False
        return True

    async def release_code(self, claim: str) -> None:
        """Undo a claim whose exchange failed, so the platform may try the code again."""
        self.redeemed.release(claim)
        store = self.store
        if store.shared:
            await store.delete(store.key("c", claim))

    async def claim_state(self, nonce: str, *, ttl: float) -> bool:
        """A flow's ``state`` nonce is single use: claimed at its callback, in every kind of store."""
        store = self.store
        return await store.claim(store.key("s", nonce), ttl)
