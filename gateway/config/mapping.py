"""The mapping model: everything provider-specific, loaded from one YAML file per provider.

A mapping is read once, validated (``file:line`` problems), and frozen. JMESPath expressions are
compiled here; templates are checked for unknown placeholders here; redirect URI rules are
compiled here. Handlers only ever *apply* a mapping: they hold no provider names.

The vocabulary (README "Mapping reference" documents it, in the order it applies)::

    platform:      profile, client_id, client_secret, redirect_uris, vendor_ids, project_ids, pkce
    grant:         code | implicit
    upstream:
      discovery, issuer, require_iss, client_id, client_secret, scope_separator
      authorize:   url, scope, pkce, params {remove, rename, add}
      token:       url, method, encoding, client_auth, timeout, params {remove, rename, add},
                   headers {remove, add}, refresh {client_auth, params, headers, keep_refresh_token, grace},
                   client_credentials {client_auth, params, headers}
      revoke:      url, client_auth
      answer:      format, root, fields {access_token, refresh_token, expires_in, expires,
                   expires_at, scope, id_token}, expires_in_default,
                   error {when, code, description, map}
    callback:      keep {name: {pattern, allow_private}}
    tenant:        name, pattern, label, allow_private
    examples:      [{name, grant, status, content_type, body, expect}]

Per-link context (:mod:`gateway.oauth.linkcontext`): ``upstream.token`` templates may also use
``{state}``, ``{authorize_<param>}`` (what the upstream authorization request carried), the
``callback.keep`` names and the ``tenant`` name; ``authorize.url`` may use the tenant name.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jmespath.parser

from gateway.config.reader import Section, is_loopback_host
from gateway.oauth.linkcontext import ContextValue, url_placeholders_in_host
from gateway.oauth.platforms import (
    PKCE_S256_PROFILES,
    PROFILES,
    RedirectPolicy,
    build_policy,
    check_pattern,
    sample_redirect_uri,
)
from gateway.oauth.responses import TOKEN_ERRORS
from gateway.upstream.discovery import Discovered, DiscoveryError

__all__ = [
    "ParamRules",
    "PlatformClient",
    "AuthorizeRequest",
    "TokenRequest",
    "RevokeRequest",
    "AnswerRules",
    "ErrorRules",
    "Example",
    "ProviderMapping",
    "parse_mapping",
    "AUTHORIZE_PLACEHOLDERS",
    "TOKEN_PLACEHOLDERS",
]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

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
#: Parameters the gateway itself puts in every upstream authorization request.
_SENT_AUTHORIZE = frozenset(
    {"response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"}
)
_FIELD_DEFAULTS = {
    "access_token": "access_token",
    "refresh_token": "refresh_token",
    "expires_in": "expires_in",
    "expires": "expires",
    "expires_at": "expires_at",
    "scope": "scope",
    "id_token": "id_token",
}


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

    def merged(self, other: ParamRules) -> ParamRules:
        """These rules, then ``other`` on their result (used for refresh overrides)."""
        tail = other if self.then is None else self.then.merged(other)
        return dataclasses.replace(self, then=tail)


#: ``{name}`` placeholders; ``{{`` and ``}}`` are literal braces. Only known names are replaced,
#: so braces that arrive in a ``${VAR}`` value (a secret) are left alone.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def template_names(template: str) -> list[str]:
    return [match.group(1) for match in _PLACEHOLDER.finditer(template) if match.group(1)]


def render_template(template: str, values: MappingABC[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return match.group(0)[0]
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(replace, template)


@dataclass(frozen=True)
class PlatformClient:
    """The OAuth client on the left (Alexa, Google) as the gateway knows it."""

    client_id: str
    client_secret: str
    redirect_policy: RedirectPolicy
    profile: str
    pkce: str  # "optional" | "required" | "S256" (required, and only with S256: OAuth 2.1 §4.1.1)
    #: A redirect URI this platform really sends (its profile's, with a pinned id if any): what
    #: ``gateway linktest`` plays with. ``None`` when only wildcard patterns are configured.
    sample_redirect_uri: str | None = None


@dataclass(frozen=True)
class AuthorizeRequest:
    url: str
    params: ParamRules
    scope: str | None  # a fixed upstream scope, or None to pass the platform's on
    pkce: str  # "none" | "S256" | "plain"


@dataclass(frozen=True)
class TokenRequest:
    url: str
    method: str
    encoding: str  # form | json | query
    client_auth: str  # basic | body | both | none
    params: ParamRules
    headers: ParamRules
    timeout: float | None


@dataclass(frozen=True)
class RevokeRequest:
    """The upstream's RFC 7009 revocation endpoint and how the gateway authenticates there."""

    url: str
    client_auth: str  # basic | body | both | none


