"""The OAuth core's objects, built from their collaborators without aiohttp (gateway/oauth/).

Code claims (:class:`gateway.oauth.replay.CodeClaims`) and the refresh grace window
(:class:`gateway.oauth.refresh.RefreshGrace`) are made by ``create_app`` from the store, the
metrics and a clock; here they are made the same way with a clock the test moves, and no app.
Errors render to ``(status, body, headers)`` without a web framework, as authlib's do.
"""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.settings import StoreSettings
from gateway.oauth.refresh import RefreshGrace
from gateway.oauth.replay import CodeClaims
from gateway.oauth.responses import InvalidClient, InvalidGrant, TokenAnswer
from gateway.oauth.seal import Sealer, generate_key
from gateway.oauth.store import SharedStore
from gateway.observe.metrics import Metrics

OAUTH = Path(__file__).resolve().parents[3] / "gateway" / "oauth"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> AsyncIterator[SharedStore]:
    built = SharedStore(StoreSettings(), Metrics())
    yield built
    await built.close()


def test_the_oauth_package_imports_no_web_framework() -> None:
    for path in OAUTH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            assert not any(name.split(".")[0] == "aiohttp" for name in names), f"{path.name} imports aiohttp"


async def test_a_code_is_claimed_once_until_its_claim_expires_on_the_given_clock(store: SharedStore) -> None:
    clock = Clock()
    claims = CodeClaims(store, clock=clock)
    assert await claims.claim_code("fingerprint", ttl=600)
    assert not await claims.claim_code("fingerprint", ttl=600), "a replayed code"
    clock.now += 601
    assert await claims.claim_code("fingerprint", ttl=600), "forgotten once the code would have expired"


async def test_a_released_code_may_be_tried_again(store: SharedStore) -> None:
    claims = CodeClaims(store)
    assert await claims.claim_code("fingerprint", ttl=600)
    await claims.release_code("fingerprint")  # the exchange failed: the upstream decides
    assert await claims.claim_code("fingerprint", ttl=600)


async def test_a_state_nonce_is_single_use(store: SharedStore) -> None:
    claims = CodeClaims(store)
    assert await claims.claim_state("nonce", ttl=600)
    assert not await claims.claim_state("nonce", ttl=600)


async def test_the_grace_window_ends_on_the_clock_it_was_built_with(store: SharedStore) -> None:
    clock, metrics = Clock(), Metrics()
    grace = RefreshGrace(store, metrics, clock=clock)
    sealer, calls = Sealer([generate_key()]), []

    async def call() -> TokenAnswer:
        calls.append(1)
        return {"access_token": f"at-{len(calls)}", "token_type": "Bearer"}

    async def refresh() -> TokenAnswer:
        return await grace.refresh(sealer, provider="p", client_id="c", refresh_token="rt", grace=60, deadline=1.0, call=call)

    assert (await refresh())["access_token"] == "at-1"
    clock.now += 59
    assert (await refresh())["access_token"] == "at-1", "given again within the window"
    clock.now += 2
    assert (await refresh())["access_token"] == "at-2"
    assert metrics.registry.get_sample_value("gateway_refresh_grace_hits_total") == 1


async def test_a_revoked_refresh_token_is_refused_for_the_rest_of_the_window(store: SharedStore) -> None:
    grace = RefreshGrace(store, Metrics())
    sealer = Sealer([generate_key()])

    async def call() -> TokenAnswer:
        return {"access_token": "at", "token_type": "Bearer", "refresh_token": "rt-2"}

    await grace.refresh(sealer, provider="p", client_id="c", refresh_token="rt", grace=60, deadline=1.0, call=call)
    await grace.revoked(sealer, provider="p", client_id="c", refresh_token="rt", grace=60)
    with pytest.raises(InvalidGrant, match="revoked"):
        await grace.refresh(sealer, provider="p", client_id="c", refresh_token="rt", grace=60, deadline=1.0, call=call)


def test_errors_render_to_status_body_and_headers_without_a_framework() -> None:
    status, body, headers = InvalidGrant("code was already used").token_error()
    assert (status, json.loads(body)) == (400, {"error": "invalid_grant", "error_description": "code was already used"})
    assert headers == {"Cache-Control": "no-store", "Pragma": "no-cache"}
    status, _, headers = InvalidClient("unknown client").token_error(basic_auth_used=True)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    status, page, headers = InvalidGrant("the <flow> is gone").page(title="Linking failed")
    assert status == 400 and "&lt;flow&gt;" in page and headers["Referrer-Policy"] == "no-referrer"
