"""The platform side, in one registry: redirect rules, sample redirect URIs and time budgets.

:data:`PLATFORMS` holds what the gateway knows of each platform profile — the redirect URIs it
may ask the gateway to send a user to, one it really sends (for ``gateway linktest``), how long it
waits for ``/token`` (for ``gateway check`` and ``gateway linktest``), whether it must send PKCE
with ``S256``, and which ``gateway console`` page describes it. The redirect policy, ``gateway
check``, ``gateway linktest`` and ``gateway console`` all read it from here.

RFC 6749 §3.1.2 / §10.15 and RFC 9700 §2.1: redirect URIs are compared *exactly*; an
authorization server that redirects anywhere "starting with" an allowed prefix is an open
redirector. Every rule here is an anchored, full match over the raw string, so userinfo
(``https://pitangui.amazon.com@evil.example``), ports, backslashes, percent tricks, extra path
segments, queries and fragments all fail.

Built-in profiles:

* ``alexa`` — ``https://{pitangui.amazon.com|layla.amazon.com|alexa.amazon.co.jp}/api/skill/link/<VENDOR>``
  and the older ``https://{pitangui.amazon.com|layla.amazon.com|alexa.amazon.co.jp}/spa/skill/account-linking-status.html?vendorId=<VENDOR>``
  (the Alexa console lists this form for the Far East region too).
  The vendor id can be pinned with ``vendor_ids``.
* ``google`` — ``https://oauth-redirect{,-sandbox}.googleusercontent.com/r/<PROJECT_ID>``
  (pinned with ``project_ids``).
* ``smartthings`` — the SmartThings Schema cloud connector's three regional callbacks,
  ``https://c2c-{us|eu|ap}.smartthings.com/oauth/callback``, exactly.
* ``alexa-mcp`` — Alexa+ MCP add-ons (OAuth 2.1): Alexa's redirect URIs, and PKCE with ``S256``
  is required at ``/authorize`` (OAuth 2.1 §4.1.1; ``plain`` and no challenge are refused).

Explicit ``redirect_uris`` add exact URIs; a ``*`` in their path stands for exactly one path
segment of ``[A-Za-z0-9._~-]`` (app-link IDs, vendor IDs). Scheme, host and port are never
wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gateway.config.urls import is_loopback_host, split_url

__all__ = [
    "Platform",
    "PLATFORMS",
    "platform_of",
    "ALEXA_BUDGET",
    "STRICTEST_BUDGET",
    "PROFILES",
    "PKCE_S256_PROFILES",
    "SMARTTHINGS_REDIRECT_URIS",
    "RedirectRule",
    "RedirectPolicy",
    "build_policy",
    "check_pattern",
    "sample_redirect_uri",
]

#: Alexa abandons a token request after this many seconds (its account-linking documentation).
ALEXA_BUDGET = 4.5

_ALEXA_LINK_HOSTS = ("pitangui.amazon.com", "layla.amazon.com", "alexa.amazon.co.jp")
_ALEXA_SPA_HOSTS = _ALEXA_LINK_HOSTS
SMARTTHINGS_REDIRECT_URIS = tuple(
    f"https://c2c-{region}.smartthings.com/oauth/callback" for region in ("us", "eu", "ap")
)
_GOOGLE_HOSTS = ("oauth-redirect.googleusercontent.com", "oauth-redirect-sandbox.googleusercontent.com")
#: One path segment, never ``.`` or ``..`` (browsers resolve those out of the pattern).
_SEGMENT = r"(?!\.\.?(?:/|$|\?))[A-Za-z0-9._~-]+"
_VENDOR = r"[A-Za-z0-9]{1,64}"
_PROJECT = r"[a-z0-9][a-z0-9-]{0,62}"


_CONTROL_OR_SPACE = re.compile("[\x00-\x20\x7f]")


@dataclass(frozen=True)
class RedirectRule:
    """One allowed redirect URI shape, as a compiled full-match regular expression."""

    description: str
    pattern: re.Pattern[str]

    def matches(self, uri: str) -> bool:
        return self.pattern.fullmatch(uri) is not None


@dataclass(frozen=True)
class RedirectPolicy:
    """The allowlist of one provider's platform: profile rules plus explicit URIs."""

    rules: tuple[RedirectRule, ...]
    #: Every rule in one expression (``(?:a)|(?:b)``, full match): one match per request, not one per rule.
    _any: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        either = "|".join(f"(?:{rule.pattern.pattern})" for rule in self.rules) or "(?!)"
        object.__setattr__(self, "_any", re.compile(either))

    def allows(self, uri: str) -> bool:
        # Control characters and spaces never belong in a redirect URI; refuse before matching.
        if not uri or len(uri) > 2048 or _CONTROL_OR_SPACE.search(uri):
            return False
        return self._any.fullmatch(uri) is not None

    def describe(self) -> list[str]:
        return [rule.description for rule in self.rules]


