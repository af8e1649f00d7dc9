"""``gateway linktest``: play the platform against a running gateway and say why a link would fail.

Alexa's "We were unable to link … at this time" has a handful of usual causes: a TLS chain the
platform does not trust, a redirect URI or client id the gateway refuses, an upstream that does
not know the gateway's callback URL, credentials that do not match, an answer that is not JSON,
or an answer slower than the platform waits (Alexa: 4.5 s; :data:`gateway.config.platforms.PLATFORMS`). Each check below looks for one of them, from the outside,
the way the platform would, and says in words what to fix. Nothing here needs a user to sign in:
the token checks use codes and refresh tokens that must be refused, and read *how* they are
refused (an upstream that refuses the gateway's own credentials answers differently from one that
refuses a bad grant): by the RFC 6749 error code and the failure kind the gateway names in its
``Gateway-Upstream-Failure`` header (:mod:`gateway.upstream.failure`), never by the wording of a
description.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from multidict import CIMultiDict

from gateway.config.mapping import ProviderMapping
from gateway.config.platforms import STRICTEST_BUDGET, platform_of
from gateway.config.settings import Config
from gateway.oauth import pkce
from gateway.oauth.basicauth import basic_auth_header
from gateway.observe.reasons import REFUSED, UNREACHABLE
from gateway.upstream.failure import FAILURE_HEADER, as_failure_kind

__all__ = ["Check", "run_linktest"]



@dataclass(frozen=True)
class Check:
    """One finding: ``PASS``, ``WARN`` or ``FAIL``, what was checked, and what it means."""

    verdict: str
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.verdict:4}  {self.name}: {self.detail}"


class _Tester:
    def __init__(self, session: aiohttp.ClientSession, base: str, mapping: ProviderMapping, config: Config) -> None:
        self.session = session
        self.base = base.rstrip("/")
        self.mapping = mapping
        self.config = config
        self.checks: list[Check] = []

    def add(self, verdict: str, name: str, detail: str) -> None:
        self.checks.append(Check(verdict, name, detail))

    async def tls(self) -> bool:
        parts = urlsplit(self.base)
        if parts.scheme != "https":
            self.add("WARN", "tls", f"{self.base} is plain http: Alexa and Google only link over https on port 443")
            return True
        if (parts.port or 443) != 443:
            self.add("WARN", "tls", f"port {parts.port}: Alexa only calls port 443")
        try:
            async with self.session.get(f"{self.base}/healthz") as response:
                await response.read()
        except aiohttp.ClientConnectorCertificateError as exc:
            self.add(
                "FAIL",
                "tls",
                "the certificate chain does not verify "
                f"({exc.certificate_error}): serve the full chain (leaf and intermediates) from a CA the "
                "platform trusts — an incomplete chain is the second most common cause of 'unable to link'",
            )
            return False
        except aiohttp.ClientError as exc:
            self.add("FAIL", "tls", f"can not connect to {self.base}: {exc}")
            return False
        self.add("PASS", "tls", "the certificate chain verifies")
        return True

    async def ready(self) -> bool:
        try:
            async with self.session.get(f"{self.base}/readyz") as response:
                text = await response.text()
        except aiohttp.ClientError as exc:
            self.add("FAIL", "ready", f"{self.base}/readyz can not be reached: {exc}")
            return False
        if response.status != 200:
            self.add("FAIL", "ready", f"/readyz answered {response.status}: the gateway is not ready")
            return False
        served = [name.strip() for name in text.partition(":")[2].split(",")]
        if self.mapping.name not in served:
            self.add("FAIL", "ready", f"the gateway does not serve {self.mapping.name!r} (it serves {', '.join(served)})")
            return False
        self.add("PASS", "ready", f"the gateway serves {self.mapping.name!r}")
        return True

    async def authorize(self) -> str | None:
        """The upstream authorize URL the gateway sends a browser to, or ``None``."""
        redirect_uri = self.mapping.platform.sample_redirect_uri
        if redirect_uri is None:
            self.add("WARN", "authorize", "the mapping lists no exact redirect URI to try; skipped")
            return None
        params = {"client_id": self.mapping.platform.client_id, "redirect_uri": redirect_uri, "state": "linktest",
                  "response_type": "token" if self.mapping.grant == "implicit" else "code", "scope": "openid profile"}
        if self.mapping.platform.pkce != "optional" and self.mapping.grant != "implicit":  # as the platform must
            params.update(code_challenge=pkce.challenge_of(pkce.new_verifier(), "S256"), code_challenge_method="S256")
        query = urlencode(params)
        url = f"{self.base}/{self.mapping.name}/authorize?{query}"
        async with self.session.get(url, allow_redirects=False) as response:
            body = await response.text()
            location = response.headers.get("Location", "")
            cookie = response.headers.get("Set-Cookie", "")
        if response.status != 302:
            self.add("FAIL", "authorize", f"answered {response.status} instead of sending the browser on: {_page_text(body)}")
            return None
        if location.startswith(redirect_uri):
            error = parse_qs(urlsplit(location).query).get("error", ["?"])[0]
            self.add("FAIL", "authorize", f"sent the platform back with error={error}")
            return None
        if not location.startswith(self.mapping.authorize.url):
            self.add("FAIL", "authorize", f"redirected to {location.split('?')[0]}, not the mapping's authorize URL")
            return None
        callback = parse_qs(urlsplit(location).query).get("redirect_uri", [self.config.callback_url(self.mapping.name)])[0]
        problems = [flag for flag in ("HttpOnly", "SameSite=Lax") if flag.lower() not in cookie.lower()]
        if self.base.startswith("https://") and "secure" not in cookie.lower():
            problems.append("Secure")
        if problems:
            self.add("WARN", "authorize", f"the flow cookie lacks {', '.join(problems)}")
        self.add("PASS", "authorize", f"the platform's request is accepted; the upstream is asked to call back {callback}")
        return location

    async def upstream_authorize(self, location: str) -> None:
        try:
            async with self.session.get(location, allow_redirects=False) as response:
                body = await response.text(errors="replace")
        except aiohttp.ClientError as exc:
            self.add("FAIL", "upstream authorize", f"the upstream's authorize URL can not be reached: {exc}")
            return
        callback = self.config.callback_url(self.mapping.name)
        if response.status >= 400:
            hint = ""
            if "redirect" in body.lower():
                hint = f": it seems not to know the gateway's callback; register {callback} at the provider"
            elif "client" in body.lower():
                hint = ": it seems not to know the gateway's client id"
            self.add("FAIL", "upstream authorize", f"answered {response.status}{hint} ({_page_text(body)})")
            return
        if re.search(r"redirect.?uri.{0,80}(mismatch|not match|must match|invalid|not registered)", body, re.I | re.S):
            # Some providers (GitHub) show this error on a 200 page.
            self.add("WARN", "upstream authorize", f"its page speaks of a redirect URI problem: is {callback} registered? ({_page_text(body)})")
            return
        self.add("PASS", "upstream authorize", f"answered {response.status}: a person can sign in there")

    async def _token(
        self, form: dict[str, str], *, secret: str | None = None
    ) -> tuple[int, dict[str, str], CIMultiDict[str], float]:
        """Status, JSON body, headers (case-insensitive: a proxy may lower-case them) and time."""
        client = self.mapping.platform
        headers = {"Authorization": basic_auth_header(client.client_id, client.client_secret if secret is None else secret)}
        started = time.monotonic()
        async with self.session.post(f"{self.base}/{self.mapping.name}/token", data=form, headers=headers) as response:
            text = await response.text()
            elapsed = time.monotonic() - started
            try:
                body = json.loads(text)
            except ValueError:
                body = {}
            return response.status, body if isinstance(body, dict) else {}, CIMultiDict(response.headers), elapsed

    async def token(self) -> None:
        status, body, headers, _ = await self._token({"grant_type": "refresh_token", "refresh_token": "x"}, secret="not-the-secret")
        if status == 401 and body.get("error") == "invalid_client" and "WWW-Authenticate" in headers:
            self.add("PASS", "client authentication", "a wrong platform secret gets 401 invalid_client")
        else:
            self.add("FAIL", "client authentication", f"a wrong platform secret got {status} {body.get('error')}")

        form = {"grant_type": "authorization_code", "code": "linktest-not-a-code", "redirect_uri": self.mapping.platform.sample_redirect_uri or ""}
        status, body, headers, _ = await self._token(form)
        if status == 401:
            self.add("FAIL", "token", "the platform's client id or secret is refused: use the ones in the mapping's platform section")
            return
        if headers.get("Content-Type", "").split(";")[0] != "application/json" or "no-store" not in headers.get("Cache-Control", ""):
            self.add("FAIL", "token", "the token endpoint's answer is not JSON with Cache-Control: no-store")
            return
        if (status, body.get("error")) == (400, "invalid_grant"):
            self.add("PASS", "token", "a forged code gets 400 invalid_grant as JSON, without reaching the upstream")
        else:
            self.add("FAIL", "token", f"a forged code got {status} {body.get('error')}")

        status, body, headers, elapsed = await self._token({"grant_type": "refresh_token", "refresh_token": "linktest-not-a-token"})
        within = f"in {elapsed:.2f} s"
        platform = platform_of(self.mapping.platform.profile)
        if platform.token_budget is not None and elapsed >= platform.token_budget:
            self.add("FAIL", "upstream token", f"answered {within}: {platform.title} gives up after {platform.token_budget} s")
        elif platform.token_budget is None and elapsed >= STRICTEST_BUDGET:
            self.add("WARN", "upstream token", f"answered {within}: slower than the strictest platform allows ({STRICTEST_BUDGET} s)")
        error, description = body.get("error"), body.get("error_description", "")
        failure = as_failure_kind(headers.get(FAILURE_HEADER))
        if (status, error) == (400, "invalid_grant"):
            self.add("PASS", "upstream token", f"the upstream refused a made-up refresh token as a bad grant {within}: the gateway's credentials and the mapping's request work")
        elif failure == "refused":
            self.add("FAIL", "upstream token", f"{REFUSED} ({within}; {description})")
        elif status == 503 or failure in ("timeout", "connection"):
            self.add("FAIL", "upstream token", f"{UNREACHABLE} ({description})")
        else:
            self.add("FAIL", "upstream token", f"a made-up refresh token got {status} {error}: {description}")


def _page_text(body: str) -> str:
    """The visible text of an HTML page, shortened, for a one-line finding."""
    text = " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"(?s)<(style|script).*?</\1>", " ", body)).split())
    return text[:200]


async def run_linktest(
    config: Config,
    provider: str,
    *,
    base_url: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Check]:
    """Run every check against the gateway at ``base_url`` (default: the config's public URL)."""
    mapping = config.providers.get(provider)
    if mapping is None:
        return [Check("FAIL", "config", f"no provider {provider!r} in {config.file} (known: {', '.join(config.providers)})")]
    connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else True)
    timeout = aiohttp.ClientTimeout(total=(platform_of(mapping.platform.profile).token_budget or STRICTEST_BUDGET) * 2)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        tester = _Tester(session, base_url or config.public_url, mapping, config)
        if await tester.tls() and await tester.ready():
            location = await tester.authorize()
            if location:
                await tester.upstream_authorize(location)
            await tester.token()
    return tester.checks
