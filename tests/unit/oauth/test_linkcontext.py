"""Per-link context in the loader and the request builder (gateway/oauth/linkcontext.py, gateway/config/mapping.py).

The SSRF rules, the placeholders token templates may use, the refresh envelope under rotating
``link_keys`` over a simulated year, ``expires_in_default: null`` and body-less POSTs.
"""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from textwrap import dedent

import pytest
from support.oauth import load_mapping, read_mapping
from support.upstream import RecordingUpstream, Reply

from gateway.config.templates import ContextValue, UnsafeUrl, render_url
from gateway.oauth.linkcontext import link_sealer, open_refresh, seal_refresh
from gateway.oauth.seal import SealError, generate_key
from gateway.upstream.answer import UpstreamAnswer, normalise
from gateway.upstream.client import prepare_token_request, send
from gateway.upstream.http1 import Http1Client
from unit.upstream.test_upstream_request import CALLBACK

SHOP = ContextValue("shop", re.compile(r"[a-z0-9][a-z0-9-]{0,61}"))
LOOSE = ContextValue("host", re.compile(r".+"))
LAN = ContextValue("host", re.compile(r".+"), allow_private=True)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    problems, _ = read_mapping(tmp_path, dedent(text), name="m")
    return [str(item) for item in problems.items]


def with_context(context: str, token: str, authorize: str = "https://auth.example.com/authorize") -> str:
    return dedent(
        """\
        platform: {profile: alexa, client_id: alexa-skill, client_secret: alexa-skill-secret}
        """
    ) + dedent(context) + dedent(
        f"""\
        upstream:
          client_id: up
          client_secret: up-secret
          authorize: {{url: '{authorize}'}}
        """
    ) + "  token:\n" + "".join(f"    {line}\n" for line in dedent(token).splitlines())


@pytest.mark.parametrize(
    ("spec", "value", "ok"),
    [
        (SHOP, "acme", True),
        (SHOP, "acme.evil.example", False),  # off the pattern
        (LOOSE, "evil.example/x", False),  # a path smuggled into the host
        (LOOSE, "a@evil.example", False),  # userinfo
        (LOOSE, "evil.example#", False),
        (LOOSE, "evil.example?q=1", False),
        (LOOSE, "127.0.0.1", False),
        (LOOSE, "169.254.169.254", False),  # link-local (cloud metadata)
        (LOOSE, "10.1.2.3", False),
        (LOOSE, "[::1]", False),
        (LOOSE, "localhost", False),
        (LOOSE, "x.localhost", False),
        (LOOSE, "under_score.example", False),
        (LOOSE, "eu.example.com", True),
        (LAN, "127.0.0.2", True),  # the mapping said so
        (LAN, "192.168.1.10", True),
        (LAN, "0.0.0.0", False),
    ],
)
def test_render_url_host_rules(spec: ContextValue, value: str, ok: bool) -> None:
    template = "https://{shop}.myshopify.com/admin/oauth/access_token" if spec is SHOP else "https://{host}/token"
    values = {spec.name: value}
    if ok:
        assert render_url(template, values, [spec]).startswith("https://")
    else:
        with pytest.raises(UnsafeUrl):
            render_url(template, values, [spec])


def test_a_missing_value_is_refused_not_left_as_braces() -> None:
    with pytest.raises(UnsafeUrl, match="missing"):
        render_url("https://{host}/token", {}, [LOOSE])


def test_the_loader_wants_a_pattern_for_a_placeholder_in_a_host(tmp_path: Path) -> None:
    found = problems_of(tmp_path, with_context("", "url: 'https://{region}.example.com/token'"))
    assert any("unknown placeholder {region}" in problem for problem in found)
    found = problems_of(
        tmp_path, with_context("callback: {keep: {region: {pattern: '[a-z]+'}}}\n", "url: 'http://{region}:9/token'")
    )
    assert any("must use https" in problem for problem in found)
    found = problems_of(tmp_path, with_context("callback: {keep: {region: {pattern: '[a-z'}}}\n", "url: https://a.example/t"))
    assert any("not a regular expression" in problem for problem in found)
    found = problems_of(tmp_path, with_context("callback: {keep: {code: {pattern: 'x'}}}\n", "url: https://a.example/t"))
    assert any("can not be a context name" in problem for problem in found)
    found = problems_of(tmp_path, with_context("tenant: {name: shop, pattern: 'x'}\n", "url: https://a.example/t"))
    assert any("needs a label" in problem or "label" in problem for problem in found)


