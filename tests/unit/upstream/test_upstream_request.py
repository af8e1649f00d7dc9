"""The upstream token request a mapping describes: client auth, encoding, params and header verbs, refresh.

Each mapping is written as YAML (the way an operator writes it) and loaded through the real loader;
``prepare_token_request`` then shows exactly what would go out, without a network.
"""

from __future__ import annotations

import base64
from pathlib import Path
from textwrap import dedent, indent
from urllib.parse import unquote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.oauth import load_mapping

from gateway.config.mapping import ProviderMapping
from gateway.oauth.formencoding import form_urlencode
from gateway.upstream.client import PreparedRequest, basic_auth_header, prepare_token_request

CALLBACK = "https://link.example.com/prov/callback"
UP_ID = "up-client"
UP_SECRET = "up-secret"


def provider(token: str = "", *, client_id: str = UP_ID, client_secret: str = UP_SECRET) -> str:
    """A whole mapping whose ``upstream.token`` section has ``token`` (YAML, unindented) after its url."""
    head = dedent(
        f"""\
        platform:
          profile: alexa
          client_id: alexa-skill
          client_secret: alexa-skill-secret
        upstream:
          client_id: '{client_id}'
          client_secret: '{client_secret}'
          authorize:
            url: https://auth.example.com/authorize
          token:
            url: https://auth.example.com/token
        """
    )
    return head + indent(dedent(token), "    ")


def code_exchange(mapping: ProviderMapping, *, code_verifier: str = "") -> PreparedRequest:
    return prepare_token_request(
        mapping, grant_type="authorization_code", callback_url=CALLBACK, code="the-code", code_verifier=code_verifier
    )


def refresh(mapping: ProviderMapping) -> PreparedRequest:
    return prepare_token_request(mapping, grant_type="refresh_token", callback_url=CALLBACK, refresh_token="the-rt")


def params(request: PreparedRequest) -> dict[str, str]:
    """The parameters, wherever the encoding put them."""
    return dict(request.form or request.json_body or request.query)


def decode_basic(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    assert scheme == "Basic"
    client_id, colon, secret = base64.b64decode(value).decode("utf-8").partition(":")
    assert colon
    return unquote_plus(client_id), unquote_plus(secret)


# -- the standard parameters ------------------------------------------------------------------------
def test_code_exchange_carries_rfc6749_parameters(tmp_path: Path) -> None:
    request = code_exchange(load_mapping(tmp_path, provider()))
    assert request.method == "POST"
    assert request.url == "https://auth.example.com/token"
    assert request.form == {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK}
    assert request.query == {} and request.json_body is None
    assert request.headers["Accept"] == "application/json"


def test_code_verifier_is_sent_only_when_there_is_one(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider())
    assert "code_verifier" not in params(code_exchange(mapping))
    assert params(code_exchange(mapping, code_verifier="v" * 43))["code_verifier"] == "v" * 43


def test_refresh_carries_rfc6749_parameters(tmp_path: Path) -> None:
    request = refresh(load_mapping(tmp_path, provider()))
    assert request.form == {"grant_type": "refresh_token", "refresh_token": "the-rt"}


# -- client authentication ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("client_auth", "header", "body_fields"),
    [
        pytest.param("", True, {}, id="default-is-basic"),
        pytest.param("client_auth: basic", True, {}, id="basic"),
        pytest.param("client_auth: body", False, {"client_id": UP_ID, "client_secret": UP_SECRET}, id="body"),
        pytest.param("client_auth: both", True, {"client_id": UP_ID, "client_secret": UP_SECRET}, id="both"),
        pytest.param("client_auth: none", False, {"client_id": UP_ID}, id="none"),
    ],
)
@pytest.mark.parametrize("grant", ["authorization_code", "refresh_token"])
def test_client_auth(tmp_path: Path, client_auth: str, header: bool, body_fields: dict[str, str], grant: str) -> None:
    mapping = load_mapping(tmp_path, provider(client_auth))
    request = code_exchange(mapping) if grant == "authorization_code" else refresh(mapping)
    sent = params(request)
    if header:
        assert decode_basic(request.headers["Authorization"]) == (UP_ID, UP_SECRET)
    else:
        assert "Authorization" not in request.headers
    for name in ("client_id", "client_secret"):
        assert sent.get(name) == body_fields.get(name)
    if client_auth == "client_auth: none":
        assert UP_SECRET not in repr(request)  # the secret goes nowhere


