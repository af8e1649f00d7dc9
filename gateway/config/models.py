"""The two file kinds, declared once: ``gateway.yaml`` (:class:`GatewayFile`) and a mapping (:class:`MappingFile`).

Each key's type, choices, bounds, default and meaning (the attribute docstring) live here and
nowhere else. From these models come the validation of every file (:func:`gateway.config.fields.validate`,
every problem at once as ``file:line``), the JSON Schemas editors use (``gateway schema`` writes
``mappings/schema.json`` and ``gateway.schema.json``) and the reference tables of ``docs/configuration.md`` and
``docs/mapping-guide.md`` (``gateway schema --docs``).

What a model cannot say alone (a URL's rules, JMESPath, templates, redirect URI patterns, defaults
that depend on another key) the builders check: :func:`gateway.config.mapping.parse_mapping` and
:func:`gateway.config.settings.load_config`, which turn these models into the frozen runtime objects.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, StrictInt, StrictStr, WrapValidator

from gateway.config.fields import Day, FileModel, Flag, Number, Text, TextList, TextMap, Whole, _problem
from gateway.config.yamlfile import Interpolated

#: The flow trace's default byte budget (``trace.max_bytes``): 2 MiB of the JSON it serves.
DEFAULT_TRACE_MAX_BYTES = 2 * 1024 * 1024

__all__ = [
    "MappingFile", "GatewayFile", "Profile", "PlatformPkce", "Grant", "UpstreamPkce", "Method", "Encoding",
    "ClientAuth", "AnswerFormat", "ExampleGrant", "TokenErrorCode", "LogFormat", "LogLevel", "MIN_PLATFORM_SECRET",
    "ExpiresAtFormat", "TypedValue", "Category", "CATEGORIES", "AboutFile", "SunsetFile", "MAPPING_NAME",
]

Profile = Literal["alexa", "google", "smartthings", "alexa-mcp", "none"]
PlatformPkce = Literal["optional", "required", "S256"]
SealFormat = Literal["aes-gcm", "fernet"]
Grant = Literal["code", "implicit"]
UpstreamPkce = Literal["none", "S256", "plain"]
Method = Literal["POST", "GET"]
Encoding = Literal["form", "json", "query"]
ClientAuth = Literal["basic", "body", "both", "none"]
AnswerFormat = Literal["json", "form", "auto"]
ExpiresAtFormat = Literal["epoch", "iso8601"]


def _typed(value: object, handler: Callable[[object], object]) -> object:
    """A YAML number or ``true``/``false`` as written, or a ``${VAR}`` holding one: never other text
    (that is what ``params.add`` is for)."""
    if isinstance(value, Interpolated):
        if value.unresolved:
            return 0  # `gateway check` without the environment: the variable is the missing piece
        try:
            value = json.loads(value)
        except ValueError:
            raise _problem(f"must be a number or true/false, not {str(value)!r}") from None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and math.isfinite(value)):
        return value
    raise _problem(f"must be a number or true/false, not {value!r}" if isinstance(value, str) else "must be a finite number or true/false")


#: A parameter value with a JSON type of its own (``expires_in: 1800``, ``offline: true``).
TypedValue = Annotated[bool | int | float, WrapValidator(_typed)]
ExampleGrant = Literal["authorization_code", "refresh_token"]
#: RFC 6749 §5.2 error codes.
TokenErrorCode = Literal[
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "server_error", "temporarily_unavailable",
]
#: The same codes as a set: what a token endpoint answers (RFC 6749 §5.2, plus the two §4.1.2.1
#: server codes that platforms understand as "try again later" rather than "unlink").
TOKEN_ERRORS: frozenset[str] = frozenset(get_args(TokenErrorCode))
#: A mapping's name: its file stem, the first segment of its URLs (``/<name>/authorize``).
MAPPING_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
#: What a provider is, for the generated providers page (docs/providers.md).
Category = Literal[
    "identity", "productivity", "storage", "communication", "media", "social", "commerce", "finance", "developer",
    "crm", "support", "games", "device", "energy", "vehicle", "health", "home",
]
CATEGORIES: tuple[str, ...] = get_args(Category)
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
#: The least length of ``platform.client_secret`` (checked by the builder: a missing one is only "required").
MIN_PLATFORM_SECRET = 8
#: A JMESPath expression (compiled when the mapping loads: a bad one is a load error).
JMESPath = Text


# -- a mapping: mappings/<provider>.yaml -------------------------------------------------------------
class PlatformFile(FileModel):
    """The OAuth client on the left (Alexa, Google) and the credentials it presents."""

    profile: Profile = "none"
    """The built-in redirect URI allowlist: `alexa`, `google`, `smartthings` (`https://c2c-{us,eu,ap}.smartthings.com/oauth/callback`) or `alexa-mcp` (Alexa's URIs, PKCE S256 required); `none` needs `redirect_uris`."""
    vendor_ids: TextList = []
    """Pin Alexa's vendor id(s) in the alexa redirect URIs (default: any)."""
    project_ids: TextList = []
    """Pin Google's project id(s) in the google redirect URIs (default: any)."""
    redirect_uris: TextList = []
    """More exact redirect URIs; a `*` stands for one whole path segment."""
    client_id: Text
    """What the platform presents at `/authorize` and `/token`."""
    client_secret: Annotated[Text, Field(json_schema_extra={"minLength": MIN_PLATFORM_SECRET})]
    """What the platform presents at `/token` (at least 8 characters)."""
    pkce: PlatformPkce | None = None
    """PKCE from the platform: `required`: it must send an RFC 7636 challenge; `S256`: it must, and with `S256` only (OAuth 2.1 §4.1.1). Default: `S256` for `alexa-mcp` (which takes nothing weaker: the load fails), else `optional`."""


class ParamRulesFile(FileModel):
    """Kong-style verbs, applied in this order: remove → rename → add."""

    remove: TextList = []
    """Names to drop."""
    rename: TextMap = {}
    """old name → new name."""
    add: TextMap = {}
    """name → template ({client_id}, {redirect_uri}, …); an empty result drops the name."""


class AuthorizeFile(FileModel):
    """The upstream authorization request."""

    url: Text | None = None
    """The provider's authorization endpoint (https); required unless `upstream.discovery` gives it."""
    scope: Text | None = None
    """A fixed scope instead of the platform's (re-separated with `scope_separator`); default: the platform's."""
    pkce: UpstreamPkce = "none"
    """`S256` or `plain`: the gateway does PKCE toward the provider."""
    params: ParamRulesFile = ParamRulesFile()
    """`{remove: [names], rename: {old: new}, add: {name: template}}`; templates may use `{client_id}` (the upstream's), `{redirect_uri}`, `{state}`, `{scope}`, `{code_challenge}`, `{code_challenge_method}`, `{locale}`."""


class OverrideFile(FileModel):
    """Differences from the token request for one grant, added after the token rules."""

    client_auth: ClientAuth | None = None
    """Client authentication for this grant; default: the token request's `client_auth`."""
    params: ParamRulesFile = ParamRulesFile()
    """Parameter rules added after the token request's for this grant."""
    headers: ParamRulesFile = ParamRulesFile()
    """Header rules added after the token request's for this grant."""
    typed: dict[str, TypedValue] = {}
    """Parameters added after the token request's `typed` for this grant (a name here replaces the same name there)."""


class RefreshFile(OverrideFile):
    """Differences for grant_type=refresh_token (added after the token rules)."""

    url: Text | None = None
    """A refresh endpoint of its own (https; Figma's `https://api.figma.com/v1/oauth/refresh`, Instagram's at another host); default: `token.url`. It may use the per-link values `token.url` may."""
    method: Method | None = None
    """`GET` for a refresh endpoint that takes its parameters in the query string (Instagram, Threads); default: `token.method`."""
    encoding: Encoding | None = None
    """`form`, `json` or `query` for the refresh alone; default: `token.encoding`."""

    keep_refresh_token: Flag = False
    """Echo the platform's refresh token when the refresh answer has none."""
    grace: Annotated[Whole, Field(ge=0, le=600)] = 60
    """Seconds the answer to a refresh is given again to the same refresh token and platform client, without an upstream call; `0` turns it off (docs/grace.md)."""


class ExchangeFile(FileModel):
    """A second request after the code exchange, whose answer is the one the platform gets (Instagram's and Threads' long-lived token)."""

    url: Text
    """The endpoint (https) that trades the code exchange's token for the one to keep (Instagram: `https://graph.instagram.com/access_token`)."""
    method: Method = "POST"
    """`GET` puts the parameters in the query string."""
    encoding: Encoding = "form"
    """`form` body, `json` body, or `query`."""
    client_auth: ClientAuth | None = None
    """`basic`, `body`, `both` or `none` as for the token request; absent: no client authentication is added (name what the endpoint wants in `params.add`, e.g. `client_secret: '{client_secret}'`)."""
    token: JMESPath = "access_token"
    """Where the code exchange's answer holds the token to trade (`data[0].access_token` for a wrapped answer); it is the template value `{access_token}`."""
    params: ParamRulesFile = ParamRulesFile()
    """The parameters, from none: `add` them (`grant_type: ig_exchange_token`, `access_token: '{access_token}'`); the token request's templates, and `{access_token}`."""
    headers: ParamRulesFile = ParamRulesFile()
    """Header rules, with the same templates."""


class TokenFile(FileModel):
    """The upstream token request."""

    url: Text | None = None
    """The provider's token endpoint (https); required unless `upstream.discovery` gives it."""
    method: Method = "POST"
    """`GET` puts the parameters in the query string."""
    encoding: Encoding = "form"
    """`form` body, `json` body, or `query`: the parameters in the POST's query string."""
    client_auth: ClientAuth = "basic"
    """`basic` (`Authorization: Basic`), `body` (`client_id` + `client_secret` parameters), `both`, `none` (`client_id` only)."""
    timeout: Annotated[Number, Field(ge=0.1, le=60.0)] | None = None
    """Seconds for the whole call (Alexa gives up at 4.5 s); default: `upstream.timeout` of gateway.yaml."""
    params: ParamRulesFile = ParamRulesFile()
    """The same three verbs; templates may use `{client_id}`, `{client_secret}`, `{redirect_uri}`, `{grant_type}`, `{code}`, `{refresh_token}`, `{code_verifier}`, `{basic_auth}`, and the per-link context: `{state}`, `{authorize_<param>}`, kept callback parameters, the tenant."""
    headers: ParamRulesFile = ParamRulesFile()
    """The same three verbs for headers (names compare case-insensitively), with the same templates."""
    typed: dict[str, TypedValue] = {}
    """Parameters whose value is a JSON number or boolean (Zendesk's `expires_in: 1800`), added after `params`; with `encoding: json` they keep their type, otherwise they go as text (`1800`, `true`)."""
    refresh: RefreshFile = RefreshFile()
    exchange: ExchangeFile | None = None
    """A second step after the code exchange (not after a refresh): its answer, normalised as `answer` says, is what the platform gets; absent: none."""
    client_credentials: OverrideFile | None = None
    """Map the platform's `grant_type=client_credentials` (RFC 6749 §4.4, Alexa+ MCP add-ons) to the provider's own, sent with the gateway's upstream credentials and the platform's `scope`; `{}` takes the token rules as they are (its templates may also use `{scope}`); absent: the grant is refused (`unsupported_grant_type`)."""


class RevokeFile(FileModel):
    """The upstream's RFC 7009 revocation endpoint."""

    url: Text
    """The provider's RFC 7009 revocation endpoint (https)."""
    client_auth: ClientAuth = "basic"
    """`basic`, `body`, `both`, `none` (as for the token request)."""


class FieldsFile(FileModel):
    """Where each field of the answer is, relative to root (JMESPath)."""

    access_token: JMESPath = "access_token"
    """The access token."""
    refresh_token: JMESPath = "refresh_token"
    """The refresh token."""
    expires_in: JMESPath = "expires_in"
    """Relative lifetime in seconds (number or text; 0 counts as missing)."""
    expires: JMESPath = "expires"
    """Relative lifetime used when expires_in is missing (Facebook)."""
    expires_at: JMESPath = "expires_at"
    """Absolute expiry, epoch seconds or milliseconds (Strava) or ISO 8601 text (`answer.expires_at_format`), used last."""
    scope: JMESPath = "scope"
    """Granted scope: text split on scope_separator, or a list."""
    id_token: JMESPath = "id_token"
    """OpenID Connect id_token."""


class ErrorFile(FileModel):
    """What marks an error and how it maps to RFC 6749."""

    when: JMESPath | None = None
    """JMESPath over the whole answer; true marks an error even with HTTP 200 (Slack: ``ok == `false` ``). Without it: an HTTP status ≥ 400, or an `error` and no `access_token`."""
    code: JMESPath = "error"
    """JMESPath to the provider's error code (`errors[0].errorType`, `to_string(status)`, `error.type`)."""
    description: JMESPath = "error_description"
    """JMESPath to its text."""
    map: TextMap = {}
    """Provider code → RFC 6749 token error (`invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `server_error`, `temporarily_unavailable`)."""


class AnswerFile(FileModel):
    """How the upstream's token answer becomes RFC 6749 §5.1 / §5.2."""

    keep_null: ClassVar[frozenset[str]] = frozenset({"expires_in_default"})

    format: AnswerFormat = "auto"
    """`json`, `form` (also text/plain forms) or `auto`."""
    root: JMESPath | None = None
    """JMESPath to the object holding the token (`body`, `authed_user.access_token && authed_user || @`); default: the whole answer."""
    fields: FieldsFile = FieldsFile()
    """JMESPath per field, relative to `root` (`accessToken` for camelCase answers)."""
    expires_at_format: ExpiresAtFormat = "epoch"
    """How `fields.expires_at` is written: `epoch` (seconds or milliseconds) or `iso8601` text (Square's `2026-04-04T21:46:40Z`; without a zone it is UTC)."""
    expires_in_default: Annotated[Whole, Field(ge=1, le=10 * 365 * 86400)] | None = 3600
    """The lifetime when the answer gives none (at most ten years); `null` leaves `expires_in` out (Alexa then applies the skill console's default)."""
    error: ErrorFile = ErrorFile()


class UpstreamFile(FileModel):
    """The authorization server on the right."""

    discovery: Text | None = None
    """An OpenID Connect discovery URL (`https://issuer/.well-known/openid-configuration`): `authorize.url`, `token.url` and `issuer` are filled from it when the gateway loads, unless given."""
    issuer: Text | None = None
    """Checked against `iss` at the callback (RFC 9207)."""
    require_iss: Flag | None = None
    """Refuse a callback *without* `iss` (RFC 9207 §2.4); default: the discovery document's `authorization_response_iss_parameter_supported`, else `false`."""
    client_id: Text
    """The gateway's client id at the provider."""
    client_secret: Text = ""
    """The gateway's client secret at the provider."""
    scope_separator: Text = " "
    """How the provider separates scopes, both ways (`","` for GitHub, Slack, Strava, Withings)."""
    authorize: AuthorizeFile = AuthorizeFile()
    token: TokenFile = TokenFile()
    revoke: RevokeFile | None = None
    """The upstream's RFC 7009 revocation endpoint; absent: /revoke answers 200 with nothing to revoke."""
    answer: AnswerFile = AnswerFile()


class KeptValueFile(FileModel):
    """What a per-link value may name."""

    allow_private: Flag = False
    """`true` lets the value make a URL point at an IP literal, `localhost` or a private host, over plain http too (a self-hosted upstream on a LAN, tests)."""


class KeepFile(KeptValueFile):
    """One callback parameter kept for the token request and every refresh."""

    pattern: Text | None = None
    """The regular expression the whole value must match, or it is refused where it arrives (the callback); required unless `hosts` is given. For a `url` value it names the whole origin (`https://accounts\\.zoho\\.(com|eu|in)`)."""
    placeholder: Text | None = None
    """The template name, when the parameter's own is not one (Zoho's `accounts-server` as `accounts_server`); default: the parameter's name."""
    url: Flag = False
    """The value is a whole origin (`https://accounts.zoho.eu`, no path): a URL template may start with it (`{accounts_server}/oauth/v2/token`); https only unless `allow_private`."""
    hosts: TextMap = {}
    """value → host name: the value must be one of these keys, and the placeholder stands for its host (Zoho's `location`: `eu: zoho.eu`), so the hosts are the mapping's alone."""


class CallbackFile(FileModel):
    """What the gateway keeps from the upstream's redirect to /callback."""

    keep: dict[str, KeepFile] = {}
    """Parameters of the upstream's redirect to `/callback` kept, by name, for `upstream.token` templates and every refresh (a regional accounts host, a realm or company id)."""


class TenantFile(KeptValueFile):
    """A value the user gives before the upstream authorization (shop, subdomain, host): /authorize asks for it in a form."""

    pattern: Text
    """The regular expression the whole value must match, or it is refused where it arrives (the form)."""
    name: Text
    """The placeholder name, in `upstream.authorize.url` and the token templates."""
    label: Text
    """The form's label: what the user is asked for."""


class ExpectFile(FileModel):
    """The RFC 6749 answer the platform gets: a §5.1 token body, or {error, error_description?, status?}."""

    #: Compared as written: a ``null`` here expects a ``null`` (no default stands in).
    keep_null: ClassVar[frozenset[str]] = frozenset(
        {"access_token", "token_type", "expires_in", "refresh_token", "scope", "id_token", "error", "error_description", "status"}
    )

    access_token: StrictStr | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: StrictInt | None = None
    refresh_token: StrictStr | None = None
    scope: StrictStr | None = None
    id_token: StrictStr | None = None
    error: TokenErrorCode | None = None
    error_description: StrictStr | None = None
    status: Annotated[StrictInt, Field(ge=400, le=599)] | None = None


class ExampleFile(FileModel):
    """A documented upstream answer and the normalised answer it must give."""

    name: Text | None = None
    """What it shows; default: `example <n>`."""
    grant: ExampleGrant = "authorization_code"
    """Or `refresh_token` (the platform's refresh token is then `refresh-token-sent-by-the-platform`)."""
    status: Annotated[Whole, Field(ge=100, le=599)] = 200
    """The provider's HTTP status."""
    content_type: Text = "application/json"
    """The provider's Content-Type."""
    now: Annotated[Number, Field(ge=0)] | None = None
    """The clock (epoch seconds) for answers with an absolute `expires_at`; default: now."""
    body: Any = None
    """The answer: a YAML/JSON document, or text (a form)."""
    first: Any = None
    """With `upstream.token.exchange`: the code exchange's own answer, whose token the second step trades; `body` is then the second step's answer. Absent: `body` is the code exchange's answer (an error: no second step)."""
    expect: ExpectFile
    """A token body (`access_token`, `token_type: Bearer`, `expires_in`, `refresh_token`, `scope`, `id_token`) or an error (`error`, `error_description`, `status`, default 400)."""


class SunsetFile(FileModel):
    """The provider (or the API this mapping speaks) turns off: `gateway check` and `gateway serve` warn from 180 days before."""

    date: Day
    """The day it turns off (the earliest the provider announces), `YYYY-MM-DD`."""
    successor: Text | None = None
    """The mapping that replaces this one (its name: the file stem in the same folder)."""
    link: Text | None = None
    """The provider's announcement (https)."""


class AboutFile(FileModel):
    """Where the mapping's facts come from: read by `gateway check` (sources checked over a year ago, sunsets) and by the generated docs/providers.md."""

    name: Text
    """The provider's display name (`Google`, `Login with Amazon`)."""
    category: Category
    """What the provider is (docs/providers.md groups by it)."""
    sources: Annotated[TextList, Field(min_length=1)]
    """The provider's own documentation pages this mapping was written from (https URLs, at least one)."""
    checked: Day
    """The day the sources were last re-read against the mapping, `YYYY-MM-DD`; `gateway check` warns a year later."""
    unverified: Text | None = None
    """What the sources could not confirm (free text)."""
    sunset: SunsetFile | None = None
    """The provider (or this API) turns off: `{date, successor, link}`."""


class MappingFile(FileModel):
    """One upstream provider: `mappings/<provider>.yaml`, applied in the order docs/mapping-guide.md gives. Any text may use `${ENV}` or `${ENV:-default}`."""

    extends: Annotated[Text, Field(json_schema_extra={"pattern": f"^{MAPPING_NAME.pattern}$"})] | None = None
    """Another mapping of the same folder (its file stem, `google`) this file changes: the file is deep-merged over it (mappings key by key; a list or a value replaces, `null` restores the default; `examples` of the base only when the file has none)."""
    about: AboutFile | None = None
    """Where the facts come from (every shipped mapping has it; `gateway check` warns when it is missing)."""
    platform: PlatformFile
    grant: Grant = "code"
    """`implicit`: the gateway redeems the code itself and puts the token in the redirect's fragment."""
    upstream: UpstreamFile
    callback: CallbackFile = CallbackFile()
    tenant: TenantFile | None = None
    examples: list[ExampleFile] = []
    """Documented upstream answers and the normalised answer each must give; run by `gateway check` and the tests."""


# -- gateway.yaml --------------------------------------------------------------------------------------
def _empty_is_absent(value: object) -> object:
    """``tls: {}`` is no TLS, as no ``tls:`` is (the same for ``metrics:`` and ``trace:``)."""
    return None if value == {} else value


def _store(value: object) -> object:
    if value == "memory":
        return {}
    if isinstance(value, str):
        raise _problem(f"must be memory or {{url: redis://host:6379/0}}, not {value!r}")
    return value


def _names(value: object) -> object:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise _problem("must be a list of mapping names")
    return value


def _memory_or(schema: dict[str, Any]) -> None:
    """The JSON Schema of ``store:``: the word ``memory`` or the mapping."""
    mapping = {key: value for key, value in schema.items() if key not in {"description", "default"}}
    for key in mapping:
        del schema[key]
    schema["anyOf"] = [{"const": "memory"}, mapping]


class ListenFile(FileModel):
    """Where the gateway listens (the command line's --host and --port win)."""

    host: Text = "127.0.0.1"
    """The address to listen on (`0.0.0.0` in a container)."""
    port: Annotated[Whole, Field(ge=0, le=65535)] = 8080
    """The port (0: any free port)."""


class CookieFile(FileModel):
    """The flow cookie: encrypted, HttpOnly, SameSite=Lax, Secure unless turned off for local http."""

    name: Text = "gateway_flow"
    """The cookie's name."""
    secure: Flag = True
    """A Secure cookie; `false` only for a `http://localhost` public_url."""
    max_age: Annotated[Whole, Field(ge=30, le=3600)] = 600
    """Seconds a link attempt may take in the browser."""
    max_flows: Annotated[Whole, Field(ge=1, le=16)] = 4
    """Link attempts one browser may have open at once."""


class UpstreamSettingsFile(FileModel):
    """Calls to the upstreams."""

    timeout: Annotated[Number, Field(ge=0.1, le=60.0)] = 4.0
    """Total deadline in seconds of an upstream token call (Alexa gives up after 4.5 s)."""


class LogFile(FileModel):
    """The log lines."""

    format: LogFormat = "text"
    """`text`, or `json` (one object per line)."""
    level: LogLevel = "info"
    """The lowest level written."""
    request_id_header: Text = "X-Request-Id"
    """The request header whose value becomes the request id (one is made when it is absent)."""


class ConnectionsFile(FileModel):
    """Slow or many clients: a slow client holds a file descriptor, so deadlines and a cap keep slowloris out."""

    max: Annotated[Whole, Field(ge=1, le=1_000_000)] = 1000
    """Open client connections at most; the next one gets 503 with `Connection: close`."""
    header_timeout: Annotated[Number, Field(ge=0.1, le=300.0)] = 10.0
    """Seconds from a request's first byte to the end of its headers (else 408)."""
    body_timeout: Annotated[Number, Field(ge=0.1, le=300.0)] = 10.0
    """Seconds to receive a request body once its headers are in (else 408)."""
    keepalive_timeout: Annotated[Number, Field(ge=0.1, le=3600.0)] = 15.0
    """Seconds an idle keep-alive connection stays open."""
    backlog: Annotated[Whole, Field(ge=1, le=65535)] = 128
    """The listen backlog (connections the kernel queues before the gateway accepts them)."""


class TlsFile(FileModel):
    """Serve https yourself (else a proxy does): PEM files, relative to gateway.yaml."""

    cert: Text
    """The certificate file, with the full chain (Alexa needs it)."""
    key: Text
    """The private key file."""


class MetricsFile(FileModel):
    """The ops listener: /metrics, /healthz and /readyz on a port of their own (then not on the public one)."""

    host: Text = "127.0.0.1"
    """The address the ops listener listens on."""
    port: Annotated[Whole, Field(ge=0, le=65535)]
    """Its port; it must differ from listen.port."""


class StoreFile(FileModel):
    """Where replicas share refresh grace, locks and single-use claims."""

    url: Text = ""
    """A `redis://` or `rediss://` URL; empty: the per-process store."""
    timeout: Annotated[Number, Field(ge=0.01, le=2.0)] = 0.25
    """Seconds a store call may take."""
    ca_file: Text = ""
    """PEM file of the CA that signed a `rediss://` server's certificate, when the system trust store does not know it."""


class TraceFile(FileModel):
    """The flow trace at /_trace/ (off unless configured)."""

    token: Text = ""
    """The bearer token for `/_trace/` (at least 32 characters; make one with `gateway keygen`)."""
    flows: Annotated[Whole, Field(ge=1, le=10_000)] = 200
    """How many recent flows to keep."""
    max_bytes: Annotated[Whole, Field(ge=262_144, le=1_073_741_824)] = DEFAULT_TRACE_MAX_BYTES
    """How many bytes the kept flows may take, counted in the JSON of `/_trace/flows.json` (the process holds a few times that); the oldest flows of the kind holding the largest share (completed, in the browser, refused) go first."""


class GatewayFile(FileModel):
    """gateway.yaml: how the gateway runs and which mappings it serves. Any text may use `${ENV}` or `${ENV:-default}`."""

    listen: ListenFile = ListenFile()
    """Where the gateway listens."""
    public_url: Text | None = None
    """What browsers and upstreams use to reach the gateway; `<public_url>/<provider>/callback` is the redirect URI to register with each upstream. Default: `http://localhost:<port>`."""
    keys: TextList = []
    """Sealing keys (Fernet; `gateway keygen`): the first seals, all open. Empty: a random key at start (localhost only)."""
    keys_file: Text | None = None
    """A file of more keys, one a line (`#` comments), added after `keys`."""
    link_keys: TextList = []
    """Keys of refresh envelopes (per-link context), newest first; the list only grows (never remove one)."""
    cookie: CookieFile = CookieFile()
    """The flow cookie."""
    upstream: UpstreamSettingsFile = UpstreamSettingsFile()
    code_ttl: Annotated[Whole, Field(ge=10, le=600)] = 300
    """Seconds the code handed to the platform lives (RFC 6749 §4.1.2: at most 10 minutes)."""
    seal_format: SealFormat = "aes-gcm"
    """What new flow cookies and platform codes are sealed with; both forms always open. `fernet`: the form gateways before December 2026 open, for a rolling upgrade with replicas of both versions (then remove it)."""
    log: LogFile = LogFile()
    shutdown_grace: Annotated[Number, Field(ge=0.0, le=300.0)] = 10.0
    """Seconds SIGTERM waits for requests in flight; then they get 503."""
    connections: ConnectionsFile = ConnectionsFile()
    """Slow or many clients."""
    tls: Annotated[TlsFile | None, BeforeValidator(_empty_is_absent)] = None
    """Serve https yourself (else a proxy does)."""
    metrics: Annotated[MetricsFile | None, BeforeValidator(_empty_is_absent)] = None
    """The ops listener on a port of its own; absent: `/metrics` on the public port."""
    store: Annotated[StoreFile, BeforeValidator(_store), Field(json_schema_extra=_memory_or)] = StoreFile()
    """`memory` (the default: per process), or `{url: redis://…}` shared by the replicas."""
    demo: Flag = False
    """Serve the built-in demo under `/_demo/` (never on the internet)."""
    trace: Annotated[TraceFile | None, BeforeValidator(_empty_is_absent)] = None
    """The flow trace; absent: off (the demo traces with a random token)."""
    mappings: Text = "mappings"
    """The folder of mapping files, relative to gateway.yaml."""
    providers: Annotated[list[str], BeforeValidator(_names)] | None = None
    """The mappings to serve, by name; absent: every `*.yaml` in the folder; `[]`: none of them (the demo alone)."""
