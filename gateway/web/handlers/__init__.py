"""HTTP handlers: one module per endpoint. They apply mappings and never name a provider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, unquote_to_bytes

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from gateway.config.mapping import ProviderMapping
from gateway.oauth.clientauth import ClientCredentials, authenticate, read_credentials, recognised
from gateway.oauth.responses import InvalidClient, InvalidRequest, OAuthError, ServerError, TemporarilyUnavailable, TokenAnswer
from gateway.observe.metrics import METRICS
from gateway.observe.record import RequestRecord, record_of
from gateway.observe.trace import hooks as trace
from gateway.upstream.answer import UpstreamAnswer, normalise, token_to_exchange
from gateway.upstream.client import PreparedRequest, TooLarge, Unreachable, prepare_exchange_request, send
from gateway.upstream.failure import FAILURE_HEADER
from gateway.web.appkeys import HTTP_CLIENT, PUBLIC_HTTP_CLIENT, RUNTIME, runtime_of
from gateway.web.render import token_error_response

__all__ = [
    "provider_of", "single_params", "read_form", "form_if_in", "form_pairs", "outcome", "unknown_provider", "exchange", "note_answer", "note_failure", "json_post_endpoint",
]

T = TypeVar("T")

#: Longest value accepted for any single request parameter (codes, states, URIs, verifiers).
MAX_PARAM_LENGTH = 4096


def provider_of(request: web.Request, endpoint: str) -> ProviderMapping | None:
    """The mapping the path names (noted in the request's record for logs and metrics)."""
    record = record_of(request)
    record.endpoint = endpoint
    mapping = runtime_of(request).config.providers.get(request.match_info["provider"])
    if mapping is not None:
        record.provider = mapping.name
    return mapping


def outcome(request: web.Request, result: str) -> None:
    """Note how the request ended: ``success`` or the RFC 6749 error code."""
    record_of(request).outcome = result


def single_params(pairs: list[tuple[str, str]], *, long_param: tuple[str, int] = ("", 0)) -> dict[str, str]:
    """RFC 6749 §3.1/§3.2: parameters must not be sent more than once; values have a size limit
    (``long_param``: the one parameter, and its own limit, that may be longer than the rest)."""
    params: dict[str, str] = {}
    long_name, long_limit = long_param
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"parameter {name!r} is given more than once")
        if len(value) > (long_limit if name == long_name else MAX_PARAM_LENGTH):
            raise InvalidRequest(f"parameter {name!r} is too long")
        params[name] = value
    return params


async def read_form(request: web.Request, *, long_param: tuple[str, int] = ("", 0)) -> dict[str, str]:
    """A platform's POST body as ``application/x-www-form-urlencoded`` UTF-8, each parameter once
    (RFC 6749 §3.2, RFC 7009 §2.1), whatever the Content-Type says; RFC 6749 errors otherwise.
    ``long_param``: see :func:`single_params` (a refresh envelope is longer than a code)."""
    form = form_if_in(request, long_param=long_param)
    if form is not None:
        return form
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OAuthError("the request body is too large", error="invalid_request", status=413) from None
    except RequestPayloadError:  # e.g. Content-Encoding: gzip on a body that is not gzip
        raise InvalidRequest("the request body could not be decoded") from None
    return _form_of(raw, long_param)


def form_if_in(request: web.Request, *, long_param: tuple[str, int] = ("", 0)) -> dict[str, str] | None:
    """:func:`read_form`'s answer when the whole body is in already (it came with the headers:
    nearly always), taken as it is, without a coroutine or ``request.read()``'s two reads and
    copy — the same bytes, the same size limit; ``None`` while it is still arriving."""
    content = request.content
    if not content.is_eof() or content.exception() is not None:
        return None
    raw = content.read_nowait()
    limit = request.client_max_size
    if limit and len(raw) > limit:
        raise OAuthError("the request body is too large", error="invalid_request", status=413)
    return _form_of(raw, long_param)


def _form_of(raw: bytes, long_param: tuple[str, int]) -> dict[str, str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the body must be application/x-www-form-urlencoded UTF-8") from None
    return single_params(form_pairs(text), long_param=long_param)


def form_pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True)``, pair for pair (a test compares them), without
    its generic steps: a name or value without ``+`` or ``%`` (most of them) is taken as it is."""
    pairs: list[tuple[str, str]] = []
    for part in text.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "+" in name or "%" in name:
            name = _unquoted(name.replace("+", " "))
        if "+" in value or "%" in value:
            value = _unquoted(value.replace("+", " "))
        pairs.append((name, value))
    return pairs


def _unquoted(text: str) -> str:
    """``unquote(text, errors="replace")``: for ASCII text (a code's ``%3D``, a redirect URI's
    ``%2F``) its one step, without the split that keeps other characters as they are."""
    return unquote_to_bytes(text).decode("utf-8", "replace") if text.isascii() else unquote(text, errors="replace")


async def exchange(
    request: web.Request, mapping: ProviderMapping, prepared: PreparedRequest, *, refresh_token_sent: str | None = None
) -> TokenAnswer:
    """Send the upstream token request once and normalise its answer (RFC 6749 §5.1), noting in
    the request's record how the upstream failed, if it did — for /token and the implicit callback."""
    answer = await _call(request, mapping, prepared)
    failed: list[str] = []  # answer expressions that failed at run time (gateway.upstream.answer)
    try:
        if prepared.exchange_values is not None and mapping.exchange is not None:
            # A second step (Instagram's long-lived token): the first answer's token is traded.
            step = mapping.exchange
            token = _judged(request, mapping, answer, lambda: token_to_exchange(answer, mapping.answer, step.token, failed))
            answer = await _call(request, mapping, prepare_exchange_request(mapping, prepared.exchange_values, token))
        last = answer
        result = _judged(
            request, mapping, last,
            lambda: normalise(
                last, mapping.answer, refresh_token_sent=refresh_token_sent, keep_refresh_token=mapping.keep_refresh_token,
                failed=failed,
            ),
        )
    finally:
        if failed:
            metrics = request.app.get(METRICS)
            if metrics is not None:
                metrics.expressions_failed(mapping.name, failed)
    trace.normalised(request, mapping, result)
    return result


