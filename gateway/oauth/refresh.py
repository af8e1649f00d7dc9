"""Refreshes that survive rotation, retries and races (RFC 6749 §6, RFC 9700 §4.14.2).

Many upstreams rotate refresh tokens: each refresh returns a new one and invalidates the old
one at once. If the platform's answer is lost after the upstream rotated (Alexa ran out of its
time budget, the connection dropped), the platform retries with the old token and the link is
dead; two refreshes racing with one token end the same way. Amazon and Google both ask token
servers not to invalidate the old token immediately; the gateway gives that grace itself:

* **Grace.** For ``upstream.token.refresh.grace`` seconds (60 by default, 0 turns it off) the
  normalised answer to a successful refresh is remembered, for the presented refresh token and
  the platform client. The same token again within the window gets the same answer, without an
  upstream call. A definite ``invalid_grant`` is remembered for the same window at most; other
  failures are not remembered, so a retry after an outage reaches the upstream.
* **Single flight.** Concurrent refreshes with one token make one upstream call.

Two homes for those entries, by what the ``store:`` is:

* **In the process** (``store: memory``, the default): the answer is kept as it is, in
  :class:`RefreshFlights`, and the first request for a token makes the call in its own task; the
  ones that arrive meanwhile wait for its future. Nothing is sealed or hashed, because nothing
  leaves the process: a seal whose key sits in the same memory would protect nothing, and it cost
  a third of what the grace window added to a refresh. The leader's call runs to its end even if
  the platform hangs up, because aiohttp does not cancel a handler whose client went away (the
  gateway leaves ``handler_cancellation`` off), so its answer is there for the retry.
* **In the shared store** (``store: {url: redis://…}``): the entry is named by a hash of the
  token (:func:`gateway.oauth.store.store_key`, the same name at every replica whatever its keys) and
  sealed under the current key with that name inside, since it holds tokens and leaves the
  process; an entry that opens under another name, or not at all, is ignored (the upstream is
  asked). In a process the waiters share one task, shielded from the platform hanging up; across
  replicas a ``SET NX PX`` lock names the leader, and the others poll for its grace entry until a
  deadline. The lock holds a random owner token and is released by compare-and-delete, so a
  leader that overran the lock's TTL never deletes a lock another replica has taken since.

The key is the *upstream's* refresh token (with the provider and the platform client): for a link
that keeps context, the one inside the opened envelope, not the envelope's text — a Fernet token
with bytes after its padding opens like the original, so two texts of one envelope must share one
window and one flight (as :meth:`gateway.oauth.state.CodePayload.fingerprint` does for codes).

Both are one :class:`RefreshGrace`, built once by the app from its collaborators (the store, the
metrics as a :class:`GraceObserver`, a clock) and called by the handlers; a test builds one without
an app. A revoked refresh token (:meth:`RefreshGrace.revoked`, RFC 7009) leaves the window: its remembered answer, the
new refresh token included, is replaced by a refusal for the rest of the window.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from gateway.oauth.jsontext import compact
from gateway.oauth.responses import InvalidGrant, OAuthError, TemporarilyUnavailable, TokenAnswer
from gateway.oauth.seal import Sealer, SealError
from gateway.oauth.state import GRACE_PURPOSE, GraceEntry
from gateway.oauth.store import Counter, MemoryStore, SharedStore

__all__ = ["RefreshFlights", "RefreshGrace", "GraceObserver", "GRACE_PURPOSE", "REVOKED"]

#: How often a waiter on another replica looks for the leader's answer.
_POLL = 0.05

Call = Callable[[], Coroutine[Any, Any, TokenAnswer]]


class GraceObserver(Protocol):
    """What the grace window reports (the Prometheus metrics of :mod:`gateway.observe.metrics` have this shape)."""

    @property
    def grace_hits(self) -> Counter:
        """``gateway_refresh_grace_hits_total``: refreshes answered from the window."""
        ...

    @property
    def single_flight_joins(self) -> Counter:
        """``gateway_single_flight_joins_total``: refreshes that waited for one already in flight."""
        ...


class RefreshFlights:
    """This process's refreshes: those in flight, and (without a shared store) those remembered.

    ``running`` holds, by key, what the waiters for a refresh in flight await: the shared store's
    task, or the in-process leader's future. ``remembered`` is the in-process grace window; tests
    move its ``clock`` or ``clear()`` it.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.running: dict[str, asyncio.Future[TokenAnswer]] = {}
        #: An answer as its compact JSON (bytes), a refusal as its description (text): values the
        #: garbage collector does not track. A window holds up to 100,000 of them, and as dicts
        #: each full collection walked them all (33 ms at 100,000; 4 ms as bytes).
        self.remembered: MemoryStore[bytes | str] = MemoryStore(clock=clock)

    def forget(self) -> None:
        """Forget every remembered answer (a test that presents one refresh token afresh)."""
        self.remembered.clear()


