"""The two file kinds, declared once: ``gateway.yaml`` (:class:`GatewayFile`) and a mapping (:class:`MappingFile`).

Each key's type, choices, bounds, default and meaning (the attribute docstring) live here and
nowhere else. From these models come the validation of every file (:func:`gateway.config.fields.validate`,
every problem at once as ``file:line``), the JSON Schemas editors use (``gateway schema`` writes
``mappings/schema.json`` and ``gateway.schema.json``) and the reference tables of the README and
``docs/mapping-guide.md`` (``gateway schema --docs``).

What a model cannot say alone (a URL's rules, JMESPath, templates, redirect URI patterns, defaults
that depend on another key) the builders check: :func:`gateway.config.mapping.parse_mapping` and
:func:`gateway.config.settings.load_config`, which turn these models into the frozen runtime objects.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StrictInt, StrictStr

from gateway.config.fields import FileModel, Flag, Number, Text, TextList, TextMap, Whole, _problem

__all__ = [
    "MappingFile", "GatewayFile", "Profile", "PlatformPkce", "Grant", "UpstreamPkce", "Method", "Encoding",
    "ClientAuth", "AnswerFormat", "ExampleGrant", "TokenErrorCode", "LogFormat", "LogLevel",
]

Profile = Literal["alexa", "google", "smartthings", "alexa-mcp", "none"]
PlatformPkce = Literal["optional", "required", "S256"]
Grant = Literal["code", "implicit"]
UpstreamPkce = Literal["none", "S256", "plain"]
Method = Literal["POST", "GET"]
Encoding = Literal["form", "json", "query"]
ClientAuth = Literal["basic", "body", "both", "none"]
AnswerFormat = Literal["json", "form", "auto"]
ExampleGrant = Literal["authorization_code", "refresh_token"]
#: RFC 6749 §5.2 error codes.
TokenErrorCode = Literal[
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
    "invalid_scope", "server_error", "temporarily_unavailable",
]
LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
#: A JMESPath expression (compiled when the mapping loads: a bad one is a load error).
JMESPath = Text


# -- a mapping: mappings/<provider>.yaml -------------------------------------------------------------
class PlatformFile(FileModel):
    """The OAuth client on the left (Alexa, Google) and the credentials it presents."""

    profile: Profile = "none"
    """Built-in redirect URI allowlist: alexa, google, smartthings, alexa-mcp (Alexa's, PKCE S256 required), or none (then redirect_uris)."""
    vendor_ids: TextList = []
    """Pin Alexa's vendor id(s) in the alexa redirect URIs."""
    project_ids: TextList = []
    """Pin Google's project id(s) in the google redirect URIs."""
    redirect_uris: TextList = []
    """More exact redirect URIs; '*' stands for one whole path segment."""
    client_id: Text
    """The client id the platform presents at /authorize and /token."""
    client_secret: Annotated[Text, Field(json_schema_extra={"minLength": 8})]
    """The client secret the platform presents at /token (at least 8 characters)."""
    pkce: PlatformPkce | None = None
    """PKCE from the platform (RFC 7636): optional, required, or S256 (required, S256 only). Default: S256 for alexa-mcp, else optional."""


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
    """The upstream authorization endpoint (https); required unless upstream.discovery gives it."""
    scope: Text | None = None
    """A fixed upstream scope; default: the platform's scope, re-separated."""
    pkce: UpstreamPkce = "none"
    """PKCE the gateway does toward the upstream."""
    params: ParamRulesFile = ParamRulesFile()
    """Authorization request parameters: remove → rename → add."""


class OverrideFile(FileModel):
    """Differences from the token request for one grant, added after the token rules."""

    client_auth: ClientAuth | None = None
    """Client authentication for this grant; default: the token request's."""
    params: ParamRulesFile = ParamRulesFile()
    """More parameter rules for this grant."""
    headers: ParamRulesFile = ParamRulesFile()
    """More header rules for this grant."""


class RefreshFile(OverrideFile):
    """Differences for grant_type=refresh_token (added after the token rules)."""

    keep_refresh_token: Flag = False
    """Echo the platform's refresh token when the upstream's refresh answer has none."""
    grace: Annotated[Whole, Field(ge=0, le=600)] = 60
    """Seconds the answer to a refresh is given again for the same refresh token (rotation, lost answers, races); 0 turns it off."""


class TokenFile(FileModel):
    """The upstream token request."""

    url: Text | None = None
    """The upstream token endpoint (https); required unless upstream.discovery gives it."""
    method: Method = "POST"
    """HTTP method (GET puts the parameters in the query string)."""
    encoding: Encoding = "form"
    """Where the parameters go: form body, JSON body, or the query string."""
    client_auth: ClientAuth = "basic"
    """How the gateway authenticates: HTTP Basic, id+secret in the parameters, both, or none (client_id only)."""
    timeout: Annotated[Number, Field(ge=0.1, le=60.0)] | None = None
    """Seconds for the whole upstream call; default upstream.timeout of gateway.yaml."""
    params: ParamRulesFile = ParamRulesFile()
    """Token request parameters: remove → rename → add."""
    headers: ParamRulesFile = ParamRulesFile()
    """Token request headers: remove → rename → add (names compare case-insensitively)."""
    refresh: RefreshFile = RefreshFile()
    """Differences for grant_type=refresh_token (added after the token rules)."""
    client_credentials: OverrideFile | None = None
    """Map the platform's client_credentials grant (RFC 6749 §4.4) to the upstream's; absent: the grant is refused. {} takes the token rules as they are."""


class RevokeFile(FileModel):
    """The upstream's RFC 7009 revocation endpoint."""

    url: Text
    """The upstream revocation endpoint (https)."""
    client_auth: ClientAuth = "basic"
    """How the gateway authenticates there."""


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
    """Absolute expiry, epoch seconds or milliseconds, used last (Strava)."""
    scope: JMESPath = "scope"
    """Granted scope: text split on scope_separator, or a list."""
    id_token: JMESPath = "id_token"
    """OpenID Connect id_token."""


class ErrorFile(FileModel):
    """What marks an error and how it maps to RFC 6749."""

    when: JMESPath | None = None
    """JMESPath over the whole answer: true marks an error even with HTTP 200 (Slack: "ok == `false`"). Default: an HTTP status ≥ 400, or an error and no access_token."""
    code: JMESPath = "error"
    """JMESPath to the upstream's error code."""
    description: JMESPath = "error_description"
    """JMESPath to the upstream's error description."""
    map: TextMap = {}
    """Upstream error code → RFC 6749 token error (invalid_request, invalid_client, invalid_grant, unauthorized_client, unsupported_grant_type, invalid_scope, server_error, temporarily_unavailable)."""


class AnswerFile(FileModel):
    """How the upstream's token answer becomes RFC 6749 §5.1 / §5.2."""

    keep_null: ClassVar[frozenset[str]] = frozenset({"expires_in_default"})

    format: AnswerFormat = "auto"
    """json, form (application/x-www-form-urlencoded, text/plain) or auto."""
    root: JMESPath | None = None
    """JMESPath to the object holding the token (Withings: body); default: the whole answer."""
    fields: FieldsFile = FieldsFile()
    """Where each field is, relative to root."""
    expires_in_default: Annotated[Whole, Field(ge=1, le=10 * 365 * 86400)] | None = 3600
    """expires_in when the upstream gives no lifetime (or 0); null leaves expires_in out (Alexa then applies the skill console's default)."""
    error: ErrorFile = ErrorFile()
    """What marks an error and how it maps to RFC 6749."""


class UpstreamFile(FileModel):
    """The authorization server on the right."""

    discovery: Text | None = None
    """OpenID Connect discovery URL (https://issuer/.well-known/openid-configuration): fills authorize.url, token.url and issuer at load when they are not given."""
    issuer: Text | None = None
    """The upstream's issuer: checked against `iss` at the callback (RFC 9207)."""
    require_iss: Flag | None = None
    """Refuse a callback without `iss` (RFC 9207 §2.4). Default: what the discovery document's authorization_response_iss_parameter_supported says, else false."""
    client_id: Text
    """The gateway's client id at the upstream."""
    client_secret: Text = ""
    """The gateway's client secret at the upstream."""
    scope_separator: Text = " "
    """How the upstream separates scopes, both ways ("," for GitHub, Slack, Strava, Withings)."""
    authorize: AuthorizeFile = AuthorizeFile()
    """The upstream authorization request."""
    token: TokenFile = TokenFile()
    """The upstream token request."""
    revoke: RevokeFile | None = None
    """The upstream's RFC 7009 revocation endpoint; absent: /revoke answers 200 with nothing to revoke."""
    answer: AnswerFile = AnswerFile()
    """How the upstream's token answer becomes RFC 6749 §5.1 / §5.2."""


class KeepFile(FileModel):
    """One callback parameter kept for the token request and every refresh."""

    pattern: Text
    """Regular expression the whole value must match (anchored)."""
    allow_private: Flag = False
    """The value may name IP literals, localhost and private hosts (tests, self-hosted upstreams on a LAN)."""


class CallbackFile(FileModel):
    """What the gateway keeps from the upstream's redirect to /callback."""

    keep: dict[str, KeepFile] = {}
    """Callback parameters kept, by name, for upstream.token templates and every refresh; each with its pattern."""


class TenantFile(KeepFile):
    """A value the user gives before the upstream authorization (shop, subdomain, host): /authorize asks for it in a form."""

    name: Text
    """The placeholder name in authorize.url / token templates."""
    label: Text
    """The form's label (what the user is asked for)."""


class ExpectFile(FileModel):
    """The RFC 6749 answer the platform gets: a §5.1 token body, or {error, error_description?, status?}."""

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
    """What the example shows (default: example <n>)."""
    grant: ExampleGrant = "authorization_code"
    """The grant it answers."""
    status: Annotated[Whole, Field(ge=100, le=599)] = 200
    """The upstream's HTTP status."""
    content_type: Text = "application/json"
    """The upstream's Content-Type."""
    now: Annotated[Number, Field(ge=0)] | None = None
    """The clock (epoch seconds) for answers with an absolute expires_at."""
    body: Any = None
    """The upstream's answer: a JSON document, or text (a form, text/plain)."""
    expect: ExpectFile
    """The RFC 6749 answer the platform gets: a §5.1 token body, or {error, error_description?, status?}."""


class MappingFile(FileModel):
    """One upstream provider: mappings/<provider>.yaml, applied in the order docs/mapping-guide.md gives. Any text may use ${ENV} or ${ENV:-default}."""

    platform: PlatformFile
    """The OAuth client on the left (Alexa, Google) and the credentials it presents."""
    grant: Grant = "code"
    """code, or implicit (the token goes to the platform in the URL fragment)."""
    upstream: UpstreamFile
    """The authorization server on the right."""
    callback: CallbackFile = CallbackFile()
    """What the gateway keeps from the upstream's redirect to /callback."""
    tenant: TenantFile | None = None
    """A value the user gives before the upstream authorization (shop, subdomain, host): /authorize asks for it in a form."""
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
    mapping = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"const": "memory"}, mapping]


