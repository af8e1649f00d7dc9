"""Links that live: refresh grace, single flight and the shared store (gateway/oauth/refresh.py, store.py).

The upstream here rotates refresh tokens and invalidates the old one at once — the behaviour that
kills links when an answer is lost or two refreshes race. Redis is Debian's real redis-server,
started per test on 127.0.0.1; the two-replica tests run two real ``gateway serve`` processes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.harness import (
    ALEXA_PLATFORM_YAML,
    ALEXA_REDIRECT,
    PLATFORM_BASIC,
    PLATFORM_ID,
    UPSTREAM_SECRET,
    write_gateway_files,
)
from support.processes import GatewayProcess, start_gateway_process
from support.redis import REDIS_SERVER, Redis
from support.sockets import bound_socket, port_of, start_site
from support.upstream import RecordingUpstream, Reply

from gateway.config.settings import load_config
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.responses import InvalidGrant, TokenAnswer
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CodePayload, seal_code
from gateway.oauth.store import SharedStore, StoreSettings
from gateway.observe.metrics import Metrics
from gateway.web.app import create_app
from gateway.web.appkeys import GRACE, STORE


def rotating_upstream() -> RecordingUpstream:
    """The built-in server of the recording upstream: a new refresh token on every refresh, the old
    one invalid at once (rotation); any code, as often as asked (deliberately lax)."""
    return RecordingUpstream(client_id="up", client_secret=UPSTREAM_SECRET, lax_codes=True)


def refresh_delay(upstream: RecordingUpstream, seconds: float) -> None:
    """Refreshes (only) are answered ``seconds`` late (still the built-in answer: the work is done)."""
    late = Reply(delay=seconds)
    upstream.fault_for = (lambda request: late if request.grant_type == "refresh_token" else None) if seconds else None


@pytest.fixture
async def rotating() -> AsyncIterator[tuple[RecordingUpstream, str]]:
    async with rotating_upstream() as upstream:
        yield upstream, upstream.token_endpoint


def mapping(token_url: str, *, grace: int | None = None, timeout: float = 3) -> str:
    refresh = f"\n    refresh: {{grace: {grace}}}" if grace is not None else ""
    return (
        ALEXA_PLATFORM_YAML
        + "upstream:\n"
        "  client_id: up\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        '  authorize: {url: "http://127.0.0.1:9/authorize"}\n'
        "  token:\n"
        f'    url: "{token_url}"\n'
        f"    timeout: {timeout}{refresh}\n"
    )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


@dataclass
class Replicas:
    urls: list[str]
    keys: list[str]
    processes: list[GatewayProcess] = field(default_factory=list)


class Clock:
    """The in-process gateway's store clocks (:attr:`gateway.oauth.store.MemoryStore.clock`): real
    monotonic time plus whatever the test skipped, so a TTL runs out without sleeping through it."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds


async def start_inprocess(
    tmp_path: Path, token_url: str, *, grace: int | None = None, more: str = "", timeout: float = 3, clock: Clock | None = None
) -> tuple[str, web.AppRunner]:
    sock = bound_socket()
    path, env = write_gateway_files(tmp_path, {"oidc": mapping(token_url, grace=grace, timeout=timeout)}, port=port_of(sock), more=more)
    runner = web.AppRunner(create_app(load_config(path, env=env)), access_log=None)
    await runner.setup()
    if clock is not None:
        runner.app[STORE].local.clock = clock  # before any request: every entry is timed by it
        runner.app[GRACE].flights.remembered.clock = clock  # the in-process grace window too
    return await start_site(runner, sock=sock), runner