# -- encodings and method ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "method", "where"),
    [
        pytest.param("encoding: form", "POST", "form", id="form"),
        pytest.param("encoding: json", "POST", "json", id="json-wix"),
        pytest.param("encoding: query", "POST", "query", id="query-zoom-ecobee"),
        pytest.param("method: GET", "GET", "query", id="get"),
        pytest.param("method: GET\nencoding: json", "GET", "query", id="get-json-still-query"),
    ],
)
def test_encoding(tmp_path: Path, token: str, method: str, where: str) -> None:
    mapping = load_mapping(tmp_path, provider(token + "\nclient_auth: body"))
    for request in (code_exchange(mapping), refresh(mapping)):
        assert request.method == method
        placed = {"form": request.form or {}, "json": request.json_body or {}, "query": request.query}
        assert placed[where]["client_secret"] == UP_SECRET
        assert placed[where]["grant_type"] in {"authorization_code", "refresh_token"}
        for other, value in placed.items():
            if other != where:
                assert not value, f"parameters must not also go in the {other}"


def test_timeout_is_passed_on_and_refresh_inherits_it(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("timeout: 2.5"))
    assert code_exchange(mapping).timeout == 2.5
    assert refresh(mapping).timeout == 2.5
    assert code_exchange(load_mapping(tmp_path, provider())).timeout is None  # the gateway default applies


# -- params verbs: remove -> rename -> add ----------------------------------------------------------------
def test_withings_action_requesttoken_on_every_token_request(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            """\
            client_auth: body
            params:
              add:
                action: requesttoken
            """
        ),
    )
    assert code_exchange(mapping).form == {
        "action": "requesttoken",
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": CALLBACK,
        "client_id": UP_ID,
        "client_secret": UP_SECRET,
    }
    assert params(refresh(mapping))["action"] == "requesttoken"


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            "remove: [redirect_uri]",
            {"grant_type": "authorization_code", "code": "the-code"},
            id="remove",
        ),
        pytest.param(
            "rename:\n  code: auth_code",
            {"grant_type": "authorization_code", "auth_code": "the-code", "redirect_uri": CALLBACK},
            id="rename",
        ),
        pytest.param(
            "remove: [code]\nrename:\n  code: auth_code",
            {"grant_type": "authorization_code", "redirect_uri": CALLBACK},
            id="remove-before-rename",
        ),
        pytest.param(
            "remove: [redirect_uri]\nadd:\n  redirect_uri: '{redirect_uri}?x=1'",
            {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK + "?x=1"},
            id="remove-before-add",
        ),
        pytest.param(
            "rename:\n  grant_type: type\nadd:\n  grant_type: '{grant_type}'",
            {"type": "authorization_code", "grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK},
            id="rename-before-add",
        ),
        pytest.param(
            "add:\n  code: 'prefix-{code}'",
            {"grant_type": "authorization_code", "code": "prefix-the-code", "redirect_uri": CALLBACK},
            id="add-overwrites",
        ),
        pytest.param(
            "add:\n  app_id: '{client_id}'\n  auth: 'id={client_id}&secret={client_secret}'",
            {
                "grant_type": "authorization_code",
                "code": "the-code",
                "redirect_uri": CALLBACK,
                "app_id": UP_ID,
                "auth": f"id={UP_ID}&secret={UP_SECRET}",
            },
            id="templates",
        ),
        pytest.param(
            "add:\n  literal: '{{not a placeholder}}'",
            {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK, "literal": "{not a placeholder}"},
            id="escaped-braces",
        ),
        pytest.param(
            "add:\n  verifier: '{code_verifier}'",
            {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK},
            id="empty-template-result-dropped",
        ),
        pytest.param(
            "add:\n  redirect_uri: '{refresh_token}'",
            {"grant_type": "authorization_code", "code": "the-code"},
            id="empty-template-result-drops-existing",
        ),
    ],
)
def test_params_verbs(tmp_path: Path, rules: str, expected: dict[str, str]) -> None:
    mapping = load_mapping(tmp_path, provider("client_auth: basic\nparams:\n" + indent(rules, "  ")))
    assert code_exchange(mapping).form == expected