def test_state_and_authorize_values_are_token_placeholders(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context("", "url: https://auth.example.com/token\nparams: {add: {state: '{state}', sc: '{authorize_scope}'}}"),
    )
    assert mapping.flow_values == ("authorize_scope", "state") and mapping.keeps_context
    prepared = prepare_token_request(
        mapping, grant_type="authorization_code", callback_url=CALLBACK, code="c", context={"state": "n0nce", "authorize_scope": "a b"}
    )
    assert prepared.form is not None and prepared.form["state"] == "n0nce" and prepared.form["sc"] == "a b"
    # Without a context (no value kept) the parameter is left out, not sent as "{state}".
    prepared = prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r")
    assert prepared.form is not None and "state" not in prepared.form
    assert any("unknown placeholder {authorize_nope}" in problem for problem in problems_of(
        tmp_path, with_context("", "url: https://a.example/t\nparams: {add: {x: '{authorize_nope}'}}")
    ))


def test_a_kept_value_picks_the_token_host(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context(
            "callback: {keep: {dc: {pattern: 'eu|us|au'}}}\n",
            "url: 'https://accounts.{dc}.example.com/token'\nheaders: {add: {X-DC: '{dc}'}}",
        ),
    )
    prepared = prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r", context={"dc": "au"})
    assert prepared.url == "https://accounts.au.example.com/token" and prepared.headers["X-DC"] == "au"
    from gateway.oauth.responses import InvalidGrant

    with pytest.raises(InvalidGrant):
        prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="r", context={"dc": "evil"})


def test_envelopes_survive_three_rotations_over_a_year() -> None:
    """Quarterly rotation of link_keys (each new key in front, none removed) and of keys (the
    oldest dropped): a link refreshed once a year and one refreshed every quarter both open."""
    day = 86400.0
    start = 1_750_000_000.0
    keys, link_keys = [generate_key()], [generate_key()]
    context = {"dc": "eu"}
    yearly = seal_refresh(link_sealer(tuple(link_keys), tuple(keys)), "rt-yearly", context, now=start)
    quarterly = yearly
    for quarter in (1, 2, 3):
        keys = [generate_key(), keys[0]]
        link_keys = [generate_key(), *link_keys]
        sealer = link_sealer(tuple(link_keys), tuple(keys))
        now = start + quarter * 91 * day
        token, opened = open_refresh(sealer, quarterly, now=now)
        assert opened == context
        quarterly = seal_refresh(sealer, token, opened, now=now)
        assert open_refresh(link_sealer((link_keys[0],), ()), quarterly, now=now)[0] == "rt-yearly"  # newest key
    sealer = link_sealer(tuple(link_keys), tuple(keys))
    assert open_refresh(sealer, yearly, now=start + 365 * day) == ("rt-yearly", context)
    # Without link_keys the routine rotation of keys would have killed it.
    with pytest.raises(SealError):
        open_refresh(link_sealer((), tuple(keys)), yearly, now=start + 365 * day)


def test_an_envelope_opens_only_for_its_provider_and_client_and_an_unbound_one_for_any() -> None:
    sealer = link_sealer((generate_key(),), ())
    bound = seal_refresh(sealer, "rt-a", {"dc": "eu"}, provider="a", client_id="alexa")
    assert open_refresh(sealer, bound, provider="a", client_id="alexa") == ("rt-a", {"dc": "eu"})
    for provider, client_id in (("b", "alexa"), ("a", "google")):
        with pytest.raises(SealError, match="another client"):
            open_refresh(sealer, bound, provider=provider, client_id=client_id)
    # Sealed before the binding existed: accepted until its first refresh seals a bound one.
    unbound = seal_refresh(sealer, "rt-old", {"dc": "eu"})
    assert open_refresh(sealer, unbound, provider="b", client_id="google") == ("rt-old", {"dc": "eu"})