class ListenFile(FileModel):
    """Where the gateway listens (the command line's --host and --port win)."""

    host: Text = "127.0.0.1"
    """The address to listen on (0.0.0.0 in a container)."""
    port: Annotated[Whole, Field(ge=0, le=65535)] = 8080
    """The port (0: any free port)."""


class CookieFile(FileModel):
    """The flow cookie: encrypted, HttpOnly, SameSite=Lax, Secure unless turned off for local http."""

    name: Text = "gateway_flow"
    """The cookie's name."""
    secure: Flag = True
    """Secure cookie; false only for a http://localhost public_url."""
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
    """text, or json (one object per line)."""
    level: LogLevel = "info"
    """The lowest level written."""
    request_id_header: Text = "X-Request-Id"
    """The request header whose value becomes the request id (one is made when it is absent)."""


class ConnectionsFile(FileModel):
    """Slow or many clients: a slow client holds a file descriptor, so deadlines and a cap keep slowloris out."""

    max: Annotated[Whole, Field(ge=1, le=1_000_000)] = 1000
    """Open client connections at most; the next one gets 503 with Connection: close."""
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
    """redis:// or rediss:// URL; empty: the per-process store."""
    timeout: Annotated[Number, Field(ge=0.01, le=2.0)] = 0.25
    """Seconds a store call may take."""
    ca_file: Text = ""
    """PEM file of the CA that signed a rediss:// server's certificate, when the system trust store does not know it."""


