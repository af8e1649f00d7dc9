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

SSRF: a URL template may put a placeholder in its host only if that value has a declared pattern
(``callback.keep`` or ``tenant``) or a table of hosts (``callback.keep.<name>.hosts``: the value is a key,
the host is the mapping's); a whole-origin value (``url: true``, Zoho's ``accounts-server``) may start a
template, and must match its pattern, be ``https://host[:port]`` and nothing more; after substitution the URL must split into exactly the parts the
template had (no ``/``, ``@``, ``?`` or ``#`` smuggled in), and its host must not be an IP literal,
``localhost`` or a ``.localhost`` name unless the value says ``allow_private: true``; and the call
connects only to the name's public addresses, checked in the very lookup the connection uses
(:mod:`gateway.upstream.publicdns`; a failed lookup fails the call, and DNS rebinding has no
second lookup to exploit).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.oauth.responses import ServerError
from gateway.oauth.seal import Sealer
from gateway.oauth.state import REFRESH_PURPOSE, RefreshEnvelope, StateError

if TYPE_CHECKING:  # mapping.py imports this module
    from gateway.config.mapping import ProviderMapping

__all__ = [
    "ContextValue",
    "UnsafeUrl",
    "render_url",
    "url_placeholders_in_host",
    "leading_placeholder",
    "REFRESH_PURPOSE",
    "REFRESH_TTL",
    "MAX_ENVELOPE_LENGTH",
    "seal_refresh",
    "open_envelope",
    "open_refresh",
    "link_sealer",
    "initial_context",
    "kept_at_callback",
    "host_needs_public_address",
]

#: Refresh envelopes live as long as the upstream grant may: ten years, judged by the upstream.
REFRESH_TTL = 10 * 365 * 86400
#: The longest refresh envelope the gateway hands out, and so the longest ``refresh_token`` /
#: ``token`` that ``/token`` and ``/revoke`` accept (every other parameter: 4096). Fernet and
#: base64 make an envelope about 4/3 of its payload plus 100 bytes: an upstream refresh token of
#: 8 KiB (a long JWT) with its context fits with room to spare.
MAX_ENVELOPE_LENGTH = 16 * 1024
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


@dataclass(frozen=True)
class ContextValue:
    """A value a mapping keeps (``callback.keep`` entry or ``tenant``), and what it may be."""

    name: str
    pattern: re.Pattern[str]
    #: The mapping says explicitly that this value may name IP literals and loopback/private hosts.
    allow_private: bool = False
    #: ``tenant`` only: the form's label.
    label: str = ""
    #: The callback parameter it comes from, when that is not ``name`` (``accounts-server``).
    param: str = ""
    #: A whole origin (``https://accounts.zoho.eu``) that starts URL templates.
    url: bool = False
    #: value → host: the value must be a key; the placeholder stands for its host.
    hosts: Mapping[str, str] | None = None

    def accepts(self, value: str) -> bool:
        """A value as it arrives (the callback, the form)."""
        if self.hosts is not None:
            return value in self.hosts
        return self.pattern.fullmatch(value) is not None

    def fills(self, value: str) -> str:
        """What the placeholder stands for: the value, or its host from the table."""
        return self.hosts.get(value, "") if self.hosts is not None else value

    def allows(self, filled: str) -> bool:
        """A placeholder's filled-in text, as a URL gets it."""
        if self.hosts is not None:
            return filled in self.hosts.values()
        return self.pattern.fullmatch(filled) is not None


class UnsafeUrl(ValueError):
    """A URL template, once filled in, names a host no pattern allows (or a different shape)."""


def leading_placeholder(template: str) -> str | None:
    """The placeholder a URL template starts with (``{accounts_server}/oauth/v2/token``), if any."""
    match = _PLACEHOLDER.match(template)
    return match.group(1) if match else None


def url_placeholders_in_host(template: str) -> list[str]:
    """The placeholders in the authority (host, port) part of a URL template, or the one that is its origin."""
    leading = leading_placeholder(template)
    return [leading] if leading is not None else _PLACEHOLDER.findall(urlsplit(template).netloc)


def _origin(spec: ContextValue, value: str) -> str:
    """A whole-origin value, checked: its pattern, ``https://host[:port]`` (http only with ``allow_private``)."""
    if not spec.allows(value):
        raise UnsafeUrl(f"{spec.name} does not match its pattern")
    parts = urlsplit(value)
    schemes = {"https", "http"} if spec.allow_private else {"https"}
    if parts.scheme not in schemes or parts.path or parts.query or parts.fragment or "@" in parts.netloc or not parts.hostname:
        raise UnsafeUrl(f"{spec.name} is not an origin this gateway may call")
    _check_host(parts.hostname, spec.allow_private)
    return value


def _fill(text: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _check_host(host: str, allow_private: bool) -> None:
    bare = host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if address is not None:
        if not allow_private:
            raise UnsafeUrl("the host is an IP address")
        if address.is_multicast or address.is_unspecified:
            raise UnsafeUrl("the host is not a usable address")
        return
    if not _HOSTNAME.fullmatch(host):
        raise UnsafeUrl("the host is not a DNS name")
    name = host.rstrip(".").lower()
    last = name.rsplit(".", 1)[-1]
    if last.isdigit() or last.startswith("0x"):
        # 2130706433, 0x7f000001, 127.1: no top-level domain is numeric; resolvers and clients
        # read these as IPv4 addresses (127.0.0.1), in the legacy inet_aton forms.
        raise UnsafeUrl("the host is an IP address")
    if (name == "localhost" or name.endswith(".localhost")) and not allow_private:
        raise UnsafeUrl("the host is this machine")


def render_url(template: str, values: Mapping[str, str], specs: Iterable[ContextValue]) -> str:
    """Fill ``template`` and check the result (SSRF rules above); raise :class:`UnsafeUrl`."""
    if "{" not in template:
        return template
    leading = leading_placeholder(template)
    if leading is not None:  # a whole origin, then a fixed path: the origin is checked, the rest as below
        spec = next((spec for spec in specs if spec.name == leading), None)
        if spec is None or not spec.url:
            raise UnsafeUrl(f"{leading} is not a value that may start a URL")
        origin = _origin(spec, values.get(leading, ""))
        rest = render_url("https://origin.invalid" + template[len(leading) + 2 :], values, specs)
        return origin + rest.removeprefix("https://origin.invalid")
    parts = urlsplit(template)
    rendered = _fill(template, values)
    if _PLACEHOLDER.search(rendered):
        raise UnsafeUrl("a value the URL needs is missing")
    got = urlsplit(rendered)
    expected = (parts.scheme, _fill(parts.netloc, values), _fill(parts.path, values), _fill(parts.query, values))
    if (got.scheme, got.netloc, got.path, got.query) != expected or got.fragment or "@" in got.netloc:
        raise UnsafeUrl("a value changed the shape of the URL")
    try:
        got.port  # noqa: B018 - raises ValueError for "host:443:8443"
    except ValueError:
        raise UnsafeUrl("a value changed the shape of the URL") from None
    if parts.hostname and (got.hostname or "") != _fill(parts.hostname, values).strip("[]").lower():
        raise UnsafeUrl("a value changed the shape of the URL")  # "host:443" where only a host belongs
    host_names = set(_PLACEHOLDER.findall(parts.netloc))
    if host_names:
        allow = all(spec.allow_private for spec in specs if spec.name in host_names)
        for spec in specs:
            if spec.name in host_names and not spec.allows(values.get(spec.name, "")):
                raise UnsafeUrl(f"{spec.name} does not match its pattern")
        if not got.hostname:
            raise UnsafeUrl("the URL has no host")
        _check_host(got.hostname, allow)
    return rendered


def host_needs_public_address(template: str, specs: Iterable[ContextValue]) -> bool:
    """A template whose host comes from a value that does not say ``allow_private``."""
    if "{" not in template:  # no placeholder at all (most mappings): no URL to split, per request
        return False
    names = set(url_placeholders_in_host(template))
    return bool(names) and not all(spec.allow_private for spec in specs if spec.name in names)


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
