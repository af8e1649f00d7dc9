"""Sealed values (codes, flow cookies): round trip, tampering, expiry, purpose binding, key rotation."""

from __future__ import annotations

import time

import pytest
from cryptography.fernet import Fernet

from gateway.oauth.seal import Sealer, SealError, generate_key

KEY_A = Fernet.generate_key().decode("ascii")
KEY_B = Fernet.generate_key().decode("ascii")
PAYLOAD = {
    "code": "upstream-code-123",
    "redirect_uri": "https://layla.amazon.com/api/skill/link/M3BVP74N95SP1F",
    "client_id": "alexa-skill",
    "unicode": "Zoë ✓",
    "n": 3,
    "nested": {"list": [1, "two", None, True]},
}


def test_round_trip() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300)
    assert sealer.open("code", token) == PAYLOAD


def test_sealed_value_is_opaque_and_ascii() -> None:
    token = Sealer([KEY_A]).seal("code", PAYLOAD, ttl=300)
    token.encode("ascii")
    assert "upstream-code-123" not in token
    assert "layla" not in token


def test_two_seals_of_the_same_payload_differ() -> None:
    sealer = Sealer([KEY_A])
    assert sealer.seal("code", PAYLOAD, ttl=300) != sealer.seal("code", PAYLOAD, ttl=300)


@pytest.mark.parametrize("position", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_tampered_token_does_not_open(position: float) -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300)
    index = int(len(token) * position)  # a middle character: all six of its bits are data
    flipped = "A" if token[index] != "A" else "g"
    tampered = token[:index] + flipped + token[index + 1 :]
    assert tampered != token
    with pytest.raises(SealError):
        sealer.open("code", tampered)


def test_truncated_token_does_not_open() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300)
    with pytest.raises(SealError):
        sealer.open("code", token[:-4])


def test_expired_token_does_not_open() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300, now=time.time() - 301)
    with pytest.raises(SealError, match="expired"):
        sealer.open("code", token)


def test_expiry_is_exact_on_the_given_clock() -> None:
    sealer = Sealer([KEY_A])
    issued = 1_700_000_000.0
    token = sealer.seal("code", PAYLOAD, ttl=300, now=issued)
    assert sealer.open("code", token, now=issued + 299) == PAYLOAD
    with pytest.raises(SealError, match="expired"):
        sealer.open("code", token, now=issued + 300)


def test_wrong_key_does_not_open() -> None:
    token = Sealer([KEY_A]).seal("code", PAYLOAD, ttl=300)
    with pytest.raises(SealError):
        Sealer([KEY_B]).open("code", token)


@pytest.mark.parametrize(("sealed_as", "opened_as"), [("cookie", "code"), ("code", "cookie"), ("code", "Code")])
def test_purpose_binds(sealed_as: str, opened_as: str) -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal(sealed_as, PAYLOAD, ttl=300)
    with pytest.raises(SealError):
        sealer.open(opened_as, token)
    assert sealer.open(sealed_as, token) == PAYLOAD


def test_rotation_new_key_in_front_still_opens_old_values() -> None:
    old = Sealer([KEY_A]).seal("code", PAYLOAD, ttl=300)
    assert Sealer([KEY_B, KEY_A]).open("code", old) == PAYLOAD


def test_rotation_the_first_key_seals() -> None:
    rotated = Sealer([KEY_B, KEY_A])
    new = rotated.seal("code", PAYLOAD, ttl=300)
    with pytest.raises(SealError):
        Sealer([KEY_A]).open("code", new)
    assert Sealer([KEY_B]).open("code", new) == PAYLOAD


def test_retired_key_no_longer_opens() -> None:
    old = Sealer([KEY_A]).seal("code", PAYLOAD, ttl=300)
    with pytest.raises(SealError):
        Sealer([KEY_B]).open("code", old)


def test_no_keys_is_refused() -> None:
    with pytest.raises(ValueError):
        Sealer([])


def test_generate_key_makes_distinct_fernet_keys() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    Fernet(first.encode("ascii"))
    assert Sealer([first]).open("x", Sealer([first]).seal("x", {}, ttl=5)) == {}


