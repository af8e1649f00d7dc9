"""The shipped provider mappings: each loads, documents itself, and passes its own examples.

Also OpenID Connect discovery (``upstream.discovery``), against a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.mappings import with_bases

from gateway.config import discovery
from gateway.config.extends import load_mapping_document
from gateway.config.mapping import ProviderMapping
from gateway.config.settings import Config, load_config
from gateway.config.yamlfile import ConfigError, Problems
from gateway.oauth.seal import generate_key
from gateway.upstream.examples import run_examples

ROOT = Path(__file__).resolve().parents[3]
MAPPINGS = ROOT / "mappings"
FILES = sorted(MAPPINGS.glob("*.yaml"))
#: The providers the project promises a mapping for, by mapping file.
REQUIRED = {
    "amazon", "google", "entra", "github", "slack", "withings", "strava", "salesforce", "facebook", "fitbit",
    "x", "reddit", "ecobee", "dropbox", "spotify", "zoom", "smartthings", "homeconnect", "discord", "mailchimp", "oidc",
}
#: Providers that have no refresh grant at all (their comment says so).
NO_REFRESH = {"acuity", "aircall", "clickup", "eventbrite", "facebook", "mailchimp", "polar", "shopify", "todoist", "vimeo", "webflow", "wordpress"}  # tokens that do not expire


@pytest.fixture(scope="module")
def checked() -> Config:
    """Every mapping, loaded the way `gateway check` loads mappings it does not serve."""
    return load_config(ROOT / "gateway.yaml", check_all=True, env={})


def _mapping(config: Config, file: Path) -> ProviderMapping:
    return {**config.providers, **config.unserved}[file.stem]


def test_every_provider_of_the_issue_has_a_mapping() -> None:
    assert REQUIRED <= {file.stem for file in FILES}


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.stem)
def test_examples_pass(checked: Config, file: Path) -> None:
    mapping = _mapping(checked, file)
    assert run_examples(mapping) == []


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.stem)
def test_examples_cover_success_refresh_and_errors(checked: Config, file: Path) -> None:
    examples = _mapping(checked, file).examples
    successes = [e for e in examples if "error" not in e.expect]
    assert any(e.grant == "authorization_code" for e in successes), "a successful code exchange"
    if file.stem not in NO_REFRESH:
        assert any(e.grant == "refresh_token" for e in successes), "a successful refresh"
    assert any(e.expect.get("error") == "invalid_grant" for e in examples), "a bad grant"
    assert any(e.expect.get("status") in (502, 503) for e in examples), "an error that is not the user's grant"


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.stem)
def test_header_comment_names_schema_docs_quirks_and_platform(checked: Config, file: Path) -> None:
    lines = file.read_text(encoding="utf-8").splitlines()
    header = "\n".join(line for line in lines[: next(i for i, text in enumerate(lines) if not text.startswith("#"))])
    assert lines[0] == "# yaml-language-server: $schema=schema.json"
    # The provider's documentation is named in about.sources (test_shipped_mappings), not here.
    assert "Quirks handled:" in header or "What it relies on:" in header
    profile = _mapping(checked, file).platform.profile
    assert f"# Platform: {profile}." in header


def _prefix(file: Path) -> str:
    """The mapping's variables start with its name: ``google-calendar`` → ``GOOGLE_CALENDAR``."""
    return file.stem.upper().replace("-", "_")


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.stem)
def test_credentials_come_from_the_environment(file: Path) -> None:
    problems = Problems()
    data = load_mapping_document(file, problems, env={}, missing_env_ok=True)
    prefix = _prefix(file)
    unresolved = re.compile(r"<[A-Z][A-Z0-9_]*>")
    platform, upstream = data["platform"], data["upstream"]
    # Each skill or action has its own platform client, a variant's too; a variant (extends:) may
    # use its base's client at the provider.
    assert platform["client_id"] == f"<{prefix}_PLATFORM_CLIENT_ID>"
    assert platform["client_secret"] == f"<{prefix}_PLATFORM_CLIENT_SECRET>"
    assert upstream["client_id"] in {f"<{_prefix(each)}_CLIENT_ID>" for each in with_bases(file)}
    if "client_secret" in upstream:
        assert unresolved.fullmatch(upstream["client_secret"])
    text = file.read_text(encoding="utf-8")
    for variable in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text):
        assert variable in text.split("\nplatform:")[0], f"the header comment documents {variable}"


