"""The one HTTP Basic helper (gateway/oauth/basicauth.py), RFC 6749 §2.3.1: form-urlencode id and
secret, join with ``:``, base64 — and what the gateway's own check makes of the result."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.mapping import PlatformClient
from gateway.config.platforms import build_policy
from gateway.oauth.basicauth import basic_auth_header, decode_basic_auth, form_decoded
from gateway.oauth.clientauth import authenticate, read_credentials


def raw_pair(header: str) -> str:
    """The base64 payload, decoded independently of the module under test."""
    assert header.startswith("Basic ")
    return base64.b64decode(header.removeprefix("Basic "), validate=True).decode("ascii")


@pytest.mark.parametrize(
    ("client_id", "secret", "expected"),
    [
        ("client", "secret", "client:secret"),
        ("id:with:colons", "s:e:c", "id%3Awith%3Acolons:s%3Ae%3Ac"),  # a colon can not split the pair
        ("100%", "%41%42", "100%25:%2541%2542"),  # a percent sign is encoded, not read as an escape
        ("ünï", "秘密", "%C3%BCn%C3%AF:%E7%A7%98%E5%AF%86"),  # UTF-8 bytes, percent-encoded
        ("a b", "c+d", "a%20b:c%2Bd"),  # space as %20 (every form decoder agrees); + is a literal plus
        ("a&b=c", "d/e?f#g~h", "a%26b%3Dc:d%2Fe%3Ff%23g~h"),
        ("", "", ":"),
    ],
)
def test_rfc_6749_section_2_3_1_encoding(client_id: str, secret: str, expected: str) -> None:
    header = basic_auth_header(client_id, secret)
    assert raw_pair(header) == expected
    encoded_id, _, encoded_secret = expected.partition(":")
    assert (unquote_plus(encoded_id), unquote_plus(encoded_secret)) == (client_id, secret)


@given(st.text(), st.text())
def test_any_id_and_secret_round_trip(client_id: str, secret: str) -> None:
    header = basic_auth_header(client_id, secret)
    pair = decode_basic_auth(header)
    assert pair is not None and ":" not in pair[0]
    assert form_decoded(*pair) == (client_id, secret)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("skill:eu/1 +ü", "p@ss:w/rd+ %&=~ü"), ("100%", "%41"), ("alexa-skill", "alexa-skill-secret")],
)
def test_the_gateway_accepts_what_the_helper_sends(client_id: str, secret: str) -> None:
    """The demo and linktest send this header to the gateway: its own check must accept it."""
    credentials = read_credentials(basic_auth_header(client_id, secret), {})
    authenticate(credentials, PlatformClient(client_id, secret, build_policy("alexa"), "alexa", "optional"))


@pytest.mark.parametrize(
    "header",
    ["Bearer abc", "Basic", "Basic    ", "Basic %%%", "Basic YWxleGE", "Basic " + base64.b64encode(b"no-colon").decode(),
     "Basic " + base64.b64encode(b"\xff:\xfe").decode(), "Basic YWxleGE6YWxleGE=é"],
)
def test_what_the_decoder_refuses(header: str) -> None:
    assert decode_basic_auth(header) is None


def test_the_decoder_keeps_the_pair_as_sent() -> None:
    """Platforms often skip the §2.3.1 encoding: the pair comes back raw, the caller compares both."""
    header = "basic " + base64.b64encode("id+1:sec:ret ü".encode()).decode()
    assert decode_basic_auth(header) == ("id+1", "sec:ret ü")
    assert form_decoded("id+1", "a%3Ab") == ("id 1", "a:b")