class TraceFile(FileModel):
    """The flow trace at /_trace/ (off unless configured)."""

    token: Text = ""
    """The bearer token for /_trace/ (at least 32 characters; make one with `gateway keygen`)."""
    flows: Annotated[Whole, Field(ge=1, le=10_000)] = 200
    """How many recent flows to keep."""


class GatewayFile(FileModel):
    """gateway.yaml: how the gateway runs and which mappings it serves. Any text may use ${ENV} or ${ENV:-default}."""

    listen: ListenFile = ListenFile()
    """Where the gateway listens."""
    public_url: Text | None = None
    """What browsers and upstreams use to reach the gateway; <public_url>/<provider>/callback is the redirect URI to register with each upstream. Default: http://localhost:<port>."""
    keys: TextList = []
    """Sealing keys (Fernet; `gateway keygen`): the first seals, all open. None: a random key at start (localhost only)."""
    keys_file: Text | None = None
    """A file of more keys, one a line (# comments), added after keys."""
    link_keys: TextList = []
    """Keys of refresh envelopes (per-link context), newest first; the list only grows (never remove one)."""
    cookie: CookieFile = CookieFile()
    """The flow cookie."""
    upstream: UpstreamSettingsFile = UpstreamSettingsFile()
    """Calls to the upstreams."""
    code_ttl: Annotated[Whole, Field(ge=10, le=600)] = 300
    """Seconds the code handed to the platform lives (RFC 6749 §4.1.2: at most 10 minutes)."""
    log: LogFile = LogFile()
    """The log lines."""
    shutdown_grace: Annotated[Number, Field(ge=0.0, le=300.0)] = 10.0
    """Seconds SIGTERM waits for requests in flight; then they get 503."""
    connections: ConnectionsFile = ConnectionsFile()
    """Slow or many clients."""
    tls: Annotated[TlsFile | None, BeforeValidator(_empty_is_absent)] = None
    """Serve https yourself (else a proxy does)."""
    metrics: Annotated[MetricsFile | None, BeforeValidator(_empty_is_absent)] = None
    """The ops listener on a port of its own; absent: /metrics on the public port."""
    store: Annotated[StoreFile, BeforeValidator(_store), Field(json_schema_extra=_memory_or)] = StoreFile()
    """memory (the default: per process), or {url: redis://…} shared by the replicas."""
    demo: Flag = False
    """Serve the built-in demo under /_demo/ (never on the internet)."""
    trace: Annotated[TraceFile | None, BeforeValidator(_empty_is_absent)] = None
    """The flow trace; absent: off (the demo traces with a random token)."""
    mappings: Text = "mappings"
    """The folder of mapping files, relative to gateway.yaml."""
    providers: Annotated[list[str], BeforeValidator(_names)] | None = None
    """The mappings to serve, by name; absent: every *.yaml in the folder; []: none (the demo alone)."""