def test_template_uses_the_code_verifier_when_present(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("params:\n  remove: [code_verifier]\n  add:\n    verifier: '{code_verifier}'"))
    sent = params(code_exchange(mapping, code_verifier="v" * 43))
    assert sent["verifier"] == "v" * 43
    assert "code_verifier" not in sent


# -- header verbs ---------------------------------------------------------------------------------------------
def test_headers_add_and_remove(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            """\
            client_auth: body
            headers:
              remove: [Accept]
              add:
                User-Agent: gateway-test
                X-Client: '{client_id}'
                X-Basic: '{basic_auth}'
            """
        ),
    )
    headers = dict(code_exchange(mapping).headers)
    assert "Accept" not in headers
    assert headers["User-Agent"] == "gateway-test"
    assert headers["X-Client"] == UP_ID
    assert decode_basic(headers["X-Basic"]) == (UP_ID, UP_SECRET)
    assert "Authorization" not in headers


def test_header_add_replaces_accept(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("headers:\n  add:\n    Accept: application/vnd.github+json"))
    assert code_exchange(mapping).headers["Accept"] == "application/vnd.github+json"


def test_header_verbs_ignore_name_case(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider("headers:\n  remove: [authorization]\n  add:\n    accept: application/x-www-form-urlencoded"),
    )
    headers = {name.lower(): value for name, value in code_exchange(mapping).headers.items()}
    names = [name.lower() for name in code_exchange(mapping).headers]
    assert "authorization" not in headers
    assert names.count("accept") == 1
    assert headers["accept"] == "application/x-www-form-urlencoded"


# -- refresh overrides -------------------------------------------------------------------------------------------
def test_reddit_redirect_uri_on_refresh(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            """\
            client_auth: basic
            refresh:
              params:
                add:
                  redirect_uri: '{redirect_uri}'
            """
        ),
    )
    assert refresh(mapping).form == {"grant_type": "refresh_token", "refresh_token": "the-rt", "redirect_uri": CALLBACK}
    assert (code_exchange(mapping).form or {}).get("redirect_uri") == CALLBACK  # unchanged


def test_smartthings_client_id_in_body_on_refresh(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            """\
            client_auth: basic
            refresh:
              params:
                add:
                  client_id: '{client_id}'
            """
        ),
    )
    on_refresh = refresh(mapping)
    assert on_refresh.form == {"grant_type": "refresh_token", "refresh_token": "the-rt", "client_id": UP_ID}
    assert decode_basic(on_refresh.headers["Authorization"]) == (UP_ID, UP_SECRET)
    assert "client_id" not in params(code_exchange(mapping))


def test_refresh_client_auth_override(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("client_auth: basic\nrefresh:\n  client_auth: body"))
    assert "Authorization" in code_exchange(mapping).headers
    assert "client_secret" not in params(code_exchange(mapping))
    on_refresh = refresh(mapping)
    assert "Authorization" not in on_refresh.headers
    assert params(on_refresh)["client_secret"] == UP_SECRET


def test_refresh_headers_add_only_on_refresh(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("refresh:\n  headers:\n    add:\n      X-Refresh: 'yes'"))
    assert refresh(mapping).headers["X-Refresh"] == "yes"
    assert "X-Refresh" not in code_exchange(mapping).headers


def test_refresh_inherits_method_encoding_and_base_params(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            """\
            encoding: query
            client_auth: basic
            params:
              add:
                action: requesttoken
            refresh:
              params:
                add:
                  extra: '1'
            """
        ),
    )
    on_refresh = refresh(mapping)
    assert on_refresh.form is None
    assert on_refresh.query == {"grant_type": "refresh_token", "refresh_token": "the-rt", "action": "requesttoken", "extra": "1"}


@pytest.mark.parametrize(
    ("refresh_rules", "absent"),
    [
        pytest.param("remove: [action]", "action", id="remove-a-base-add"),
        pytest.param("rename:\n  action: act", "action", id="rename-a-base-add"),
    ],
)
def test_refresh_rules_apply_after_the_base_rules(tmp_path: Path, refresh_rules: str, absent: str) -> None:
    mapping = load_mapping(
        tmp_path,
        provider(
            "params:\n  add:\n    action: requesttoken\nrefresh:\n  params:\n" + indent(refresh_rules, "    ")
        ),
    )
    assert absent not in params(refresh(mapping))
    assert params(code_exchange(mapping))["action"] == "requesttoken"


