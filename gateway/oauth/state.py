"""The state that crosses requests, typed: one home for its shapes, purposes and wire keys.

The gateway keeps no database (:mod:`gateway.oauth.seal`), so what one request learns and a later
one needs travels with the client, sealed:

* :class:`FlowEntry` — one link attempt in the flow cookie, from ``/authorize`` to ``/callback``
  (:mod:`gateway.web.session`);
* :class:`CodePayload` — the authorization code the platform gets at ``/callback`` and redeems at
  ``/token`` (RFC 6749 §4.1.2: short-lived, bound to the client and the redirect URI; RFC 7636
  §4.6: bound to the PKCE challenge), sealed for :data:`CODE_PURPOSE`;
* :class:`RefreshEnvelope` — the refresh token a mapping that keeps context hands the platform
  (:mod:`gateway.oauth.linkcontext`), sealed for :data:`REFRESH_PURPOSE`;
* :class:`TenantFormToken` — the tenant form's CSRF token (:mod:`gateway.web.tenant`), sealed for
  :data:`TENANT_FORM_PURPOSE`;
* :class:`GraceEntry` — a refresh answer (or refusal) remembered for the grace window
  (:mod:`gateway.oauth.refresh`), sealed for :data:`GRACE_PURPOSE`.

On the wire each is a JSON object with one- or two-letter keys (a browser keeps at most 4096
bytes of cookie, and a platform stores the code in a URL). Those keys are known here only: the
rest of the gateway and the tests use the typed fields and :meth:`to_wire` / :meth:`from_wire`.
The wire format is the one earlier versions wrote, key for key, so flows and codes in flight
keep working across a rolling upgrade (and a code's replay :meth:`CodePayload.fingerprint` is
the same at an old and a new replica sharing one store).

:meth:`from_wire` checks every field's type: a payload that is not the shape this version writes
raises :class:`StateError`, a :class:`~gateway.oauth.seal.SealError`, so every caller that already
answers a bad seal (``invalid_grant`` at ``/token``, a lost flow at ``/callback``) answers this the
same way — never a ``KeyError`` and a 500.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from gateway.oauth.jsontext import compact
from gateway.oauth.pkce import Method as PkceMethod
from gateway.oauth.pkce import as_method
from gateway.oauth.responses import TokenAnswer
from gateway.oauth.seal import Sealer, SealError

__all__ = [
    "GrantType",
    "GRANT_TYPES",
    "as_grant_type",
    "ResponseType",
    "PkceMethod",
    "Challenge",
    "CODE_PURPOSE",
    "REFRESH_PURPOSE",
    "TENANT_FORM_PURPOSE",
    "GRACE_PURPOSE",
    "GraceEntry",
    "StateError",
    "FlowEntry",
    "CodePayload",
    "RefreshEnvelope",
    "TenantFormToken",
    "seal_code",
    "open_code",
]

#: The grant types ``/token`` serves (RFC 6749 §4.1.3, §6, §4.4.2).
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
GRANT_TYPES: tuple[GrantType, ...] = get_args(GrantType)
#: What ``/authorize`` answers (RFC 6749 §4.1.1 ``code``, §4.2.1 ``token``).
ResponseType = Literal["code", "token"]
_RESPONSE_TYPES: tuple[ResponseType, ...] = get_args(ResponseType)

#: Seal purposes: a value sealed for one never opens as another (:class:`~gateway.oauth.seal.Sealer`).
CODE_PURPOSE = "code"
#: A refresh envelope; sealed with the ``link_keys`` (:func:`gateway.oauth.linkcontext.link_sealer`).
REFRESH_PURPOSE = "link"
TENANT_FORM_PURPOSE = "tenant-form"
GRACE_PURPOSE = "grace"


#: ``json.dumps(…, sort_keys=True, separators=(",", ":"))`` without building an encoder per call.
_canonical = compact(sort_keys=True)


def as_grant_type(value: str | None) -> GrantType | None:
    """``value`` if it names a grant type ``/token`` serves (exactly, case included), else ``None``."""
    for grant in GRANT_TYPES:
        if value == grant:
            return grant
    return None


class StateError(SealError):
    """An opened payload is not the shape this version writes (a missing or wrong-typed field)."""


# --- reading wire objects ------------------------------------------------------------------------


def _text(wire: Mapping[str, Any], key: str, what: str) -> str:
    value = wire.get(key)
    if not isinstance(value, str):
        raise StateError(f"malformed sealed value ({what})")
    return value


def _optional_text(wire: Mapping[str, Any], key: str, what: str) -> str | None:
    return None if key not in wire else _text(wire, key, what)


def _context(wire: Mapping[str, Any], key: str, what: str) -> dict[str, str] | None:
    if key not in wire:
        return None
    value = wire[key]
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise StateError(f"malformed sealed value ({what})")
    return dict(value)


@dataclass(frozen=True)
class Challenge:
    """The platform's PKCE ``code_challenge`` and its method (RFC 7636 §4.3), checked at ``/token`` (§4.6)."""

    value: str
    method: PkceMethod = "plain"