@dataclass(frozen=True)
class ErrorRules:
    when: jmespath.parser.ParsedResult | None
    code: jmespath.parser.ParsedResult
    description: jmespath.parser.ParsedResult
    map: MappingABC[str, str]


@dataclass(frozen=True)
class AnswerRules:
    format: str  # json | form | auto
    root: jmespath.parser.ParsedResult | None
    fields: MappingABC[str, jmespath.parser.ParsedResult]
    expires_in_default: int | None  # None: leave expires_in out when the upstream gives none
    scope_separator: str
    error: ErrorRules


@dataclass(frozen=True)
class Example:
    """A documented upstream answer and the normalised result it must give."""

    name: str
    grant: str
    status: int
    content_type: str
    body: Any
    expect: MappingABC[str, Any]
    file: str
    line: int
    now: float | None = None  # the clock for answers with an absolute expires_at


@dataclass(frozen=True)
class ProviderMapping:
    name: str
    file: str
    grant: str  # code | implicit
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

    @property
    def context_specs(self) -> tuple[ContextValue, ...]:
        return self.callback_keep + ((self.tenant,) if self.tenant is not None else ())

    @property
    def keeps_context(self) -> bool:
        """Refresh tokens go to the platform sealed with the context (:mod:`gateway.oauth.linkcontext`)."""
        return bool(self.context_specs or self.flow_values)
    #: ``upstream.token.refresh.grace``: seconds a refresh answer is given again (gateway/oauth/refresh.py).
    refresh_grace: int = 60


_FALLBACK: jmespath.parser.ParsedResult = jmespath.compile("`null`")


def _check_template(section: Section, key: str, template: str, allowed: frozenset[str]) -> None:
    for name in template_names(template):
        if name not in allowed:
            section.error(key, f"unknown placeholder {{{name}}} (known: {', '.join(sorted(allowed))})")


def _param_rules(section: Section, key: str, allowed: frozenset[str], *, headers: bool = False) -> ParamRules:
    rules = section.section(key)
    remove = tuple(rules.str_list("remove"))
    rename = tuple(rules.str_map("rename").items())
    add_section = rules.section("add")
    add: list[tuple[str, str]] = []
    for name in add_section.items():
        template = add_section.text(name)
        if template is not None:
            template = getattr(template, "as_template", template)  # ${VAR} braces are literal
            _check_template(add_section, name, template, allowed)
            add.append((name, template))
    add_section.finish()
    rules.finish()
    return ParamRules(remove, rename, tuple(add), case_insensitive=headers)


def _context_value(section: Section, name: str, *, label: bool = False) -> ContextValue | None:
    """One ``callback.keep`` entry or the ``tenant``: a name, an anchored pattern, the private flag."""
    if not _IDENTIFIER.fullmatch(name) or name in TOKEN_PLACEHOLDERS or name == "state" or name.startswith("authorize_"):
        section.error(None, f"{name!r} can not be a context name (letters, digits, '_'; not a built-in placeholder)")
        return None
    text = section.text("pattern")
    allow_private = section.flag("allow_private", False)
    shown = section.text("label", "") if label else ""
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        section.error("pattern", f"not a regular expression: {exc}")
        return None
    return ContextValue(name, pattern, allow_private, shown)


def _callback_keep(section: Section) -> tuple[ContextValue, ...]:
    keep = section.section("keep")
    values: list[ContextValue] = []
    for name in keep.items():
        entry = keep.section(name)
        value = _context_value(entry, name)
        entry.finish()
        if value is not None:
            values.append(value)
    keep.finish()
    section.finish()
    return tuple(values)