# -- documented providers end to end (request side) ---------------------------------------------------------
def test_github_body_credentials_form(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("client_auth: body", client_id="Iv1.8a61f9b3a7aba766", client_secret="gh" * 20))
    request = code_exchange(mapping)
    assert request.method == "POST" and request.form is not None
    assert request.form["client_id"] == "Iv1.8a61f9b3a7aba766"
    assert request.headers["Accept"] == "application/json"  # GitHub answers JSON only when asked


def test_slack_basic_with_dotted_client_id(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("client_auth: basic", client_id="1234567890.0987654321", client_secret="s" * 32))
    assert decode_basic(code_exchange(mapping).headers["Authorization"]) == ("1234567890.0987654321", "s" * 32)


def test_strava_credentials_in_the_query_string(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("encoding: query\nclient_auth: body", client_id="12345"))
    request = refresh(mapping)
    assert request.method == "POST"
    assert request.query["client_id"] == "12345"
    assert request.form is None and request.json_body is None


def test_zoom_basic_and_query(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("encoding: query\nclient_auth: basic"))
    request = code_exchange(mapping)
    assert request.query == {"grant_type": "authorization_code", "code": "the-code", "redirect_uri": CALLBACK}
    assert "Authorization" in request.headers


def test_env_secret_is_used_as_is(tmp_path: Path) -> None:
    text = provider("client_auth: body").replace(f"client_secret: '{UP_SECRET}'", "client_secret: ${UP_SECRET}")
    mapping = load_mapping(tmp_path, text, env={"UP_SECRET": "a{b}c %+"})
    assert params(code_exchange(mapping))["client_secret"] == "a{b}c %+"


def test_env_value_with_braces_in_a_params_add(tmp_path: Path) -> None:
    mapping = load_mapping(tmp_path, provider("params:\n  add:\n    api_key: '${API_KEY}'"), env={"API_KEY": "k{e}y"})
    assert params(code_exchange(mapping))["api_key"] == "k{e}y"


# -- basic_auth_header -----------------------------------------------------------------------------------------
def test_basic_auth_header_plain_values() -> None:
    assert basic_auth_header("client", "secret") == "Basic " + base64.b64encode(b"client:secret").decode()


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        ("id:with:colons", "secret"),
        ("id", "s:e:c"),
        ("id with space", "sec ret"),
        ("a+b", "c+d"),
        ("100%", "%41%42"),
        ("ünïcode", "秘密"),
        ("a&b=c", "d&e=f?g#h/i"),
    ],
)
def test_basic_auth_header_form_urlencodes(client_id: str, secret: str) -> None:
    header = basic_auth_header(client_id, secret)
    raw = base64.b64decode(header.removeprefix("Basic ")).decode("ascii")  # encoded: plain ASCII
    encoded_id, colon, encoded_secret = raw.partition(":")
    assert colon
    assert ":" not in encoded_id  # the id's own colons can not split the pair
    assert (unquote_plus(encoded_id), unquote_plus(encoded_secret)) == (client_id, secret)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=8))
def test_the_form_body_is_urlencode_byte_for_byte(params: dict[str, str]) -> None:
    """The fast encoder skips quoting only for text ``quote_plus`` would leave alone."""
    assert form_urlencode(params) == urlencode(params)


def test_the_form_body_quotes_what_needs_it() -> None:
    params = {"refresh_token": "a/b+c=d", "redirect_uri": "https://x.example/cb?q=1", "plain": "A-z_0.9~", "space": "a b"}
    assert form_urlencode(params) == "refresh_token=a%2Fb%2Bc%3Dd&redirect_uri=https%3A%2F%2Fx.example%2Fcb%3Fq%3D1&plain=A-z_0.9~&space=a+b"


@pytest.mark.parametrize("value", ["read\x00write", "read\r\nX-Evil: 1", "a\x7f"])
def test_a_header_template_filled_with_a_control_character_is_invalid_request(tmp_path: Path, value: str) -> None:
    """aiohttp refuses such a header with a ValueError (a 500); the platform's value is the fault."""
    from gateway.oauth.responses import InvalidRequest

    mapping = load_mapping(tmp_path, provider("headers: {add: {X-Code: 'c={code}'}}\n"))
    with pytest.raises(InvalidRequest, match="control character"):
        prepare_token_request(mapping, grant_type="authorization_code", callback_url=CALLBACK, code=value)
    assert code_exchange(mapping).headers["X-Code"] == "c=the-code"