# The store's TTL ends the window; the seal's own expiry (whole seconds) is a second later, a
# backstop against a store that kept an entry too long.
def _seal_answer(sealer: Sealer, key: str, answer: TokenAnswer, ttl: int) -> str:
    return sealer.seal(GRACE_PURPOSE, GraceEntry(answer=answer, name=key).to_wire(), ttl=ttl + 1)


def _seal_refusal(sealer: Sealer, key: str, description: str, ttl: int) -> str:
    return sealer.seal(GRACE_PURPOSE, GraceEntry(refusal=description, name=key).to_wire(), ttl=ttl + 1)


async def _remembered(store: SharedStore, sealer: Sealer, key: str) -> TokenAnswer | None:
    """The answer remembered for ``key``; raises the remembered ``invalid_grant``; None if none."""
    sealed = await store.get(key)
    if sealed is None:
        return None
    try:
        entry = GraceEntry.open_at(sealer, key, sealed)
    except SealError:  # a retired key, expired, not an entry's shape, or another key's entry: ask the upstream
        return None
    if entry.refusal is not None:
        raise InvalidGrant(entry.refusal)
    return entry.answer


#: A remembered answer's JSON (the C encoder, built once).
_answer_json = compact()

#: What a refresh with a revoked token hears for the rest of the grace window.
REVOKED = "refresh_token was revoked"


