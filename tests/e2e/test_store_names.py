"""What replicas share in Redis, named and bound so that no key list and no writer can split it
(gateway/oauth/store.py, gateway/oauth/refresh.py).

* Every replica of one deployment names an entry the same way at every step of a key rotation
  (``[OLD, NEW]`` pods beside ``[NEW, OLD]`` pods) and after a reload changed ``keys``: a code is
  redeemed once, a pre-callback cookie completes one link, a refresh retried at the other replica
  is served from grace.
* A grace entry copied onto another entry's name (write access to Redis only) is not trusted.
* A grace entry that is not UTF-8 is absent, not a 500 with a traceback.
* A leader that overran its lock's TTL does not delete the lock another replica has taken since.

Redis is Debian's real redis-server on 127.0.0.1; the gateways are real aiohttp servers on loopback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis
from aiohttp import web
from support.harness import ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, write_gateway_files
from support.redis import REDIS_SERVER, Redis
from support.sockets import bound_socket, port_of, start_site
from support.upstream import RecordingUpstream

from e2e.test_refresh_grace import Replica, mapping, refresh, rotating_upstream
from gateway.config.settings import load_config
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.state import CodePayload, seal_code
from gateway.web.app import create_app, reload_config


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[Redis]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    server = Redis(tmp_path / "redis")
    server.directory.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    async with rotating_upstream() as server:
        yield server


def raw_client(server: Redis) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)


@dataclass
class InProcess:
    url: str
    runner: web.AppRunner
    path: Path
    env: dict[str, str]


async def start(tmp_path: Path, name: str, token_url: str, redis_url: str, keys: list[str]) -> InProcess:
    directory = tmp_path / name
    directory.mkdir()
    sock = bound_socket()
    path, env = write_gateway_files(
        directory, {"oidc": mapping(token_url, grace=5)}, port=port_of(sock), keys=keys, more=f"store: {{url: {redis_url}}}\n"
    )
    runner = web.AppRunner(create_app(load_config(path, env=env)), access_log=None)
    await runner.setup()
    return InProcess(await start_site(runner, sock=sock), runner, path, env)


def rekey(gateway: InProcess, keys: list[str]) -> None:
    """A SIGHUP after ``keys`` changed in gateway.yaml: the same reload the signal runs."""
    text = gateway.path.read_text().splitlines()
    gateway.path.write_text("\n".join(f"keys: [{', '.join(keys)}]" if line.startswith("keys:") else line for line in text) + "\n")
    assert reload_config(gateway.runner.app, load_config(gateway.path, env=gateway.env)) == []


OLD, NEW = generate_key(), generate_key()


@pytest.mark.parametrize("step", ["rotation step 2: [OLD, NEW] beside [NEW, OLD]", "a reload put NEW first"])
async def test_replicas_with_different_first_keys_share_every_entry(
    tmp_path: Path, upstream: RecordingUpstream, shared_redis: Redis, step: str
) -> None:
    first = await start(tmp_path, "first", upstream.token_endpoint, shared_redis.url, [OLD, NEW] if "rotation" in step else [OLD])
    second = await start(tmp_path, "second", upstream.token_endpoint, shared_redis.url, [NEW, OLD])
    try:
        if "reload" in step:
            rekey(first, [NEW, OLD])  # first now seals with NEW too, like second
        async with aiohttp.ClientSession() as client:
            # A code redeemed at one replica is refused at the other, without an upstream call.
            code = seal_code(Sealer([OLD, NEW]), CodePayload("upstream-code", PLATFORM_ID, ALEXA_REDIRECT, "oidc"), ttl=300)
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT}
            statuses = []
            for url in (first.url, second.url):
                async with client.post(f"{url}/oidc/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
                    statuses.append((response.status, (await response.json()).get("error")))
            assert statuses == [(200, None), (400, "invalid_grant")], statuses
            assert len(upstream.code_exchanges()) == 1

            # A refresh retried at the other replica is answered from grace (the upstream rotated).
            old = upstream.issue_refresh_token()
            status, answer = await refresh(client, first.url, old)
            assert status == 200, answer
            status, retried = await refresh(client, second.url, old)
            assert (status, retried) == (200, answer)
            assert len(upstream.refresh_requests) == 1

            # A pre-callback cookie completes one link, not one per replica.
            params = {"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-1", "response_type": "code"}
            async with client.get(f"{first.url}/oidc/authorize", params=params, allow_redirects=False) as response:
                assert response.status in (302, 303), await response.text()
                state = parse_qs(urlsplit(response.headers["Location"]).query)["state"][0]
                cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())
            callbacks = []
            for url in (first.url, second.url):
                async with client.get(
                    f"{url}/oidc/callback", params={"state": state, "code": "up-code"}, headers={"Cookie": cookie}, allow_redirects=False
                ) as response:
                    callbacks.append(response.status)
            assert callbacks[0] in (302, 303) and callbacks[1] == 400, callbacks
    finally:
        await first.runner.cleanup()
        await second.runner.cleanup()


async def test_a_grace_entry_copied_onto_another_tokens_name_is_not_trusted(
    tmp_path: Path, upstream: RecordingUpstream, shared_redis: Redis
) -> None:
    gateway = await start(tmp_path, "only", upstream.token_endpoint, shared_redis.url, [generate_key()])
    store = raw_client(shared_redis)
    try:
        async with aiohttp.ClientSession() as client:
            mine = upstream.issue_refresh_token()
            assert (await refresh(client, gateway.url, mine))[0] == 200  # my old token is now rotated away
            my_entry = {key for key in store.scan_iter() if key.startswith(b"gw:g:")}
            assert len(my_entry) == 1
            victims = upstream.issue_refresh_token()
            status, victims_answer = await refresh(client, gateway.url, victims)
            assert status == 200
            victims_entry = {key for key in store.scan_iter() if key.startswith(b"gw:g:")} - my_entry
            assert len(victims_entry) == 1
            # Write access to Redis only: the victim's fresh entry copied onto my old token's name.
            stolen = store.get(next(iter(victims_entry)))
            assert stolen is not None
            store.set(next(iter(my_entry)), stolen, px=5000)
            status, body = await refresh(client, gateway.url, mine)
            assert body.get("refresh_token") != victims_answer["refresh_token"], "the victim's tokens were handed out"
            assert (status, body["error"]) == (400, "invalid_grant"), body  # the upstream's word on my rotated token
            assert len(upstream.refresh_requests) == 3
    finally:
        store.close()
        await gateway.runner.cleanup()


async def test_a_grace_entry_that_is_not_utf8_is_absent(
    tmp_path: Path, upstream: RecordingUpstream, shared_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start(tmp_path, "only", upstream.token_endpoint, shared_redis.url, [generate_key()])
    store = raw_client(shared_redis)
    try:
        async with aiohttp.ClientSession() as client:
            token = upstream.issue_refresh_token()
            assert (await refresh(client, gateway.url, token))[0] == 200
            (entry,) = [key for key in store.scan_iter() if key.startswith(b"gw:g:")]
            store.set(entry, b"\xff\xfe\x80 not utf-8", px=5000)
            with caplog.at_level(logging.INFO):
                status, body = await refresh(client, gateway.url, token)
            assert (status, body["error"]) == (400, "invalid_grant"), body  # the upstream was asked: rotated
            assert len(upstream.refresh_requests) == 2
            assert not [record for record in caplog.records if record.exc_info], "no traceback"
    finally:
        store.close()
        await gateway.runner.cleanup()


async def test_a_leader_that_overran_its_lock_leaves_the_next_leaders_lock_alone(shared_redis: Redis) -> None:
    keys = [generate_key()]
    first, second = Replica(shared_redis.url, keys), Replica(shared_redis.url, keys)
    store = raw_client(shared_redis)

    def locks() -> list[bytes]:
        return [key for key in store.scan_iter() if key.startswith(b"gw:l:")]

    try:
        # deadline 0.1 s: the lock lives 1.1 s; the first leader's call takes 1.6 s.
        leader = asyncio.create_task(first.refresh({"access_token": "at-1"}, delay=1.6, deadline=0.1))
        async with asyncio.timeout(5):
            while not locks():
                await asyncio.sleep(0.01)
        async with asyncio.timeout(5):
            while locks():  # the first lock ran out while its leader is still calling
                await asyncio.sleep(0.01)
        follower = asyncio.create_task(second.refresh({"access_token": "at-2"}, delay=1.5, deadline=0.1))
        async with asyncio.timeout(5):
            while not locks():  # the second replica took the lock and calls the upstream
                await asyncio.sleep(0.01)
        taken: Any = store.get(locks()[0])
        assert await leader == {"access_token": "at-1"}
        assert [store.get(key) for key in locks()] == [taken], "the first leader deleted a lock it no longer held"
        await follower
        assert not locks(), "the second leader released its own lock"
    finally:
        store.close()
        await first.close()
        await second.close()
