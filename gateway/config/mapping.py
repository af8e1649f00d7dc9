"""The runtime form of a mapping: everything provider-specific, built once from one YAML file.

The vocabulary itself (keys, types, choices, defaults, meanings) is :class:`gateway.config.models.MappingFile`.
:func:`parse_mapping` validates a document against it and then makes the checks a model cannot:
JMESPath expressions are compiled here, templates are checked for unknown placeholders here,
redirect URI rules are compiled here, and URLs are judged here; every problem is a ``file:line``
one. The result is frozen: handlers only ever *apply* a mapping, they hold no provider names and
do no validation per request.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jmespath.exceptions
import jmespath.parser

from gateway.config.about import About, build_about
from gateway.config.discovery import Discovered, DiscoveryError
from gateway.config.fields import Checked, Loc, validate
from gateway.config.models import (
    MAPPING_NAME,
    MIN_PLATFORM_SECRET,
    TOKEN_ERRORS,
    AnswerFormat,
    ClientAuth,
    Encoding,
    ExampleGrant,
    ExchangeFile,
    Grant,
    KeepFile,
    MappingFile,
    Method,
    OverrideFile,
    ParamRulesFile,
    PlatformPkce,
    TenantFile,
    TokenFile,
    TypedValue,
    UpstreamPkce,
)
from gateway.config.platforms import (
    PKCE_S256_PROFILES,
    RedirectPolicy,
    build_policy,
    check_pattern,
    sample_redirect_uri,
)
from gateway.config.templates import ContextValue, leading_placeholder, render_template, template_names, url_placeholders_in_host
from gateway.config.urls import is_loopback_host, url_problem
from gateway.config.yamlfile import Problems

__all__ = [
    "ParamRules",
    "PlatformClient",
    "AuthorizeRequest",
    "TokenRequest",
    "ExchangeRequest",
    "RevokeRequest",
    "AnswerRules",
    "ErrorRules",
    "Example",
    "ProviderMapping",
    "parse_mapping",
    "AUTHORIZE_PLACEHOLDERS",
    "TOKEN_PLACEHOLDERS",
]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
#: A callback parameter's name that is not a template name (``accounts-server``).
_PARAM = re.compile(r"[A-Za-z0-9_.-]{1,63}")
#: A host name a table may give (``zoho.eu``, ``api.eu.intercom.io``).
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*")

#: Values a template in ``upstream.authorize.params.add`` may use.
AUTHORIZE_PLACEHOLDERS = frozenset(
    {"client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method", "locale"}
)
#: Values a template in ``upstream.token.params.add`` / ``headers.add`` may use.
TOKEN_PLACEHOLDERS = frozenset(
    {
        "client_id", "client_secret", "redirect_uri", "grant_type", "code", "refresh_token", "code_verifier",
        "basic_auth", "scope",
    }
)
#: Names a per-link value can not take: the templates' own, and the exchange step's token.
_RESERVED = TOKEN_PLACEHOLDERS | {"state", "access_token"}
#: Parameters the gateway itself puts in every upstream authorization request.
_SENT_AUTHORIZE = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"}
)


@dataclass(frozen=True)
class ParamRules:
    """Kong-style verbs, applied in this fixed order: remove → rename → add.

    ``add`` values are templates (``"{client_id}"``); an empty result drops the parameter, so an
    optional value (``{code_verifier}`` without PKCE) never goes out as an empty string.
    """

    remove: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    #: Header names compare case-insensitively (RFC 9110 §5.1); parameter names do not.
    case_insensitive: bool = False
    #: Rules applied after these, on their result (refresh overrides follow the base rules).
    then: ParamRules | None = None

    @property
    def empty(self) -> bool:
        """True when the rules change nothing (most mappings' ``authorize.params``)."""
        return not (self.remove or self.rename or self.add or self.then)

    def _same(self, a: str, b: str) -> bool:
        return a.lower() == b.lower() if self.case_insensitive else a == b

    def apply(self, params: dict[str, str], values: MappingABC[str, str]) -> dict[str, str]:
        if not (self.remove or self.rename or self.add):  # most mappings: nothing to do, per request
            return self.then.apply(dict(params), values) if self.then is not None else dict(params)
        result = {name: value for name, value in params.items() if not any(self._same(name, r) for r in self.remove)}
        for old, new in self.rename:
            for name in [name for name in result if self._same(name, old)]:
                result[new] = result.pop(name)
        for name, template in self.add:
            for existing in [existing for existing in result if self._same(existing, name)]:
                del result[existing]
            rendered = render_template(template, values)
            if rendered:
                result[name] = rendered
        return self.then.apply(result, values) if self.then is not None else result

    @functools.cached_property
    def changes_nothing(self) -> bool:
        """No verb anywhere in the chain: :meth:`apply` only copies (most mappings), so a request
        needs neither the copy nor the template values. Worked out once per rules object."""
        return not (self.remove or self.rename or self.add) and (self.then is None or self.then.changes_nothing)

    def merged(self, other: ParamRules) -> ParamRules:
        """These rules, then ``other`` on their result (used for refresh overrides)."""
        tail = other if self.then is None else self.then.merged(other)
        return dataclasses.replace(self, then=tail)


@dataclass(frozen=True)
class PlatformClient:
    """The OAuth client on the left (Alexa, Google) as the gateway knows it."""

    client_id: str
    client_secret: str
    redirect_policy: RedirectPolicy
    profile: str
    pkce: PlatformPkce  # S256: required, and only with S256 (OAuth 2.1 §4.1.1)
    #: A redirect URI this platform really sends (its profile's, with a pinned id if any): what
    #: ``gateway linktest`` plays with. ``None`` when only wildcard patterns are configured.
    sample_redirect_uri: str | None = None


@dataclass(frozen=True)
class AuthorizeRequest:
    url: str
    params: ParamRules
    scope: str | None  # a fixed upstream scope, or None to pass the platform's on
    pkce: UpstreamPkce


@dataclass(frozen=True)
class TokenRequest:
    url: str
    method: Method
    encoding: Encoding
    client_auth: ClientAuth
    params: ParamRules
    headers: ParamRules
    timeout: float | None
    #: ``typed``: parameters with a JSON type of their own, by name (empty for most mappings).
    typed: tuple[tuple[str, TypedValue], ...] = ()

    @functools.cached_property
    def templated(self) -> bool:
        """Whether building a request from these rules needs the template values at all: a
        placeholder in the URL, or a verb on the parameters or headers (most mappings: neither)."""
        return "{" in self.url or not self.params.changes_nothing or not self.headers.changes_nothing


@dataclass(frozen=True)
class ExchangeRequest:
    """``upstream.token.exchange``: the second step after the code exchange."""

    request: TokenRequest
    #: Where the code exchange's answer holds the token to trade (``{access_token}``).
    token: jmespath.parser.ParsedResult
    #: ``exchange.client_auth`` given: ``request.client_auth`` is added; else no client authentication.
    authenticated: bool = False


@dataclass(frozen=True)
class RevokeRequest:
    """The upstream's RFC 7009 revocation endpoint and how the gateway authenticates there."""

    url: str
    client_auth: ClientAuth


@dataclass(frozen=True)
class ErrorRules:
    when: jmespath.parser.ParsedResult | None
    code: jmespath.parser.ParsedResult
    description: jmespath.parser.ParsedResult
    map: MappingABC[str, str]


@dataclass(frozen=True)
class AnswerRules:
    format: AnswerFormat
    root: jmespath.parser.ParsedResult | None
    fields: MappingABC[str, jmespath.parser.ParsedResult]
    expires_in_default: int | None  # None: leave expires_in out when the upstream gives none
    scope_separator: str
    error: ErrorRules
    #: ``answer.expires_at_format: iso8601``: expires_at is ISO 8601 text, not epoch seconds.
    expires_at_iso: bool = False

    @functools.cached_property
    def plain_fields(self) -> tuple[tuple[str, str | None, jmespath.parser.ParsedResult], ...]:
        """Each of :attr:`fields` with the name it reads when its expression is a plain name
        (``access_token``: most of them), else ``None``; worked out once, not per answer."""
        return tuple(
            (name, expr.parsed["value"] if expr.parsed["type"] == "field" else None, expr) for name, expr in self.fields.items()
        )


@dataclass(frozen=True)
class Example:
    """A documented upstream answer and the normalised result it must give."""

    name: str
    grant: ExampleGrant
    status: int
    content_type: str
    body: Any
    expect: MappingABC[str, Any]
    file: str
    line: int
    now: float | None = None  # the clock for answers with an absolute expires_at
    first: Any = None  # with upstream.token.exchange: the code exchange's answer before the second step's


@dataclass(frozen=True)
class ProviderMapping:
    name: str
    file: str
    grant: Grant
    platform: PlatformClient
    issuer: str | None
    upstream_client_id: str
    upstream_client_secret: str
    scope_separator: str
    authorize: AuthorizeRequest
    token: TokenRequest
    refresh: TokenRequest
    keep_refresh_token: bool
    answer: AnswerRules
    examples: tuple[Example, ...] = field(default=())
    #: ``upstream.discovery``: the OpenID Connect discovery URL the endpoints came from, if any.
    discovery: str | None = None
    #: ``upstream.require_iss``: a callback without ``iss`` is refused (RFC 9207 §2.4).
    require_iss: bool = False
    #: ``upstream.token.client_credentials``: how a platform's ``client_credentials`` grant is sent
    #: to the upstream's own (RFC 6749 §4.4); ``None``: the grant is refused (``unsupported_grant_type``).
    client_credentials: TokenRequest | None = None
    #: ``upstream.revoke``: the upstream's RFC 7009 revocation endpoint, if it has one.
    revoke: RevokeRequest | None = None
    #: ``callback.keep``: callback parameters kept for the token request and every refresh.
    callback_keep: tuple[ContextValue, ...] = ()
    #: ``tenant``: the value the user types before the upstream authorization.
    tenant: ContextValue | None = None
    #: Flow values (``state``, ``authorize_<param>``) the token templates use.
    flow_values: tuple[str, ...] = ()
    #: ``upstream.token.exchange``: the second step after the code exchange, if any.
    exchange: ExchangeRequest | None = None

    @functools.cached_property
    def context_specs(self) -> tuple[ContextValue, ...]:
        return self.callback_keep + ((self.tenant,) if self.tenant is not None else ())

    @functools.cached_property
    def keeps_context(self) -> bool:
        """Refresh tokens go to the platform sealed with the context (:mod:`gateway.oauth.linkcontext`)."""
        return bool(self.context_specs or self.flow_values)
    #: ``upstream.token.refresh.grace``: seconds a refresh answer is given again (gateway/oauth/refresh.py).
    refresh_grace: int = 60
    #: ``about:``: where the facts come from, when they were checked, a sunset (gateway/config/about.py).
    about: About | None = None
    #: ``extends:``: the mapping this one was merged over, and the base files, nearest first.
    extends: str | None = None
    bases: tuple[str, ...] = ()


_FALLBACK: jmespath.parser.ParsedResult = jmespath.compile("`null`")
#: What ``gateway check`` leaves in a value whose environment variable is not set (``<VAR>``).
_UNRESOLVED = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")
_AUTHORIZE: Loc = ("upstream", "authorize")
_TOKEN: Loc = ("upstream", "token")
#: Where the names templates may use come from: when one of these was wrong, an unknown name follows from it.
_CONTEXT: tuple[Loc, ...] = (("tenant",), ("callback",), (*_AUTHORIZE, "params"))


def _judged(value: str | None) -> bool:
    """A value to check: given, and not one whose ``${VAR}`` ``gateway check`` could not resolve."""
    return bool(value) and not getattr(value, "unresolved", False)


def compile_jmespath(checked: Checked, loc: Loc, text: str) -> jmespath.parser.ParsedResult | None:
    """A JMESPath expression, compiled here, once, at load (a bad one is a load error)."""
    try:
        return jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        checked.error(loc, f"bad JMESPath {text!r}: {str(exc).splitlines()[0]}")
        return None


def _param_rules(checked: Checked, loc: Loc, rules: ParamRulesFile, allowed: frozenset[str], *, headers: bool = False) -> ParamRules:
    add: list[tuple[str, str]] = []
    for name, value in rules.add.items():
        template = getattr(value, "as_template", value)  # ${VAR} braces are literal
        for placeholder in template_names(template):
            if placeholder not in allowed and not checked.wrong_at(*_CONTEXT):
                checked.error((*loc, "add", name), f"unknown placeholder {{{placeholder}}} (known: {', '.join(sorted(allowed))})")
        add.append((name, template))
    return ParamRules(tuple(rules.remove), tuple(rules.rename.items()), tuple(add), case_insensitive=headers)


def _context_value(
    checked: Checked, loc: Loc, name: str, pattern: str | None, allow_private: bool, label: str = "", keep: KeepFile | None = None
) -> ContextValue | None:
    """One ``callback.keep`` entry or the ``tenant``: a name, an anchored pattern (or a table of hosts), the private flag."""
    if not _judged(name):
        return None  # missing or wrong: said already
    param = ""
    if keep is not None and keep.placeholder is not None:
        if not _PARAM.fullmatch(name):
            checked.error(loc, f"{name!r} can not be a callback parameter's name")
            return None
        param, name = name, keep.placeholder
        loc = (*loc, "placeholder")
    if not _IDENTIFIER.fullmatch(name) or name in _RESERVED or name.startswith("authorize_"):
        checked.error(loc, f"{name!r} can not be a context name (letters, digits, '_'; not a built-in placeholder)")
        return None
    hosts = dict(keep.hosts) if keep is not None and keep.hosts else None
    if hosts is not None:
        if keep is not None and keep.url:
            checked.error((*loc[:3], "hosts"), "a table of hosts names hosts, not whole URLs: leave out url: true")
        for value, host in hosts.items():
            if not _HOST.fullmatch(host):
                checked.error((*loc[:3], "hosts", value), f"{host!r} is not a host name")
    elif pattern is None:
        checked.required((*loc[:3], "pattern"))
        return None
    try:
        compiled = re.compile(pattern if pattern is not None else "(?!)")
    except re.error as exc:
        checked.error((*loc[:3], "pattern"), f"not a regular expression: {exc}")
        return None
    url = keep is not None and keep.url
    return ContextValue(name, compiled, allow_private, label, param=param, url=url, hosts=hosts)


def _tenant(checked: Checked, tenant: TenantFile | None) -> ContextValue | None:
    if tenant is None:
        return None
    if not tenant.label:
        checked.error(("tenant", "label"), "the form needs a label (what the user is asked for)")
    return _context_value(checked, ("tenant",), tenant.name, tenant.pattern, tenant.allow_private, tenant.label)


def _url(
    checked: Checked, loc: Loc, text: str | None, specs: tuple[ContextValue, ...] | None = None, *, required: bool = False
) -> str:
    """A URL; with ``specs``, a template whose placeholders in the host must have a declared pattern.

    A plain URL is checked as any; a template is checked with a sample value in each placeholder,
    and http is allowed only toward hosts whose values say ``allow_private``.
    """
    if text is None:
        if required:
            checked.required(loc)
        return ""
    if not _judged(text):
        return text
    if "{" not in text or specs is None:
        problem = url_problem(text)
        if problem:
            checked.error(loc, problem)
        return text
    known = {spec.name: spec for spec in specs}
    names = template_names(text)
    unknown = [name for name in names if name not in known]
    if unknown:
        if not checked.wrong_at(*_CONTEXT):  # else the name's declaration was the mistake
            checked.error(loc, f"unknown placeholder {{{unknown[0]}}} (a URL may use: {', '.join(sorted(known)) or 'none'})")
        return text
    host_names = url_placeholders_in_host(text)
    leading = leading_placeholder(text)
    samples = {name: "https://x" if known[name].url else "x" for name in names}
    for name in names:
        if known[name].url and name != leading:
            checked.error(loc, f"{{{name}}} is a whole origin: it can only start the URL ({{{name}}}/path)")
            return text
    if leading is not None and not known[leading].url:
        checked.error(loc, f"must be an absolute http(s) URL, not {text!r} ({{{leading}}} is not a url: true value)")
        return text
    if leading is not None and text[len(leading) + 2 : len(leading) + 3] not in ("", "/"):
        checked.error(loc, f"a path must follow {{{leading}}} (/…), not {text!r}")
        return text
    parts = urlsplit(render_template(text, samples))
    private = bool(host_names) and all(known[name].allow_private for name in host_names)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        checked.error(loc, f"must be an absolute http(s) URL, not {text!r}")
    elif parts.scheme == "http" and not private and not is_loopback_host(parts.hostname):
        checked.error(loc, f"must use https (plain http only for localhost or allow_private hosts), not {text!r}")
    return text


def _platform(checked: Checked, model: MappingFile) -> PlatformClient:
    platform = model.platform
    for index, uri in enumerate(platform.redirect_uris):
        problem = check_pattern(uri)
        if problem:
            checked.error(("platform", "redirect_uris", index), problem)
    if platform.profile == "none" and not platform.redirect_uris and not checked.wrong_at(("platform", "profile"), ("platform", "redirect_uris")):
        checked.error(("platform",), "platform needs a profile (alexa, google, smartthings, alexa-mcp) or redirect_uris")
    if len(platform.client_secret) < MIN_PLATFORM_SECRET and _judged(platform.client_secret):
        checked.error(("platform", "client_secret"), f"must be at least {MIN_PLATFORM_SECRET} characters")
    if platform.profile in PKCE_S256_PROFILES and platform.pkce not in (None, "S256"):
        # The profile's demand wins over a weaker setting (copied from an alexa example, say):
        # a platform held to OAuth 2.1 must not be offered plain or no PKCE (metadata included).
        checked.error(
            ("platform", "pkce"),
            f"the {platform.profile} profile requires PKCE with S256 (OAuth 2.1 §4.1.1): remove pkce, or set it to S256",
        )
    ids = (platform.redirect_uris, platform.vendor_ids, platform.project_ids)
    return PlatformClient(
        client_id=platform.client_id,
        client_secret=platform.client_secret,
        redirect_policy=build_policy(platform.profile, redirect_uris=ids[0], vendor_ids=ids[1], project_ids=ids[2]),
        profile=platform.profile,
        pkce=platform.pkce or ("S256" if platform.profile in PKCE_S256_PROFILES else "optional"),
        sample_redirect_uri=sample_redirect_uri(platform.profile, *ids),
    )


def _token_request(
    checked: Checked, token: TokenFile, allowed: frozenset[str], specs: tuple[ContextValue, ...], *, url_required: bool
) -> TokenRequest:
    return TokenRequest(
        _url(checked, (*_TOKEN, "url"), token.url, specs, required=url_required),
        token.method,
        token.encoding,
        token.client_auth,
        _param_rules(checked, (*_TOKEN, "params"), token.params, allowed),
        _param_rules(checked, (*_TOKEN, "headers"), token.headers, allowed, headers=True),
        token.timeout,
        tuple(token.typed.items()),
    )


def _override(checked: Checked, loc: Loc, base: TokenRequest, rules: OverrideFile, allowed: frozenset[str]) -> TokenRequest:
    """``refresh`` / ``client_credentials``: the token request with these rules after its own."""
    return dataclasses.replace(
        base,
        client_auth=rules.client_auth or base.client_auth,
        params=base.params.merged(_param_rules(checked, (*loc, "params"), rules.params, allowed)),
        headers=base.headers.merged(_param_rules(checked, (*loc, "headers"), rules.headers, allowed, headers=True)),
        typed=tuple({**dict(base.typed), **rules.typed}.items()),
    )


def _exchange(
    checked: Checked, rules: ExchangeFile | None, allowed: frozenset[str], specs: tuple[ContextValue, ...], timeout: float | None
) -> ExchangeRequest | None:
    """``upstream.token.exchange``: a request of its own (its parameters start from none), and where its token is."""
    if rules is None:
        return None
    loc: Loc = (*_TOKEN, "exchange")
    allowed = allowed | {"access_token"}
    request = TokenRequest(
        _url(checked, (*loc, "url"), rules.url, specs, required=True),
        rules.method,
        rules.encoding,
        rules.client_auth or "none",
        _param_rules(checked, (*loc, "params"), rules.params, allowed),
        _param_rules(checked, (*loc, "headers"), rules.headers, allowed, headers=True),
        timeout,
    )
    token = compile_jmespath(checked, (*loc, "token"), rules.token) or _FALLBACK
    return ExchangeRequest(request, token, authenticated=rules.client_auth is not None)


def _answer(checked: Checked, model: MappingFile) -> AnswerRules:
    answer = model.upstream.answer
    loc: Loc = ("upstream", "answer")
    fields = {
        name: compiled
        for name, text in answer.fields.model_dump().items()
        if (compiled := compile_jmespath(checked, (*loc, "fields", name), text)) is not None
    }
    error = answer.error
    for upstream_code, rfc_code in error.map.items():
        if rfc_code not in TOKEN_ERRORS:
            checked.error((*loc, "error", "map", upstream_code), f"{rfc_code!r} is not an RFC 6749 token error")
    when = compile_jmespath(checked, (*loc, "error", "when"), error.when) if error.when is not None else None
    return AnswerRules(
        format=answer.format,
        root=compile_jmespath(checked, (*loc, "root"), answer.root) if answer.root is not None else None,
        fields=fields,
        expires_in_default=answer.expires_in_default,
        expires_at_iso=answer.expires_at_format == "iso8601",
        scope_separator=model.upstream.scope_separator,
        error=ErrorRules(
            when=when,
            code=compile_jmespath(checked, (*loc, "error", "code"), error.code) or _FALLBACK,
            description=compile_jmespath(checked, (*loc, "error", "description"), error.description) or _FALLBACK,
            map=dict(error.map),
        ),
    )


def _discovery(checked: Checked, text: str | None, discover: Callable[[str], Discovered] | None) -> tuple[str | None, Discovered | None]:
    """``upstream.discovery``: the URL, and the document when ``discover`` may fetch it.

    Without ``discover`` (``gateway check`` of a mapping it does not serve) nothing is fetched,
    and a URL still holding an unset variable is not judged: the variable is the missing piece.
    """
    if text is None or discover is None and _UNRESOLVED.search(text):
        return text, None
    url = _url(checked, ("upstream", "discovery"), text)
    if not url or discover is None:
        return url, None
    try:
        return url, discover(url)
    except DiscoveryError as exc:
        checked.error(("upstream", "discovery"), str(exc))
        return url, None


def parse_mapping(
    name: str, document: object, *, file: str, problems: Problems, discover: Callable[[str], Discovered] | None = None
) -> ProviderMapping | None:
    """Read one mapping document (from :func:`~gateway.config.yamlfile.load_yaml`); problems go to ``problems``.

    ``None`` when the document is too broken to build from (its problems are reported).
    ``discover`` fetches an ``upstream.discovery`` document (:func:`gateway.config.discovery.fetch`); the
    loader passes it for the mappings it serves. Without it the endpoints a discovery document
    would give stay empty (offline checking).
    """
    checked = Checked(file, document, problems)
    if not MAPPING_NAME.fullmatch(name):
        checked.error((), f"mapping name {name!r} must be lower-case letters, digits, '-' or '_' (it is a URL path)")
    if isinstance(document, MappingABC) and document.get("extends") is not None and getattr(document, "bases", None) is None:
        checked.error(("extends",), "the base was not merged: read mapping files with gateway.config.extends.load_mapping_document")
        return None
    model = validate(MappingFile, document, checked)
    if model is None:
        return None
    platform = _platform(checked, model)
    callback_keep = tuple(
        value
        for key, keep in model.callback.keep.items()
        if (value := _context_value(checked, ("callback", "keep", key), key, keep.pattern, keep.allow_private, keep=keep)) is not None
    )
    tenant = _tenant(checked, model.tenant)
    specs = callback_keep + ((tenant,) if tenant is not None else ())

    upstream = model.upstream
    discovery_url, discovered = _discovery(checked, upstream.discovery, discover)
    urls_required = not discovery_url and not checked.wrong_at(("upstream", "discovery"))
    issuer = upstream.issuer if upstream.issuer is not None else (discovered.issuer if discovered is not None else None)
    # RFC 9207 §2.4: an upstream that says it sends `iss` must always send it.
    advertised = bool(discovered and discovered.document.get("authorization_response_iss_parameter_supported") is True)
    require_iss = advertised if upstream.require_iss is None else upstream.require_iss
    if require_iss and issuer is None and discovery_url is None:
        checked.error(("upstream", "require_iss"), "needs upstream.issuer (or upstream.discovery) to compare iss with")

    tenant_only = (tenant,) if tenant is not None else ()
    authorize_url = _url(checked, (*_AUTHORIZE, "url"), upstream.authorize.url, tenant_only, required=urls_required)
    if not authorize_url and discovered is not None:
        authorize_url = discovered.authorization_endpoint
    authorize_params = _param_rules(checked, (*_AUTHORIZE, "params"), upstream.authorize.params, AUTHORIZE_PLACEHOLDERS)
    authorize = AuthorizeRequest(authorize_url, authorize_params, upstream.authorize.scope, upstream.authorize.pkce)

    sent = _SENT_AUTHORIZE | {new for _, new in authorize_params.rename} | {name for name, _ in authorize_params.add}
    flow_names = frozenset({"state"} | {f"authorize_{name}" for name in sent if _IDENTIFIER.fullmatch(name)})
    allowed = TOKEN_PLACEHOLDERS | flow_names | {spec.name for spec in specs}
    token = _token_request(checked, upstream.token, allowed, specs, url_required=urls_required)
    if not token.url and discovered is not None:
        token = dataclasses.replace(token, url=discovered.token_endpoint)
    refresh_rules = upstream.token.refresh
    refresh = _override(checked, (*_TOKEN, "refresh"), token, refresh_rules, allowed)
    if refresh_rules.url is not None or refresh_rules.method is not None or refresh_rules.encoding is not None:
        refresh = dataclasses.replace(  # an endpoint of its own (Figma, Instagram): decided here, not per request
            refresh,
            url=_url(checked, (*_TOKEN, "refresh", "url"), refresh_rules.url, specs) or refresh.url,
            method=refresh_rules.method or refresh.method,
            encoding=refresh_rules.encoding or refresh.encoding,
        )
    credentials = upstream.token.client_credentials
    client_credentials = (
        _override(checked, (*_TOKEN, "client_credentials"), token, credentials, allowed) if credentials is not None else None
    )
    exchange = _exchange(checked, upstream.token.exchange, allowed, specs, token.timeout)
    steps = (refresh, token) + ((exchange.request,) if exchange is not None else ())
    used = {name for step in steps for rules in (step.params, step.headers) for name in _rule_names(rules)}
    revoke = upstream.revoke
    return ProviderMapping(
        name=name,
        file=file,
        grant=model.grant,
        platform=platform,
        issuer=issuer,
        upstream_client_id=upstream.client_id,
        upstream_client_secret=upstream.client_secret,
        scope_separator=upstream.scope_separator,
        authorize=authorize,
        token=token,
        refresh=refresh,
        keep_refresh_token=upstream.token.refresh.keep_refresh_token,
        refresh_grace=upstream.token.refresh.grace,
        answer=_answer(checked, model),
        examples=tuple(
            Example(
                name=example.name or f"example {index + 1}",
                grant=example.grant,
                status=example.status,
                content_type=example.content_type,
                body=example.body,
                expect=example.expect.model_dump(exclude_unset=True),
                file=checked.at(("examples", index))[0],
                line=checked.at(("examples", index))[1],
                now=example.now,
                first=example.first,
            )
            for index, example in enumerate(model.examples)
        ),
        discovery=discovery_url,
        require_iss=require_iss,
        client_credentials=client_credentials,
        revoke=RevokeRequest(_url(checked, ("upstream", "revoke", "url"), revoke.url), revoke.client_auth) if revoke else None,
        callback_keep=callback_keep,
        tenant=tenant,
        flow_values=tuple(sorted(used & flow_names)),
        exchange=exchange,
        about=build_about(checked, model.about),
        extends=model.extends,
        bases=tuple(getattr(document, "bases", None) or ()),
    )


def _rule_names(rules: ParamRules | None) -> set[str]:
    """Every placeholder the rules' templates use (following ``then``)."""
    names: set[str] = set()
    while rules is not None:
        names.update(name for _, template in rules.add for name in template_names(template))
        rules = rules.then
    return names
