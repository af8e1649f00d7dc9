"""Load and validate ``gateway.yaml`` and the mappings it serves, reporting every problem at once.

The keys, their types, defaults and meanings are :class:`gateway.config.models.GatewayFile`; this
module makes the checks that need more than one key, the file system or the key material, and
builds the frozen :class:`Config` the request path reads (no validation happens per request).

``load_config`` either returns a frozen :class:`Config` that is safe to serve, or raises
:class:`~gateway.config.yamlfile.ConfigError` with *every* problem of *every* file as ``file:line: message``
(unknown keys, wrong types, bad URLs, bad JMESPath, missing environment variables): the gateway
refuses to start on any of them.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from gateway.config import discovery, optional
from gateway.config.extends import load_mapping_document
from gateway.config.fields import Checked, line_at, validate
from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.models import (
    DEFAULT_TRACE_MAX_BYTES,
    ConnectionsFile,
    CookieFile,
    GatewayFile,
    LogFormat,
    LogLevel,
    StoreFile,
    TraceFile,
)
from gateway.config.urls import is_loopback_host, split_url, url_problem
from gateway.config.yamlfile import ConfigError, Problems, load_yaml

__all__ = [
    "Config", "ConnectionSettings", "CookieSettings", "TlsSettings", "MetricsListen", "load_config", "ConfigError",
    "DEFAULT_CONFIG", "PUBLIC_EXAMPLE_KEYS", "StoreSettings", "TraceSettings", "MIN_TOKEN_LENGTH",
]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("gateway.yaml")
_RESERVED_NAMES = frozenset({"healthz", "readyz", "metrics", "_demo", "_trace", "static"})

#: Keys published in this repository (deploy/kubernetes/examples/secrets.example.yaml): anyone can
#: open cookies and forge codes sealed with them, so the gateway refuses to start with one.
PUBLIC_EXAMPLE_KEYS = frozenset({"WW-ibSXN3_3cy0IxZ8lXlH89efq7RgdApjT-YYzajBY="})


# The request path reads these per request or per connection: plain dataclasses (an attribute read
# of a pydantic model costs several times a dataclass's), with the models' defaults.
_COOKIE, _CONNECTIONS = CookieFile(), ConnectionsFile()


@dataclass(frozen=True)
class CookieSettings:
    """The flow cookie (``cookie:``; its keys: :class:`~gateway.config.models.CookieFile`)."""

    name: str = _COOKIE.name
    secure: bool = _COOKIE.secure
    max_age: int = _COOKIE.max_age
    max_flows: int = _COOKIE.max_flows


@dataclass(frozen=True)
class MetricsListen:
    """The ops listener (``metrics:``; :class:`~gateway.config.models.MetricsFile`): /metrics, /healthz, /readyz."""

    host: str
    port: int


@dataclass(frozen=True)
class ConnectionSettings:
    """Deadlines and a cap against slow clients (``connections:``; :class:`~gateway.config.models.ConnectionsFile`)."""

    max: int = _CONNECTIONS.max
    header_timeout: float = _CONNECTIONS.header_timeout
    body_timeout: float = _CONNECTIONS.body_timeout
    keepalive_timeout: float = _CONNECTIONS.keepalive_timeout
    backlog: int = _CONNECTIONS.backlog


@dataclass(frozen=True)
class StoreSettings:
    """``store:`` of gateway.yaml (:mod:`gateway.oauth.store`): no URL is the per-process store."""

    url: str | None = None
    timeout: float = 0.25
    #: PEM file of the CA(s) that signed a ``rediss://`` server's certificate, for a Redis whose
    #: certificate the system trust store does not know (a private CA); None: the system store.
    ca_file: str | None = None


#: The shortest bearer token ``trace.token`` may be (``gateway keygen`` makes 44 characters).
MIN_TOKEN_LENGTH = 32


@dataclass(frozen=True)
class TraceSettings:
    """``trace:`` in gateway.yaml: the bearer token for ``/_trace/``, how many flows to keep, and
    how many bytes (of the trace's JSON) they may take together (:mod:`gateway.observe.trace`)."""

    token: str
    flows: int = 200
    max_bytes: int = DEFAULT_TRACE_MAX_BYTES
    #: Made up for the demo (not from the file): a reload keeps the running one.
    generated: bool = False


@dataclass(frozen=True)
class TlsSettings:
    """Optional TLS for deployments without a TLS-terminating proxy (Alexa needs 443 and a full chain)."""

    cert: str
    key: str


@dataclass(frozen=True)
class Config:
    file: str
    host: str
    port: int
    public_url: str
    keys: tuple[str, ...]
    ephemeral_key: bool
    cookie: CookieSettings
    upstream_timeout: float
    code_ttl: int
    log_format: LogFormat
    log_level: LogLevel
    request_id_header: str
    shutdown_grace: float
    tls: TlsSettings | None
    demo: bool
    providers: Mapping[str, ProviderMapping] = field(default_factory=dict)
    metrics: MetricsListen | None = None
    connections: ConnectionSettings = field(default_factory=lambda: ConnectionSettings())
    #: Mappings in the folder that ``providers:`` does not serve; loaded only for ``gateway check``.
    unserved: Mapping[str, ProviderMapping] = field(default_factory=dict)
    #: The flow trace (``trace:``), or None when it is off (the default).
    trace: TraceSettings | None = None
    #: ``link_keys``: the keys of refresh envelopes (newest first; never remove one).
    link_keys: tuple[str, ...] = ()
    #: ``store:``: where replicas share refresh grace, locks and single-use claims (gateway/oauth/store.py).
    store: StoreSettings = field(default_factory=StoreSettings)
    #: ``seal_format``: False while a rolling upgrade needs flow cookies and codes in Fernet.
    seal_aead: bool = True

    def callback_url(self, provider: str) -> str:
        """The redirect URI the gateway registers with an upstream: ``<public_url>/<provider>/callback``."""
        return f"{self.public_url}/{provider}/callback"


def _check_keys(checked: Checked, name: str, keys: list[tuple[int, str]]) -> None:
    """Each key opens Fernet tokens, and none is a key published in this repository."""
    for index, key in keys:
        if key in PUBLIC_EXAMPLE_KEYS:
            checked.error(
                (name, index),
                "this is the public example key from deploy/kubernetes/examples/: "
                "anyone can forge codes with it; make your own with `gateway keygen`",
            )
            continue
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            checked.error((name, index), "not a key: it must be 32 url-safe base64-encoded bytes (make one with `gateway keygen`)")


def _keys(checked: Checked, model: GatewayFile, base: Path) -> tuple[list[str], bool]:
    keys = [(index, key) for index, key in enumerate(model.keys) if key]
    if model.keys_file:
        path = (base / model.keys_file) if not Path(model.keys_file).is_absolute() else Path(model.keys_file)
        try:
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            checked.error(("keys_file",), f"can not read {path}: {getattr(exc, 'strerror', None) or exc}")
        else:
            keys += [(len(model.keys) + number, line) for number, line in enumerate(lines) if line and not line.startswith("#")]
    _check_keys(checked, "keys", keys)
    if keys:
        return [key for _, key in keys], False
    return [Fernet.generate_key().decode("ascii")], True


def _public_url(model: GatewayFile, checked: Checked, listen_host: str, listen_port: int) -> str:
    if model.public_url:
        problem = url_problem(model.public_url)
        if problem:
            checked.error(("public_url",), problem)
            checked.wrong.add(("public_url",))  # what follows from it (cookie.secure, keys) would say it again
        return model.public_url.rstrip("/")
    shown_host = "localhost" if listen_host in {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost"} else listen_host
    if ":" in shown_host:
        shown_host = f"[{shown_host}]"  # an IPv6 literal in a URL (RFC 3986 §3.2.2)
    return f"http://{shown_host}:{listen_port}"


def load_config(
    path: Path = DEFAULT_CONFIG,
    *,
    host: str | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    check_all: bool = False,
) -> Config:
    """Load ``path`` and the mappings it names; ``host``/``port`` override the file (CLI flags).

    ``check_all`` also loads the folder's other mappings (into ``unserved``), without requiring
    their environment variables: ``gateway check`` validates every file it can see. A file that
    is not YAML at all is the only problem reported: what follows from it would be noise.
    """
    problems = Problems()
    data = load_yaml(path, problems, env=env)
    if data is None and problems:
        problems.raise_if_any()
    checked = Checked(str(path), data, problems)
    model = validate(GatewayFile, data, checked) or GatewayFile()
    base = path.parent

    listen_host = host or model.listen.host
    listen_port = port if port is not None else model.listen.port
    public_url = _public_url(model, checked, listen_host, listen_port)
    keys, ephemeral = _keys(checked, model, base)
    link_keys = [(index, key) for index, key in enumerate(model.link_keys) if key]
    _check_keys(checked, "link_keys", link_keys)
    public_parts = split_url(public_url)
    local = is_loopback_host(public_parts.hostname if public_parts else None)
    if ephemeral and not local and not checked.wrong_at(("keys",), ("keys_file",), ("public_url",)):
        checked.error(
            ("keys",),
            "no key configured: a random key would break every flow on restart and across replicas; "
            "add keys (make one with `gateway keygen`) or keys_file",
        )
    cookie = CookieSettings(**model.cookie.model_dump())
    judged = not checked.wrong_at(("public_url",), ("cookie", "secure"))  # one mistake, not also the cookie's
    if judged and cookie.secure and public_url.startswith("http://"):
        checked.error(
            ("cookie", "secure"),
            "public_url is plain http, so browsers drop Secure cookies: serve https or set cookie.secure: false",
        )
    elif judged and not cookie.secure and not local:
        checked.error(("cookie", "secure"), "cookie.secure: false is only allowed for a localhost public_url")
    if model.metrics is not None and model.metrics.port and model.metrics.port == listen_port:
        checked.error(("metrics", "port"), f"metrics.port must differ from listen.port ({listen_port})")
    tls = _tls(checked, model, base)
    store = _store(checked, model.store, base)
    trace = _trace(checked, model.trace, demo=model.demo)
    mappings_dir = base / model.mappings

    providers: dict[str, ProviderMapping] = {}
    files = _mapping_files(checked, mappings_dir, model.providers)
    if model.demo:
        installed = optional.demo()
        if installed is None:
            problems.add(str(path), line_at(data, ("demo",)), optional.NO_DEMO)
        else:
            files.insert(0, installed.mapping_file())
    for file in files:
        mapping = _load_mapping(file, problems, env=env, public_url=public_url)
        if mapping is not None:
            if mapping.name in providers:
                problems.add(str(file), 0, f"provider {mapping.name!r} is defined twice")
            providers[mapping.name] = mapping
    if not providers and not problems:
        problems.add(str(path), 0, "no provider is configured: add mappings, list them in providers:, or set demo: true")
    unserved: dict[str, ProviderMapping] = {}
    if check_all and mappings_dir.is_dir():
        for file in sorted(set(mappings_dir.glob("*.yaml")) - set(files)):
            mapping = _load_mapping(file, problems, env=env, public_url=public_url, missing_env_ok=True)
            if mapping is not None:
                unserved[mapping.name] = mapping

    problems.raise_if_any()
    return Config(
        file=str(path),
        host=listen_host,
        port=listen_port,
        public_url=public_url,
        keys=tuple(keys),
        link_keys=tuple(key for _, key in link_keys),
        ephemeral_key=ephemeral,
        cookie=cookie,
        upstream_timeout=model.upstream.timeout,
        code_ttl=model.code_ttl,
        seal_aead=model.seal_format == "aes-gcm",
        log_format=model.log.format,
        log_level=model.log.level,
        request_id_header=model.log.request_id_header,
        shutdown_grace=model.shutdown_grace,
        tls=tls,
        demo=model.demo,
        providers=providers,
        metrics=MetricsListen(model.metrics.host, model.metrics.port) if model.metrics is not None else None,
        connections=ConnectionSettings(**model.connections.model_dump()),
        unserved=unserved,
        trace=trace,
        store=store,
    )


def _trace(checked: Checked, trace: TraceFile | None, *, demo: bool) -> TraceSettings | None:
    """``trace: {token, flows, max_bytes}``: off unless configured; the demo traces with a random token."""
    if trace is None:
        return TraceSettings(token=secrets.token_urlsafe(32), flows=50, generated=True) if demo else None
    if len(trace.token) < MIN_TOKEN_LENGTH:
        checked.error(
            ("trace", "token"), f"the trace token must be at least {MIN_TOKEN_LENGTH} characters (make one with `gateway keygen`)"
        )
    return TraceSettings(token=trace.token, flows=trace.flows, max_bytes=trace.max_bytes)


def _store(checked: Checked, store: StoreFile, base: Path) -> StoreSettings:
    """``store: memory`` (the default) or ``store: {url: redis://…, timeout: 0.25, ca_file: …}``.

    ``ca_file`` (a PEM file, relative to the config like ``tls:``) is the CA that signed a
    ``rediss://`` server's certificate, when the system trust store does not know it.
    """
    url = store.url  # empty (e.g. an unset ${VAR:-}): the per-process store
    judged = bool(url) and not getattr(url, "unresolved", False)
    parts = split_url(url) if url else None
    if judged and (parts is None or parts.scheme not in {"redis", "rediss"} or not parts.hostname):
        checked.error(("store", "url"), f"must be a redis:// or rediss:// URL, not {url!r}")
    ca_file = None
    if store.ca_file:
        path = Path(store.ca_file) if Path(store.ca_file).is_absolute() else base / store.ca_file
        if not path.is_file():
            checked.error(("store", "ca_file"), f"no file {path}")
        if judged and parts is not None and parts.scheme != "rediss":
            checked.error(("store", "ca_file"), "needs a rediss:// URL (TLS)")
        ca_file = str(path)
    return StoreSettings(url=url or None, timeout=store.timeout, ca_file=ca_file)


def _tls(checked: Checked, model: GatewayFile, base: Path) -> TlsSettings | None:
    """``tls: {cert, key}``: PEM files (the cert file holds the full chain), relative to the config."""
    if model.tls is None:
        return None
    paths = []
    for key, value in (("cert", model.tls.cert), ("key", model.tls.key)):
        path = Path(value) if Path(value).is_absolute() else base / value
        if value and not path.is_file():
            checked.error(("tls", key), f"no file {path}")
        paths.append(str(path))
    return TlsSettings(cert=paths[0], key=paths[1])


def _mapping_files(checked: Checked, directory: Path, wanted: list[str] | None) -> list[Path]:
    """The mapping files to serve: those named in ``providers:``, or every ``*.yaml`` in the folder."""
    if wanted is not None:
        files = []
        for name in wanted:
            file = directory / f"{name}.yaml"
            if not file.is_file():
                checked.error(("providers",), f"no mapping {file}")
            else:
                files.append(file)
        return files
    if not directory.is_dir():
        checked.error(("mappings",), f"mappings folder {directory} does not exist")
        return []
    return sorted(directory.glob("*.yaml"))


def _load_mapping(
    file: Path, problems: Problems, *, env: Mapping[str, str] | None, public_url: str, missing_env_ok: bool = False
) -> ProviderMapping | None:
    # GATEWAY_PUBLIC_URL is always known, so a mapping can point at the gateway itself (the demo).
    variables = {**(os.environ if env is None else env), "GATEWAY_PUBLIC_URL": public_url}
    before = len(problems.items)
    data = load_mapping_document(file, problems, env=variables, missing_env_ok=missing_env_ok)
    if data is None and len(problems.items) > before:
        return None  # unreadable or not YAML: already reported
    name = file.stem
    if name in _RESERVED_NAMES:
        problems.add(str(file), 0, f"{name!r} is reserved for the gateway's own paths")
    # Served mappings fetch their OpenID Connect discovery document now (cached per URL); `gateway
    # check` judges the mappings it does not serve offline, without their secrets or the network.
    discover = None if missing_env_ok else discovery.fetch
    return parse_mapping(name, data, file=str(file), problems=problems, discover=discover)
