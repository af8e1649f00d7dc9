"""``extends:`` and ``about.sunset`` end to end, against real servers on loopback.

* A variant written as ``extends: acme`` plus what differs links and refreshes through the
  gateway against the recording upstream, which sees the base's endpoints and parameters with the
  variant's changes (its scope, one more parameter, its own client authentication); the base
  is not even served.
* ``gateway serve`` as operators run it logs a sunset that is near or past, naming the successor,
  and its /metrics carries ``gateway_provider_sunset_days``, worked out anew after a SIGHUP reload.
"""

from __future__ import annotations

import datetime
import signal
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from support.harness import ALEXA_PLATFORM_YAML, ALEXA_REDIRECT, PLATFORM_BASIC, PLATFORM_ID, query_of, write_gateway_files
from support.processes import start_gateway_process
from support.sockets import bound_socket, port_of, start_site
from support.upstream import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RecordingUpstream

from gateway.config.about import today
from gateway.config.settings import load_config
from gateway.web.app import create_app

VARIANT = """\
extends: acme
about: {name: Acme Mail, category: productivity, sources: [https://docs.acme.example/mail]}
upstream:
  authorize:
    scope: mail.read
    params:
      add: {prompt: consent}
  token:
    client_auth: body
"""


def _base(upstream: RecordingUpstream, about: str = "") -> str:
    return (
        about
        + ALEXA_PLATFORM_YAML
        + "upstream:\n"
        f"  client_id: {DEFAULT_CLIENT_ID}\n"
        "  client_secret: ${UPSTREAM_SECRET}\n"
        "  authorize:\n"
        f"    url: {upstream.authorization_endpoint}\n"
        "    scope: base.read\n"
        "    params:\n"
        "      add: {audience: acme-api}\n"
        "  token:\n"
        f"    url: {upstream.token_endpoint}\n"
        "    client_auth: basic\n"
    )


async def _token(url: str, form: dict[str, str]) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as platform, platform.post(url, data=form, headers={"Authorization": PLATFORM_BASIC}) as response:
        return response.status, await response.json()


async def test_a_variant_links_and_refreshes_as_its_base_with_its_changes(tmp_path: Path) -> None:
    async with RecordingUpstream() as upstream:
        sock = bound_socket()
        base_about = "about: {name: Acme, category: identity, sources: [https://docs.acme.example/oauth], checked: 2026-11-02}\n"
        try:
            path, env = write_gateway_files(
                tmp_path,
                {"acme": _base(upstream, base_about), "acme-mail": VARIANT},
                port=port_of(sock),
                upstream_secret=DEFAULT_CLIENT_SECRET,
                more="providers: [acme-mail]\n",  # the base is read, not served
            )
            config = load_config(path, env=env)
        except BaseException:
            sock.close()
            raise
        assert list(config.providers) == ["acme-mail"]
        about = config.providers["acme-mail"].about
        assert about is not None and (about.name, about.checked.isoformat()) == ("Acme Mail", "2026-11-02")
        runner = aiohttp.web.AppRunner(create_app(config), access_log=None)
        await runner.setup()
        url = await start_site(runner, sock=sock)
        try:
            query = {"client_id": PLATFORM_ID, "redirect_uri": ALEXA_REDIRECT, "state": "alexa-1", "response_type": "code"}
            location = f"{url}/acme-mail/authorize?{urlencode(query)}"
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
                while not location.startswith(ALEXA_REDIRECT):
                    async with browser.get(location, allow_redirects=False) as response:
                        assert response.status == 302, await response.text()
                        location = response.headers["Location"]
            back = query_of(location)
            assert back["state"] == "alexa-1"

            authorize = upstream.only("/authorize")
            assert authorize.query["scope"] == "mail.read"  # the variant's
            assert authorize.query["audience"] == "acme-api"  # the base's, kept beside the variant's own
            assert authorize.query["prompt"] == "consent"
            assert authorize.query["client_id"] == DEFAULT_CLIENT_ID
            assert authorize.query["redirect_uri"] == f"{url}/acme-mail/callback"

            status, body = await _token(
                f"{url}/acme-mail/token", {"grant_type": "authorization_code", "code": back["code"], "redirect_uri": ALEXA_REDIRECT}
            )
            assert status == 200, body
            assert body["access_token"] and body["refresh_token"]
            exchange = upstream.only()
            assert exchange.path == "/token"  # the base's token endpoint
            assert exchange.basic_credentials() is None  # the variant's client_auth: body
            assert (exchange.form["client_id"], exchange.form["client_secret"]) == (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)

            status, renewed = await _token(f"{url}/acme-mail/token", {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
            assert status == 200, renewed
            assert renewed["access_token"] != body["access_token"]
            assert upstream.token_requests[-1].form["client_secret"] == DEFAULT_CLIENT_SECRET
        finally:
            await runner.cleanup()


def _sunset_days(text: str) -> dict[str, float]:
    return {
        sample.labels["provider"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "gateway_provider_sunset_days"
        for sample in family.samples
    }


async def _scrape(url: str) -> str:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def _about(name: str, sunset: datetime.date, successor: str = "") -> str:
    return (
        f"about:\n  name: {name}\n  category: health\n  sources: [https://docs.example.com/{name}]\n  checked: {today()}\n"
        f"  sunset: {{date: {sunset}, link: https://news.example.com/{name}" + (f", successor: {successor}" if successor else "") + "}\n"
    )


async def test_gateway_serve_warns_of_a_sunset_and_exports_the_days_left(tmp_path: Path) -> None:
    now = today()
    async with RecordingUpstream() as upstream:
        sock = bound_socket()
        mappings = {
            "oldfit": _about("OldFit", now - datetime.timedelta(days=3), "newfit") + _base(upstream),
            "newfit": _about("NewFit", now + datetime.timedelta(days=400)) + _base(upstream),
        }
        path, env = write_gateway_files(tmp_path, mappings, port=port_of(sock), upstream_secret=DEFAULT_CLIENT_SECRET)
        gateway = await start_gateway_process(path, sock=sock, env=env)
        try:
            await gateway.wait_for_line("OldFit turned off on")
            line = next(line for line in gateway.lines if "OldFit" in line)
            assert f"{tmp_path / 'mappings' / 'oldfit.yaml'}: OldFit turned off on {now - datetime.timedelta(days=3)} (3 days ago)" in line
            assert "its successor is the mapping 'newfit' (https://news.example.com/OldFit)" in line
            assert "WARNING" in line.upper()
            assert "NewFit" not in gateway.output  # 400 days ahead: nothing to say yet
            assert _sunset_days(await _scrape(gateway.url)) == {"oldfit": -3.0, "newfit": 400.0}

            # A reload with a new date: the gauge follows, and the warning is said again.
            (tmp_path / "mappings" / "newfit.yaml").write_text(
                _about("NewFit", now + datetime.timedelta(days=60)) + _base(upstream), encoding="utf-8"
            )
            (tmp_path / "mappings" / "oldfit.yaml").unlink()
            gateway.signal(signal.SIGHUP)
            await gateway.wait_for_line("NewFit turns off on")
            assert "(60 days left); no successor is named" in gateway.output
            assert _sunset_days(await _scrape(gateway.url)) == {"newfit": 60.0}
        finally:
            await gateway.stop()
