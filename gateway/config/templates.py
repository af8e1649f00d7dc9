"""Templates: one placeholder grammar for every template a mapping holds, and the URL rules.

**The grammar.** ``{name}`` is a placeholder (a letter or ``_``, then letters, digits, ``_``);
``{{`` and ``}}`` are a literal ``{`` and ``}``. Only known names are replaced, so braces that arrive
in a ``${VAR}`` value (a secret) are left alone. The loader checks templates with this grammar
(:mod:`gateway.config.mapping`) and the request path fills them with it (:func:`render_template`,
:func:`render_url`): what a URL means at load is what it means per request.

**Per-link values** (:class:`ContextValue`): a ``callback.keep`` entry or the ``tenant``, with the
pattern (or table of hosts) a value must match (:mod:`gateway.oauth.linkcontext` carries them).

**SSRF.** A URL template may put a placeholder in its host only if that value has a declared pattern
(``callback.keep`` or ``tenant``) or a table of hosts (``callback.keep.<name>.hosts``: the value is a key,
the host is the mapping's); a whole-origin value (``url: true``, Zoho's ``accounts-server``) may start a
template, and must match its pattern, be ``https://host[:port]`` and nothing more; after substitution the
URL must split into exactly the parts the template had (no ``/``, ``@``, ``?`` or ``#`` smuggled in), and
its host must not be an IP literal, ``localhost`` or a ``.localhost`` name unless the value says
``allow_private: true``; and the call connects only to the name's public addresses, checked in the very
lookup the connection uses (:mod:`gateway.upstream.publicdns`; a failed lookup fails the call, and DNS
rebinding has no second lookup to exploit).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "ContextValue",
    "UnsafeUrl",
    "template_names",
    "render_template",
    "render_url",
    "url_placeholders_in_host",
    "leading_placeholder",
    "host_needs_public_address",
]

#: ``{name}`` placeholders; ``{{`` and ``}}`` are literal braces (group 1 is empty for those).
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")


def template_names(template: str) -> list[str]:
    """The placeholders of ``template``, in order (``{{x}}`` is none: it is the text ``{x}``)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(template) if match.group(1)]


def render_template(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each known placeholder replaced and ``{{``/``}}`` made single braces;
    an unknown placeholder stays as it is."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(replace, template)


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


def _host_names(netloc: str) -> list[str]:
    return template_names(netloc)


def url_placeholders_in_host(template: str) -> list[str]:
    """The placeholders in the authority (host, port) part of a URL template, or the one that is its origin."""
    leading = leading_placeholder(template)
    return [leading] if leading is not None else _host_names(urlsplit(template).netloc)


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
    """Fill ``template`` (the grammar above) and check the result (SSRF rules above); raise :class:`UnsafeUrl`."""
    if "{" not in template:  # no placeholder (most mappings): a plain URL, as the loader judged it
        return template
    leading = leading_placeholder(template)
    if leading is not None:  # a whole origin, then a fixed path: the origin is checked, the rest as below
        spec = next((spec for spec in specs if spec.name == leading), None)
        if spec is None or not spec.url:
            raise UnsafeUrl(f"{leading} is not a value that may start a URL")
        origin = _origin(spec, values.get(leading, ""))
        rest = render_url("https://origin.invalid" + template[len(leading) + 2 :], values, specs)
        return origin + rest.removeprefix("https://origin.invalid")
    if any(name not in values for name in template_names(template)):
        raise UnsafeUrl("a value the URL needs is missing")
    parts = urlsplit(template)
    rendered = render_template(template, values)
    got = urlsplit(rendered)
    expected = (
        parts.scheme, render_template(parts.netloc, values), render_template(parts.path, values), render_template(parts.query, values)
    )
    if (got.scheme, got.netloc, got.path, got.query) != expected or got.fragment or "@" in got.netloc:
        raise UnsafeUrl("a value changed the shape of the URL")
    try:
        got.port  # noqa: B018 - raises ValueError for "host:443:8443"
    except ValueError:
        raise UnsafeUrl("a value changed the shape of the URL") from None
    if parts.hostname and (got.hostname or "") != render_template(parts.hostname, values).strip("[]").lower():
        raise UnsafeUrl("a value changed the shape of the URL")  # "host:443" where only a host belongs
    host_names = set(_host_names(parts.netloc))
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
