"""Redirect URI allowlists: built-in alexa/google profiles, explicit patterns, and the open-redirect corpus.

RFC 6749 §3.1.2 and §10.15, RFC 9700 §2.1: the gateway redirects a browser only to a URI the
platform is known to use, compared exactly; anything else is an open redirector.
"""

from __future__ import annotations

import pytest

from gateway.config.platforms import RedirectPolicy, build_policy, check_pattern

VENDOR = "M3BVP74N95SP1F"
PROJECT = "smart-home-1234"
ALEXA = build_policy("alexa")
ALEXA_PINNED = build_policy("alexa", vendor_ids=[VENDOR])
GOOGLE = build_policy("google")
GOOGLE_PINNED = build_policy("google", project_ids=[PROJECT])
APP = build_policy("none", redirect_uris=["https://app.example.com/link/*/done", "https://app.example.com/cb"])
LOCAL = build_policy("none", redirect_uris=["http://localhost:8080/_demo/platform/callback"])


def _case(policy: RedirectPolicy, uri: str, allowed: bool, id: str) -> pytest.ParameterSet:  # noqa: A002 - pytest's word
    return pytest.param(policy, uri, allowed, id=id)


ALLOW_DENY = [
    # alexa, auth-code form, each region
    _case(ALEXA, f"https://pitangui.amazon.com/api/skill/link/{VENDOR}", True, "alexa-na"),
    _case(ALEXA, f"https://layla.amazon.com/api/skill/link/{VENDOR}", True, "alexa-eu"),
    _case(ALEXA, f"https://alexa.amazon.co.jp/api/skill/link/{VENDOR}", True, "alexa-fe"),
    _case(ALEXA, "https://layla.amazon.com/api/skill/link/ANYVENDOR42", True, "alexa-unpinned-any-vendor"),
    # alexa, older /spa/ form: every region (the console lists it for alexa.amazon.co.jp too)
    _case(ALEXA, f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}", True, "alexa-spa-na"),
    _case(ALEXA, f"https://layla.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}", True, "alexa-spa-eu"),
    _case(ALEXA, f"https://alexa.amazon.co.jp/spa/skill/account-linking-status.html?vendorId={VENDOR}", True, "alexa-spa-fe"),
    _case(ALEXA, f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}&x=1", False, "alexa-spa-extra-param"),
    _case(ALEXA, f"https://pitangui.amazon.com/spa/skill/account-linking-statusXhtml?vendorId={VENDOR}", False, "alexa-spa-dot-is-literal"),
    _case(ALEXA, f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorid={VENDOR}", False, "alexa-spa-param-case"),
    _case(ALEXA, f"https://www.amazon.com/api/skill/link/{VENDOR}", False, "alexa-other-amazon-host"),
    _case(ALEXA, f"https://alexa.amazon.com/api/skill/link/{VENDOR}", False, "alexa-wrong-fe-host"),
    _case(ALEXA, f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}", False, "alexa-refuses-google"),
    _case(ALEXA, "https://layla.amazon.com/api/skill/link/", False, "alexa-empty-vendor"),
    _case(ALEXA, "https://layla.amazon.com/api/skill/link/" + "A" * 65, False, "alexa-vendor-too-long"),
    _case(ALEXA, "https://layla.amazon.com/api/skill/link/M3B-VP74", False, "alexa-vendor-bad-char"),
    # alexa, pinned vendor ids
    _case(ALEXA_PINNED, f"https://alexa.amazon.co.jp/api/skill/link/{VENDOR}", True, "pinned-fe"),
    _case(ALEXA_PINNED, f"https://layla.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}", True, "pinned-spa"),
    _case(ALEXA_PINNED, "https://layla.amazon.com/api/skill/link/OTHERVENDOR1", False, "pinned-other-vendor"),
    _case(ALEXA_PINNED, f"https://layla.amazon.com/api/skill/link/{VENDOR}X", False, "pinned-vendor-prefix"),
    _case(ALEXA_PINNED, f"https://layla.amazon.com/api/skill/link/{VENDOR[:-1]}", False, "pinned-vendor-shorter"),
    _case(ALEXA_PINNED, "https://layla.amazon.com/spa/skill/account-linking-status.html?vendorId=OTHER", False, "pinned-spa-other"),
    # google
    _case(GOOGLE, f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}", True, "google"),
    _case(GOOGLE, f"https://oauth-redirect-sandbox.googleusercontent.com/r/{PROJECT}", True, "google-sandbox"),
    _case(GOOGLE, f"https://oauth-redirect-evil.googleusercontent.com/r/{PROJECT}", False, "google-other-sub"),
    _case(GOOGLE, f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}/x", False, "google-extra-segment"),
    _case(GOOGLE, "https://oauth-redirect.googleusercontent.com/r/", False, "google-empty-project"),
    _case(GOOGLE, f"https://oauth-redirect.googleusercontent.com/{PROJECT}", False, "google-missing-r"),
    _case(GOOGLE, f"https://layla.amazon.com/api/skill/link/{VENDOR}", False, "google-refuses-alexa"),
    _case(GOOGLE_PINNED, f"https://oauth-redirect-sandbox.googleusercontent.com/r/{PROJECT}", True, "google-pinned"),
    _case(GOOGLE_PINNED, "https://oauth-redirect.googleusercontent.com/r/another-project", False, "google-pinned-other"),
    # explicit URIs with * segments
    _case(APP, "https://app.example.com/cb", True, "explicit-exact"),
    _case(APP, "https://app.example.com/link/abc-123_x.y~z/done", True, "explicit-star-segment"),
    _case(APP, "https://app.example.com/link//done", False, "explicit-star-empty"),
    _case(APP, "https://app.example.com/link/a/b/done", False, "explicit-star-two-segments"),
    _case(APP, "https://app.example.com/link/a%2Fb/done", False, "explicit-star-encoded-slash"),
    _case(APP, "https://app.example.com/link/a?b/done", False, "explicit-star-query"),
    _case(APP, "https://app.example.com/link/a@b/done", False, "explicit-star-at"),
    _case(APP, "https://app.example.com/link/abc/done/", False, "explicit-star-trailing-slash"),
    _case(APP, "https://app.example.com/cb/", False, "explicit-trailing-slash"),
    _case(APP, "https://app.example.com/cb?x=1", False, "explicit-query"),
    _case(APP, "https://app.example.com/c", False, "explicit-prefix"),
    _case(APP, "https://app.example.comXcb", False, "explicit-dot-escaped"),
    _case(APP, "https://other.example.com/cb", False, "explicit-other-host"),
    _case(APP, "https://app.example.com/link/x/done" + "x", False, "explicit-suffix"),
    _case(LOCAL, "http://localhost:8080/_demo/platform/callback", True, "explicit-local-http"),
    _case(LOCAL, "http://localhost:8081/_demo/platform/callback", False, "explicit-local-other-port"),
    # the "none" profile allows nothing by itself
    _case(build_policy("none"), f"https://layla.amazon.com/api/skill/link/{VENDOR}", False, "none-profile-empty"),
]


@pytest.mark.parametrize(("policy", "uri", "allowed"), ALLOW_DENY)
def test_allowlist(policy: RedirectPolicy, uri: str, allowed: bool) -> None:
    assert policy.allows(uri) is allowed


GOOD = f"https://pitangui.amazon.com/api/skill/link/{VENDOR}"
HOSTILE = [
    ("userinfo-suffix", f"https://pitangui.amazon.com@evil.example/api/skill/link/{VENDOR}"),
    ("userinfo-prefix", f"https://evil.example@pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("userinfo-encoded-at", f"https://pitangui.amazon.com%40evil.example/api/skill/link/{VENDOR}"),
    ("evil-suffix-domain", f"https://pitangui.amazon.com.evil.example/api/skill/link/{VENDOR}"),
    ("evil-prefix-domain", f"https://evilpitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("evil-subdomain", f"https://x.pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("trailing-dot-host", f"https://pitangui.amazon.com./api/skill/link/{VENDOR}"),
    ("encoded-dot-host", f"https://pitangui.amazon.com%2eevil.example/api/skill/link/{VENDOR}"),
    ("default-port", f"https://pitangui.amazon.com:443/api/skill/link/{VENDOR}"),
    ("other-port", f"https://pitangui.amazon.com:8443/api/skill/link/{VENDOR}"),
    ("plain-http", f"http://pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("uppercase-scheme", f"HTTPS://pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("uppercase-host", f"https://PITANGUI.amazon.com/api/skill/link/{VENDOR}"),
    ("mixed-case-path", f"https://pitangui.amazon.com/API/skill/link/{VENDOR}"),
    ("backslash-at", f"https://pitangui.amazon.com\\@evil.example/api/skill/link/{VENDOR}"),
    ("backslash-host", f"https://evil.example\\pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("backslash-path", f"https://pitangui.amazon.com\\api\\skill\\link\\{VENDOR}"),
    ("encoded-slash", f"https://pitangui.amazon.com/api/skill/link%2F{VENDOR}"),
    ("encoded-traversal", f"https://pitangui.amazon.com/api/skill/link/{VENDOR}%2F..%2F..%2Fevil"),
    ("dot-dot", f"https://pitangui.amazon.com/api/skill/link/../../../evil/{VENDOR}"),
    ("dot-dot-after", f"https://pitangui.amazon.com/api/skill/link/{VENDOR}/.."),
    ("trailing-slash", GOOD + "/"),
    ("extra-segment", GOOD + "/evil"),
    ("extra-query", GOOD + "?next=https://evil.example"),
    ("empty-query", GOOD + "?"),
    ("fragment", GOOD + "#@evil.example"),
    ("empty-fragment", GOOD + "#"),
    ("semicolon-param", GOOD + ";evil"),
    ("trailing-space", GOOD + " "),
    ("leading-space", " " + GOOD),
    ("encoded-space", GOOD + "%20"),
    ("trailing-newline", GOOD + "\n"),
    ("crlf-injection", GOOD + "\r\nLocation: https://evil.example"),
    ("tab-in-host", f"https://pitangui.amazon.com\t.evil.example/api/skill/link/{VENDOR}"),
    ("nul", GOOD + "\x00"),
    ("del", GOOD + "\x7f"),
    ("nbsp", GOOD + "\u00a0"),
    ("zero-width-space", GOOD + "\u200b"),
    ("ideographic-dots", f"https://pitangui\u3002amazon\u3002com/api/skill/link/{VENDOR}"),
    ("fullwidth-dots", f"https://pitangui\uff0eamazon\uff0ecom/api/skill/link/{VENDOR}"),
    ("unicode-digit-vendor", "https://pitangui.amazon.com/api/skill/link/\u0661\u0662\u0663"),
    ("double-slash-path", f"https://pitangui.amazon.com//api/skill/link/{VENDOR}"),
    ("extra-slashes-after-scheme", f"https:////pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("scheme-relative", f"//pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("no-scheme", f"pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("javascript", f"javascript:alert(1)//pitangui.amazon.com/api/skill/link/{VENDOR}"),
    ("data-uri", "data:text/html,<script>alert(1)</script>"),
    ("empty", ""),
    ("very-long", GOOD + "A" * 5000),
    ("very-long-query", f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={'A' * 3000}"),
    ("spa-extra-param", f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}&r=https://evil"),
    ("spa-fragment", f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId={VENDOR}#x"),
    ("spa-encoded-equals", f"https://pitangui.amazon.com/spa/skill/account-linking-status.html?vendorId%3D{VENDOR}"),
]


@pytest.mark.parametrize("uri", [uri for _, uri in HOSTILE], ids=[name for name, _ in HOSTILE])
@pytest.mark.parametrize("policy", [ALEXA, ALEXA_PINNED], ids=["alexa", "alexa-pinned"])
def test_open_redirect_corpus_is_refused(policy: RedirectPolicy, uri: str) -> None:
    assert policy.allows(GOOD)  # the policy itself works
    assert not policy.allows(uri)


GOOGLE_GOOD = f"https://oauth-redirect.googleusercontent.com/r/{PROJECT}"
GOOGLE_HOSTILE = [
    ("userinfo", f"https://oauth-redirect.googleusercontent.com@evil.example/r/{PROJECT}"),
    ("suffix-domain", f"https://oauth-redirect.googleusercontent.com.evil.example/r/{PROJECT}"),
    ("port", f"https://oauth-redirect.googleusercontent.com:444/r/{PROJECT}"),
    ("http", f"http://oauth-redirect.googleusercontent.com/r/{PROJECT}"),
    ("dot-dot", f"https://oauth-redirect.googleusercontent.com/r/../{PROJECT}"),
    ("project-uppercase", "https://oauth-redirect.googleusercontent.com/r/Smart-Home"),
    ("project-leading-dash", "https://oauth-redirect.googleusercontent.com/r/-project"),
    ("trailing-slash", GOOGLE_GOOD + "/"),
    ("query", GOOGLE_GOOD + "?a=b"),
    ("fragment", GOOGLE_GOOD + "#a"),
    ("newline", GOOGLE_GOOD + "\n"),
]


@pytest.mark.parametrize("uri", [uri for _, uri in GOOGLE_HOSTILE], ids=[name for name, _ in GOOGLE_HOSTILE])
def test_google_hostile_variants_are_refused(uri: str) -> None:
    assert GOOGLE.allows(GOOGLE_GOOD)
    assert not GOOGLE.allows(uri)


@pytest.mark.parametrize("segment", [".", ".."])
def test_star_segment_does_not_match_dot_segments(segment: str) -> None:
    assert not APP.allows(f"https://app.example.com/link/{segment}/done")


def test_describe_lists_every_rule() -> None:
    described = build_policy("alexa", redirect_uris=["https://app.example.com/cb"]).describe()
    assert len(described) == 3
    assert "https://app.example.com/cb" in described


# -- check_pattern: explicit redirect_uris in a mapping ---------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/cb",
        "https://app.example.com/link/*/done",
        "https://app.example.com/*",
        "https://app.example.com:8443/cb",
        "https://app.example.com/cb?source=alexa",
        "http://localhost:8080/cb",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_check_pattern_accepts(uri: str) -> None:
    assert check_pattern(uri) is None


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("app.example.com/cb", "absolute"),
        ("/cb", "absolute"),
        ("", "absolute"),
        ("ftp://app.example.com/cb", "absolute"),
        ("com.example.app:/cb", "absolute"),
        ("*://app.example.com/cb", "absolute"),
        ("http://app.example.com/cb", "https"),
        ("https://*.example.com/cb", "'*' may stand only in the path"),
        ("https://app.example.*/cb", "'*' may stand only in the path"),
        ("https://app.example.com:*/cb", "'*' may stand only in the path"),
        ("https://*/cb", "'*' may stand only in the path"),
        ("https://app.example.com/cb#frag", "fragment"),
        ("https://app.example.com/*#frag", "fragment"),
        ("https://user@app.example.com/cb", "user info"),
        ("https://user:pw@app.example.com/cb", "user info"),
        ("https://app.example.com/a*/cb", "whole path segment"),
        ("https://app.example.com/*b/cb", "whole path segment"),
        ("https://app.example.com/**/cb", "whole path segment"),
    ],
    ids=lambda value: value if value else "empty",
)
def test_check_pattern_rejects(uri: str, fragment: str) -> None:
    problem = check_pattern(uri)
    assert problem is not None
    assert fragment in problem


def test_check_pattern_rejects_star_in_query() -> None:
    assert check_pattern("https://app.example.com/cb?id=*") is not None


def test_check_pattern_rejects_http_to_a_hostname_starting_with_127() -> None:
    assert check_pattern("http://127.0.0.1.evil.example/cb") is not None


def test_check_pattern_reports_a_malformed_ipv6_host() -> None:
    assert check_pattern("https://[::1/cb") is not None


_EVERY_URI = sorted({str(case.values[1]) for case in ALLOW_DENY} | {uri for _, uri in HOSTILE} | {uri for _, uri in GOOGLE_HOSTILE})


@pytest.mark.parametrize("policy", [ALEXA, ALEXA_PINNED, GOOGLE, GOOGLE_PINNED, APP, LOCAL, RedirectPolicy(())])
def test_the_one_expression_allows_exactly_what_some_rule_allows(policy: RedirectPolicy) -> None:
    """A policy matches all its rules at once (one alternation): the answer must be the rules' own,
    rule by rule, for every URI of the corpus above and for each rule's sample."""
    for uri in _EVERY_URI + [rule.description for rule in policy.rules]:
        by_rule = bool(uri) and len(uri) <= 2048 and uri.isprintable() and " " not in uri and any(rule.matches(uri) for rule in policy.rules)
        assert policy.allows(uri) == by_rule, uri