def _tenant(root: Section) -> ContextValue | None:
    if root.raw("tenant") is None:
        return None
    section = root.section("tenant")
    value = _context_value(section, section.text("name"), label=True)
    if value is not None and not value.label:
        section.error("label", "the form needs a label (what the user is asked for)")
    section.finish()
    return value


def _url_template(section: Section, key: str, specs: tuple[ContextValue, ...], *, required: bool) -> Any:
    """A URL that may hold context placeholders; those in the host must have a declared pattern.

    A plain URL is checked as before; a template is checked with a sample value in each
    placeholder, and http is allowed only toward hosts whose values say ``allow_private``.
    """
    text = section.text(key) if required else section.text(key, None)
    if not text or "{" not in text or getattr(text, "unresolved", False):
        return section.url(key) if required else section.url(key, None)
    known = {spec.name: spec for spec in specs}
    names = template_names(text)
    for name in names:
        if name not in known:
            section.error(key, f"unknown placeholder {{{name}}} (a URL may use: {', '.join(sorted(known)) or 'none'})")
            return text
    host_names = url_placeholders_in_host(text)
    sample = render_template(text, {name: "x" for name in names})
    parts = urlsplit(sample)
    private = bool(host_names) and all(known[name].allow_private for name in host_names)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        section.error(key, f"must be an absolute http(s) URL, not {text!r}")
    elif parts.scheme == "http" and not private and not is_loopback_host(parts.hostname):
        section.error(key, f"must use https (plain http only for localhost or allow_private hosts), not {text!r}")
    return text


def _platform(section: Section) -> PlatformClient:
    profile = section.text("profile", "none", choices=PROFILES)
    redirect_uris = section.str_list("redirect_uris")
    for index, uri in enumerate(redirect_uris):
        problem = check_pattern(uri)
        if problem:
            line = section.item_line("redirect_uris", index)
            section.problems.add(section.file, line, f"{section.path('redirect_uris')}: {problem}")
    vendor_ids = section.str_list("vendor_ids")
    project_ids = section.str_list("project_ids")
    if profile == "none" and not redirect_uris:
        section.error(None, "platform needs a profile (alexa, google, smartthings, alexa-mcp) or redirect_uris")
    client = PlatformClient(
        client_id=section.text("client_id"),
        client_secret=section.text("client_secret"),
        redirect_policy=build_policy(
            profile, redirect_uris=redirect_uris, vendor_ids=vendor_ids, project_ids=project_ids
        ),
        profile=profile,
        pkce=section.text(
            "pkce", "S256" if profile in PKCE_S256_PROFILES else "optional", choices=("optional", "required", "S256")
        ),
        sample_redirect_uri=sample_redirect_uri(profile, redirect_uris, vendor_ids, project_ids),
    )
    if client.client_secret is not None and len(client.client_secret) < 8:
        section.error("client_secret", "must be at least 8 characters")
    section.finish()
    return client


def _token_request(
    section: Section,
    *,
    base: TokenRequest | None = None,
    url_required: bool = True,
    allowed: frozenset[str] = TOKEN_PLACEHOLDERS,
    specs: tuple[ContextValue, ...] = (),
) -> TokenRequest:
    if base is None:
        url = _url_template(section, "url", specs, required=url_required)
        method = section.text("method", "POST", choices=("POST", "GET"))
        encoding = section.text("encoding", "form", choices=("form", "json", "query"))
        timeout = section.number("timeout", None, minimum=0.1, maximum=60.0)
        client_auth = section.text("client_auth", "basic", choices=("basic", "body", "both", "none"))
        params = _param_rules(section, "params", allowed)
        headers = _param_rules(section, "headers", allowed, headers=True)
        return TokenRequest(url, method, encoding, client_auth, params, headers, timeout)
    client_auth = section.text("client_auth", base.client_auth, choices=("basic", "body", "both", "none"))
    params = base.params.merged(_param_rules(section, "params", allowed))
    headers = base.headers.merged(_param_rules(section, "headers", allowed, headers=True))
    return TokenRequest(base.url, base.method, base.encoding, client_auth, params, headers, base.timeout)


