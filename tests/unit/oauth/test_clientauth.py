"""Authenticating the platform at /token: HTTP Basic or body credentials (RFC 6749 §2.3.1, §5.2)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest

from gateway.config.mapping import PlatformClient
from gateway.config.platforms import build_policy
from gateway.oauth.basicauth import basic_auth_header
from gateway.oauth.clientauth import ClientCredentials, authenticate, read_credentials, recognised
from gateway.oauth.responses import InvalidClient, InvalidRequest

CLIENT_ID = "alexa-skill"
SECRET = "alexa-skill-secret"
# A secret full of characters that RFC 6749 §2.3.1 form-urlencoding changes.
SPECIAL_ID = "skill:eu/1 +ü"
SPECIAL_SECRET = "p@ss:w/rd+ %&=~ü"


def client(client_id: str = CLIENT_ID, secret: str = SECRET) -> PlatformClient:
    return PlatformClient(client_id, secret, build_policy("alexa"), "alexa", "optional")


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


def basic_encoded(client_id: str, secret: str) -> str:
    """§2.3.1 to the letter: each part form-urlencoded, then ``id:secret`` in base64."""
    return basic(f"{quote_plus(client_id)}:{quote_plus(secret)}")


# -- accepted ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "form", "platform"),
    [
        pytest.param(basic(f"{CLIENT_ID}:{SECRET}"), {}, client(), id="basic"),
        pytest.param("basic " + basic(f"{CLIENT_ID}:{SECRET}").split()[1], {}, client(), id="basic-lowercase-scheme"),
        pytest.param(basic(f"{CLIENT_ID}:{SECRET}"), {"client_id": CLIENT_ID}, client(), id="basic-plus-same-body-id"),
        pytest.param(None, {"client_id": CLIENT_ID, "client_secret": SECRET}, client(), id="body"),
        pytest.param("", {"client_id": CLIENT_ID, "client_secret": SECRET}, client(), id="body-empty-header"),
        pytest.param(
            basic_encoded(SPECIAL_ID, SPECIAL_SECRET), {}, client(SPECIAL_ID, SPECIAL_SECRET), id="basic-form-urlencoded-specials"
        ),
        pytest.param(
            basic_encoded(SPECIAL_ID, SPECIAL_SECRET),
            {"client_id": SPECIAL_ID},
            client(SPECIAL_ID, SPECIAL_SECRET),
            id="basic-encoded-plus-decoded-body-id",
        ),
        pytest.param(
            basic("skill-eu:p@ss:w/rd+ %&=~ü"), {}, client("skill-eu", "p@ss:w/rd+ %&=~ü"), id="basic-raw-specials-lenient"
        ),
        pytest.param(
            None,
            {"client_id": SPECIAL_ID, "client_secret": SPECIAL_SECRET},
            client(SPECIAL_ID, SPECIAL_SECRET),
            id="body-specials",
        ),
        # Alexa's logged request: client_id=alexa&client_secret=alexa (a real skill with a short secret)
        pytest.param(None, {"client_id": "alexa", "client_secret": "alexa"}, client("alexa", "alexa"), id="alexa-logged"),
    ],
)
def test_accepted(authorization: str | None, form: dict[str, str], platform: PlatformClient) -> None:
    credentials = read_credentials(authorization, form)
    authenticate(credentials, platform)  # does not raise
    assert credentials.used_basic is bool(authorization)


# -- malformed: refused before any comparison -------------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "form", "error"),
    [
        pytest.param(basic(f"{CLIENT_ID}:{SECRET}"), {"client_secret": SECRET}, InvalidRequest, id="basic-and-body-secret"),
        pytest.param(
            basic(f"{CLIENT_ID}:{SECRET}"),
            {"client_id": CLIENT_ID, "client_secret": SECRET},
            InvalidRequest,
            id="basic-and-full-body",
        ),
        pytest.param(basic(f"{CLIENT_ID}:{SECRET}"), {"client_id": "google-home"}, InvalidRequest, id="body-id-differs"),
        pytest.param("Basic %%%notbase64%%%", {}, InvalidClient, id="bad-base64"),
        pytest.param("Basic YWxleGE", {}, InvalidClient, id="bad-base64-padding"),
        pytest.param(basic(f"{CLIENT_ID}{SECRET}"), {}, InvalidClient, id="no-colon"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), {}, InvalidClient, id="not-utf8"),
        pytest.param("Basic", {}, InvalidClient, id="basic-without-value"),
        pytest.param("Basic    ", {}, InvalidClient, id="basic-blank"),
        pytest.param("Bearer abc.def.ghi", {}, InvalidClient, id="bearer-scheme"),
        pytest.param("Digest username=alexa", {}, InvalidClient, id="digest-scheme"),
        pytest.param(base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode(), {}, InvalidClient, id="no-scheme"),
        pytest.param(None, {}, InvalidClient, id="no-credentials"),
        pytest.param(None, {"client_id": CLIENT_ID}, InvalidClient, id="body-id-only"),
        pytest.param(None, {"client_secret": SECRET}, InvalidClient, id="body-secret-only"),
    ],
)
def test_malformed(authorization: str | None, form: dict[str, str], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        read_credentials(authorization, form)
    assert type(info.value) is error
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("value", ["Basic ÿÿÿÿ", "Basic \udcff\udcfe", "Basic YWxleGE6YWxleGE=é"])
def test_non_ascii_basic_value_is_invalid_client(value: str) -> None:
    with pytest.raises(InvalidClient):
        read_credentials(value, {})


# -- well formed but wrong --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("authorization", "form"),
    [
        pytest.param(basic(f"{CLIENT_ID}:wrong-secret"), {}, id="basic-wrong-secret"),
        pytest.param(basic(f"google-home:{SECRET}"), {}, id="basic-wrong-id"),
        pytest.param(basic(f"{CLIENT_ID}:"), {}, id="basic-empty-secret"),
        pytest.param(basic(f":{SECRET}"), {}, id="basic-empty-id"),
        pytest.param(basic(f"{CLIENT_ID}:{SECRET}x"), {}, id="basic-secret-longer"),
        pytest.param(basic(f"{CLIENT_ID}:{SECRET[:-1]}"), {}, id="basic-secret-prefix"),
        pytest.param(basic(f"{CLIENT_ID}:{SECRET.upper()}"), {}, id="basic-secret-case"),
        pytest.param(None, {"client_id": CLIENT_ID, "client_secret": "wrong-secret"}, id="body-wrong-secret"),
        pytest.param(None, {"client_id": "other", "client_secret": SECRET}, id="body-wrong-id"),
        pytest.param(None, {"client_id": CLIENT_ID, "client_secret": ""}, id="body-empty-secret"),
        # body values are already decoded by form parsing: an encoded secret there is a different secret
        pytest.param(
            None, {"client_id": "skill-eu", "client_secret": quote_plus("p@ss w/rd")}, id="body-does-not-urldecode-again"
        ),
    ],
)
def test_wrong_credentials_are_invalid_client(authorization: str | None, form: dict[str, str]) -> None:
    platform = client() if not form.get("client_id", "").startswith("skill-eu") else client("skill-eu", "p@ss w/rd")
    credentials = read_credentials(authorization, form)
    with pytest.raises(InvalidClient) as info:
        authenticate(credentials, platform)
    assert info.value.status == 401
    assert info.value.error == "invalid_client"


def test_basic_secret_is_compared_exactly_after_decoding() -> None:
    platform = client(SPECIAL_ID, SPECIAL_SECRET)
    with pytest.raises(InvalidClient):
        authenticate(read_credentials(basic_encoded(SPECIAL_ID, SPECIAL_SECRET + "x"), {}), platform)
    with pytest.raises(InvalidClient):
        authenticate(read_credentials(basic_encoded(SPECIAL_ID + "x", SPECIAL_SECRET), {}), platform)


# -- the short way (recognised): the usual Basic header without decoding --------------------------
def _long_way(authorization: str | None, form: dict[str, str], platform: PlatformClient) -> ClientCredentials | None:
    try:
        credentials = read_credentials(authorization, form)
        authenticate(credentials, platform)
    except (InvalidClient, InvalidRequest):
        return None
    return credentials


SHORT_WAY_CASES = [
    (basic(f"{CLIENT_ID}:{SECRET}"), {}, client()),
    (basic(f"{CLIENT_ID}:{SECRET}"), {"client_id": CLIENT_ID}, client()),
    (basic(f"{CLIENT_ID}:{SECRET}"), {"client_id": "google-home"}, client()),
    (basic(f"{CLIENT_ID}:{SECRET}"), {"client_secret": SECRET}, client()),
    (basic(f"{CLIENT_ID}:{SECRET}x"), {}, client()),
    (basic(f"{CLIENT_ID}:{SECRET[:-1]}"), {}, client()),
    ("basic " + basic(f"{CLIENT_ID}:{SECRET}").split()[1], {}, client()),
    (basic(f"{CLIENT_ID}:{SECRET}") + " ", {}, client()),
    (basic_encoded(SPECIAL_ID, SPECIAL_SECRET), {}, client(SPECIAL_ID, SPECIAL_SECRET)),
    (basic_encoded(SPECIAL_ID, SPECIAL_SECRET), {"client_id": SPECIAL_ID}, client(SPECIAL_ID, SPECIAL_SECRET)),
    (basic(f"{SPECIAL_ID}:{SPECIAL_SECRET}"), {}, client(SPECIAL_ID, SPECIAL_SECRET)),  # a raw ':' in the id splits it
    (basic("skill-eu:p@ss:w/rd+ %&=~ü"), {}, client("skill-eu", "p@ss:w/rd+ %&=~ü")),
    ("Basic ÿÿÿÿ", {}, client()),
    (None, {"client_id": CLIENT_ID, "client_secret": SECRET}, client()),
    ("", {"client_id": CLIENT_ID, "client_secret": SECRET}, client()),
]


@pytest.mark.parametrize(("authorization", "form", "platform"), SHORT_WAY_CASES)
def test_the_short_way_accepts_only_what_the_long_way_accepts(
    authorization: str | None, form: dict[str, str], platform: PlatformClient
) -> None:
    short = recognised(authorization, form, platform)
    if short is not None:
        assert short == _long_way(authorization, form, platform)


@pytest.mark.parametrize(
    ("authorization", "form", "platform"),
    [
        (basic(f"{CLIENT_ID}:{SECRET}"), {}, client()),
        (basic(f"{CLIENT_ID}:{SECRET}"), {"client_id": CLIENT_ID}, client()),
        (basic_auth_header(SPECIAL_ID, SPECIAL_SECRET), {}, client(SPECIAL_ID, SPECIAL_SECRET)),  # §2.3.1, as the gateway writes it
        (basic("skill-eu:p@ss:w/rd+ %&=~ü"), {}, client("skill-eu", "p@ss:w/rd+ %&=~ü")),
    ],
)
def test_the_usual_basic_headers_take_the_short_way(authorization: str, form: dict[str, str], platform: PlatformClient) -> None:
    assert recognised(authorization, form, platform) == ClientCredentials(platform.client_id, platform.client_secret, used_basic=True)


def test_a_raw_colon_in_the_id_is_not_recognised() -> None:
    """``id:secret`` sent raw with a ``:`` in the id splits at that colon on the long way (refused),
    so the short way must not accept it either."""
    platform = client(SPECIAL_ID, SPECIAL_SECRET)
    assert recognised(basic(f"{SPECIAL_ID}:{SPECIAL_SECRET}"), {}, platform) is None
    assert _long_way(basic(f"{SPECIAL_ID}:{SPECIAL_SECRET}"), {}, platform) is None
