"""PKCE, RFC 7636: the S256 transform, plain, and the verifier/challenge grammar (§4.1, §4.2, §4.6)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway.oauth import pkce

# RFC 7636 Appendix B: the verifier (32 octets, base64url) and the S256 challenge it must give.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
# The octets Appendix B lists for the verifier (before base64url encoding).
RFC_VERIFIER_OCTETS = bytes(
    [116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186,
     22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121]
)  # fmt: skip


def test_rfc7636_appendix_b_vector() -> None:
    assert base64.urlsafe_b64encode(RFC_VERIFIER_OCTETS).rstrip(b"=").decode() == RFC_VERIFIER
    assert pkce.challenge_of(RFC_VERIFIER, "S256") == RFC_CHALLENGE
    assert pkce.challenge_of(RFC_VERIFIER) == RFC_CHALLENGE  # S256 is the default
    assert pkce.verify(RFC_VERIFIER, RFC_CHALLENGE, "S256")


def test_s256_is_unpadded_base64url_of_sha256() -> None:
    verifier = "a" * 43
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    challenge = pkce.challenge_of(verifier, "S256")
    assert challenge == expected
    assert len(challenge) == 43
    assert "=" not in challenge and "+" not in challenge and "/" not in challenge


@pytest.mark.parametrize(
    ("verifier", "challenge", "method"),
    [
        pytest.param(RFC_VERIFIER, RFC_CHALLENGE[:-1] + "d", "S256", id="s256-last-char"),
        pytest.param(RFC_VERIFIER[:-1] + "l", RFC_CHALLENGE, "S256", id="s256-other-verifier"),
        pytest.param(RFC_VERIFIER, RFC_VERIFIER, "S256", id="s256-given-the-verifier"),
        pytest.param(RFC_VERIFIER, RFC_CHALLENGE, "plain", id="plain-given-the-s256-challenge"),
        pytest.param(RFC_VERIFIER, RFC_VERIFIER.lower(), "plain", id="plain-case"),
        pytest.param(RFC_VERIFIER, "", "S256", id="empty-challenge"),
    ],
)
def test_mismatch(verifier: str, challenge: str, method: str) -> None:
    assert not pkce.verify(verifier, challenge, method)


def test_plain_method() -> None:
    verifier = "plain-verifier-" + "x" * 40
    assert pkce.challenge_of(verifier, "plain") == verifier
    assert pkce.verify(verifier, verifier, "plain")


@pytest.mark.parametrize(
    ("verifier", "valid"),
    [
        pytest.param("a" * 42, False, id="42-chars"),
        pytest.param("a" * 43, True, id="43-chars"),
        pytest.param("a" * 128, True, id="128-chars"),
        pytest.param("a" * 129, False, id="129-chars"),
        pytest.param("", False, id="empty"),
        pytest.param("AZaz09-._~" * 5, True, id="whole-alphabet"),
        pytest.param(RFC_VERIFIER, True, id="rfc-vector"),
        pytest.param("a" * 42 + "+", False, id="plus"),
        pytest.param("a" * 42 + "/", False, id="slash"),
        pytest.param("a" * 42 + "=", False, id="equals"),
        pytest.param("a" * 42 + " ", False, id="space"),
        pytest.param("a" * 42 + "%", False, id="percent"),
        pytest.param("a" * 43 + "\n", False, id="trailing-newline"),
        pytest.param("a" * 42 + "é", False, id="non-ascii-letter"),
        pytest.param("a" * 42 + "\u0661", False, id="non-ascii-digit"),
        pytest.param("a" * 42 + "\x00", False, id="nul"),
    ],
)
def test_verifier_grammar(verifier: str, valid: bool) -> None:
    assert (pkce.VERIFIER.fullmatch(verifier) is not None) is valid


@pytest.mark.parametrize(
    ("challenge", "valid"),
    [
        pytest.param(RFC_CHALLENGE, True, id="rfc-challenge"),
        pytest.param(RFC_CHALLENGE[:-1], False, id="42-chars"),
        pytest.param(RFC_CHALLENGE + "=", False, id="padded"),
        pytest.param(RFC_CHALLENGE.replace("-", "+"), False, id="standard-base64"),
    ],
)
def test_challenge_grammar(challenge: str, valid: bool) -> None:
    assert (pkce.CHALLENGE.fullmatch(challenge) is not None) is valid


def test_new_verifier_is_valid_random_and_long_enough() -> None:
    verifiers = {pkce.new_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert pkce.VERIFIER.fullmatch(verifier)
        assert len(verifier) >= 43
        assert pkce.verify(verifier, pkce.challenge_of(verifier), "S256")


def test_methods() -> None:
    assert set(pkce.METHODS) == {"S256", "plain"}


@pytest.mark.parametrize(("value", "method"), [("S256", "S256"), ("plain", "plain"), ("s256", None), ("PLAIN", None), ("", None),
                                               (None, None), (["S256"], None), ({"S256": 1}, None), (256, None)])
def test_as_method_is_exact_and_takes_anything(value: object, method: str | None) -> None:
    """A sealed value's ``ccm`` may be any JSON: only the two §4.3 names, case included, are methods."""
    assert pkce.as_method(value) == method