def test_expires_in_default_null_leaves_expires_in_out(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path, with_context("", "url: https://auth.example.com/token") + "  answer: {expires_in_default: null}\n"
    )
    body = normalise(UpstreamAnswer(200, "application/json", b'{"access_token": "at"}'), mapping.answer)
    assert body == {"access_token": "at", "token_type": "Bearer"}
    body = normalise(UpstreamAnswer(200, "application/json", b'{"access_token": "at", "expires_in": 5}'), mapping.answer)
    assert body["expires_in"] == 5


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    """A real server, so the real client's header defaults are what is checked (not a double's)."""
    async with RecordingUpstream() as upstream:
        upstream.fault = Reply(body={"access_token": "at"})
        yield upstream


@pytest.mark.parametrize(("headers", "expected"), [("", None), ("headers: {add: {Content-Type: text/plain}}", "text/plain")])
async def test_a_query_encoded_post_sends_no_body_and_no_invented_content_type(
    tmp_path: Path, recorder: RecordingUpstream, headers: str, expected: str | None
) -> None:
    mapping = load_mapping(tmp_path, with_context("", f"url: {recorder.token_endpoint}\nencoding: query\n{headers}"))
    prepared = prepare_token_request(mapping, grant_type="authorization_code", callback_url=CALLBACK, code="c")
    client = Http1Client()
    answer = await send(client, prepared, default_timeout=3)
    await client.close()
    assert answer.status == 200
    sent = recorder.only()
    assert sent.method == "POST" and sent.query["code"] == "c" and sent.body == b""
    assert sent.headers.get("content-type") == expected


def test_link_keys_are_read_in_order_and_checked(tmp_path: Path) -> None:
    from gateway.config.settings import load_config
    from gateway.config.yamlfile import ConfigError

    first, second = generate_key(), generate_key()
    (tmp_path / "mappings").mkdir()
    config_file = tmp_path / "gateway.yaml"
    base = f'listen: {{host: 127.0.0.1, port: 9000}}\ncookie: {{secure: false}}\ndemo: true\nkeys: ["{generate_key()}"]\n'
    config_file.write_text(base + f'link_keys: ["{first}", "{second}"]\n', encoding="utf-8")
    assert load_config(config_file, env={}).link_keys == (first, second)  # the first seals
    config_file.write_text(base + 'link_keys: ["not-a-key"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"link_keys\[0\]: not a key"):
        load_config(config_file, env={})


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [(["93.184.215.14"], False), (["10.0.0.5"], True), (["93.184.215.14", "127.0.0.1"], True), (["fe80::1%eth0"], True),
     (["169.254.169.254"], True), (["2606:4700::6810:84e5"], False), (["64:ff9b::a00:5"], True), (["64:ff9b:1::7f00:1"], True),
     (["fec0::1"], True), (["::ffff:127.0.0.1"], True), (["::ffff:93.184.215.14"], False), ([], True)],
)
async def test_a_tenant_host_resolving_to_a_private_address_is_refused(addresses: list[str], refused: bool) -> None:
    """NAT64 and site-local prefixes count as private (Python 3.11 calls them global); an empty answer fails."""
    from aiohttp.abc import AbstractResolver, ResolveResult

    from gateway.upstream.publicdns import PublicOnlyResolver

    class Answers(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
            assert (host, port) == ("acme.example.com", 443)
            return [
                ResolveResult(hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0)
                for address in addresses
            ]

        async def close(self) -> None:
            pass

    resolver = PublicOnlyResolver(Answers())
    if refused:
        with pytest.raises(OSError):
            await resolver.resolve("acme.example.com", 443)
    else:
        assert [result["host"] for result in await resolver.resolve("acme.example.com", 443)] == addresses


def test_only_hosts_from_values_without_allow_private_are_resolved_first(tmp_path: Path) -> None:
    from gateway.config.templates import host_needs_public_address

    assert host_needs_public_address("https://{shop}.myshopify.com/t", [SHOP])
    assert not host_needs_public_address("http://{host}:8123/t", [LAN])
    assert not host_needs_public_address("https://fixed.example.com/{shop}/t", [SHOP])
