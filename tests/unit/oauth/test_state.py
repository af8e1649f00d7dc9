"""The typed state that crosses requests (gateway/oauth/state.py): round trips, tampering, wrong
types, and payloads sealed by earlier versions (a rolling upgrade keeps flows and codes in flight).

This file and the wire-level fuzzer are the only tests that spell the one-letter wire keys: here
they are the point, since what earlier versions wrote must keep opening.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from gateway.config.settings import CookieSettings
from gateway.oauth.seal import Sealer, SealError, generate_key
from gateway.oauth.state import (
    CODE_PURPOSE,
    GRACE_PURPOSE,
    GRANT_TYPES,
    REFRESH_PURPOSE,
    TENANT_FORM_PURPOSE,
    Challenge,
    CodePayload,
    FlowEntry,
    GraceEntry,
    RefreshEnvelope,
    StateError,
    TenantFormToken,
    as_grant_type,
    open_code,
    seal_code,
)
from gateway.web.session import FlowStore

REDIRECT = "https://pitangui.amazon.com/api/skill/link/M2AAAAAAAAAAAA"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

# A code sealed by the gateway before gateway/oauth/state.py existed (callback.py built the dict
# by hand), under a fixed key, at a fixed time: it must open, and fingerprint, exactly as then.
OLD_KEY = "wW3mTt1n5o4vZyqg1wQ3u5cXk9m2bq7m6mJm3w2Yx5E="
OLD_ISSUED = 1_780_000_000
OLD_CODE = (
    "gAAAAABqGKUAIdN7efI4R_Lj4hLXxllybkoUFHfId5GU3dDorSR6wTDMTYQC3ag6RU7dYbX0QOXDSTZ3-nR5Zb3n51xVYTYT0oMWNMWLzVRSZti_y8Or9Z5Xc8Zs"
    "K3ZMbT8l9pMC1sl--BlXPqSXn8KnGpb2_God81bFYOSZj0uS25gOAsh3Hb_gpXywbJ53b97zgWteyX_mu7GFIk_eUb0q247UfqF4oVf8uWzaBPtIvrAx_K4C4p"
    "zG4M9qwbfBnoosnDohZTWjHT___B61aj2kMj4sBOJqKgmY-qa2yeH1L9Yg9llPvi5utK6kYFNkuW82_CszIzjhsREDeRjDeAKxZ0ybOjiK_uhV1BxxNkeUTLl2"
    "pawwInYiC9P0uV2UmI5Qka0ZrI6piMrp8JQPxy2qn97AQsYT06ZH_AbgeIi6aZSMtE3usmw6pG5eHJ5DPxm5mVWpyiIJEtPgUBCE55pnexxWYxhC7jW3Jjj1mP"
    "fV4AHxD8xwzLtxdlluJKbljMI3__czwxoRvpZOKHwjD1L94UwYuJuIIA=="
)
OLD_PAYLOAD: dict[str, Any] = {
    "u": "upstream-code-1",
    "c": "alexa-skill",
    "r": REDIRECT,
    "p": "oidc",
    "v": "v" * 64,
    "cc": CHALLENGE,
    "ccm": "S256",
    "x": {"accounts_server": "https://accounts.eu.example"},
}
#: replay.fingerprint() of OLD_PAYLOAD as the earlier version computed it (sha256, canonical JSON).
OLD_FINGERPRINT = "9ab3d2ae733c37c22ffd4879a2685888385ec2682428c60b523c512609d1560c"

FULL_CODE = CodePayload(
    upstream_code="upstream-code-1",
    client_id="alexa-skill",
    redirect_uri=REDIRECT,
    provider="oidc",
    upstream_verifier="v" * 64,
    challenge=Challenge(CHALLENGE, "S256"),
    context={"accounts_server": "https://accounts.eu.example"},
)
FULL_FLOW = FlowEntry(
    provider="oidc",
    redirect_uri=REDIRECT,
    response_type="code",
    state="platform-state ✓",
    upstream_verifier="w" * 64,
    challenge=Challenge(CHALLENGE, "S256"),
    context={"state": "nonce", "shop": "acme"},
    expires=OLD_ISSUED + 600,
)


# --- compatibility with what earlier versions sealed ----------------------------------------------


def test_a_code_sealed_by_the_earlier_version_opens() -> None:
    opened = open_code(Sealer([OLD_KEY]), OLD_CODE, now=OLD_ISSUED + 1)
    assert opened == FULL_CODE
    assert opened.to_wire() == OLD_PAYLOAD  # byte for byte the same object, so …
    assert opened.fingerprint() == OLD_FINGERPRINT  # … old and new replicas agree on the replay claim


def test_the_earlier_fingerprint_formula_is_still_the_one() -> None:
    old = hashlib.sha256(json.dumps(OLD_PAYLOAD, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert old == OLD_FINGERPRINT == FULL_CODE.fingerprint()


def test_a_code_sealed_now_opens_as_the_earlier_version_read_it() -> None:
    """A replica not yet upgraded reads opened["u"], opened.get("cc"), … of a new code."""
    sealer = Sealer([generate_key()])
    raw = sealer.open(CODE_PURPOSE, seal_code(sealer, FULL_CODE, ttl=300))
    assert raw == OLD_PAYLOAD


def test_a_minimal_earlier_code_opens_with_defaults() -> None:
    sealer = Sealer([generate_key()])
    code = sealer.seal(CODE_PURPOSE, {"u": "x", "c": "alexa-skill", "r": REDIRECT, "p": "oidc"}, ttl=300)
    opened = open_code(sealer, code)
    assert opened == CodePayload("x", "alexa-skill", REDIRECT, "oidc")
    assert (opened.upstream_verifier, opened.challenge, opened.context) == (None, None, {})
    assert opened.to_wire() == {"u": "x", "c": "alexa-skill", "r": REDIRECT, "p": "oidc"}


def test_a_challenge_without_a_method_is_plain() -> None:
    """RFC 7636 §4.3: the method defaults to plain (as /token read it before)."""
    opened = CodePayload.from_wire({"u": "x", "c": "c", "r": REDIRECT, "p": "oidc", "cc": "a" * 43})
    assert opened.challenge == Challenge("a" * 43, "plain")


def test_an_earlier_flow_entry_reads_and_writes_back_unchanged() -> None:
    wire = {"p": "oidc", "r": REDIRECT, "t": "code", "s": "st", "cc": CHALLENGE, "ccm": "S256", "v": "w" * 64,
            "lc": {"state": "n"}, "x": OLD_ISSUED}
    flow = FlowEntry.from_wire(wire)
    assert (flow.provider, flow.redirect_uri, flow.response_type, flow.state) == ("oidc", REDIRECT, "code", "st")
    assert flow.upstream_verifier == "w" * 64 and flow.challenge == Challenge(CHALLENGE, "S256")
    assert (flow.context, flow.expires) == ({"state": "n"}, OLD_ISSUED)
    assert flow.to_wire() == wire


def test_a_flow_cookie_written_by_the_earlier_version_completes() -> None:
    """The flows an earlier replica wrote (its ``flows`` dict of wire entries) are taken here."""
    settings = CookieSettings()
    earlier = {"p": "oidc", "r": REDIRECT, "t": "token", "s": "st", "x": OLD_ISSUED + 600}
    flows = FlowStore.holding({"flows": {"nonce-1": earlier}}, settings)
    assert flows.take("nonce-1", provider="google", now=OLD_ISSUED) is None  # another provider's path
    taken = flows.take("nonce-1", provider="oidc", now=OLD_ISSUED)
    assert taken == FlowEntry("oidc", REDIRECT, "token", state="st", expires=OLD_ISSUED + 600)
    assert flows.take("nonce-1", provider="oidc", now=OLD_ISSUED) is None and flows.was_completed("nonce-1")


def test_the_flow_store_writes_the_wire_form_and_drops_what_it_can_not_read() -> None:
    flows = FlowStore.holding({"flows": {"bad": {"p": "oidc"}, "worse": [1]}}, CookieSettings())
    flows.add("n", dataclasses.replace(FULL_FLOW, expires=0), now=OLD_ISSUED)
    stored = flows.data["flows"]
    assert set(stored) == {"n"}  # the unreadable entries are gone, never a KeyError
    assert stored["n"] == FULL_FLOW.to_wire() | {"x": OLD_ISSUED + CookieSettings().max_age}
    # key for key in the order to_wire writes: the cookie's bytes are what they always were
    expected = dataclasses.replace(FULL_FLOW, expires=OLD_ISSUED + CookieSettings().max_age).to_wire()
    assert list(stored["n"].items()) == list(expected.items())
    assert flows.take("bad", provider="oidc", now=OLD_ISSUED) is None


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [FULL_CODE, CodePayload("x", "c", REDIRECT, "p"), dataclasses.replace(FULL_CODE, challenge=None, context={})],
    ids=["full", "minimal", "no-pkce"],
)
def test_code_round_trip(payload: CodePayload) -> None:
    sealer = Sealer([generate_key()])
    assert open_code(sealer, seal_code(sealer, payload, ttl=300)) == payload
    assert CodePayload.from_wire(json.loads(json.dumps(payload.to_wire()))) == payload


@pytest.mark.parametrize(
    "flow",
    [FULL_FLOW, FlowEntry("oidc", REDIRECT, "code"), FlowEntry("implicit", REDIRECT, "token", state="", context={})],
    ids=["full", "minimal", "empty-values"],
)
def test_flow_round_trip(flow: FlowEntry) -> None:
    assert FlowEntry.from_wire(json.loads(json.dumps(flow.to_wire()))) == flow


def test_from_flow_carries_the_redirect_uri_and_pkce_into_the_code() -> None:
    code = CodePayload.from_flow(FULL_FLOW, upstream_code="up", client_id="alexa-skill", context={"k": "v"})
    assert (code.redirect_uri, code.provider, code.upstream_verifier) == (REDIRECT, "oidc", "w" * 64)
    assert (code.challenge, code.context) == (Challenge(CHALLENGE, "S256"), {"k": "v"})


def test_refresh_envelope_and_tenant_token_round_trip() -> None:
    envelope = RefreshEnvelope("rt", {"shop": "acme"})
    assert RefreshEnvelope.from_wire(envelope.to_wire()) == envelope
    token = TenantFormToken("nonce", "hash")
    assert TenantFormToken.from_wire(token.to_wire()) == token


def test_fingerprints_differ_with_any_field() -> None:
    prints = {FULL_CODE.fingerprint()}
    changes: tuple[dict[str, Any], ...] = ({"upstream_code": "y"}, {"client_id": "y"}, {"redirect_uri": "y"}, {"provider": "y"},
               {"upstream_verifier": None}, {"challenge": None}, {"context": {}})
    for change in changes:
        prints.add(dataclasses.replace(FULL_CODE, **change).fingerprint())
    assert len(prints) == 8


# --- tampering and wrong types -------------------------------------------------------------------


def test_purposes_are_distinct() -> None:
    assert len({CODE_PURPOSE, REFRESH_PURPOSE, TENANT_FORM_PURPOSE}) == 3
    sealer = Sealer([generate_key()])
    refresh = sealer.seal(REFRESH_PURPOSE, RefreshEnvelope("rt").to_wire(), ttl=300)
    with pytest.raises(SealError, match="sealed for 'link', not 'code'"):
        open_code(sealer, refresh)


def test_a_tampered_code_does_not_open() -> None:
    sealer = Sealer([generate_key()])
    code = seal_code(sealer, FULL_CODE, ttl=300)
    tampered = code[:50] + ("A" if code[50] != "A" else "B") + code[51:]
    with pytest.raises(SealError):
        open_code(sealer, tampered)
    with pytest.raises(SealError):
        open_code(Sealer([generate_key()]), code)


WRONG_CODES: list[tuple[str, dict[str, Any]]] = [
    ("missing upstream code", {k: v for k, v in OLD_PAYLOAD.items() if k != "u"}),
    ("missing client", {k: v for k, v in OLD_PAYLOAD.items() if k != "c"}),
    ("missing redirect", {k: v for k, v in OLD_PAYLOAD.items() if k != "r"}),
    ("missing provider", {k: v for k, v in OLD_PAYLOAD.items() if k != "p"}),
    ("number code", OLD_PAYLOAD | {"u": 5}),
    ("null client", OLD_PAYLOAD | {"c": None}),
    ("list redirect", OLD_PAYLOAD | {"r": [REDIRECT]}),
    ("number verifier", OLD_PAYLOAD | {"v": 1}),
    ("number challenge", OLD_PAYLOAD | {"cc": 1}),
    ("unknown method", OLD_PAYLOAD | {"ccm": "S512"}),
    ("lowercase method", OLD_PAYLOAD | {"ccm": "s256"}),
    ("context a list", OLD_PAYLOAD | {"x": ["a"]}),
    ("context of numbers", OLD_PAYLOAD | {"x": {"a": 1}}),
]


@pytest.mark.parametrize(("why", "wire"), WRONG_CODES, ids=[why for why, _ in WRONG_CODES])
def test_a_code_of_the_wrong_shape_is_a_seal_error(why: str, wire: dict[str, Any]) -> None:
    """Sealed with a genuine key (a bug or a downgrade), the payload is still refused cleanly:
    a :class:`StateError` is a :class:`SealError`, which /token answers with invalid_grant."""
    sealer = Sealer([generate_key()])
    with pytest.raises(StateError, match="malformed sealed value"):
        open_code(sealer, sealer.seal(CODE_PURPOSE, wire, ttl=300))


WRONG_FLOWS: list[tuple[str, object]] = [
    ("not an object", ["p"]),
    ("missing provider", {"r": REDIRECT, "t": "code"}),
    ("missing redirect", {"p": "oidc", "t": "code"}),
    ("missing response type", {"p": "oidc", "r": REDIRECT}),
    ("unknown response type", {"p": "oidc", "r": REDIRECT, "t": "id_token"}),
    ("expiry text", {"p": "oidc", "r": REDIRECT, "t": "code", "x": "soon"}),
    ("expiry boolean", {"p": "oidc", "r": REDIRECT, "t": "code", "x": True}),
    ("state number", {"p": "oidc", "r": REDIRECT, "t": "code", "s": 1}),
    ("context text", {"p": "oidc", "r": REDIRECT, "t": "code", "lc": "a=b"}),
]


@pytest.mark.parametrize(("why", "wire"), WRONG_FLOWS, ids=[why for why, _ in WRONG_FLOWS])
def test_a_flow_of_the_wrong_shape_is_a_state_error(why: str, wire: object) -> None:
    with pytest.raises(StateError):
        FlowEntry.from_wire(wire)


@pytest.mark.parametrize("wire", [{"x": {}}, {"r": 1, "x": {}}, {"r": "rt"}, {"r": "rt", "x": {"a": 1}}])
def test_a_refresh_envelope_of_the_wrong_shape_is_a_state_error(wire: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        RefreshEnvelope.from_wire(wire)


@pytest.mark.parametrize("wire", [{}, {"n": "a"}, {"n": 1, "q": "h"}])
def test_a_tenant_token_of_the_wrong_shape_is_a_state_error(wire: dict[str, Any]) -> None:
    with pytest.raises(StateError):
        TenantFormToken.from_wire(wire)


# --- grant types ---------------------------------------------------------------------------------


def test_grant_types() -> None:
    assert GRANT_TYPES == ("authorization_code", "refresh_token", "client_credentials")
    assert [as_grant_type(grant) for grant in GRANT_TYPES] == list(GRANT_TYPES)
    for other in (None, "", "password", "AUTHORIZATION_CODE", "implicit", "refresh_token "):
        assert as_grant_type(other) is None


def test_grace_entries_round_trip_and_read_the_earlier_format() -> None:
    answer = GraceEntry(answer={"access_token": "at", "token_type": "Bearer", "expires_in": 3600})
    refusal = GraceEntry(refusal="refresh token revoked")
    for entry in (answer, refusal):
        assert GraceEntry.from_wire(json.loads(json.dumps(entry.to_wire()))) == entry
    assert GraceEntry.from_wire({"a": {"access_token": "at", "token_type": "Bearer"}}) == GraceEntry(
        answer={"access_token": "at", "token_type": "Bearer"}
    )
    assert GraceEntry.from_wire({"e": "gone"}) == GraceEntry(refusal="gone")
    for wrong in ({}, {"a": "at"}, {"e": 1}):
        with pytest.raises(StateError):
            GraceEntry.from_wire(wrong)
    assert GRACE_PURPOSE not in {CODE_PURPOSE, REFRESH_PURPOSE, TENANT_FORM_PURPOSE}


def test_a_grace_entry_opens_only_under_the_name_it_was_sealed_for() -> None:
    sealer = Sealer([generate_key()])
    sealed = sealer.seal(GRACE_PURPOSE, GraceEntry(answer={"access_token": "at", "token_type": "Bearer"}, name="gw:g:mine").to_wire(), ttl=60)
    assert GraceEntry.open_at(sealer, "gw:g:mine", sealed).answer == {"access_token": "at", "token_type": "Bearer"}
    with pytest.raises(StateError, match="another store key"):
        GraceEntry.open_at(sealer, "gw:g:yours", sealed)
    unnamed = sealer.seal(GRACE_PURPOSE, GraceEntry(answer={"access_token": "at", "token_type": "Bearer"}).to_wire(), ttl=60)
    with pytest.raises(StateError):  # an earlier version's entry names nothing: not trusted (60 s at most)
        GraceEntry.open_at(sealer, "gw:g:mine", unnamed)


def test_refresh_envelopes_carry_their_provider_and_client_and_read_the_earlier_format() -> None:
    bound = RefreshEnvelope("rt", {"shop": "acme"}, provider="shopify", client_id="alexa")
    assert bound.to_wire() == {"r": "rt", "x": {"shop": "acme"}, "p": "shopify", "c": "alexa"}
    assert RefreshEnvelope.from_wire(bound.to_wire()) == bound
    assert bound.issued_to("shopify", "alexa") and not bound.issued_to("other", "alexa") and not bound.issued_to("shopify", "x")
    earlier = RefreshEnvelope.from_wire({"r": "rt", "x": {}})
    assert (earlier.provider, earlier.client_id) == (None, None) and earlier.issued_to("any", "one")
    with pytest.raises(StateError):
        RefreshEnvelope.from_wire({"r": "rt", "x": {}, "p": 7})


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({"u": "x", "c": "c", "r": REDIRECT, "p": "p"}, CodePayload("x", "c", REDIRECT, "p")),
        ({"u": "x", "c": "c", "r": REDIRECT, "p": "p", "v": "ver"}, CodePayload("x", "c", REDIRECT, "p", upstream_verifier="ver")),
        ({"u": "x", "c": "c", "r": REDIRECT, "p": "p", "later": 1}, CodePayload("x", "c", REDIRECT, "p")),
        ({"u": "x", "c": "c", "r": REDIRECT, "p": "p", "ccm": "S256"}, CodePayload("x", "c", REDIRECT, "p")),
        (
            {"u": "x", "c": "c", "r": REDIRECT, "p": "p", "v": "ver", "cc": "a" * 43, "x": {"t": "eu"}},
            CodePayload("x", "c", REDIRECT, "p", "ver", Challenge("a" * 43, "plain"), {"t": "eu"}),
        ),
    ],
    ids=["usual", "usual-with-verifier", "unknown-key", "method-alone", "full"],
)
def test_the_usual_code_and_the_others_read_alike(wire: dict[str, Any], expected: CodePayload) -> None:
    """The usual code (four fields and the gateway's verifier) is read without a call per field;
    any other shape takes the checks field by field: both give the same payload."""
    assert CodePayload.from_wire(wire) == expected


@pytest.mark.parametrize("extra", [{"v": 1}, {"ccm": "S512"}, {"v": None}])
def test_a_fifth_field_of_the_wrong_shape_is_still_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(StateError, match="malformed sealed value"):
        CodePayload.from_wire({"u": "x", "c": "c", "r": REDIRECT, "p": "p"} | extra)
