"""``add_to_uri`` (gateway/oauth/responses.py): what goes back to the platform's redirect URI is
``urlencode(params, quote_via=quote)`` character for character, though text that needs no
quoting (a code, a state, a nonce) skips ``quote``."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from hypothesis import given
from hypothesis import strategies as st

from gateway.oauth.responses import add_to_uri

_TEXT = st.text(st.characters(codec="utf-8"), max_size=60) | st.text("AZaz09-._~=+/ &?#%", max_size=60)


@given(st.dictionaries(_TEXT, _TEXT, max_size=5), st.booleans())
def test_the_parameters_are_what_urlencode_writes(params: dict[str, str], fragment: bool) -> None:
    expected = urlencode(params, quote_via=quote)
    assert add_to_uri("https://p.example/cb", params, fragment=fragment) == f"https://p.example/cb{'#' if fragment else '?'}{expected}"
    assert add_to_uri("https://p.example/cb?vendorId=M2", params) == f"https://p.example/cb?vendorId=M2&{expected}"


def test_unreserved_text_is_kept_and_the_rest_is_quoted() -> None:
    assert add_to_uri("https://p.example/cb", {"code": "gAAAAA-_.~9", "state": "a b=c&é"}) == (
        "https://p.example/cb?code=gAAAAA-_.~9&state=a%20b%3Dc%26%C3%A9"
    )
