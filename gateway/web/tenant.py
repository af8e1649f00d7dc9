"""The tenant form: ``/authorize`` asks the user which shop, subdomain or host before the upstream.

A mapping with ``tenant:`` (multi-tenant and self-hosted upstreams: ``https://{shop}.myshopify.com``)
cannot send the browser anywhere until the user says which tenant. ``/authorize`` then answers
with a small page of its own: one labelled field, no script, the problem (if any) tied to the field
with ``aria-describedby``. The form posts back to the same URL (the platform's query string kept
in ``action``), so the platform's parameters are checked again exactly as on the first visit.

CSRF (RFC 6749 §10.12 in spirit): the form carries a sealed token naming a random value that is
also set in a ``SameSite=Lax`` cookie (double submit) and the hash of the query string it belongs
to; a post without both matching is asked again, never acted on. A value is accepted only when it
matches the mapping's pattern *and* every URL it goes into passes the SSRF rules of
:func:`gateway.config.templates.render_url`.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.config.mapping import ProviderMapping
from gateway.config.settings import Config
from gateway.config.templates import ContextValue, UnsafeUrl, render_url, template_names
from gateway.oauth.seal import Sealer, SealError
from gateway.oauth.state import TENANT_FORM_PURPOSE, TenantFormToken

__all__ = ["ask_tenant", "FORM_PURPOSE", "FIELD", "CSRF_FIELD"]

FORM_PURPOSE = TENANT_FORM_PURPOSE  # its home is gateway.oauth.state
FIELD = "tenant"
CSRF_FIELD = "csrf"
_FORM_TTL = 900
_MAX_VALUE = 253  # the longest DNS name

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>Link your account</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}}
label,input,button{{display:block;font:inherit;margin:.3em 0}}input{{padding:.4em;width:100%;max-width:24em}}
.problem{{color:#a00;font-weight:600}}</style></head>
<body><main><h1>Link your account</h1>
<form method="post" action="{action}">
<label for="tenant">{label}</label>
{problem}<input id="tenant" name="tenant" value="{value}" required autocomplete="off" autocapitalize="none"
 spellcheck="false" maxlength="{maxlength}"{invalid}>
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit">Continue</button>
</form></main></body></html>
"""


def public_path(config: Config, path: str) -> str:
    """``path`` as browsers see it: behind ``public_url`` ``https://host/gw/`` (a proxy that strips
    ``/gw``) the form at ``/shop/authorize`` is ``/gw/shop/authorize``, and so is its cookie's path."""
    return urlsplit(config.public_url).path.rstrip("/") + path


def _raw(text: str) -> bytes:
    """A cookie's bytes as sent (aiohttp decodes those that are not UTF-8 as surrogate escapes)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte: matches no nonce
        return b"\x00"


def _cookie_name(config: Config) -> str:
    return f"{config.cookie.name}_form"


def _query_hash(request: web.Request) -> str:
    return hashlib.sha256(request.query_string.encode("utf-8")).hexdigest()


def _form(request: web.Request, spec: ContextValue, config: Config, sealer: Sealer, *, value: str = "", problem: str = "") -> web.Response:
    nonce = secrets.token_urlsafe(16)
    csrf = sealer.seal(FORM_PURPOSE, TenantFormToken(nonce, _query_hash(request)).to_wire(), ttl=_FORM_TTL)
    shown_problem = f'<p id="tenant-problem" class="problem" role="alert">{html.escape(problem)}</p>\n' if problem else ""
    page = _PAGE.format(
        action=html.escape("?" + request.query_string, quote=True),
        label=html.escape(spec.label),
        problem=shown_problem,
        value=html.escape(value, quote=True),
        maxlength=_MAX_VALUE,
        invalid=' aria-invalid="true" aria-describedby="tenant-problem"' if problem else "",
        csrf=html.escape(csrf, quote=True),
    )
    response = web.Response(
        status=400 if problem else 200,
        text=page,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"},
    )
    response.set_cookie(
        _cookie_name(config),
        nonce,
        max_age=_FORM_TTL,
        path=public_path(config, request.path),
        secure=config.cookie.secure,
        httponly=True,
        samesite="Lax",
    )
    return response


def _check(mapping: ProviderMapping, spec: ContextValue, value: str) -> str | None:
    """What is wrong with ``value`` in words for the user, or ``None``."""
    if not value or len(value) > _MAX_VALUE or not spec.accepts(value):
        return f"That is not a valid {spec.label.lower()}: please check it and try again."
    try:
        for url in (mapping.authorize.url, mapping.token.url):
            if set(template_names(url)) <= {spec.name}:  # others (callback.keep) are judged later
                render_url(url, {spec.name: value}, mapping.context_specs)
    except UnsafeUrl:
        return f"That {spec.label.lower()} can not be used with this gateway: please check it and try again."
    return None


async def ask_tenant(
    request: web.Request, mapping: ProviderMapping, spec: ContextValue, config: Config, sealer: Sealer
) -> web.Response | str:
    """The tenant the user gave (checked), or the form page to show (first visit or re-ask)."""
    if request.method != "POST":
        return _form(request, spec, config, sealer)
    try:
        posted = await request.post()
    except (ValueError, LookupError, AssertionError, RuntimeError, RequestPayloadError):
        # as gateway.demo.common.read_form: bytes not in the charset, an unknown charset, broken multipart
        return _form(request, spec, config, sealer, problem="This form could not be read: please enter it again.")
    value = posted.get(FIELD)
    csrf = posted.get(CSRF_FIELD)
    text = value.strip() if isinstance(value, str) else ""
    try:
        opened = TenantFormToken.from_wire(sealer.open(FORM_PURPOSE, csrf if isinstance(csrf, str) else ""))
        cookie = request.cookies.get(_cookie_name(config), "")
        genuine = hmac.compare_digest(opened.nonce.encode(), _raw(cookie)) and opened.query_hash == _query_hash(request)
    except SealError:
        genuine = False
    if not genuine:
        return _form(request, spec, config, sealer, value=text, problem="This form expired or was not sent from this page: please enter it again.")
    problem = _check(mapping, spec, text)
    if problem:
        return _form(request, spec, config, sealer, value=text, problem=problem)
    return text
