"""The key-rotation procedure of deploy/README.md, with old and new replicas side by side.

A roll-out runs pods of the previous and the next ReplicaSet at once behind one Service, and a
flow's hops (authorize: the cookie is sealed; callback: the cookie opened and the code sealed;
token: the code opened) land on any of them. So every step of the procedure is played here as
two in-process replicas with the two key lists of that step, and a flow is run for each of the
2^3 ways its three hops can fall on them. The naive procedure ("put the new key first") is played
too, and must break a flow: that is the defect the three steps avoid.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from support.harness import ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, PLATFORM_SECRET, mapping_yaml, query_of
from support.sockets import bound_socket, port_of, refusing_port, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream

from gateway.config.settings import load_config
from gateway.oauth.seal import generate_key
from gateway.web.app import create_app

OLD, NEW = generate_key(), generate_key()

#: (name, keys of the pods being replaced, keys of the pods replacing them)
PROCEDURE = [
    ("1: add the new key second", [OLD], [OLD, NEW]),
    ("2: move it first", [OLD, NEW], [NEW, OLD]),
    ("3: remove the old key (after max_age and code_ttl)", [NEW, OLD], [NEW]),
]
NAIVE = ("new key first in one step", [OLD], [NEW, OLD])


class Replicas:
    """Gateways on their own ports, all with one public URL (as behind a Service)."""

    def __init__(self, root: Path, upstream: RecordingUpstream) -> None:
        self.root = root
        self.public_port = refusing_port()  # the Service's address: nobody listens there in this test
        self.runners: list[web.AppRunner] = []
        (root / "mappings").mkdir()
        mapping = mapping_yaml(upstream, upstream_client_id=DEFAULT_CLIENT_ID)
        (root / "mappings" / "fake.yaml").write_text(mapping)

    async def start(self, keys: list[str]) -> str:
        sock = bound_socket()
        port = port_of(sock)
        path = self.root / f"gateway-{port}.yaml"
        path.write_text(
            f"listen: {{host: 127.0.0.1, port: {port}}}\n"
            f"public_url: http://127.0.0.1:{self.public_port}\n"
            f"keys: [{', '.join(keys)}]\n"
            "cookie: {secure: false}\n"
        )
        config = load_config(path, env={"PLATFORM_SECRET": PLATFORM_SECRET, "UPSTREAM_SECRET": DEFAULT_CLIENT_SECRET})
        runner = web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        self.runners.append(runner)
        return await start_site(runner, sock=sock)

    async def close(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    async with RecordingUpstream() as upstream:
        group = Replicas(tmp_path, upstream)
        yield group
        await group.close()


def _on(replica: str, url: str) -> str:
    """``url`` (built on the public URL) sent to one replica, as the Service would route it."""
    parts = urlsplit(url)
    return f"{replica}{parts.path}?{parts.query}"


async def flow(authorize_on: str, callback_on: str, token_on: str) -> tuple[int, str]:
    """One whole link, each hop on the given replica: (status of /token, what it said)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = urlencode({
            "client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "s",
            "response_type": "code", "scope": "openid",
        })
        async with browser.get(f"{authorize_on}/fake/authorize?{query}", allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            to_upstream = response.headers["Location"]
        async with browser.get(to_upstream, allow_redirects=False) as response:
            assert response.status == 302
            back = response.headers["Location"]
        async with browser.get(_on(callback_on, back), allow_redirects=False) as response:
            if response.status != 302:
                return response.status, await response.text()
            answer = query_of(response.headers["Location"])
        if "code" not in answer:
            return 400, str(answer)
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": ALEXA_REDIRECT}
        async with browser.post(f"{token_on}/fake/token", data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
            return response.status, await response.text()


async def failures(replicas: Replicas, old_keys: list[str], new_keys: list[str]) -> list[str]:
    """Every hop assignment over an old and a new replica; the ones whose flow failed."""
    old, new = await replicas.start(old_keys), await replicas.start(new_keys)
    failed = []
    for hops in itertools.product((old, new), repeat=3):
        status, said = await flow(*hops)
        if status != 200:
            names = ["old" if hop == old else "new" for hop in hops]
            failed.append(f"authorize/callback/token on {'/'.join(names)}: {status} {said[:120]}")
    return failed


@pytest.mark.parametrize(("step", "old_keys", "new_keys"), PROCEDURE, ids=[step for step, _, _ in PROCEDURE])
async def test_each_step_of_the_procedure_keeps_every_flow_in_flight(
    replicas: Replicas, step: str, old_keys: list[str], new_keys: list[str]
) -> None:
    assert await failures(replicas, old_keys, new_keys) == []


async def test_putting_the_new_key_first_at_once_breaks_flows(replicas: Replicas) -> None:
    """What the old procedure did: a code sealed by a new pod is opened by an old one, which can't."""
    failed = await failures(replicas, NAIVE[1], NAIVE[2])
    assert failed, "the naive procedure should have broken a flow (else this test proves nothing)"
    # Only flows where something sealed on a new pod reached an old one fail.
    assert not any("old/old/old" in line for line in failed)