def _pkce(wire: Mapping[str, Any]) -> Challenge | None:
    """The challenge (``cc``) and method (``ccm``, ``plain`` when absent as §4.3 says), or ``None``."""
    challenge = _optional_text(wire, "cc", "code_challenge")
    method = as_method(wire.get("ccm", "plain"))
    if method is None:
        raise StateError("malformed sealed value (code_challenge_method)")
    return None if challenge is None else Challenge(challenge, method)


def _put_pkce(wire: dict[str, Any], challenge: Challenge | None) -> None:
    if challenge is not None:
        wire["cc"] = challenge.value
        wire["ccm"] = challenge.method


# --- the flow cookie -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowEntry:
    """One link attempt between ``/authorize`` and ``/callback``, kept under its nonce."""

    #: The mapping's name (``p``): a callback at another provider's path must not complete it.
    provider: str
    #: The redirect URI validated at ``/authorize`` (``r``); errors and the code go only there.
    redirect_uri: str
    #: ``code`` or ``token`` (``t``): the implicit grant answers in the fragment (RFC 6749 §4.2.2).
    response_type: ResponseType
    #: The platform's own ``state`` (``s``), returned to it unchanged (RFC 6749 §4.1.2).
    state: str | None = None
    #: The gateway's PKCE verifier for the upstream (``v``), sent with the code exchange.
    upstream_verifier: str | None = None
    #: The platform's PKCE challenge (``cc``) and method (``ccm``), sealed on into the code.
    challenge: Challenge | None = None
    #: Flow values and the tenant (``lc``) for mappings that keep context (:mod:`gateway.oauth.linkcontext`).
    context: dict[str, str] | None = None
    #: When the flow stops counting, in epoch seconds (``x``); set by the flow store.
    expires: int = 0

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"p": self.provider, "r": self.redirect_uri, "t": self.response_type}
        if self.state is not None:
            wire["s"] = self.state
        _put_pkce(wire, self.challenge)
        if self.upstream_verifier is not None:
            wire["v"] = self.upstream_verifier
        if self.context is not None:
            wire["lc"] = dict(self.context)
        if self.expires:
            wire["x"] = self.expires
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> FlowEntry:
        """The flow a cookie held; :class:`StateError` when it is not one this version wrote."""
        if not isinstance(wire, dict):
            raise StateError("malformed sealed value (flow)")
        response_type = next((known for known in _RESPONSE_TYPES if wire.get("t") == known), None)
        if response_type is None:
            raise StateError("malformed sealed value (response_type)")
        expires = wire.get("x", 0)
        if not isinstance(expires, int) or isinstance(expires, bool):
            raise StateError("malformed sealed value (expiry)")
        return cls(
            provider=_text(wire, "p", "provider"),
            redirect_uri=_text(wire, "r", "redirect_uri"),
            response_type=response_type,
            state=_optional_text(wire, "s", "state"),
            upstream_verifier=_optional_text(wire, "v", "code_verifier"),
            challenge=_pkce(wire),
            context=_context(wire, "lc", "context"),
            expires=expires,
        )