def _alternatives(values: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(value) for value in values) + ")"


def _ids(pinned: Sequence[str], default: str) -> str:
    return _alternatives(pinned) if pinned else default


def alexa_rules(vendor_ids: Sequence[str] = ()) -> list[RedirectRule]:
    vendor = _ids(vendor_ids, _VENDOR)
    return [
        RedirectRule(
            "alexa: https://{pitangui.amazon.com|layla.amazon.com|alexa.amazon.co.jp}/api/skill/link/<vendor>",
            re.compile(rf"https://{_alternatives(_ALEXA_LINK_HOSTS)}/api/skill/link/{vendor}"),
        ),
        RedirectRule(
            "alexa: https://{pitangui.amazon.com|layla.amazon.com|alexa.amazon.co.jp}/spa/skill/account-linking-status.html?vendorId=<vendor>",
            re.compile(
                rf"https://{_alternatives(_ALEXA_SPA_HOSTS)}/spa/skill/account-linking-status\.html\?vendorId={vendor}"
            ),
        ),
    ]


def google_rules(project_ids: Sequence[str] = ()) -> list[RedirectRule]:
    project = _ids(project_ids, _PROJECT)
    return [
        RedirectRule(
            "google: https://{oauth-redirect|oauth-redirect-sandbox}.googleusercontent.com/r/<project>",
            re.compile(rf"https://{_alternatives(_GOOGLE_HOSTS)}/r/{project}"),
        )
    ]


def smartthings_rules() -> list[RedirectRule]:
    return [
        RedirectRule(
            "smartthings: https://{c2c-us|c2c-eu|c2c-ap}.smartthings.com/oauth/callback",
            re.compile(_alternatives(SMARTTHINGS_REDIRECT_URIS)),
        )
    ]


#: ``(vendor_ids, project_ids) → rules`` and ``(vendor_ids, project_ids) → a URI it sends``.
Rules = Callable[[Sequence[str], Sequence[str]], list[RedirectRule]]
Sample = Callable[[Sequence[str], Sequence[str]], "str | None"]


@dataclass(frozen=True)
class Platform:
    """What the gateway knows of one ``platform.profile``."""

    profile: str
    #: The platform's name in messages (``Alexa's 4.5 s budget``).
    title: str
    rules: Rules
    #: A redirect URI the platform really sends (North America's for Alexa), or ``None``.
    sample: Sample
    #: Seconds the platform waits for ``/token`` before it gives up; ``None``: none documented.
    token_budget: float | None = None
    #: The platform must send PKCE with S256 (``platform.pkce`` defaults to ``S256``).
    pkce_s256: bool = False
    #: The ``gateway console`` page for it (``alexa``, ``google``), if there is one.
    console: str | None = None


def _alexa_sample(vendor_ids: Sequence[str], project_ids: Sequence[str]) -> str:
    return f"https://pitangui.amazon.com/api/skill/link/{vendor_ids[0] if vendor_ids else 'M2LINKTEST0000'}"


def _google_sample(vendor_ids: Sequence[str], project_ids: Sequence[str]) -> str:
    return f"https://oauth-redirect.googleusercontent.com/r/{project_ids[0] if project_ids else 'linktest'}"


