"""The flow cookie's seal (gateway/oauth/cookieseal.py): it opens what it sealed and nothing else —
not a changed byte, not another key's value, not an expired one — rotates keys as MultiFernet
does, and still opens the Fernet tokens the earlier version sealed."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.cookieseal import MAX_CLOCK_SKEW, VERSION, CookieSeal
from gateway.oauth.seal import SealError, build_fernet, generate_key

NOW = 1_780_000_000
KEY, OTHER = generate_key(), generate_key()


def _raw(token: str) -> bytes:
    assert "=" not in token  # no padding: nothing to quote in a URL
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_it_opens_what_it_sealed_and_each_value_is_new() -> None:
    seal = CookieSeal([KEY])
    first, second = seal.seal(b'{"flows":{}}', now=NOW), seal.seal(b'{"flows":{}}', now=NOW)
    assert first != second  # fresh random bytes, so a fresh key, each time
    assert seal.open(first, max_age=600, now=NOW) == seal.open(second, max_age=600, now=NOW) == b'{"flows":{}}'
    raw = _raw(first)
    assert raw[0] == VERSION and int.from_bytes(raw[1:9], "big") == NOW
    assert len(raw) == 1 + 8 + 24 + len(b'{"flows":{}}') + 16
    assert not first.startswith("gAAAAA")  # never taken for a Fernet token


@given(st.binary(max_size=300), st.data())
def test_any_changed_byte_is_refused(data: bytes, draw: st.DataObject) -> None:
    seal = CookieSeal([KEY])
    raw = bytearray(_raw(seal.seal(data, now=NOW)))
    at = draw.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= draw.draw(st.integers(1, 255))
    with pytest.raises(SealError):
        seal.open(base64.urlsafe_b64encode(bytes(raw)).decode(), max_age=600, now=NOW)


def test_the_first_key_seals_and_every_key_opens() -> None:
    old, rotated = CookieSeal([KEY]), CookieSeal([OTHER, KEY])
    assert rotated.open(old.seal(b"x", now=NOW), max_age=600, now=NOW) == b"x"
    with pytest.raises(SealError):
        old.open(rotated.seal(b"x", now=NOW), max_age=600, now=NOW)
    with pytest.raises(SealError):
        CookieSeal([OTHER]).open(old.seal(b"x", now=NOW), max_age=600, now=NOW)


def test_a_value_opens_for_max_age_seconds_and_not_from_the_future() -> None:
    seal = CookieSeal([KEY])
    token = seal.seal(b"x", now=NOW)
    assert seal.open(token, max_age=600, now=NOW + 600) == b"x"
    with pytest.raises(SealError, match="expired"):
        seal.open(token, max_age=600, now=NOW + 601)
    assert seal.open(token, max_age=600, now=NOW - MAX_CLOCK_SKEW) == b"x"
    with pytest.raises(SealError):
        seal.open(token, max_age=600, now=NOW - MAX_CLOCK_SKEW - 1)


def test_a_fernet_token_of_the_earlier_version_opens_within_max_age() -> None:
    token = build_fernet([KEY]).encrypt_at_time(b"earlier", NOW).decode()
    seal = CookieSeal([OTHER, KEY])  # rotated since: every key still opens
    assert seal.open(token, max_age=600, now=NOW + 600) == b"earlier"
    with pytest.raises(SealError):
        seal.open(token, max_age=600, now=NOW + 601)
    with pytest.raises(SealError):
        CookieSeal([generate_key()]).open(token, max_age=600, now=NOW)


@pytest.mark.parametrize(
    "token", ["", "not base64!", "AQ", "AQ==", base64.urlsafe_b64encode(bytes([VERSION]) + bytes(48)).decode(),
              base64.urlsafe_b64encode(bytes([2]) + bytes(64)).decode(), "gAAAAAAA", "gAAAAAé"],
)
def test_what_is_not_a_sealed_value_is_refused(token: str) -> None:
    with pytest.raises(SealError):
        CookieSeal([KEY]).open(token, max_age=600, now=NOW)
