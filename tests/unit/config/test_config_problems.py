"""N independent mistakes are exactly N problems, each at its ``file:line`` with its exact message.

Table-driven over both file kinds (gateway.yaml and a mapping) and both YAML styles (block, and
flow style where several mistakes share one line). A mistake never hides another one, and none
is reported twice or drags a follow-on problem behind it (a missing ``platform.client_secret`` is
"required", not also "too short"; a file that is not YAML says only that).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from support.oauth import ALEXA_MAPPING

from gateway.cli.commands import main
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError

KEY = Fernet.generate_key().decode("ascii")
TAG = "# <-"

GATEWAY = f"""\
public_url: https://link.example.com
keys: ["{KEY}"]
mappings: mappings
"""

MAPPING = ALEXA_MAPPING

PROBLEMS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "gateway-block",
        "gateway",
        GATEWAY
        + f"listen:\n  port: 70000  {TAG}a\n"
        + f"cookie:\n  secure: 1  {TAG}b\n  max_age: ten  {TAG}c\n"
        + f"code_ttl: 5  {TAG}d\n"
        + f"upstream:\n  timeout: '2_5'  {TAG}e\n"
        + f"demo: maybe  {TAG}f\n"
        + f"lsiten: {{}}  {TAG}g\n",
        [
            ("a", "listen.port: must be between 0 and 65535, not 70000"),
            ("b", "cookie.secure: must be true or false, not a number"),
            ("c", "cookie.max_age: must be a whole number, not text"),
            ("d", "code_ttl: must be between 10 and 600, not 5"),
            ("e", "upstream.timeout: must be a finite number, not text '2_5'"),
            ("f", "demo: must be true or false, not text"),
            ("g", "lsiten: unknown key (known here: code_ttl, connections, cookie, demo, keys, keys_file, link_keys, "
                  "listen, log, mappings, metrics, providers, public_url, seal_format, shutdown_grace, store, tls, trace, upstream)"),
        ],
    ),
    (
        "gateway-flow",
        "gateway",
        GATEWAY
        + f"log: {{format: xml, level: loud}}  {TAG}a\n"
        + f"connections: {{max: 0, backlog: many, header_timeout: .inf}}  {TAG}b\n"
        + f"trace: {{token: short}}  {TAG}c\n",
        [
            ("a", "log.format: must be one of text, json, not 'xml'"),
            ("a", "log.level: must be one of debug, info, warning, error, not 'loud'"),
            ("b", "connections.max: must be between 1 and 1000000, not 0"),
            ("b", "connections.backlog: must be a whole number, not text"),
            ("b", "connections.header_timeout: must be a finite number, not inf"),
            ("c", "trace.token: the trace token must be at least 32 characters (make one with `gateway keygen`)"),
        ],
    ),
    (
        "mapping-block",
        "mapping",
        MAPPING.replace("  client_secret: alexa-skill-secret\n", f"  client_secret: short  {TAG}a\n  pkce: s256  {TAG}b\n")
        .replace("    url: https://id.example.com/token\n", f"    url: http://id.example.com/token  {TAG}c\n    encoding: xml  {TAG}d\n")
        + f"  answer:\n    root: 'body.[['  {TAG}e\n    error:\n      map:\n        bad: wrong  {TAG}f\n"
        + f"examples:\n  - expect:\n      acces_token: at  {TAG}g\n",
        [
            ("a", "platform.client_secret: must be at least 8 characters"),
            ("b", "platform.pkce: must be one of optional, required, S256, not 's256'"),
            ("c", "upstream.token.url: must use https (plain http only for localhost), not 'http://id.example.com/token'"),
            ("d", "upstream.token.encoding: must be one of form, json, query, not 'xml'"),
            ("e", "upstream.answer.root: bad JMESPath 'body.[[': Invalid jmespath expression: Incomplete expression:"),
            ("f", "upstream.answer.error.map.bad: 'wrong' is not an RFC 6749 token error"),
            ("g", "examples[0].expect.acces_token: unknown key (known here: access_token, error, error_description, "
                  "expires_in, id_token, refresh_token, scope, status, token_type)"),
        ],
    ),
    (
        "mapping-flow",
        "mapping",
        MAPPING.replace(
            "    url: https://id.example.com/token\n",
            f"    url: https://id.example.com/token\n    refresh: {{grace: 601, keep_refresh_token: yes please, bogus: 1}}  {TAG}a\n",
        ).replace(
            "  authorize:\n    url: https://id.example.com/authorize\n",
            f"  authorize: {{url: 'ftp://id.example.com/a', pkce: S512, params: {{add: {{x: '{{nope}}'}}}}}}  {TAG}b\n",
        )
        + f"  token2: {{url: x}}  {TAG}c\n",
        [
            ("a", "upstream.token.refresh.grace: must be between 0 and 600, not 601"),
            ("a", "upstream.token.refresh.keep_refresh_token: must be true or false, not text"),
            ("a", "upstream.token.refresh.bogus: unknown key (known here: client_auth, encoding, grace, headers, keep_refresh_token, method, params, typed, url)"),
            ("b", "upstream.authorize.url: must be an absolute http(s) URL, not 'ftp://id.example.com/a'"),
            ("b", "upstream.authorize.pkce: must be one of none, S256, plain, not 'S512'"),
            ("b", "upstream.authorize.params.add.x: unknown placeholder {nope} (known: client_id, code_challenge, "
                  "code_challenge_method, locale, redirect_uri, scope, state)"),
            ("c", "upstream.token2: unknown key (known here: answer, authorize, client_id, client_secret, discovery, "
                  "issuer, require_iss, revoke, scope_separator, token)"),
        ],
    ),
    (
        "mapping-flow-token",
        "mapping",
        MAPPING.replace("    url: https://id.example.com/token\n", "").replace(
            "  token:\n", f"  token: {{url: https://id.example.com/token, timeout: '2_5', encoding: xml}}  {TAG}a\n"
        ),
        [
            ("a", "upstream.token.timeout: must be a finite number, not text '2_5'"),
            ("a", "upstream.token.encoding: must be one of form, json, query, not 'xml'"),
        ],
    ),
    (
        "mapping-missing-secret",
        "mapping",
        MAPPING.replace("platform:\n", f"platform:  {TAG}x\n").replace("  client_secret: alexa-skill-secret\n", "")
        .replace("  profile: alexa\n", f"  profile: alexa  {TAG}a\n"),
        [("a", "platform.client_secret is required")],
    ),
    (
        "mapping-unset-variable",
        "mapping",
        MAPPING.replace("  client_secret: alexa-skill-secret\n", f"  client_secret: ${{UNSET_FOR_TEST}}  {TAG}a\n"),
        [("a", "environment variable UNSET_FOR_TEST is not set")],
    ),
    (
        "mapping-section-not-a-mapping",
        "mapping",
        MAPPING + f"callback: [a, b]  {TAG}a\ntenant: {{name: shop, pattern: '(', label: Shop}}  {TAG}b\n",
        [
            ("a", "callback: must be a mapping, not a list"),
            ("b", "tenant.pattern: not a regular expression: missing ), unterminated subpattern at position 0"),
        ],
    ),
    (
        "mapping-upstream-not-a-mapping",
        "mapping",
        MAPPING[: MAPPING.index("upstream:")] + f"upstream: 5  {TAG}a\n",
        [("a", "upstream: must be a mapping, not a number")],
    ),
    (
        "mapping-not-a-mapping",
        "mapping",
        f"[1, 2]  {TAG}a\n",
        [("a", "file: must be a mapping, not a list")],
    ),
    (
        "wrong-values-have-no-follow-ons",
        "mapping",
        MAPPING.replace("  profile: alexa\n", f"  profile: alexxa  {TAG}a\n")
        .replace("  authorize:\n    url: https://id.example.com/authorize\n", f"  discovery: [x]  {TAG}b\n")
        .replace("    url: https://id.example.com/token\n", "    timeout: 2\n"),
        [
            ("a", "platform.profile: must be one of alexa, google, smartthings, alexa-mcp, none, not 'alexxa'"),
            ("b", "upstream.discovery: must be text, not a list"),
        ],
    ),
    (
        "a-wrong-tenant-drags-no-unknown-placeholder",
        "mapping",
        MAPPING.replace("    url: https://id.example.com/token\n", "    url: 'https://{shop}.example.com/token'\n    params: {add: {s: '{shop}'}}\n")
        + f"tenant: [shop, '[a-z]+', Shop]  {TAG}a\n",
        [("a", "tenant: must be a mapping, not a list")],
    ),
    (
        "gateway-wrong-values-have-no-follow-ons",
        "gateway",
        f"public_url: http://link.example.com  {TAG}a\nkeys: [{{a: b}}]  {TAG}b\ncookie: {{secure: no way}}  {TAG}c\n",
        [
            ("a", "public_url: must use https (plain http only for localhost), not 'http://link.example.com'"),
            ("b", "keys[0]: must be text, not a mapping"),
            ("c", "cookie.secure: must be true or false, not text"),
        ],
    ),
    (
        "mapping-not-yaml",
        "mapping",
        MAPPING.replace("  client_id: gateway\n", f"  client_id: gateway\n  oops: a: b  {TAG}a\n"),
        [("a", "not valid YAML: mapping values are not allowed here")],
    ),
    (
        "gateway-not-yaml",
        "gateway",
        "mappings: nowhere\nproviders: [a, b\n" + f"keys: []  {TAG}a\n",
        [("a", "not valid YAML: expected ',' or ']', but got ':'")],
    ),
]


def _line(text: str, tag: str) -> int:
    return next(number for number, row in enumerate(text.splitlines(), 1) if row.endswith(f"{TAG}{tag}"))


def _write(tmp_path: Path, where: str, text: str) -> tuple[Path, Path]:
    (tmp_path / "mappings").mkdir()
    mapping = tmp_path / "mappings" / "p.yaml"
    mapping.write_text(text if where == "mapping" else MAPPING, encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(text if where == "gateway" else GATEWAY, encoding="utf-8")
    return config, config if where == "gateway" else mapping


@pytest.mark.parametrize(("where", "text", "expected"), [case[1:] for case in PROBLEMS], ids=[case[0] for case in PROBLEMS])
def test_n_mistakes_are_exactly_n_problems_at_their_lines(
    tmp_path: Path, where: str, text: str, expected: list[tuple[str, str]]
) -> None:
    config, file = _write(tmp_path, where, text)
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    got = sorted(str(problem) for problem in caught.value.problems)
    assert got == sorted(f"{file}:{_line(text, tag)}: {message}" for tag, message in expected)


@pytest.mark.parametrize(("where", "text", "expected"), [case[1:] for case in PROBLEMS], ids=[case[0] for case in PROBLEMS])
def test_gateway_check_reports_every_problem_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, text: str, expected: list[tuple[str, str]]
) -> None:
    config, file = _write(tmp_path, where, text)
    assert main(["check", "--config", str(config)]) == 1
    located = [row for row in capsys.readouterr().err.splitlines() if row.startswith(f"{file}:")]
    assert len(located) == len(set(located)) == len(expected), located


def test_a_bound_inside_an_optional_field_is_named_in_full(tmp_path: Path) -> None:
    text = MAPPING.replace("    url: https://id.example.com/token\n", f"    url: https://id.example.com/token\n    timeout: 61  {TAG}a\n")
    config, file = _write(tmp_path, "mapping", text)
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert [str(problem) for problem in caught.value.problems] == [
        f"{file}:{_line(text, 'a')}: upstream.token.timeout: must be between 0.1 and 60.0, not 61"
    ]
