"""Per-link context: values one step of the flow learns that a later step needs.

Three sources, all flat ``name → text`` in one dict (the *context*):

* **flow values**: ``{state}`` (the gateway's nonce sent upstream) and ``{authorize_<param>}``, any
  parameter the gateway sent in the upstream authorization request. Some upstreams want them
  back at the token endpoint.
* **kept callback parameters** (``callback.keep``): e.g. the regional accounts host a provider
  with several data centres names in its redirect to ``/callback``.
* **the tenant** (``tenant``): a shop, subdomain or self-hosted host the user types in a small
  form before the upstream authorization.

The context travels sealed: in the flow cookie, then in the code the platform gets, then —
because every refresh for years must go to the same host — inside the refresh token the platform
keeps (:func:`seal_refresh` / :func:`open_refresh`), sealed with the ``link_keys`` of
``gateway.yaml``, a list that only ever grows, so routine rotation of ``keys`` never kills a link.

The URL templates these values fill, and the SSRF rules a filled URL keeps, are
:mod:`gateway.config.templates` (one placeholder grammar for load and run time).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from gateway.config.mapping import ProviderMapping
from gateway.config.templates import UnsafeUrl, render_url
from gateway.oauth.responses import ServerError
from gateway.oauth.seal import Sealer
from gateway.oauth.state import REFRESH_PURPOSE, RefreshEnvelope, StateError

__all__ = [
    "REFRESH_PURPOSE",
    "REFRESH_TTL",
    "MAX_ENVELOPE_LENGTH",
    "seal_refresh",
    "open_envelope",
    "open_refresh",
    "link_sealer",
    "initial_context",
    "kept_at_callback",
]

#: Refresh envelopes live as long as the upstream grant may: ten years, judged by the upstream.
REFRESH_TTL = 10 * 365 * 86400
#: The longest refresh envelope the gateway hands out, and so the longest ``refresh_token`` /
#: ``token`` that ``/token`` and ``/revoke`` accept (every other parameter: 4096). Fernet and
#: base64 make an envelope about 4/3 of its payload plus 100 bytes: an upstream refresh token of
#: 8 KiB (a long JWT) with its context fits with room to spare.
MAX_ENVELOPE_LENGTH = 16 * 1024


@functools.lru_cache(maxsize=8)
def link_sealer(link_keys: tuple[str, ...], keys: tuple[str, ...]) -> Sealer:
    """Seals with the newest link key (the first of ``link_keys``; the first of ``keys`` when there
    are none); opens with every link key and every current key. Cached: configs reload rarely."""
    return Sealer(list(dict.fromkeys([*link_keys, *keys])))


def initial_context(mapping: ProviderMapping, flow_values: Mapping[str, str]) -> dict[str, str]:
    """What /authorize puts in the flow: the flow values the token templates use."""
    return {name: flow_values.get(name.removeprefix("authorize_"), "") for name in mapping.flow_values}


def kept_at_callback(mapping: ProviderMapping, params: Mapping[str, str], context: Mapping[str, str]) -> dict[str, str]:
    """The context once the callback's kept parameters are in; :class:`UnsafeUrl` for a value that
    does not match its pattern or that would send the token request to a host no pattern allows."""
    result = dict(context)
    for spec in mapping.callback_keep:
        value = params.get(spec.param or spec.name, "")
        if not spec.accepts(value):
            raise UnsafeUrl(f"the upstream's {spec.name} is not one this gateway may use")
        result[spec.name] = value
    filled = {spec.name: spec.fills(result.get(spec.name, "")) for spec in mapping.context_specs}
    steps = (mapping.token, mapping.refresh) + ((mapping.exchange.request,) if mapping.exchange is not None else ())
    for url in {step.url for step in steps}:  # every URL this link will call
        render_url(url, result | filled, mapping.context_specs)
    return result


def seal_refresh(
    sealer: Sealer,
    upstream_refresh_token: str,
    context: Mapping[str, str],
    *,
    provider: str | None = None,
    client_id: str | None = None,
    now: float | None = None,
) -> str:
    """The refresh token the platform keeps: ``{upstream refresh token, context}``, sealed, bound to
    ``provider`` and ``client_id`` (:class:`~gateway.oauth.state.RefreshEnvelope`).

    Whatever is handed out here, ``/token`` and ``/revoke`` accept: an envelope longer than
    :data:`MAX_ENVELOPE_LENGTH` (an upstream refresh token of more than about 11 KiB) is refused
    now, as the upstream's answer the gateway cannot carry (``server_error``), rather than handed
    to the platform to die at its first refresh.
    """
    envelope = RefreshEnvelope(upstream_refresh_token, dict(context), provider=provider, client_id=client_id)
    sealed = sealer.seal(REFRESH_PURPOSE, envelope.to_wire(), ttl=REFRESH_TTL, now=now)
    if len(sealed) > MAX_ENVELOPE_LENGTH:
        raise ServerError("the upstream's refresh token is too long for this gateway to carry")
    return sealed


def open_envelope(
    sealer: Sealer, token: str, *, provider: str | None = None, client_id: str | None = None, now: float | None = None
) -> RefreshEnvelope:
    """The envelope ``token`` seals; :class:`SealError` for tampered, truncated, foreign or
    unknown-key envelopes, and for one issued at another provider or to another client (the caller
    answers ``invalid_grant`` and calls no upstream)."""
    envelope = RefreshEnvelope.from_wire(sealer.open(REFRESH_PURPOSE, token, now=now))
    if provider is not None and client_id is not None and not envelope.issued_to(provider, client_id):
        raise StateError("issued to another client or provider")
    return envelope


def open_refresh(
    sealer: Sealer, token: str, *, provider: str | None = None, client_id: str | None = None, now: float | None = None
) -> tuple[str, dict[str, str]]:
    """The upstream refresh token and the context of :func:`open_envelope`."""
    envelope = open_envelope(sealer, token, provider=provider, client_id=client_id, now=now)
    return envelope.upstream_refresh_token, envelope.context
