"""Load and validate ``gateway.yaml`` and the mappings it serves, reporting every problem at once.

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

from gateway import optional
from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.reader import Section, is_loopback_host, split_url
from gateway.config.schema import check_mapping
from gateway.config.yamlfile import ConfigError, Problems, load_yaml
from gateway.observe.trace import MIN_TOKEN_LENGTH, TraceSettings
from gateway.store import StoreSettings
from gateway.upstream import discovery

__all__ = [
    "Config", "ConnectionSettings", "CookieSettings", "TlsSettings", "MetricsListen", "load_config", "ConfigError",
    "DEFAULT_CONFIG", "PUBLIC_EXAMPLE_KEYS",
]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("gateway.yaml")
_RESERVED_NAMES = frozenset({"healthz", "readyz", "metrics", "_demo", "_trace", "static"})

#: Keys published in this repository (deploy/kubernetes/examples/secrets.example.yaml): anyone can
#: open cookies and forge codes sealed with them, so the gateway refuses to start with one.
PUBLIC_EXAMPLE_KEYS = frozenset({"WW-ibSXN3_3cy0IxZ8lXlH89efq7RgdApjT-YYzajBY="})


@dataclass(frozen=True)
class CookieSettings:
    """The flow cookie: encrypted, HttpOnly, SameSite=Lax, Secure unless turned off for local http."""

    name: str = "gateway_flow"
    secure: bool = True
    max_age: int = 600
    max_flows: int = 4


@dataclass(frozen=True)
class TlsSettings:
    """Optional TLS for deployments without a TLS-terminating proxy (Alexa needs 443 and a full chain)."""

    cert: str
    key: str


@dataclass(frozen=True)
class MetricsListen:
    """The optional ops listener (``metrics: {host, port}``): /metrics, /healthz, /readyz, plain http.

    A port apart from the public one lets a NetworkPolicy keep /metrics private and lets probes
    reach health without TLS; with it set, the public port serves no /metrics.
    """

    host: str
    port: int


@dataclass(frozen=True)
class ConnectionSettings:
    """How long a client may take and how many may be connected (``connections:`` in gateway.yaml).

    A slow client holds a file descriptor; without deadlines and a cap, a few thousand slow
    clients starve everyone (slowloris). See :mod:`gateway.web.runner`.
    """

    max: int = 1000
    """Open client connections at most; the next one gets 503 with ``Connection: close``."""
    header_timeout: float = 10.0
    """Seconds from a request's first byte to the end of its headers."""
    body_timeout: float = 10.0
    """Seconds to receive a request body once its headers are in."""
    keepalive_timeout: float = 15.0
    """Seconds an idle keep-alive connection stays open."""
    backlog: int = 128
    """The listen backlog (connections the kernel queues before the gateway accepts them)."""


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
    log_format: str
    log_level: str
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
    #: ``store:``: where replicas share refresh grace, locks and single-use claims (gateway/store.py).
    store: StoreSettings = field(default_factory=StoreSettings)

    def callback_url(self, provider: str) -> str:
        """The redirect URI the gateway registers with an upstream: ``<public_url>/<provider>/callback``."""
        return f"{self.public_url}/{provider}/callback"


def _check_keys(section: Section, name: str, keys: list[str]) -> None:
    """Each key opens Fernet tokens, and none is a key published in this repository."""
    for index, key in enumerate(keys):
        if key in PUBLIC_EXAMPLE_KEYS:
            section.problems.add(
                section.file,
                section.item_line(name, index),
                f"{name}[{index}]: this is the public example key from deploy/kubernetes/examples/: "
                "anyone can forge codes with it; make your own with `gateway keygen`",
            )
            continue
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            section.problems.add(
                section.file,
                section.item_line(name, index),
                f"{name}[{index}]: not a key: it must be 32 url-safe base64-encoded bytes (make one with `gateway keygen`)",
            )


def _link_keys(section: Section) -> tuple[str, ...]:
    """``link_keys``: seal refresh envelopes (:mod:`gateway.oauth.linkcontext`); the list only ever grows,
    newest first, so a link that refreshes once a year still opens after any number of rotations."""
    keys = [key for key in section.str_list("link_keys") if key]
    _check_keys(section, "link_keys", keys)
    return tuple(keys)


