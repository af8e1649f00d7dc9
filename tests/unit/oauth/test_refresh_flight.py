"""The in-process refresh grace and single flight (gateway/oauth/refresh.py, without a shared store).

The end-to-end behaviour (a lost answer given again, twenty racing refreshes, Redis across
replicas) is in tests/e2e/test_refresh_grace.py; these are the edges a real upstream can't time:
a leader that is cancelled under its waiters, a refusal shared by every waiter, answers that are
each request's own, and nothing sealed or written to the store when nothing leaves the process.
The grace window is built here as the app builds it, from a store and metrics: no app, no server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.config.settings import ConnectionSettings, StoreSettings
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.responses import InvalidGrant, TemporarilyUnavailable, TokenAnswer
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.store import MemoryStore, SharedStore
from gateway.observe.metrics import Metrics
from gateway.web.runner import GatewayRunner


@pytest.fixture
async def grace() -> AsyncIterator[RefreshGrace]:
    metrics = Metrics()
    built = RefreshGrace(SharedStore(StoreSettings(), metrics), metrics)
    yield built
    await built.store.close()


def sample(grace: RefreshGrace, name: str) -> float | None:
    """A counter's value in the metrics the grace window was built with."""
    assert isinstance(grace.metrics, Metrics)
    return grace.metrics.registry.get_sample_value(name)


class Upstream:
    """A refresh call the test releases: counts calls, answers or raises what it is told."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.outcome: TokenAnswer | Exception = {"access_token": "at", "token_type": "Bearer", "refresh_token": "rt-2"}

    async def __call__(self) -> TokenAnswer:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome.copy()


def refresh(grace: RefreshGrace, upstream: Upstream, token: str = "rt-1", *, seconds: int = 60) -> asyncio.Task[TokenAnswer]:
    return asyncio.create_task(
        grace.refresh(
            Sealer([generate_key()]), provider="p", client_id="c", refresh_token=token, grace=seconds, deadline=1.0, call=upstream
        )
    )


async def started(grace: RefreshGrace, waiters: int) -> None:
    """Until the leader's flight is registered and ``waiters`` more requests joined it."""
    async with asyncio.timeout(5):
        while not (grace.flights.running and (sample(grace, "gateway_single_flight_joins_total") or 0) >= waiters):
            await asyncio.sleep(0)


async def test_waiters_share_the_leaders_answer_and_a_retry_is_served_from_memory(grace: RefreshGrace) -> None:
    upstream = Upstream()
    tasks = [refresh(grace, upstream) for _ in range(5)]
    await started(grace, 4)
    upstream.release.set()
    answers = await asyncio.gather(*tasks)
    assert upstream.calls == 1 and all(answer == answers[0] for answer in answers)
    answers[0]["access_token"] = "changed by one request"
    again = await refresh(grace, upstream)
    assert upstream.calls == 1 and again["access_token"] == "at", "each answer is the request's own copy"
    assert sample(grace, "gateway_refresh_grace_hits_total") == 1
    assert not grace.flights.running
    assert len(grace.store.local) == 0, "nothing leaves the process: nothing sealed into the store"


async def test_a_definite_refusal_reaches_every_waiter_and_is_remembered(grace: RefreshGrace) -> None:
    upstream = Upstream()
    upstream.outcome = InvalidGrant("refresh token is revoked")
    tasks = [refresh(grace, upstream) for _ in range(3)]
    await started(grace, 2)
    upstream.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, InvalidGrant) for result in results), results
    with pytest.raises(InvalidGrant, match="revoked"):
        await refresh(grace, upstream)
    assert upstream.calls == 1


async def test_a_temporary_failure_is_not_remembered(grace: RefreshGrace) -> None:
    upstream = Upstream()
    upstream.outcome = TemporarilyUnavailable("upstream did not answer within 1s")
    upstream.release.set()
    with pytest.raises(TemporarilyUnavailable):
        await refresh(grace, upstream)
    upstream.outcome = {"access_token": "at-later", "token_type": "Bearer"}
    assert (await refresh(grace, upstream))["access_token"] == "at-later"
    assert upstream.calls == 2