# --- the code the platform holds -----------------------------------------------------------------


@dataclass(frozen=True)
class CodePayload:
    """What a sealed authorization code carries (issued at ``/callback``, redeemed at ``/token``)."""

    #: The upstream's own code (``u``), exchanged at the upstream's token endpoint.
    upstream_code: str
    #: The platform client it was issued to (``c``, RFC 6749 §4.1.3).
    client_id: str
    #: The redirect URI of the authorization request (``r``, RFC 6749 §4.1.3).
    redirect_uri: str
    #: The mapping (``p``): a code opens only at its own provider's ``/token``.
    provider: str
    #: The gateway's upstream PKCE verifier (``v``).
    upstream_verifier: str | None = None
    #: The platform's PKCE challenge (``cc``) and method (``ccm``), checked at ``/token`` (RFC 7636 §4.6).
    challenge: Challenge | None = None
    #: The link's context (``x``): flow values, kept callback parameters, the tenant.
    context: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_flow(cls, flow: FlowEntry, *, upstream_code: str, client_id: str, context: Mapping[str, str]) -> CodePayload:
        """The code ``/callback`` issues for ``flow``: its redirect URI and PKCE sealed on."""
        return cls(
            upstream_code=upstream_code,
            client_id=client_id,
            redirect_uri=flow.redirect_uri,
            provider=flow.provider,
            upstream_verifier=flow.upstream_verifier,
            challenge=flow.challenge,
            context=dict(context),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"u": self.upstream_code, "c": self.client_id, "r": self.redirect_uri, "p": self.provider}
        if self.upstream_verifier is not None:
            wire["v"] = self.upstream_verifier
        _put_pkce(wire, self.challenge)
        if self.context:
            wire["x"] = dict(self.context)
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> CodePayload:
        code, client_id, redirect_uri, provider = wire.get("u"), wire.get("c"), wire.get("r"), wire.get("p")
        if type(code) is str and type(client_id) is str and type(redirect_uri) is str and type(provider) is str:
            # The usual code: those four, and at most the gateway's own verifier (no challenge, no
            # context): what the checks below make of it, without a call per field.
            size, verifier = len(wire), wire.get("v")
            if size == 4 or (size == 5 and type(verifier) is str):
                return cls(code, client_id, redirect_uri, provider, verifier)
        return cls(
            upstream_code=_text(wire, "u", "upstream code"),
            client_id=_text(wire, "c", "client_id"),
            redirect_uri=_text(wire, "r", "redirect_uri"),
            provider=_text(wire, "p", "provider"),
            upstream_verifier=_optional_text(wire, "v", "code_verifier"),
            challenge=_pkce(wire),
            context=_context(wire, "x", "context") or {},
        )

    def fingerprint(self) -> str:
        """What the replay guard remembers a redeemed code by (:mod:`gateway.oauth.replay`).

        The hash of the payload, not of the code's text: a Fernet token with bytes after its
        padding opens like the original, so the text is not unique. Canonical JSON of the wire
        form, as earlier versions computed it, so replicas of both agree on a shared store.
        """
        return hashlib.sha256(_canonical(self.to_wire()).encode()).hexdigest()


def seal_code(sealer: Sealer, payload: CodePayload, *, ttl: int, now: float | None = None) -> str:
    """The code the platform gets (RFC 6749 §4.1.2: ``ttl`` at most ten minutes), sealed with
    AES-GCM (:mod:`gateway.oauth.seal`: it lives minutes, and the callback is a hot path), or with
    Fernet while ``seal_format: fernet`` asks (:attr:`Sealer.aead`)."""
    return sealer.seal(CODE_PURPOSE, payload.to_wire(), ttl=ttl, now=now, aead=sealer.aead)


