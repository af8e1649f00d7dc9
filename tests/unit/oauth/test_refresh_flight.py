"""The in-process refresh grace and single flight (gateway/oauth/refresh.py, without a shared store).

The end-to-end behaviour (a lost answer given again, twenty racing refreshes, Redis across
replicas) is in tests/e2e/test_refresh_grace.py; these are the edges a real upstream can't time:
a leader that is cancelled under its waiters, a refusal shared by every waiter, answers that are
each request's own, and nothing sealed or written to the store when nothing leaves the process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from gateway.config.settings import ConnectionSettings
from gateway.oauth.refresh import FLIGHTS, RefreshFlights, refresh_with_grace
from gateway.oauth.responses import InvalidGrant, TemporarilyUnavailable
from gateway.oauth.seal import Sealer, generate_key
from gateway.observe.metrics import METRICS, Metrics
from gateway.store import STORE, MemoryStore, SharedStore, StoreSettings
from gateway.web.runner import GatewayRunner


@pytest.fixture
async def app() -> AsyncIterator[web.Application]:
    application = web.Application()
    metrics = Metrics()
    application[METRICS] = metrics
    application[FLIGHTS] = RefreshFlights()
    application[STORE] = SharedStore(StoreSettings(), metrics)
    yield application
    await application[STORE].close()


class Upstream:
    """A refresh call the test releases: counts calls, answers or raises what it is told."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.outcome: dict[str, Any] | Exception = {"access_token": "at", "refresh_token": "rt-2"}

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return dict(self.outcome)


def refresh(app: web.Application, upstream: Upstream, token: str = "rt-1", *, grace: int = 60) -> asyncio.Task[dict[str, Any]]:
    return asyncio.create_task(
        refresh_with_grace(
            app, Sealer([generate_key()]), provider="p", client_id="c", refresh_token=token, grace=grace, deadline=1.0, call=upstream
        )
    )


async def started(app: web.Application, waiters: int) -> None:
    """Until the leader's flight is registered and ``waiters`` more requests joined it."""
    metrics = app[METRICS]
    async with asyncio.timeout(5):
        while not (app[FLIGHTS].running and (metrics.registry.get_sample_value("gateway_single_flight_joins_total") or 0) >= waiters):
            await asyncio.sleep(0)


async def test_waiters_share_the_leaders_answer_and_a_retry_is_served_from_memory(app: web.Application) -> None:
    upstream = Upstream()
    tasks = [refresh(app, upstream) for _ in range(5)]
    await started(app, 4)
    upstream.release.set()
    answers = await asyncio.gather(*tasks)
    assert upstream.calls == 1 and all(answer == answers[0] for answer in answers)
    answers[0]["access_token"] = "changed by one request"
    again = await refresh(app, upstream)
    assert upstream.calls == 1 and again["access_token"] == "at", "each answer is the request's own copy"
    assert app[METRICS].registry.get_sample_value("gateway_refresh_grace_hits_total") == 1
    assert not app[FLIGHTS].running
    assert len(app[STORE].local) == 0, "nothing leaves the process: nothing sealed into the store"


async def test_a_definite_refusal_reaches_every_waiter_and_is_remembered(app: web.Application) -> None:
    upstream = Upstream()
    upstream.outcome = InvalidGrant("refresh token is revoked")
    tasks = [refresh(app, upstream) for _ in range(3)]
    await started(app, 2)
    upstream.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(result, InvalidGrant) for result in results), results
    with pytest.raises(InvalidGrant, match="revoked"):
        await refresh(app, upstream)
    assert upstream.calls == 1


async def test_a_temporary_failure_is_not_remembered(app: web.Application) -> None:
    upstream = Upstream()
    upstream.outcome = TemporarilyUnavailable("upstream did not answer within 1s")
    upstream.release.set()
    with pytest.raises(TemporarilyUnavailable):
        await refresh(app, upstream)
    upstream.outcome = {"access_token": "at-later"}
    assert (await refresh(app, upstream))["access_token"] == "at-later"
    assert upstream.calls == 2


async def test_waiters_of_a_cancelled_leader_get_a_temporary_error_and_the_next_request_calls_again(app: web.Application) -> None:
    upstream = Upstream()
    leader = refresh(app, upstream)
    waiters = [refresh(app, upstream) for _ in range(2)]
    await started(app, 2)
    leader.cancel()  # the shutdown grace ran out under it
    results = await asyncio.gather(leader, *waiters, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(result, TemporarilyUnavailable) for result in results[1:]), results
    assert not app[FLIGHTS].running
    upstream.release.set()
    assert (await refresh(app, upstream))["access_token"] == "at"
    assert upstream.calls == 2, "nothing was remembered for the cancelled call"


async def test_a_waiter_that_hangs_up_leaves_the_leader_running(app: web.Application) -> None:
    upstream = Upstream()
    leader = refresh(app, upstream)
    waiter = refresh(app, upstream)
    await started(app, 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    upstream.release.set()
    assert (await leader)["access_token"] == "at"


async def test_the_window_ends_on_the_memorys_clock(app: web.Application) -> None:
    now = [1000.0]
    app[FLIGHTS].remembered.clock = lambda: now[0]
    upstream = Upstream()
    upstream.release.set()
    await refresh(app, upstream, grace=2)
    now[0] += 1.9
    await refresh(app, upstream, grace=2)
    assert upstream.calls == 1
    now[0] += 0.2
    await refresh(app, upstream, grace=2)
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