PLATFORMS: Mapping[str, Platform] = {
    platform.profile: platform
    for platform in (
        Platform("alexa", "Alexa", lambda vendors, _: alexa_rules(vendors), _alexa_sample, ALEXA_BUDGET, console="alexa"),
        Platform("google", "Google", lambda _, projects: google_rules(projects), _google_sample, console="google"),
        Platform("smartthings", "SmartThings", lambda _, __: smartthings_rules(), lambda _, __: SMARTTHINGS_REDIRECT_URIS[0]),
        Platform(
            "alexa-mcp", "Alexa", lambda vendors, _: alexa_rules(vendors), _alexa_sample, ALEXA_BUDGET, pkce_s256=True, console="alexa"
        ),
        Platform("none", "the platform", lambda _, __: [], lambda _, __: None),
    )
}
PROFILES = tuple(PLATFORMS)
#: Profiles whose platform must send PKCE with S256 (``platform.pkce`` defaults to ``S256``).
PKCE_S256_PROFILES = frozenset(name for name, platform in PLATFORMS.items() if platform.pkce_s256)
#: The shortest budget any platform is known to allow: what a platform of unknown patience gets.
STRICTEST_BUDGET = min(platform.token_budget for platform in PLATFORMS.values() if platform.token_budget is not None)


def platform_of(profile: str) -> Platform:
    """The registry entry of ``profile`` (an unknown one reads as ``none``: config refuses those)."""
    return PLATFORMS.get(profile, PLATFORMS["none"])


def check_pattern(uri: str) -> str | None:
    """Why an explicit redirect URI (pattern) is not acceptable, or ``None`` when it is."""
    if not uri.startswith(("https://", "http://")):
        return f"redirect URI must be an absolute https URL, not {uri!r}"
    scheme_and_host = uri.split("/", 3)[:3]
    if "*" in "/".join(scheme_and_host):
        return f"'*' may stand only in the path, never in scheme, host or port: {uri!r}"
    parts = split_url(uri.replace("*", "x"))
    if parts is None or parts.scheme not in {"https", "http"} or not parts.hostname:
        return f"redirect URI must be an absolute https URL, not {uri!r}"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return f"redirect URI must use https (plain http only for localhost): {uri!r}"
    if "#" in uri:
        return f"redirect URI must not have a fragment (RFC 6749 §3.1.2): {uri!r}"
    if "@" in parts.netloc:
        return f"redirect URI must not carry user info: {uri!r}"
    if "*" in uri.partition("?")[2]:
        return f"'*' may stand only in the path, never in the query: {uri!r}"
    path = uri.split("/", 3)[3] if uri.count("/") >= 3 else ""
    if any("*" in segment and segment != "*" for segment in path.partition("?")[0].split("/")):
        return f"'*' must stand for a whole path segment: {uri!r}"
    return None


def explicit_rule(uri: str) -> RedirectRule:
    """An exact URI, where each ``*`` path segment matches one segment of safe characters."""
    pattern = _SEGMENT.join(re.escape(piece) for piece in uri.split("*"))
    return RedirectRule(uri, re.compile(pattern))


def sample_redirect_uri(
    profile: str, redirect_uris: Sequence[str], vendor_ids: Sequence[str], project_ids: Sequence[str]
) -> str | None:
    """One redirect URI the platform would really send (North America's for Alexa), else the
    first exact URI of ``redirect_uris``."""
    sample = platform_of(profile).sample(vendor_ids, project_ids)
    return sample if sample is not None else next((uri for uri in redirect_uris if "*" not in uri), None)


def build_policy(
    profile: str,
    *,
    redirect_uris: Sequence[str] = (),
    vendor_ids: Sequence[str] = (),
    project_ids: Sequence[str] = (),
) -> RedirectPolicy:
    rules = platform_of(profile).rules(vendor_ids, project_ids)
    rules += [explicit_rule(uri) for uri in redirect_uris]
    return RedirectPolicy(tuple(rules))
