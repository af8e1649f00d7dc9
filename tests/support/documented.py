"""What each provider's documentation says its token request looks like, and how a recorded one differs.

The requests are recorded by :class:`support.upstream.RecordingUpstream`, which plays every
provider at ``/{provider}/token`` and answers with the mapping's own ``examples:``.
:func:`mismatches` compares a recorded request with the provider's documentation (method,
encoding, client authentication, parameter names and values, headers); :func:`with_token_url`
points a shipped mapping at the recording upstream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote

import yaml

from support.oauth import basic
from support.upstream import Recorded

__all__ = ["Documented", "mismatches", "with_token_url", "with_url"]


@dataclass(frozen=True)
class Documented:
    """What a provider's documentation says its token request looks like."""

    method: str = "POST"
    encoding: str = "form"  # form | json | query: where the parameters are
    auth: str = "basic"  # basic | body | none | basic+client_id | secret (client_secret only) | nothing
    refresh_auth: str | None = None  # the refresh's own client authentication, where it differs (Tesla)
    code: frozenset[str] = frozenset()  # parameter names a code exchange must carry
    refresh: frozenset[str] = frozenset()  # … and a refresh
    values: dict[str, str] = field(default_factory=dict)  # fixed parameter values (action=requesttoken)
    code_values: dict[str, str] = field(default_factory=dict)  # … on the code exchange only (Shopify's expiring=1)
    headers: dict[str, str | None] = field(default_factory=dict)  # header → value (None: present)
    id_name: str = "client_id"  # what the provider calls the client id parameter
    secret_name: str = "client_secret"  # … and the secret
    #: JSON body values with a type of their own (Zendesk's ``expires_in: 1800``, a number, not text).
    typed: dict[str, object] = field(default_factory=dict)
    #: A refresh endpoint of its own (``upstream.token.refresh.url``): its request, as documented
    #: (its parameters in ``refresh``).
    refresh_as: Documented | None = None
    #: A second step after the code exchange (``upstream.token.exchange``): its request, as
    #: documented (its parameters in ``code``).
    exchange_as: Documented | None = None


def _params(request: Recorded, encoding: str) -> tuple[dict[str, str], list[str]]:
    problems = []
    if encoding == "query":
        if request.body:
            problems.append(f"parameters belong in the query string, but the body is {request.body[:80]!r}")
        return dict(request.query), problems
    if request.query:
        problems.append(f"parameters belong in the body, but the query string has {sorted(request.query)}")
    if encoding == "json":
        if request.content_type != "application/json":
            problems.append(f"Content-Type must be application/json, not {request.content_type!r}")
        try:
            document = json.loads(request.body or b"{}")
        except ValueError:
            return {}, [*problems, "the body is not JSON"]
        return {str(k): str(v) for k, v in document.items()}, problems
    if request.content_type != "application/x-www-form-urlencoded":
        problems.append(f"Content-Type must be application/x-www-form-urlencoded, not {request.content_type!r}")
    return dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)), problems


def mismatches(
    request: Recorded,
    documented: Documented,
    *,
    grant: str,
    client_id: str,
    client_secret: str,
    expected: dict[str, str],
) -> list[str]:
    """How ``request`` differs from the documented token request (empty when it matches).

    ``expected`` holds parameter values the request must carry (the upstream code, the callback
    URL, the refresh token).
    """
    problems: list[str] = []
    if request.method != documented.method:
        problems.append(f"method must be {documented.method}, not {request.method}")
    params, found = _params(request, documented.encoding)
    problems += found

    authorization = request.headers.get("authorization")
    auth = documented.refresh_auth if grant == "refresh_token" and documented.refresh_auth else documented.auth
    if auth.startswith("basic"):
        # RFC 6749 §2.3.1: the id and secret are form-encoded before they are joined.
        if authorization != basic(quote(client_id, safe=""), quote(client_secret, safe="")):
            problems.append(f"Authorization must be HTTP Basic with the client's id and secret, not {authorization!r}")
        if documented.secret_name in params:
            problems.append("the client secret must not also be in the parameters")
    elif authorization is not None:
        problems.append(f"no Authorization header is documented, but one was sent: {authorization.split()[0]} …")
    if auth == "body":
        if params.get(documented.id_name) != client_id or params.get(documented.secret_name) != client_secret:
            problems.append(f"{documented.id_name} and {documented.secret_name} must be in the parameters")
    if auth in ("none", "basic+client_id"):
        if params.get(documented.id_name) != client_id:
            problems.append(f"{documented.id_name} must be in the parameters")
        if documented.secret_name in params:
            problems.append(f"no {documented.secret_name} is documented, but one was sent")
    if documented.auth in ("secret", "nothing"):
        if documented.id_name in params:
            problems.append(f"no {documented.id_name} is documented, but one was sent")
        if (params.get(documented.secret_name) == client_secret) != (documented.auth == "secret"):
            problems.append(f"{documented.secret_name} must {'' if documented.auth == 'secret' else 'not '}be in the parameters")

    required = documented.code if grant == "authorization_code" else documented.refresh
    missing = sorted(required - set(params))
    if missing:
        problems.append(f"missing parameters {missing} (got {sorted(params)})")
    fixed = documented.values | (documented.code_values if grant == "authorization_code" else {})
    for name, value in {**expected, **fixed}.items():  # a documented fixed value wins over the expected one
        if name in required | set(fixed) and params.get(name) != value:
            problems.append(f"parameter {name} must be {value!r}, not {params.get(name)!r}")
    if documented.typed:
        document = json.loads(request.body or b"{}") if documented.encoding == "json" else {}
        for name, typed in documented.typed.items():
            if name not in document or document[name] != typed or type(document[name]) is not type(typed):
                problems.append(f"the JSON body's {name} must be {json.dumps(typed)}, not {json.dumps(document.get(name))}")
    for name, wanted in documented.headers.items():
        got = request.headers.get(name.lower())
        if got is None or (wanted is not None and got != wanted):
            problems.append(f"header {name} must be {wanted or 'present'}, not {got!r}")
    return problems


def has_token_url(text: str) -> bool:
    """The mapping ``text`` itself gives ``upstream.token.url`` (a variant may inherit its base's)."""
    node = yaml.compose(text)
    for key in ("upstream", "token", "url"):
        if not isinstance(node, yaml.MappingNode):
            return False
        node = next((value for name, value in node.value if name.value == key), None)
    return node is not None


def with_token_url(text: str, url: str) -> str:
    """The mapping ``text`` with ``upstream.token.url`` pointed at ``url`` (same line, same indent)."""
    return with_url(text, ("upstream", "token", "url"), url)


def with_url(text: str, keys: tuple[str, ...], url: str) -> str:
    """The mapping ``text`` with the URL at ``keys`` pointed at ``url`` (same line, same indent)."""
    node = yaml.compose(text)
    assert node is not None, "an empty mapping"
    for key in keys:
        node = next(value for name, value in node.value if name.value == key)
    lines = text.splitlines(keepends=True)
    number = node.start_mark.line
    line = lines[number]
    lines[number] = line[: line.index("url:")] + f"url: {url}\n"
    return "".join(lines)