GARBAGE = [
    "",
    " ",
    "not-a-token",
    "é",
    "Zoë✓" * 20,
    "\x00\x01\x02",
    "\udcff",  # a lone surrogate, as surrogateescape decoding produces
    "gAAAAA",
    "gAAAAA" + "=" * 10,
    "=" * 64,
    "%%%%",
    "a" * 10_000,
    "gAAAAABk" + "A" * 200,
    "..",
    "\n",
]


@pytest.mark.parametrize("token", GARBAGE, ids=[f"garbage-{i}" for i in range(len(GARBAGE))])
def test_garbage_raises_seal_error_only(token: str) -> None:
    with pytest.raises(SealError) as info:
        Sealer([KEY_A]).open("code", token)
    assert token not in str(info.value) or not token.strip()  # never echoes the input


def test_error_message_never_echoes_the_token() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300)
    for attempt in (token[:-3] + "xyz", token):
        with pytest.raises(SealError) as info:
            Sealer([KEY_B]).open("code", attempt)
        assert attempt not in str(info.value)


def test_redeemed_codes_claim_release_expire_and_stay_bounded() -> None:
    from gateway.oauth.replay import RedeemedCodes

    codes = RedeemedCodes(capacity=3)
    assert codes.claim("a", ttl=10, now=0) and not codes.claim("a", ttl=10, now=1)
    codes.release("a")
    assert codes.claim("a", ttl=10, now=2)
    assert codes.claim("a", ttl=10, now=13)  # expired at 12: forgotten
    for key in "bcd":
        assert codes.claim(key, ttl=100, now=14)
    assert len(codes) == 3  # the oldest claim made room


# --- the AES-GCM form (aead=True: the code) ---------------------------------------------------------


def test_an_aead_value_opens_like_a_fernet_one_and_is_not_one() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300, aead=True)
    assert not token.startswith("gAAAAA") and "upstream-code-123" not in token
    assert "=" not in token  # unpadded: the code goes into the redirect URI unquoted
    assert sealer.open("code", token) == PAYLOAD
    assert sealer.open("code", sealer.seal("code", PAYLOAD, ttl=300)) == PAYLOAD  # the earlier version's form
    assert token != sealer.seal("code", PAYLOAD, ttl=300, aead=True)


@pytest.mark.parametrize("position", [0.05, 0.25, 0.5, 0.75, 0.95])
def test_a_tampered_aead_value_does_not_open(position: float) -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("code", PAYLOAD, ttl=300, aead=True)
    index = int(len(token) * position)
    tampered = token[:index] + ("B" if token[index] != "B" else "C") + token[index + 1 :]
    with pytest.raises(SealError):
        sealer.open("code", tampered)
    with pytest.raises(SealError):
        sealer.open("code", token[:-4])


def test_an_aead_value_keeps_purpose_expiry_and_rotation() -> None:
    issued = 1_700_000_000.0
    token = Sealer([KEY_A]).seal("code", PAYLOAD, ttl=300, now=issued, aead=True)
    with pytest.raises(SealError):
        Sealer([KEY_A]).open("refresh", token, now=issued)
    assert Sealer([KEY_B, KEY_A]).open("code", token, now=issued + 299) == PAYLOAD
    with pytest.raises(SealError, match="expired"):
        Sealer([KEY_A]).open("code", token, now=issued + 300)
    with pytest.raises(SealError):
        Sealer([KEY_B]).open("code", token, now=issued)


def test_the_flow_cookie_and_a_sealed_value_never_open_each_other() -> None:
    from gateway.oauth.cookieseal import CookieSeal

    sealer, cookie = Sealer([KEY_A]), CookieSeal([KEY_A])
    code = sealer.seal("code", PAYLOAD, ttl=300, aead=True)
    with pytest.raises(SealError):
        cookie.open(code, max_age=600)
    with pytest.raises(SealError):
        sealer.open("code", cookie.seal(b'{"p":"code","x":99999999999,"d":{}}'))