def _revoke(upstream: Section) -> RevokeRequest | None:
    """``upstream.revoke``: absent means the upstream has no revocation endpoint (RFC 7009)."""
    if upstream.raw("revoke") is None:
        return None
    section = upstream.section("revoke")
    revoke = RevokeRequest(
        url=section.url("url"),
        client_auth=section.text("client_auth", "basic", choices=("basic", "body", "both", "none")),
    )
    section.finish()
    return revoke


def _answer(section: Section, scope_separator: str) -> AnswerRules:
    fields_section = section.section("fields")
    fields: dict[str, jmespath.parser.ParsedResult] = {}
    for name, default in _FIELD_DEFAULTS.items():
        compiled = fields_section.expression(name, default)
        if compiled is not None:
            fields[name] = compiled
    fields_section.finish()

    error_section = section.section("error")
    error_map = error_section.str_map("map")
    for upstream_code, rfc_code in error_map.items():
        if rfc_code not in TOKEN_ERRORS:
            section.problems.add(
                section.file,
                error_section.entry_line("map", upstream_code),
                f"{error_section.path('map')}.{upstream_code}: {rfc_code!r} is not an RFC 6749 token error",
            )
    error = ErrorRules(
        when=error_section.expression("when", None),
        code=error_section.expression("code", "error") or _FALLBACK,
        description=error_section.expression("description", "error_description") or _FALLBACK,
        map=error_map,
    )
    error_section.finish()
    rules = AnswerRules(
        format=section.text("format", "auto", choices=("json", "form", "auto")),
        root=section.expression("root", None),
        fields=fields,
        expires_in_default=(
            None
            if "expires_in_default" in section.items() and section.raw("expires_in_default") is None
            else section.integer("expires_in_default", 3600, minimum=1, maximum=10 * 365 * 86400)
        ),
        scope_separator=scope_separator,
        error=error,
    )
    section.finish()
    return rules


def _examples(section: Section) -> tuple[Example, ...]:
    examples: list[Example] = []
    raw = section.raw("examples")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        section.error("examples", "must be a list")
        return ()
    for index, item in enumerate(raw):
        line = raw.line_of(index) if hasattr(raw, "line_of") else section.line("examples")
        example = Section(item, file=section.file, problems=section.problems, where=f"examples[{index}]", line=line)
        body = example.raw("body")
        expected = example.raw("expect")
        if not isinstance(expected, dict):
            example.error("expect", "must be a mapping of the normalised answer's fields")
            expected = {}
        examples.append(
            Example(
                name=example.text("name", f"example {index + 1}"),
                grant=example.text("grant", "authorization_code", choices=("authorization_code", "refresh_token")),
                status=example.integer("status", 200, minimum=100, maximum=599),
                content_type=example.text("content_type", "application/json"),
                body=body,
                expect=dict(expected),
                file=section.file,
                line=example.line(),
                now=example.number("now", None),
            )
        )
        example.finish()
    return tuple(examples)


#: What ``gateway check`` leaves in a value whose environment variable is not set (``<VAR>``).
_UNRESOLVED = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")


def _discovery(upstream: Section, discover: Callable[[str], Discovered] | None) -> tuple[str | None, Discovered | None]:
    """``upstream.discovery``: the URL, and the document when ``discover`` may fetch it.

    Without ``discover`` (``gateway check`` of a mapping it does not serve) nothing is fetched,
    and a URL still holding an unset variable is not judged: the variable is the missing piece.
    """
    if discover is None:
        text = upstream.text("discovery", None)
        if text is None or _UNRESOLVED.search(text):
            return text, None
    url = upstream.url("discovery", None)
    if not url or discover is None:
        return url, None
    try:
        return url, discover(url)
    except DiscoveryError as exc:
        upstream.error("discovery", str(exc))
        return url, None