def _env_for(file: Path) -> dict[str, str]:
    text = "".join(each.read_text(encoding="utf-8") for each in with_bases(file))  # a variant's bases' too
    # Variables with a `:-default` keep their default; the others get a made-up value.
    return {variable: f"{variable.lower()}-value" for variable in re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", text)}


@pytest.mark.parametrize("file", [f for f in FILES if f.stem != "oidc"], ids=lambda f: f.stem)
def test_each_mapping_can_be_served(tmp_path: Path, file: Path) -> None:
    (tmp_path / "mappings").mkdir()
    for each in with_bases(file):  # a variant's bases beside it
        (tmp_path / "mappings" / each.name).write_text(each.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text(
        f'keys: ["{generate_key()}"]\npublic_url: https://link.example.com\nproviders: [{file.stem}]\n', encoding="utf-8"
    )
    config = load_config(tmp_path / "gateway.yaml", env=_env_for(file))
    mapping = config.providers[file.stem]
    origin = next((spec for spec in mapping.callback_keep if spec.url and mapping.token.url.startswith(f"{{{spec.name}}}/")), None)
    assert mapping.token.url.startswith("https://") or origin is not None and not origin.allow_private  # an https-only origin
    assert mapping.authorize.url.startswith("https://")


# -- OpenID Connect discovery ------------------------------------------------------------------------
class _Documents(BaseHTTPRequestHandler):
    documents: dict[str, tuple[int, bytes]] = {}
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.hits.append(self.path)
        status, body = self.documents.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def issuer_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Documents)
    _Documents.documents, _Documents.hits = {}, []
    # serve_forever polls for shutdown every poll_interval (0.5 s by default): each teardown waited that long.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    discovery.clear_cache()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    discovery.clear_cache()


def _publish(base: str, path: str, document: object, status: int = 200) -> None:
    _Documents.documents[path] = (status, json.dumps(document).encode())


def _serve_oidc(tmp_path: Path, env: dict[str, str], mapping: str | None = None) -> Config:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "mappings" / "oidc.yaml").write_text(mapping or (MAPPINGS / "oidc.yaml").read_text(), encoding="utf-8")
    (tmp_path / "gateway.yaml").write_text(
        f'keys: ["{generate_key()}"]\npublic_url: https://link.example.com\nproviders: [oidc]\n', encoding="utf-8"
    )
    return load_config(tmp_path / "gateway.yaml", env={**_env_for(MAPPINGS / "oidc.yaml"), **env})


def _line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_discovery_fills_the_endpoints_and_the_issuer(tmp_path: Path, issuer_server: str) -> None:
    issuer = f"{issuer_server}/realms/home"
    _publish(issuer_server, "/realms/home/.well-known/openid-configuration", {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/protocol/openid-connect/auth",
        "token_endpoint": f"{issuer}/protocol/openid-connect/token",
    })
    mapping = _serve_oidc(tmp_path, {"OIDC_ISSUER": issuer}).providers["oidc"]
    assert mapping.authorize.url == f"{issuer}/protocol/openid-connect/auth"
    assert mapping.token.url == mapping.refresh.url == f"{issuer}/protocol/openid-connect/token"
    assert mapping.issuer == issuer
    assert mapping.discovery == f"{issuer}/.well-known/openid-configuration"
    _serve_oidc(tmp_path, {"OIDC_ISSUER": issuer})
    assert _Documents.hits == ["/realms/home/.well-known/openid-configuration"], "fetched once per URL per process"


