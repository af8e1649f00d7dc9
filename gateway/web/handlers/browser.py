"""The frame of the browser endpoints (``/authorize`` with its tenant form, ``/callback``), like
:func:`gateway.web.handlers.json_post_endpoint` is for the JSON ones.

A handler returns a small typed result saying how the request ends, and the frame does the
bookkeeping once: it notes the outcome in the request record (which the logging middleware logs
and counts), feeds the endpoint's trace observer, and renders the answer. So no exit can forget
the trace or the outcome: there is one exit. It is also where the flows a handler changed go
back into the flow cookie (:func:`gateway.web.session.save_flows`), so only these endpoints
carry cookie machinery; a handler returns its answer rather than raising one, or the cookie
would not go with it.

- :class:`Page`: an HTML page, for a problem that must not be redirected (no validated redirect
  URI, RFC 6749 §4.1.2.1, §10.15; a lost flow);
- :class:`Redirect`: a 302 to a validated redirect URI (the platform's, with a code, a token or an
  ``error=``) or to the upstream;
- :class:`Answer`: a response the handler built itself (the tenant form, a 405 with ``Allow``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from gateway.config.mapping import ProviderMapping
from gateway.oauth.responses import OAuthError
from gateway.observe.record import record_of
from gateway.web.handlers import provider_of, unknown_provider
from gateway.web.render import error_page, redirect
from gateway.web.session import save_flows

__all__ = ["Page", "Redirect", "Answer", "BrowserResult", "browser_endpoint"]


@dataclass(frozen=True, slots=True)
class Page:
    """An HTML error page; ``outcome`` is the record's (``""``: none, as for a wrong method)."""

    error: OAuthError
    outcome: str = ""
    title: str = "Account linking failed"


@dataclass(frozen=True, slots=True)
class Redirect:
    """A 302 to ``location``. ``error``: the OAuth error it carries to the platform, if any;
    ``code``: the sealed code it carries (the platform's token request will bring it back, and the
    trace joins the two by it); ``stopped``: why the gateway itself stopped a link whose upstream
    answer was fine (a :func:`gateway.observe.reasons.gateway_stopped_callback` cause)."""

    location: str
    outcome: str
    carries_secret: bool = True
    error: OAuthError | None = None
    code: str = ""
    stopped: str = ""
    #: What the trace shows of the request that led here (``/authorize``: its checked parameters,
    #: the flow nonce and the mapping rules applied).
    params: dict[str, str] = field(default_factory=dict)
    nonce: str = ""
    mapping_step: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response the handler built (a form page); the frame only notes ``outcome``."""

    response: web.Response
    outcome: str = ""


BrowserResult = Page | Redirect | Answer
Observer = Callable[[web.Request, ProviderMapping, BrowserResult], None]


async def browser_endpoint(
    request: web.Request,
    endpoint: str,
    handle: Callable[[web.Request, ProviderMapping], Awaitable[BrowserResult]],
    observe: Observer,
) -> web.Response:
    """Find the provider, run ``handle``, then note the outcome, feed ``observe``, render and
    write back the flows the handler changed, once."""
    mapping = provider_of(request, endpoint)
    if mapping is None:
        return error_page(unknown_provider(request))
    result = await handle(request, mapping)
    if result.outcome:
        record_of(request).outcome = result.outcome
    observe(request, mapping, result)
    response = _render(result)
    save_flows(request, response)
    return response


def _render(result: BrowserResult) -> web.Response:
    if isinstance(result, Redirect):
        return redirect(result.location, carries_secret=result.carries_secret)
    if isinstance(result, Page):
        return error_page(result.error, title=result.title)
    return result.response