async def test_waiters_of_a_cancelled_leader_get_a_temporary_error_and_the_next_request_calls_again(grace: RefreshGrace) -> None:
    upstream = Upstream()
    leader = refresh(grace, upstream)
    waiters = [refresh(grace, upstream) for _ in range(2)]
    await started(grace, 2)
    leader.cancel()  # the shutdown grace ran out under it
    results = await asyncio.gather(leader, *waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(result, TemporarilyUnavailable) for result in results[1:]), results
    assert not grace.flights.running
    upstream.release.set()
    assert (await refresh(grace, upstream))["access_token"] == "at"
    assert upstream.calls == 2, "nothing was remembered for the cancelled call"


async def test_a_waiter_that_hangs_up_leaves_the_leader_running(grace: RefreshGrace) -> None:
    upstream = Upstream()
    leader = refresh(grace, upstream)
    waiter = refresh(grace, upstream)
    await started(grace, 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    upstream.release.set()
    assert (await leader)["access_token"] == "at"


async def test_the_window_ends_on_the_memorys_clock(grace: RefreshGrace) -> None:
    now = [1000.0]
    grace.flights.remembered.clock = lambda: now[0]
    upstream = Upstream()
    upstream.release.set()
    await refresh(grace, upstream, seconds=2)
    now[0] += 1.9
    await refresh(grace, upstream, seconds=2)
    assert upstream.calls == 1
    now[0] += 0.2
    await refresh(grace, upstream, seconds=2)
    assert upstream.calls == 2


def test_a_full_memory_store_makes_room_for_a_tenth_at_once() -> None:
    """A write to a full store does not scan every entry each time: it frees a tenth and goes on."""
    now = [0.0]
    store: MemoryStore[str] = MemoryStore(capacity=100, clock=lambda: now[0])
    for n in range(100):
        store.keep(f"k{n}", "v", 60)
    store.keep("k100", "v", 60)
    assert len(store) == 91 and store.lookup("k9") is None and store.lookup("k10") == "v"
    now[0] = 61.0  # everything so far has expired: expired entries go before live ones
    store.keep("fresh", "v", 60)
    for n in range(99):
        store.keep(f"m{n}", "v", 60)
    assert store.lookup("fresh") == "v" and len(store) == 100


async def test_the_served_gateway_does_not_cancel_a_handler_whose_client_left() -> None:
    """The in-process leader makes the refresh in its request's own task: it must run to its end
    when the platform hangs up (aiohttp's ``handler_cancellation``, off unless asked for)."""
    runner = GatewayRunner(web.Application(), ConnectionSettings(), access_log=None)
    await runner.setup()
    try:
        assert runner.server is not None and runner.server.handler_cancellation is False
    finally:
        await runner.cleanup()


async def test_the_window_holds_what_the_garbage_collector_never_walks(grace: RefreshGrace) -> None:
    """A window holds up to 100,000 answers: as bytes and text (not dicts and objects) no full
    collection walks them, and each answer given again is equal to the first and its own."""
    import gc

    upstream = Upstream()
    upstream.outcome = {"access_token": "at", "token_type": "Bearer", "refresh_token": "rt-2", "expires_in": 3600, "scope": "a b"}
    upstream.release.set()
    first = await refresh(grace, upstream, "rt-a")
    again = await refresh(grace, upstream, "rt-a")
    assert again == first and again is not first and upstream.calls == 1
    refused = Upstream()
    refused.outcome = InvalidGrant("refresh token is revoked")
    refused.release.set()
    with pytest.raises(InvalidGrant):
        await refresh(grace, refused, "rt-b")
    values = [value for _, value in grace.flights.remembered._items.values()]
    assert len(values) == 2 and not any(gc.is_tracked(value) for value in values)
    gc.collect()
    assert not any(gc.is_tracked(item) for item in grace.flights.remembered._items.values()), "the (expiry, value) pairs too"
