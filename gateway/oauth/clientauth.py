"""Authenticating the platform at ``/token`` (RFC 6749 §2.3.1, §3.2.1, §5.2).

The platform (Alexa, Google) presents the client id and secret the gateway issued to it, either
with HTTP Basic or as ``client_id``/``client_secret`` body parameters; both are accepted because
platforms differ (Alexa lets the skill choose, Google defaults to the body). Using both methods at
once is ``invalid_request`` (§2.3). Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.mapping import PlatformClient
from gateway.oauth.basicauth import basic_auth_header, decode_basic_auth, form_decoded
from gateway.oauth.responses import InvalidClient, InvalidRequest

__all__ = ["ClientCredentials", "read_credentials", "authenticate", "recognised"]


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    used_basic: bool


def _parse_basic(header: str) -> tuple[str, str]:
    scheme = header.partition(" ")[0]
    if scheme.lower() != "basic" or not header.partition(" ")[2].strip():
        raise InvalidClient("only HTTP Basic client authentication is supported in the Authorization header")
    pair = decode_basic_auth(header)
    if pair is None:
        raise InvalidClient("malformed HTTP Basic credentials")
    # §2.3.1: both parts are form-urlencoded before base64; most clients skip that, so an id or
    # secret is compared both as sent and decoded (see authenticate).
    return pair


def read_credentials(authorization: str | None, form: Mapping[str, str]) -> ClientCredentials:
    """The credentials the client presented; ``InvalidRequest``/``InvalidClient`` if malformed."""
    body_id = form.get("client_id")
    body_secret = form.get("client_secret")
    if authorization:
        client_id, client_secret = _parse_basic(authorization)
        if body_secret is not None:
            raise InvalidRequest("client authenticated with both HTTP Basic and client_secret in the body (RFC 6749 section 2.3)")
        if body_id is not None and body_id != client_id and form_decoded(client_id, "")[0] != body_id:
            raise InvalidRequest("client_id in the body differs from the one in HTTP Basic")
        return ClientCredentials(client_id, client_secret, used_basic=True)
    if body_id is None or body_secret is None:
        raise InvalidClient("client authentication is required (HTTP Basic or client_id and client_secret)")
    return ClientCredentials(body_id, body_secret, used_basic=False)


def _equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def authenticate(credentials: ClientCredentials, client: PlatformClient) -> None:
    """Raise ``InvalidClient`` unless the credentials are the platform client's."""
    if not _authentic(credentials, client.client_id, client.client_secret):
        raise InvalidClient("client authentication failed")


def _authentic(credentials: ClientCredentials, expected_id: str, expected_secret: str) -> bool:
    candidates = [(credentials.client_id, credentials.client_secret)]
    if credentials.used_basic:
        candidates.append(form_decoded(credentials.client_id, credentials.client_secret))
    ok = False
    for client_id, client_secret in candidates:
        # Evaluate both comparisons every time: no early exit that would time the id check.
        ok |= _equal(client_id, expected_id) & _equal(client_secret, expected_secret)
    return ok


@functools.lru_cache(maxsize=256)
def _known_headers(client_id: str, client_secret: str) -> tuple[str, ...]:
    """The ``Authorization`` values a platform client sends nearly always (``id:secret`` as they are,
    and §2.3.1's form-encoded pair), each kept only if :func:`read_credentials` and
    :func:`authenticate` accept it: a header equal to one of these is accepted by them too."""
    raw = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
    known: list[str] = []
    for header in dict.fromkeys((raw, basic_auth_header(client_id, client_secret))):
        try:
            credentials = read_credentials(header, {})
        except (InvalidClient, InvalidRequest):
            continue
        if _authentic(credentials, client_id, client_secret):
            known.append(header)
    return tuple(known)


def recognised(authorization: str | None, form: Mapping[str, str], client: PlatformClient) -> ClientCredentials | None:
    """The client's credentials, without decoding anything, for the usual request: a Basic header
    equal (in constant time, compared with each known value) to one this client sends, and no
    body credentials that would make it ``invalid_request``. ``None``: take the long way
    (:func:`read_credentials`, then :func:`authenticate`), which answers everything else."""
    if authorization is None or not authorization.isascii() or "client_secret" in form:
        return None
    body_id = form.get("client_id")
    if body_id is not None and body_id != client.client_id:
        return None
    matched = False
    for known in _known_headers(client.client_id, client.client_secret):
        matched |= hmac.compare_digest(authorization, known)  # no early exit between them
    return ClientCredentials(client.client_id, client.client_secret, used_basic=True) if matched else None