def open_code(sealer: Sealer, code: str, *, now: float | None = None) -> CodePayload:
    """The payload of a code this gateway issued; :class:`~gateway.oauth.seal.SealError` otherwise."""
    return CodePayload.from_wire(sealer.open(CODE_PURPOSE, code, now=now))


# --- the refresh envelope and the tenant form ----------------------------------------------------


@dataclass(frozen=True)
class RefreshEnvelope:
    """``{upstream refresh token, context}``: what a context-keeping link's platform refreshes with.

    Bound, as a code is (RFC 6749 §6: "the refresh token is bound to the client to which it was
    issued"), to the mapping (``p``) and the platform client (``c``): an envelope opens only at its
    own provider's ``/token`` and ``/revoke`` for its own client, so one provider's upstream token
    never reaches another provider's upstream. Envelopes sealed before the binding existed carry
    neither (``None``); they are accepted as they are until their first refresh replaces them with
    a bound one (an envelope lives for years, and refusing them would unlink every user at once).
    """

    upstream_refresh_token: str  # r
    context: dict[str, str] = field(default_factory=dict)  # x
    provider: str | None = None  # p
    client_id: str | None = None  # c

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"r": self.upstream_refresh_token, "x": dict(self.context)}
        if self.provider is not None:
            wire["p"] = self.provider
        if self.client_id is not None:
            wire["c"] = self.client_id
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RefreshEnvelope:
        context = _context(wire, "x", "context")
        if context is None:
            raise StateError("malformed sealed value (context)")
        return cls(
            _text(wire, "r", "refresh token"),
            context,
            provider=_optional_text(wire, "p", "provider"),
            client_id=_optional_text(wire, "c", "client_id"),
        )

    def issued_to(self, provider: str, client_id: str) -> bool:
        """Whether this envelope may be used at ``provider`` by ``client_id`` (an unbound one: yes)."""
        return self.provider in (None, provider) and self.client_id in (None, client_id)


@dataclass(frozen=True)
class TenantFormToken:
    """The tenant form's CSRF token: a nonce also set in a cookie, and the query it belongs to."""

    nonce: str  # n
    query_hash: str  # q

    def to_wire(self) -> dict[str, Any]:
        return {"n": self.nonce, "q": self.query_hash}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> TenantFormToken:
        return cls(_text(wire, "n", "nonce"), _text(wire, "q", "query"))


@dataclass(frozen=True)
class GraceEntry:
    """What the grace window remembers of a refresh: the normalised answer (``a``), or the
    description of a definite ``invalid_grant`` (``e``) — exactly one of the two.

    ``name`` (``k``) is the store key the entry was written under, sealed with it: an entry copied
    onto another key (by anyone who can write to the shared store) does not open there
    (:meth:`open_at`). The in-process window, which nothing else can write to, leaves it empty.
    """

    answer: TokenAnswer | None = None
    refusal: str | None = None
    name: str = ""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"e": self.refusal} if self.refusal is not None else {"a": self.answer}
        if self.name:
            wire["k"] = self.name
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> GraceEntry:
        name = _optional_text(wire, "k", "store key") or ""
        if "e" in wire:
            return cls(refusal=_text(wire, "e", "refusal"), name=name)
        answer = wire.get("a")
        if not isinstance(answer, dict):
            raise StateError("malformed sealed value (answer)")
        return cls(answer=cast("TokenAnswer", answer), name=name)

    @classmethod
    def open_at(cls, sealer: Sealer, name: str, sealed: str) -> GraceEntry:
        """The entry stored under ``name``; :class:`StateError` if it was sealed for another name."""
        entry = cls.from_wire(sealer.open(GRACE_PURPOSE, sealed))
        if entry.name != name:
            raise StateError("sealed for another store key")
        return entry