def _keys(section: Section, problems: Problems, base: Path) -> tuple[list[str], bool]:
    keys = [key for key in section.str_list("keys") if key]
    keys_file = section.text("keys_file", None)
    if keys_file:
        path = (base / keys_file) if not Path(keys_file).is_absolute() else Path(keys_file)
        try:
            keys += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.strip().startswith("#")]
        except (OSError, UnicodeDecodeError) as exc:
            section.error("keys_file", f"can not read {path}: {getattr(exc, 'strerror', None) or exc}")
    _check_keys(section, "keys", keys)
    if keys:
        return keys, False
    return [Fernet.generate_key().decode("ascii")], True


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
    their environment variables: ``gateway check`` validates every file it can see.
    """
    problems = Problems()
    data = load_yaml(path, problems, env=env)
    root = Section(data, file=str(path), problems=problems)
    base = path.parent

    listen = root.section("listen")
    file_host = listen.text("host", "127.0.0.1")
    file_port = listen.integer("port", 8080, minimum=0, maximum=65535)
    listen.finish()
    listen_host = host or file_host
    listen_port = port if port is not None else file_port

    public_url = root.url("public_url", None)
    if not public_url:
        shown_host = "localhost" if listen_host in {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost"} else listen_host
        if ":" in shown_host:
            shown_host = f"[{shown_host}]"  # an IPv6 literal in a URL (RFC 3986 §3.2.2)
        public_url = f"http://{shown_host}:{listen_port}"
    public_url = public_url.rstrip("/")

    keys, ephemeral = _keys(root, problems, base)
    link_keys = _link_keys(root)
    public_parts = split_url(public_url)
    local = is_loopback_host(public_parts.hostname if public_parts else None)
    if ephemeral and not local:
        root.error(
            "keys",
            "no key configured: a random key would break every flow on restart and across replicas; "
            "add keys (make one with `gateway keygen`) or keys_file",
        )

    cookie_section = root.section("cookie")
    cookie = CookieSettings(
        name=cookie_section.text("name", "gateway_flow"),
        secure=cookie_section.flag("secure", True),
        max_age=cookie_section.integer("max_age", 600, minimum=30, maximum=3600),
        max_flows=cookie_section.integer("max_flows", 4, minimum=1, maximum=16),
    )
    cookie_section.finish()
    if cookie.secure and public_url.startswith("http://"):
        cookie_section.error(
            "secure",
            "public_url is plain http, so browsers drop Secure cookies: serve https or set cookie.secure: false",
        )
    if not cookie.secure and not local:
        cookie_section.error("secure", "cookie.secure: false is only allowed for a localhost public_url")

    upstream = root.section("upstream")
    upstream_timeout = upstream.number("timeout", 4.0, minimum=0.1, maximum=60.0)
    upstream.finish()
    code_ttl = root.integer("code_ttl", 300, minimum=10, maximum=600)

    log_section = root.section("log")
    log_format = log_section.text("format", "text", choices=("text", "json"))
    log_level = log_section.text("level", "info", choices=("debug", "info", "warning", "error"))
    request_id_header = log_section.text("request_id_header", "X-Request-Id")
    log_section.finish()
    shutdown_grace = root.number("shutdown_grace", 10.0, minimum=0.0, maximum=300.0)
    conn = root.section("connections")
    connections = ConnectionSettings(
        max=conn.integer("max", 1000, minimum=1, maximum=1_000_000),
        header_timeout=conn.number("header_timeout", 10.0, minimum=0.1, maximum=300.0),
        body_timeout=conn.number("body_timeout", 10.0, minimum=0.1, maximum=300.0),
        keepalive_timeout=conn.number("keepalive_timeout", 15.0, minimum=0.1, maximum=3600.0),
        backlog=conn.integer("backlog", 128, minimum=1, maximum=65535),
    )
    conn.finish()
    tls = _tls(root.section("tls"), base)
    metrics_listen = _metrics_listen(root.section("metrics"), listen_port)
    store = _store(root, base)

    demo = root.flag("demo", False)
    trace = _trace(root.section("trace"), demo=demo)
    mappings_dir = base / root.text("mappings", "mappings")
    wanted = root.raw("providers")
    root.finish()

    providers: dict[str, ProviderMapping] = {}
    files = _mapping_files(mappings_dir, wanted, root, problems)
    if demo:
        installed = optional.demo()
        if installed is None:
            problems.add(str(path), root.line("demo"), optional.NO_DEMO)
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
        link_keys=link_keys,
        ephemeral_key=ephemeral,
        cookie=cookie,
        upstream_timeout=upstream_timeout,
        code_ttl=code_ttl,
        log_format=log_format,
        log_level=log_level,
        request_id_header=request_id_header,
        shutdown_grace=shutdown_grace,
        tls=tls,
        demo=demo,
        providers=providers,
        metrics=metrics_listen,
        connections=connections,
        unserved=unserved,
        trace=trace,
        store=store,
    )


def _trace(section: Section, *, demo: bool) -> TraceSettings | None:
    """``trace: {token, flows}``: off unless configured; the demo traces with a random token."""
    if not section.data:
        section.finish()
        return TraceSettings(token=secrets.token_urlsafe(32), flows=50, generated=True) if demo else None
    token = section.text("token", "")
    flows = section.integer("flows", 200, minimum=1, maximum=10_000)
    section.finish()
    if len(token) < MIN_TOKEN_LENGTH:
        section.error("token", f"the trace token must be at least {MIN_TOKEN_LENGTH} characters (make one with `gateway keygen`)")
    return TraceSettings(token=token, flows=flows)


def _metrics_listen(section: Section, public_port: int) -> MetricsListen | None:
    """``metrics: {host, port}``: the ops listener, or None to serve /metrics on the public port."""
    if not section.data:
        section.finish()
        return None
    listen = MetricsListen(
        host=section.text("host", "127.0.0.1"), port=section.integer("port", minimum=0, maximum=65535)
    )
    section.finish()
    if listen.port and listen.port == public_port:
        section.error("port", f"metrics.port must differ from listen.port ({public_port})")
    return listen


def _store(root: Section, base: Path) -> StoreSettings:
    """``store: memory`` (the default) or ``store: {url: redis://…, timeout: 0.25, ca_file: …}``.

    ``ca_file`` (a PEM file, relative to the config like ``tls:``) is the CA that signed a
    ``rediss://`` server's certificate, when the system trust store does not know it.
    """
    value = root.raw("store")
    if value is None or value == "memory":
        return StoreSettings()
    if isinstance(value, str):
        root.error("store", f"must be memory or {{url: redis://host:6379/0}}, not {value!r}")
        return StoreSettings()
    section = root.section("store")
    url = section.text("url", "")  # empty (e.g. an unset ${VAR:-}): the per-process store
    timeout = section.number("timeout", 0.25, minimum=0.01, maximum=2.0)
    ca_value = section.text("ca_file", "")
    section.finish()
    parts = split_url(url) if url else None
    if url and not getattr(url, "unresolved", False) and (parts is None or parts.scheme not in {"redis", "rediss"} or not parts.hostname):
        section.error("url", f"must be a redis:// or rediss:// URL, not {url!r}")
    ca_file = None
    if ca_value:
        path = Path(ca_value) if Path(ca_value).is_absolute() else base / ca_value
        if not path.is_file():
            section.error("ca_file", f"no file {path}")
        if url and not getattr(url, "unresolved", False) and parts is not None and parts.scheme != "rediss":
            section.error("ca_file", "needs a rediss:// URL (TLS)")
        ca_file = str(path)
    return StoreSettings(url=url or None, timeout=timeout, ca_file=ca_file)


def _tls(section: Section, base: Path) -> TlsSettings | None:
    """``tls: {cert, key}``: PEM files (the cert file holds the full chain), relative to the config."""
    if not section.data:
        section.finish()
        return None
    paths = []
    for key in ("cert", "key"):
        value = section.text(key)
        path = Path(value) if Path(value).is_absolute() else base / value
        if not path.is_file():
            section.error(key, f"no file {path}")
        paths.append(str(path))
    section.finish()
    return TlsSettings(cert=paths[0], key=paths[1])


def _mapping_files(directory: Path, wanted: object, root: Section, problems: Problems) -> list[Path]:
    """The mapping files to serve: those named in ``providers:``, or every ``*.yaml`` in the folder."""
    if wanted is not None and not (isinstance(wanted, list) and all(isinstance(name, str) for name in wanted)):
        root.error("providers", "must be a list of mapping names")
        return []
    if wanted is not None:
        files = []
        for name in wanted:
            file = directory / f"{name}.yaml"
            if not file.is_file():
                root.error("providers", f"no mapping {file}")
            else:
                files.append(file)
        return files
    if not directory.is_dir():
        root.error("mappings", f"mappings folder {directory} does not exist")
        return []
    return sorted(directory.glob("*.yaml"))


def _load_mapping(
    file: Path, problems: Problems, *, env: Mapping[str, str] | None, public_url: str, missing_env_ok: bool = False
) -> ProviderMapping | None:
    # GATEWAY_PUBLIC_URL is always known, so a mapping can point at the gateway itself (the demo).
    variables = {**(os.environ if env is None else env), "GATEWAY_PUBLIC_URL": public_url}
    before = len(problems.items)
    data = load_yaml(file, problems, env=variables, missing_env_ok=missing_env_ok)
    if data is None and len(problems.items) > before:
        return None  # unreadable or not YAML: already reported
    name = file.stem
    if name in _RESERVED_NAMES:
        problems.add(str(file), 0, f"{name!r} is reserved for the gateway's own paths")
    section = Section(data, file=str(file), problems=problems)
    # Served mappings fetch their OpenID Connect discovery document now (cached per URL); `gateway
    # check` judges the mappings it does not serve offline, without their secrets or the network.
    mapping = parse_mapping(name, section, discover=None if missing_env_ok else discovery.fetch)
    # The JSON Schema (mappings/schema.json) checks the same document; on a line the reader has
    # already reported it stays quiet, so one mistake is one problem.
    check_mapping(data, str(file), problems)
    return mapping