def _judged(request: web.Request, mapping: ProviderMapping, answer: UpstreamAnswer, judge: Callable[[], T]) -> T:
    """``judge(answer)``, noting in the request's record and trace how the upstream failed, if it did."""
    try:
        return judge()
    except TemporarilyUnavailable as err:
        record = record_of(request)
        record.upstream_failure = "http_5xx" if answer.status >= 500 else "throttled"
        trace.normalise_failed(request, mapping, answer, err, record.upstream_failure)
        raise
    except ServerError as err:
        # 4xx: the upstream refused the gateway's own request; 2xx: an answer the gateway can't use.
        record = record_of(request)
        record.upstream_failure = "refused" if 400 <= answer.status < 500 else "unusable_answer"
        trace.normalise_failed(request, mapping, answer, err, record.upstream_failure)
        raise
    except OAuthError as err:  # the grant is bad (invalid_grant): the upstream's word, passed on
        trace.normalise_failed(request, mapping, answer, err, err.error)
        raise


def note_answer(record: RequestRecord, answer: UpstreamAnswer) -> None:
    """Note in the request's record what :func:`send` measured of an answer (status, seconds)."""
    record.upstream_seconds, record.upstream_status, record.upstream_failure = answer.seconds, answer.status, ""


def note_failure(record: RequestRecord, err: Unreachable | TooLarge) -> None:
    """Note in the request's record how a call failed, as :func:`send` measured it (kind, seconds)."""
    record.upstream_seconds, record.upstream_status, record.upstream_failure = err.seconds, None, err.failure


async def _call(request: web.Request, mapping: ProviderMapping, prepared: PreparedRequest) -> UpstreamAnswer:
    """One upstream call, recorded and traced."""
    record = record_of(request)
    trace.upstream_requested(request, mapping, prepared)
    app = request.app  # once: each ``request.app`` is two Python property calls
    try:
        answer = await send(
            app[HTTP_CLIENT], prepared, default_timeout=app[RUNTIME].current.config.upstream_timeout,
            public_session=app.get(PUBLIC_HTTP_CLIENT),
        )
    except (Unreachable, TooLarge) as err:
        note_failure(record, err)
        trace.upstream_failed(request, err.failure, err, err.seconds)
        raise
    except OAuthError as err:
        trace.upstream_failed(request, record.upstream_failure, err, record.upstream_seconds)
        raise
    note_answer(record, answer)
    trace.upstream_answered(request, answer, answer.seconds)
    return answer


def authenticated_client(request: web.Request, form: dict[str, str], mapping: ProviderMapping) -> ClientCredentials | web.Response:
    """The platform client's credentials once they check out (RFC 6749 section 2.3.1), else the
    ``invalid_client`` answer to return (401 with ``WWW-Authenticate`` when Basic was used)."""
    authorization = request.headers.get("Authorization")
    known = recognised(authorization, form, mapping.platform)  # the usual request, without decoding
    if known is not None:
        return known
    credentials = read_credentials(authorization, form)
    try:
        authenticate(credentials, mapping.platform)
    except InvalidClient as err:
        outcome(request, err.error)
        return token_error_response(err, basic_auth_used=credentials.used_basic)
    return credentials


def unknown_provider(request: web.Request) -> OAuthError:
    return OAuthError("there is no such provider on this gateway", error="invalid_request", status=404)


async def json_post_endpoint(
    request: web.Request,
    endpoint: str,
    handle: Callable[[web.Request, ProviderMapping], Awaitable[web.Response]],
    *,
    title: str,
    observe: Callable[[web.Request, web.Response], None] | None = None,
) -> web.Response:
    """The frame of the JSON endpoints the platform POSTs to (``/token``, ``/revoke``): the provider,
    POST only (RFC 6749 §3.2, RFC 7009 §2.1; else a JSON 405 with ``Allow``), and every
    :class:`OAuthError` as its JSON answer (RFC 6749 §5.2). ``observe`` sees every answer, once
    (the flow trace's last token hop; a no-op for a request no hook joined to a flow).
    One coroutine, answer and observer alike: each layer costs its creation and an await."""
    mapping = provider_of(request, endpoint)
    if mapping is None:
        response = token_error_response(unknown_provider(request))
    elif request.method != "POST":
        response = token_error_response(OAuthError(f"the {title} endpoint takes POST", error="invalid_request", status=405))
        response.headers["Allow"] = "POST"
    else:
        try:
            response = await handle(request, mapping)
        except OAuthError as err:
            outcome(request, err.error)
            response = token_error_response(err, basic_auth_used="Authorization" in request.headers)
            failure = record_of(request).upstream_failure
            if failure:  # the machine signal `gateway linktest` reads (gateway.upstream.failure)
                response.headers[FAILURE_HEADER] = failure
    if observe is not None:
        observe(request, response)
    return response