def parse_mapping(
    name: str, section: Section, *, discover: Callable[[str], Discovered] | None = None
) -> ProviderMapping | None:
    """Read one mapping file; problems go to ``section.problems``. ``None`` only for a bad name.

    ``discover`` fetches an ``upstream.discovery`` document (:func:`gateway.upstream.discovery.fetch`); the
    loader passes it for the mappings it serves. Without it the endpoints a discovery document
    would give stay empty (offline checking).
    """
    if not _NAME.fullmatch(name):
        section.error(None, f"mapping name {name!r} must be lower-case letters, digits, '-' or '_' (it is a URL path)")
    platform = _platform(section.section("platform"))
    grant = section.text("grant", "code", choices=("code", "implicit"))

    callback_keep = _callback_keep(section.section("callback"))
    tenant = _tenant(section)
    specs = callback_keep + ((tenant,) if tenant is not None else ())

    upstream = section.section("upstream")
    discovery_url, discovered = _discovery(upstream, discover)
    scope_separator = upstream.text("scope_separator", " ")
    issuer = upstream.text("issuer", None)
    if issuer is None and discovered is not None:
        issuer = discovered.issuer
    # RFC 9207 §2.4: an upstream that says it sends `iss` must always send it.
    advertised = bool(discovered and discovered.document.get("authorization_response_iss_parameter_supported") is True)
    require_iss = upstream.flag("require_iss", advertised)
    if require_iss and issuer is None and discovery_url is None:
        upstream.error("require_iss", "needs upstream.issuer (or upstream.discovery) to compare iss with")
    upstream_client_id = upstream.text("client_id")
    upstream_client_secret = upstream.text("client_secret", "")

    authorize_section = upstream.section("authorize")
    authorize_url = _url_template(authorize_section, "url", (tenant,) if tenant else (), required=not discovery_url)
    if not authorize_url:
        authorize_url = discovered.authorization_endpoint if discovered is not None else ""
    authorize_params = _param_rules(authorize_section, "params", AUTHORIZE_PLACEHOLDERS)
    authorize = AuthorizeRequest(
        url=authorize_url,
        params=authorize_params,
        scope=authorize_section.text("scope", None),
        pkce=authorize_section.text("pkce", "none", choices=("none", "S256", "plain")),
    )
    authorize_section.finish()

    token_section = upstream.section("token")
    refresh_section = token_section.section("refresh")
    sent = _SENT_AUTHORIZE | {new for _, new in authorize_params.rename} | {name for name, _ in authorize_params.add}
    flow_names = frozenset({"state"} | {f"authorize_{name}" for name in sent if _IDENTIFIER.fullmatch(name)})
    allowed = TOKEN_PLACEHOLDERS | flow_names | {spec.name for spec in specs}
    token = _token_request(token_section, url_required=not discovery_url, allowed=allowed, specs=specs)
    if not token.url:
        token = dataclasses.replace(token, url=discovered.token_endpoint if discovered is not None else "")
    refresh = _token_request(refresh_section, base=token, allowed=allowed)
    used = {name for rules in (refresh.params, refresh.headers, token.params, token.headers) for name in _rule_names(rules)}
    keep_refresh_token = refresh_section.flag("keep_refresh_token", False)
    refresh_grace = refresh_section.integer("grace", 60, minimum=0, maximum=600)
    refresh_section.finish()
    client_credentials = None
    if token_section.raw("client_credentials") is not None:
        credentials_section = token_section.section("client_credentials")
        client_credentials = _token_request(credentials_section, base=token)
        credentials_section.finish()
    token_section.finish()
    revoke = _revoke(upstream)

    answer = _answer(upstream.section("answer"), scope_separator)
    upstream.finish()
    examples = _examples(section)
    section.finish()
    return ProviderMapping(
        name=name,
        file=section.file,
        grant=grant,
        platform=platform,
        issuer=issuer,
        upstream_client_id=upstream_client_id,
        upstream_client_secret=upstream_client_secret,
        scope_separator=scope_separator,
        authorize=authorize,
        token=token,
        refresh=refresh,
        keep_refresh_token=keep_refresh_token,
        refresh_grace=refresh_grace,
        answer=answer,
        examples=examples,
        discovery=discovery_url,
        require_iss=require_iss,
        client_credentials=client_credentials,
        revoke=revoke,
        callback_keep=callback_keep,
        tenant=tenant,
        flow_values=tuple(sorted(used & flow_names)),
    )


def _rule_names(rules: ParamRules | None) -> set[str]:
    """Every placeholder the rules' templates use (following ``then``)."""
    names: set[str] = set()
    while rules is not None:
        names.update(name for _, template in rules.add for name in template_names(template))
        rules = rules.then
    return names