@pytest.fixture
async def replicas(tmp_path: Path, rotating: tuple[RecordingUpstream, str], redis_server: Redis) -> AsyncIterator[Replicas]:
    """Two ``gateway serve`` processes with the same keys, sharing one Redis."""
    keys = [generate_key()]
    result = Replicas(urls=[], keys=keys)

    async def start(index: int) -> GatewayProcess:
        directory = tmp_path / f"replica{index}"
        directory.mkdir()
        sock = bound_socket()
        path, env = write_gateway_files(
            directory, {"oidc": mapping(rotating[1], grace=5)}, port=port_of(sock), keys=keys, more=f"store: {{url: {redis_server.url}}}\n"
        )
        return await start_gateway_process(path, sock=sock, env=env)

    started = await asyncio.gather(start(0), start(1), return_exceptions=True)  # the two start-ups overlap
    result.processes = [process for process in started if isinstance(process, GatewayProcess)]
    result.urls = [process.url for process in result.processes]
    for failed in started:
        if isinstance(failed, BaseException):
            for process in result.processes:
                await process.stop()
            raise failed
    yield result
    for process in result.processes:
        await process.stop()


async def refresh(client: aiohttp.ClientSession, url: str, token: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with client.post(
        f"{url}/oidc/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers={"Authorization": PLATFORM_BASIC}, **kwargs
    ) as response:
        return response.status, await response.json()


async def metric(client: aiohttp.ClientSession, url: str, name: str) -> float:
    async with client.get(f"{url}/metrics") as response:
        text = await response.text()
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


# -- one process -------------------------------------------------------------------------------


async def test_a_lost_refresh_answer_is_given_again_and_the_old_token_dies_after_the_window(
    tmp_path: Path, rotating: tuple[RecordingUpstream, str]
) -> None:
    upstream, token_url = rotating
    clock = Clock()
    url, runner = await start_inprocess(tmp_path, token_url, grace=2, clock=clock)
    old = upstream.issue_refresh_token()
    refresh_delay(upstream, 0.4)
    try:
        async with aiohttp.ClientSession() as client:
            # The platform gives up before the answer: it closes the connection after the upstream rotated.
            with pytest.raises(asyncio.TimeoutError):
                await refresh(client, url, old, timeout=aiohttp.ClientTimeout(total=0.15))
            # The refresh runs on without the platform; once its flight is over, its answer is in
            # the grace entry (written before the flight ends).
            async with asyncio.timeout(10):
                while not (len(upstream.refresh_requests) == 1 and len(upstream.issued) == 2 and not runner.app[GRACE].flights.running):
                    await asyncio.sleep(0.02)
            assert not upstream.refresh_token_live(old)
            refresh_delay(upstream, 0.0)
            status, retried = await refresh(client, url, old)
            assert status == 200, retried
            assert len(upstream.refresh_requests) == 1, "the retry was answered from grace, not by the upstream"
            assert retried["refresh_token"] == upstream.issued[-1]["refresh_token"]
            assert retried["access_token"] == upstream.issued[-1]["access_token"]
            # Still linked: the rotated token works.
            status, newer = await refresh(client, url, retried["refresh_token"])
            assert status == 200 and len(upstream.refresh_requests) == 2
            assert await metric(client, url, "gateway_refresh_grace_hits_total") == 1
            # After the window the old token is what the upstream says it is: dead.
            clock.advance(2.01)
            status, refused = await refresh(client, url, old)
            assert status == 400 and refused["error"] == "invalid_grant"
            assert len(upstream.refresh_requests) == 3
            # A definite invalid_grant is remembered within the window: no second upstream call.
            status, refused = await refresh(client, url, old)
            assert status == 400 and refused["error"] == "invalid_grant"
            assert len(upstream.refresh_requests) == 3
    finally:
        await runner.cleanup()


async def test_grace_zero_turns_it_off(tmp_path: Path, rotating: tuple[RecordingUpstream, str]) -> None:
    upstream, token_url = rotating
    url, runner = await start_inprocess(tmp_path, token_url, grace=0)
    old = upstream.issue_refresh_token()
    try:
        async with aiohttp.ClientSession() as client:
            assert (await refresh(client, url, old))[0] == 200
            status, again = await refresh(client, url, old)
            assert status == 400 and again["error"] == "invalid_grant" and len(upstream.refresh_requests) == 2
    finally:
        await runner.cleanup()


async def test_temporary_failures_are_not_remembered(tmp_path: Path, rotating: tuple[RecordingUpstream, str]) -> None:
    upstream, token_url = rotating
    url, runner = await start_inprocess(tmp_path, token_url, timeout=0.3)
    old = upstream.issue_refresh_token()
    try:
        async with aiohttp.ClientSession() as client:
            refresh_delay(upstream, 0.8)  # longer than the mapping's 0.3 s: temporarily_unavailable
            status, failed = await refresh(client, url, old)
            assert status >= 400 and failed["error"] != "invalid_grant"
            refresh_delay(upstream, 0.0)
            status, answer = await refresh(client, url, old)
            assert status == 200, answer  # the retry reached the upstream and the token still worked
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_twenty_concurrent_refreshes_make_one_upstream_call(
    tmp_path: Path, rotating: tuple[RecordingUpstream, str], store: str, request: pytest.FixtureRequest
) -> None:
    upstream, token_url = rotating
    more = ""
    if store == "redis":
        more = f"store: {{url: {request.getfixturevalue('redis_server').url}}}\n"
    url, runner = await start_inprocess(tmp_path, token_url, more=more)
    token = upstream.issue_refresh_token()
    refresh_delay(upstream, 0.3)
    try:
        async with aiohttp.ClientSession() as client:
            answers = await asyncio.gather(*(refresh(client, url, token) for _ in range(20)))
            print(f"\n20-way race, one process, store {store}: {len(upstream.refresh_requests)} upstream call(s)")
            assert len(upstream.refresh_requests) == 1
            assert all(status == 200 for status, _ in answers), answers
            assert len({repr(sorted(body.items())) for _, body in answers}) == 1
            assert await metric(client, url, "gateway_single_flight_joins_total") == 19
    finally:
        await runner.cleanup()


# -- two processes sharing Redis ---------------------------------------------------------------


async def test_twenty_concurrent_refreshes_across_two_replicas_make_one_upstream_call(
    replicas: Replicas, rotating: tuple[RecordingUpstream, str], redis_server: Redis
) -> None:
    upstream, _ = rotating
    token = upstream.issue_refresh_token()
    refresh_delay(upstream, 0.5)
    async with aiohttp.ClientSession() as client:
        answers = await asyncio.gather(*(refresh(client, replicas.urls[i % 2], token) for i in range(20)))
        print(f"\n20-way race, two replicas sharing Redis: {len(upstream.refresh_requests)} upstream call(s)")
        assert len(upstream.refresh_requests) == 1
        assert all(status == 200 for status, _ in answers), answers
        assert len({repr(sorted(body.items())) for _, body in answers}) == 1
        joins = [await metric(client, url, "gateway_single_flight_joins_total") for url in replicas.urls]
        hits = [await metric(client, url, "gateway_refresh_grace_hits_total") for url in replicas.urls]
        assert sum(joins) >= 19 - sum(hits) and sum(joins) > 0
    _assert_nothing_in_clear(redis_server, upstream, [token])


async def test_the_retry_at_the_other_replica_is_served_from_grace_and_a_code_replay_is_refused(
    replicas: Replicas, rotating: tuple[RecordingUpstream, str], redis_server: Redis
) -> None:
    upstream, _ = rotating
    first, second = replicas.urls
    old = upstream.issue_refresh_token()
    async with aiohttp.ClientSession() as client:
        status, answer = await refresh(client, first, old)
        assert status == 200
        status, retried = await refresh(client, second, old)
        assert status == 200 and retried == answer and len(upstream.refresh_requests) == 1
        assert await metric(client, second, "gateway_refresh_grace_hits_total") == 1

        code = seal_code(Sealer(replicas.keys), CodePayload("upstream-code", PLATFORM_ID, ALEXA_REDIRECT, "oidc"), ttl=300)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
        async with client.post(f"{first}/oidc/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            assert response.status == 200
        async with client.post(f"{second}/oidc/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            body = await response.json()
            assert response.status == 400 and body["error"] == "invalid_grant", body
        assert len(upstream.code_exchanges()) == 1, "the replay never reached the upstream"
    _assert_nothing_in_clear(redis_server, upstream, [old, "upstream-code", code])


async def test_a_replayed_pre_callback_cookie_can_not_complete_a_second_link_at_the_other_replica(
    replicas: Replicas, rotating: tuple[RecordingUpstream, str]
) -> None:
    first, second = replicas.urls
    params = {"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-1", "response_type": "code"}
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{first}/oidc/authorize", params=params, allow_redirects=False) as response:
            assert response.status in (302, 303), await response.text()
            state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
            cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())
        answers = []
        for url in (first, second):  # the same pre-callback cookie, presented at each replica
            async with client.get(
                f"{url}/oidc/callback", params={"state": state, "code": "up-code"}, headers={"Cookie": cookie}, allow_redirects=False
            ) as response:
                answers.append((response.status, response.headers.get("Location", "")))
        assert answers[0][0] in (302, 303) and answers[0][1].startswith(ALEXA_REDIRECT) and "code=" in answers[0][1]
        assert answers[1][0] == 400 and not answers[1][1], answers


async def test_redis_stopped_mid_load_and_started_again_costs_no_link(
    replicas: Replicas, rotating: tuple[RecordingUpstream, str], redis_server: Redis
) -> None:
    upstream, _ = rotating
    links = [upstream.issue_refresh_token() for _ in range(8)]
    statuses: list[int] = []
    running = True

    async def keep_refreshing(index: int, client: aiohttp.ClientSession) -> None:
        turn = index
        while running:
            status, body = await refresh(client, replicas.urls[turn % 2], links[index])
            statuses.append(status)
            if status == 200:
                links[index] = body["refresh_token"]
            turn += 1
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession() as client:
        workers = [asyncio.create_task(keep_refreshing(i, client)) for i in range(len(links))]

        async def refreshes(count: int) -> None:
            """Until ``count`` more refreshes are answered (a deadline, not a guess of how long they take)."""
            target = len(statuses) + count
            async with asyncio.timeout(15):
                while len(statuses) < target:
                    await asyncio.sleep(0.02)

        await refreshes(40)  # with Redis
        redis_server.stop()
        await refreshes(40)  # without: every replica falls back to its own store
        redis_server.restart()
        async with asyncio.timeout(15):  # until the replicas write to Redis again
            while not redis_server.scan():
                await asyncio.sleep(0.05)
        await refreshes(40)
        running = False
        await asyncio.gather(*workers)
        failures = [status for status in statuses if status != 200]
        print(f"\nredis outage: {len(statuses)} refreshes, {len(failures)} not 200 ({failures[:5]})")
        assert not failures
        for token in links:  # every link still refreshes
            assert (await refresh(client, replicas.urls[0], token))[0] == 200
        fallbacks = sum([await metric(client, url, "gateway_store_fallbacks_total") for url in replicas.urls])
        errors = sum([await metric(client, url, "gateway_store_errors_total") for url in replicas.urls])
        print(f"store errors {errors:.0f}, fallbacks {fallbacks:.0f}")
        assert fallbacks > 0 and errors > 0
    output = "".join(process.output for process in replicas.processes)
    assert "serving from this process only" in output
    assert "Traceback" not in output
    assert redis_server.scan(), "the store is used again once Redis is back"


def _assert_nothing_in_clear(redis_server: Redis, upstream: RecordingUpstream, more: list[str]) -> None:
    stored = redis_server.scan()
    assert stored, "the replicas wrote to Redis"
    secrets_ = [value for answer in upstream.issued for value in (answer["access_token"], answer["refresh_token"])] + more
    for key, value in stored.items():
        assert key.startswith("gw:") and len(key) < 40, key
        for secret in secrets_:
            assert secret not in key and secret not in value, f"{key} holds a token in clear"


# -- the shared store's grace and lock, two replicas in this process (gateway/oauth/refresh.py) ----


class Replica:
    """The parts of one gateway replica that a refresh uses, on a real Redis shared with others."""

    def __init__(self, redis_url: str, keys: list[str]) -> None:
        self.metrics = Metrics()
        self.store = SharedStore(StoreSettings(url=redis_url), self.metrics)
        self.grace = RefreshGrace(self.store, self.metrics)  # as create_app builds it: no app needed
        self.sealer = Sealer(keys)
        self.calls = 0

    def joins(self) -> float:
        return self.metrics.registry.get_sample_value("gateway_single_flight_joins_total") or 0.0

    async def refresh(self, answer: dict[str, Any] | Exception, *, token: str = "rt-shared", delay: float = 0.0, deadline: float = 3.0) -> dict[str, Any]:
        async def call() -> TokenAnswer:
            self.calls += 1
            await asyncio.sleep(delay)
            if isinstance(answer, Exception):
                raise answer
            return cast("TokenAnswer", dict(answer))  # only what each test compares

        return dict(
            await self.grace.refresh(
                self.sealer, provider="oidc", client_id=PLATFORM_ID, refresh_token=token, grace=5, deadline=deadline, call=call
            )
        )

    async def close(self) -> None:
        await self.store.close()


@pytest.fixture
async def two_replicas(redis_server: Redis) -> AsyncIterator[tuple[Replica, Replica]]:
    keys = [generate_key()]
    pair = (Replica(redis_server.url, keys), Replica(redis_server.url, keys))
    yield pair
    for replica in pair:
        await replica.close()


async def test_a_waiter_at_another_replica_gets_the_leaders_answer_from_redis(two_replicas: tuple[Replica, Replica]) -> None:
    first, second = two_replicas
    leader = asyncio.create_task(first.refresh({"access_token": "at-1"}, delay=0.3))
    async with asyncio.timeout(5):
        while not first.calls:  # the leader holds the lock and is calling the upstream
            await asyncio.sleep(0.01)
    waited = await second.refresh({"access_token": "at-never"})
    assert waited == {"access_token": "at-1"} and await leader == {"access_token": "at-1"}
    assert (first.calls, second.calls) == (1, 0) and second.joins() == 1


async def test_a_definite_refusal_is_remembered_for_the_other_replica_too(two_replicas: tuple[Replica, Replica]) -> None:
    first, second = two_replicas
    with pytest.raises(InvalidGrant, match="revoked"):
        await first.refresh(InvalidGrant("refresh token is revoked"))
    with pytest.raises(InvalidGrant, match="revoked"):
        await second.refresh({"access_token": "at-never"})
    assert second.calls == 0


async def test_an_entry_sealed_under_a_retired_key_is_not_trusted(redis_server: Redis) -> None:
    old, new = generate_key(), generate_key()
    before, after = Replica(redis_server.url, [old]), Replica(redis_server.url, [new])
    try:
        await before.refresh({"access_token": "at-old"})
        assert await after.refresh({"access_token": "at-new"}) == {"access_token": "at-new"}, "asked the upstream instead"
        assert after.calls == 1
    finally:
        await before.close()
        await after.close()


async def test_a_lock_whose_leader_is_gone_is_waited_for_only_until_the_deadline(two_replicas: tuple[Replica, Replica]) -> None:
    first, second = two_replicas
    store = second.store
    key = store.key("g", "oidc", PLATFORM_ID, "rt-shared")
    assert await store.claim("gw:l:" + key.removeprefix("gw:g:"), 30)  # a replica took the lock and died
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await second.refresh({"access_token": "at-mine"}, deadline=0.3) == {"access_token": "at-mine"}
    assert loop.time() - started >= 0.3 and second.calls == 1 and second.joins() == 1