class RefreshGrace:
    """The grace window and single flight of one app (the module docstring says what and why).

    ``store`` is where replicas share entries (its ``shared`` says whether they do), ``metrics``
    counts hits and joins, ``clock`` (monotonic seconds) times the in-process window and how long
    a waiter on another replica waits; ``flights`` is this process's (a test may look into it).
    """

    def __init__(
        self, store: SharedStore, metrics: GraceObserver, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.flights = RefreshFlights(clock=clock)

    def refresh(
        self,
        sealer: Sealer,
        *,
        provider: str,
        client_id: str,
        refresh_token: str,
        grace: int,
        deadline: float,
        call: Call,
    ) -> Coroutine[Any, Any, TokenAnswer]:
        """The answer to refreshing ``refresh_token`` (the upstream's, see the module docstring):
        remembered, joined, or fetched by ``call`` — to be awaited.

        ``deadline`` bounds how long a waiter on another replica waits for the leader's answer (the
        upstream's own timeout); after it, it asks the upstream itself. Not a coroutine itself: it
        hands over the one that does the work (each layer costs its creation and an await).
        """
        if grace <= 0:
            return call()
        if not self.store.shared:
            return self._in_process("\x00".join((provider, client_id, refresh_token)), grace, call)
        return self._shared(sealer, provider, client_id, refresh_token, grace, deadline, call)

    async def _shared(
        self, sealer: Sealer, provider: str, client_id: str, refresh_token: str, grace: int, deadline: float, call: Call
    ) -> TokenAnswer:
        """The grace window and single flight in the shared store (the module docstring says how)."""
        store, flights = self.store, self.flights
        key = store.key("g", provider, client_id, refresh_token)
        answer = await self._remembered_counted(sealer, key)
        if answer is not None:
            return answer
        flight = flights.running.get(key)
        if flight is not None:
            self.metrics.single_flight_joins.inc()
        else:
            flight = asyncio.create_task(self._lead(sealer, key, grace, deadline, call))
            flights.running[key] = flight
            flight.add_done_callback(lambda done: _finished(flights, key, done))
        # shield: a platform that hangs up cancels its own wait, not the refresh the others share
        return await asyncio.shield(flight)

    async def revoked(self, sealer: Sealer, *, provider: str, client_id: str, refresh_token: str, grace: int) -> None:
        """Take a revoked refresh token (the upstream's) out of the grace window (RFC 7009 §2.1: "the
        token ... cannot be used anymore"): whatever was remembered for it — the answer to its last
        refresh, a new refresh token included — becomes a refusal until the window would have ended."""
        if grace <= 0:
            return
        store = self.store
        if not store.shared:
            self.flights.remembered.keep("\x00".join((provider, client_id, refresh_token)), REVOKED, grace)
            return
        key = store.key("g", provider, client_id, refresh_token)
        await store.put(key, _seal_refusal(sealer, key, REVOKED, grace), grace)

    async def _in_process(self, key: str, grace: int, call: Call) -> TokenAnswer:
        """The grace window and single flight without a shared store: a dict and a future, no task."""
        flights = self.flights
        entry = flights.remembered.lookup(key)
        if entry is not None:
            self.metrics.grace_hits.inc()
            if isinstance(entry, str):
                raise InvalidGrant(entry)
            return cast(TokenAnswer, json.loads(entry))  # each request's answer is its own
        flight = flights.running.get(key)
        if flight is not None:
            self.metrics.single_flight_joins.inc()
            return await _join(flight)
        flight = asyncio.get_running_loop().create_future()
        flights.running[key] = flight
        try:
            answer = await call()
        except OAuthError as err:
            if err.error == "invalid_grant":  # definite: the upstream says this grant is bad
                flights.remembered.keep(key, err.description, grace)
            flight.set_exception(err)
            flight.exception()  # retrieved: there may be no waiter
            raise
        except BaseException:
            flight.cancel()  # cancelled (shutdown) or the gateway's own failure: the waiters are told
            raise
        else:
            flights.remembered.keep(key, _answer_json(answer).encode("utf-8"), grace)  # the leader's stays its own
            flight.set_result(answer)
            return answer
        finally:
            del flights.running[key]

    async def _remembered_counted(self, sealer: Sealer, key: str) -> TokenAnswer | None:
        try:
            answer = await _remembered(self.store, sealer, key)
        except InvalidGrant:
            self.metrics.grace_hits.inc()
            raise
        if answer is not None:
            self.metrics.grace_hits.inc()
        return answer

    async def _lead(self, sealer: Sealer, key: str, grace: int, deadline: float, call: Call) -> TokenAnswer:
        """This process's one refresh for ``key``: take the store's lock, or wait for whoever holds it."""
        store, metrics = self.store, self.metrics
        lock = "gw:l:" + key.removeprefix("gw:g:")
        owner = secrets.token_urlsafe(12)
        lock_ttl = deadline + 1.0
        give_up = self.clock() + deadline
        joined = False
        while not (locked := await store.claim(lock, lock_ttl, owner)):
            # Another replica is refreshing this token: its answer will be in the grace entry.
            if not joined:
                joined = True
                metrics.single_flight_joins.inc()
            await asyncio.sleep(_POLL)
            answer = await self._remembered_counted(sealer, key)
            if answer is not None:
                return answer
            if self.clock() >= give_up:
                break  # the leader is lost or slow: ask the upstream ourselves, as without a store
        try:
            answer = await _remembered(store, sealer, key)  # it may have finished just before we locked
            if answer is not None:
                metrics.grace_hits.inc()
                return answer
            try:
                answer = await call()
            except OAuthError as err:
                if err.error == "invalid_grant":  # definite: the upstream says this grant is bad
                    await store.put(key, _seal_refusal(sealer, key, err.description, grace), grace)
                raise  # anything else is temporary or the gateway's own trouble: not remembered
            await store.put(key, _seal_answer(sealer, key, answer, grace), grace)
            return answer
        finally:
            if locked:
                await store.release(lock, owner)  # only if it is still ours


def _finished(flights: RefreshFlights, key: str, flight: asyncio.Future[TokenAnswer]) -> None:
    if flights.running.get(key) is flight:
        del flights.running[key]
    if not flight.cancelled():
        flight.exception()  # retrieved: every waiter may have hung up already


async def _join(flight: asyncio.Future[TokenAnswer]) -> TokenAnswer:
    """Wait for the leader's answer; a waiter that hangs up cancels its own wait only."""
    try:
        answer = await asyncio.shield(flight)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if flight.cancelled() and task is not None and not task.cancelling():
            # The leader did not finish (the gateway is stopping, or failed unexpectedly).
            raise TemporarilyUnavailable("the refresh this request waited for did not finish; try again") from None
        raise
    return answer.copy()