@pytest.mark.parametrize("advertised", [True, False])
def test_require_iss_follows_what_discovery_advertises(tmp_path: Path, issuer_server: str, advertised: bool) -> None:
    """RFC 9207 §2.4: an upstream that advertises ``iss`` in authorization responses must send it."""
    issuer = f"{issuer_server}/tenant"
    _publish(issuer_server, "/tenant/.well-known/openid-configuration", {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "authorization_response_iss_parameter_supported": advertised,
    })
    assert _serve_oidc(tmp_path, {"OIDC_ISSUER": issuer}).providers["oidc"].require_iss is advertised


def test_explicit_urls_win_over_discovery(tmp_path: Path, issuer_server: str) -> None:
    _publish(issuer_server, "/.well-known/openid-configuration", {
        "issuer": issuer_server, "authorization_endpoint": f"{issuer_server}/auth", "token_endpoint": f"{issuer_server}/token",
    })
    text = (MAPPINGS / "oidc.yaml").read_text().replace("    client_auth: basic\n", "    client_auth: basic\n    url: https://other.example.com/token\n")
    mapping = _serve_oidc(tmp_path, {"OIDC_ISSUER": issuer_server}, text).providers["oidc"]
    assert mapping.token.url == "https://other.example.com/token"
    assert mapping.authorize.url == f"{issuer_server}/auth"


@pytest.mark.parametrize(
    ("path", "document", "status", "fragment"),
    [
        ("/missing", None, 404, "HTTP 404"),
        ("/wrong-issuer", {"issuer": "https://evil.example.com", "authorization_endpoint": "https://a.example.com/a",
                           "token_endpoint": "https://a.example.com/t"}, 200, "is not the issuer it was fetched from"),
        ("/no-token", {"authorization_endpoint": "https://a.example.com/a"}, 200, "no token_endpoint"),
        ("/plain-http", {"authorization_endpoint": "http://a.example.com/a", "token_endpoint": "https://a.example.com/t"},
         200, "authorization_endpoint must be an absolute https URL"),
        ("/not-an-object", [], 200, "did not answer a JSON object"),
    ],
)
def test_a_discovery_failure_is_a_load_problem_at_the_discovery_line(
    tmp_path: Path, issuer_server: str, path: str, document: object, status: int, fragment: str
) -> None:
    issuer = f"{issuer_server}{path}"
    if document is not None:
        if isinstance(document, dict) and "issuer" not in document:
            document = {**document, "issuer": issuer}
        _publish(issuer_server, f"{path}/.well-known/openid-configuration", document, status)
    with pytest.raises(ConfigError) as info:
        _serve_oidc(tmp_path, {"OIDC_ISSUER": issuer})
    text = (MAPPINGS / "oidc.yaml").read_text()
    file = str(tmp_path / "mappings" / "oidc.yaml")
    problems = [p for p in info.value.problems if p.file == file]
    assert len(problems) == 1, problems
    assert problems[0].line == _line_of(text, "  discovery:")
    assert problems[0].message.startswith("upstream.discovery: ") and fragment in problems[0].message


def test_an_unreachable_issuer_is_a_load_problem(tmp_path: Path) -> None:
    discovery.clear_cache()
    with pytest.raises(ConfigError) as info:
        _serve_oidc(tmp_path, {"OIDC_ISSUER": "http://127.0.0.1:9"})
    assert any("upstream.discovery: can not fetch http://127.0.0.1:9/" in str(p) for p in info.value.problems)


def test_without_discovery_the_urls_are_required(tmp_path: Path) -> None:
    text = (MAPPINGS / "oidc.yaml").read_text().replace("  discovery: ${OIDC_ISSUER}/.well-known/openid-configuration\n", "")
    with pytest.raises(ConfigError) as info:
        _serve_oidc(tmp_path, {}, text)
    messages = [p.message for p in info.value.problems]
    assert any("upstream.authorize.url is required" in m for m in messages), messages
    assert any("upstream.token.url is required" in m for m in messages), messages


def test_check_does_not_fetch_the_document_of_a_mapping_it_does_not_serve(checked: Config) -> None:
    mapping = checked.unserved["oidc"]
    assert mapping.discovery == "<OIDC_ISSUER>/.well-known/openid-configuration"
    assert mapping.token.url == "" and mapping.authorize.url == ""
