"""Loading gateway.yaml and its mappings: defaults, ${VAR} interpolation, and file:line problems.

Every test writes real files to ``tmp_path`` and goes through ``load_config`` (or the ``gateway``
CLI), the way an operator does. A problem is checked by file, line and a fragment of its message.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from textwrap import dedent

import pytest
from cryptography.fernet import Fernet

from gateway.cli.commands import main
from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError, Problem

KEY_A = Fernet.generate_key().decode("ascii")
KEY_B = Fernet.generate_key().decode("ascii")
MARK = "# <-"  # marks the line a problem must be reported at

GATEWAY = f"""\
listen:
  host: 127.0.0.1
  port: 9000
public_url: https://link.example.com/
keys: ["{KEY_A}"]
mappings: mappings
"""

# GitHub OAuth app: credentials in the body, comma-separated scopes, form answer unless asked for JSON.
GITHUB = """\
platform:
  profile: alexa
  vendor_ids: [M3BVP74N95SP1F]
  client_id: alexa-skill
  client_secret: alexa-skill-secret
upstream:
  client_id: gh-client
  client_secret: gh-secret
  scope_separator: ","
  authorize:
    url: https://github.com/login/oauth/authorize
    scope: repo
  token:
    url: https://github.com/login/oauth/access_token
    client_auth: body
  answer:
    format: auto
    error:
      map:
        bad_verification_code: invalid_grant
examples:
  - name: form answer
    content_type: application/x-www-form-urlencoded
    body: "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer"
    expect: {"access_token": "gho_abc", "token_type": "Bearer", "expires_in": 3600, "scope": "repo gist"}
"""

# Slack v2: HTTP Basic, errors with HTTP 200 and ok: false.
SLACK = """\
platform:
  profile: google
  client_id: google-home
  client_secret: google-home-secret
upstream:
  client_id: "1234.5678"
  client_secret: slack-secret
  scope_separator: ","
  authorize:
    url: https://slack.com/oauth/v2/authorize
  token:
    url: https://slack.com/api/oauth.v2.access
    client_auth: basic
  answer:
    format: json
    error:
      when: "ok == `false`"
      code: error
      map:
        invalid_code: invalid_grant
"""


# -- helpers ----------------------------------------------------------------------------------------
def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (the test fails loudly if it is not there)."""
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


def marked_line(text: str) -> int:
    """The 1-based line that carries ``MARK``."""
    lines = [number for number, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(lines) == 1, "exactly one line must be marked"
    return lines[0]


def write(tmp_path: Path, gateway: str = GATEWAY, mappings: dict[str, str] | None = None) -> Path:
    folder = tmp_path / "mappings"
    folder.mkdir(exist_ok=True)
    for name, text in ({"github": GITHUB} if mappings is None else mappings).items():
        (folder / f"{name}.yaml").write_text(dedent(text), encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(dedent(gateway), encoding="utf-8")
    return config


def problems_of(config: Path, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(config, env={} if env is None else env)
    problems = info.value.problems
    assert problems, "a ConfigError must carry its problems"
    assert str(info.value) == "\n".join(str(problem) for problem in problems)
    return problems


def find(problems: list[Problem], file: Path, line: int, fragment: str) -> Problem:
    for problem in problems:
        if problem.file == str(file) and problem.line == line and fragment in problem.message:
            return problem
    pytest.fail(f"no problem {file}:{line}: ...{fragment}... in:\n" + "\n".join(map(str, problems)))


# -- a good config --------------------------------------------------------------------------------
def test_minimal_config_loads_with_documented_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), env={})

    assert config.public_url == "https://link.example.com"  # trailing slash dropped
    assert config.callback_url("github") == "https://link.example.com/github/callback"
    assert (config.host, config.port) == ("127.0.0.1", 9000)
    assert config.upstream_timeout == 4.0  # fits inside Alexa's 4.5 s budget
    assert config.code_ttl == 300
    assert config.cookie.secure is True
    assert config.cookie.max_age <= 3600
    assert config.log_format == "text"
    assert config.demo is False
    assert list(config.providers) == ["github"]

    github = config.providers["github"]
    assert github.upstream_client_id == "gh-client"
    assert github.token.client_auth == "body"
    assert github.platform.redirect_policy.allows("https://layla.amazon.com/api/skill/link/M3BVP74N95SP1F")
    assert not github.platform.redirect_policy.allows("https://layla.amazon.com/api/skill/link/OTHERVENDOR")


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.public_url = "https://evil.example"  # type: ignore[misc]  # the assignment a frozen config must refuse


def test_empty_keys_means_one_ephemeral_random_key_on_localhost(tmp_path: Path) -> None:
    local = GATEWAY.replace("public_url: https://link.example.com/\n", "cookie: {secure: false}\n").replace(
        f'keys: ["{KEY_A}"]', "keys: []"
    )
    config = load_config(write(tmp_path, local), env={})
    assert config.ephemeral_key is True
    assert len(config.keys) == 1
    Fernet(config.keys[0].encode("ascii"))  # a usable key
    assert load_config(write(tmp_path, local), env={}).keys != config.keys  # random each time


def test_no_keys_on_a_public_url_is_refused(tmp_path: Path) -> None:
    """A random key on a real deployment would break every flow across replicas and restarts."""
    problems = problems_of(write(tmp_path, GATEWAY.replace(f'keys: ["{KEY_A}"]', "keys: []")))
    assert [p.line for p in problems if "no key configured" in p.message] == [5]


def test_given_keys_keep_their_order_and_are_not_ephemeral(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edit(GATEWAY, f'keys: ["{KEY_A}"]', f"keys: [{KEY_B}, {KEY_A}]")), env={})
    assert config.ephemeral_key is False
    assert config.keys == (KEY_B, KEY_A)  # the first seals


@pytest.mark.parametrize(
    ("listen_host", "expected"),
    [
        ("127.0.0.1", "http://localhost:9000"),
        ("0.0.0.0", "http://localhost:9000"),
        ("localhost", "http://localhost:9000"),
    ],
)
def test_public_url_defaults_to_http_localhost_and_the_port(tmp_path: Path, listen_host: str, expected: str) -> None:
    gateway = f"listen:\n  host: {listen_host}\n  port: 9000\ncookie:\n  secure: false\n"
    config = load_config(write(tmp_path, gateway), env={})
    assert config.public_url == expected
    assert config.callback_url("github") == f"{expected}/github/callback"


def test_public_url_follows_a_port_given_on_the_command_line(tmp_path: Path) -> None:
    gateway = "listen:\n  port: 9000\ncookie:\n  secure: false\n"
    config = load_config(write(tmp_path, gateway), port=7001, env={})
    assert config.port == 7001
    assert config.public_url == "http://localhost:7001"


def test_public_url_for_an_ipv6_listen_host_is_a_valid_url(tmp_path: Path) -> None:
    from urllib.parse import urlsplit

    gateway = 'listen:\n  host: "::1"\n  port: 8080\ncookie:\n  secure: false\n'
    parts = urlsplit(load_config(write(tmp_path, gateway), env={}).public_url)
    assert parts.hostname in {"::1", "localhost"}
    assert parts.port == 8080


def test_plain_http_public_url_needs_cookie_secure_false(tmp_path: Path) -> None:
    gateway = "public_url: http://localhost:9000\n"
    problems = problems_of(write(tmp_path, gateway))
    assert any("secure" in problem.message for problem in problems)


# -- ${VAR} interpolation ---------------------------------------------------------------------------
def test_env_variables_are_interpolated_in_gateway_yaml_and_mappings(tmp_path: Path) -> None:
    gateway = edit(GATEWAY, "port: 9000", "port: ${PORT}")
    gateway = edit(gateway, f'keys: ["{KEY_A}"]', 'keys: ["${GATEWAY_KEY}"]')
    github = edit(GITHUB, "client_secret: gh-secret", "client_secret: ${GITHUB_SECRET}")
    config = load_config(
        write(tmp_path, gateway, {"github": github}),
        env={"PORT": "9100", "GATEWAY_KEY": KEY_A, "GITHUB_SECRET": "s3cr3t from env"},
    )
    assert config.port == 9100
    assert config.keys == (KEY_A,)
    assert config.providers["github"].upstream_client_secret == "s3cr3t from env"


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${SECRET:-fallback}", {}, "fallback"),
        ("${SECRET:-fallback}", {"SECRET": "from-env"}, "from-env"),
        ("${SECRET:-}", {}, ""),
        ("pre-${A}-${B}-post", {"A": "1", "B": "2"}, "pre-1-2-post"),
        ("$${SECRET}", {"SECRET": "from-env"}, "${SECRET}"),
        ("a$${SECRET:-x}b", {}, "a${SECRET:-x}b"),
        ("price: $5 {not a var}", {}, "price: $5 {not a var}"),
    ],
    ids=["default-used", "env-wins-over-default", "empty-default", "two-in-one", "escape", "escape-with-default", "no-ref"],
)
def test_interpolation_forms(tmp_path: Path, value: str, env: dict[str, str], expected: str) -> None:
    github = edit(GITHUB, "client_secret: gh-secret", f"client_secret: '{value}'")
    config = load_config(write(tmp_path, GATEWAY, {"github": github}), env=env)
    assert config.providers["github"].upstream_client_secret == expected


def test_missing_env_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    gateway = edit(GATEWAY, f'keys: ["{KEY_A}"]', f'keys: ["${{GATEWAY_KEY}}"]  {MARK}')
    github = edit(GITHUB, "client_secret: gh-secret", f"client_secret: ${{GITHUB_SECRET}}  {MARK}")
    config = write(tmp_path, gateway, {"github": github})
    problems = problems_of(config, env={"UNRELATED": "x"})
    find(problems, config, marked_line(gateway), "GATEWAY_KEY")
    find(problems, tmp_path / "mappings" / "github.yaml", marked_line(github), "GITHUB_SECRET")


def test_public_url_is_available_to_mappings_as_gateway_public_url(tmp_path: Path) -> None:
    github = edit(
        GITHUB,
        "url: https://github.com/login/oauth/authorize",
        "url: ${GATEWAY_PUBLIC_URL}/fake/authorize",
    )
    config = load_config(write(tmp_path, GATEWAY, {"github": github}), env={})
    assert config.providers["github"].authorize.url == "https://link.example.com/fake/authorize"


# -- one problem, at its file and line -------------------------------------------------------------
# (id, file the problem is in, gateway.yaml text, github.yaml text, message fragment); the line is
# the one marked with MARK in the file named.
PROBLEMS = [
    ("unknown-top-level-key", "gateway", GATEWAY + f"listne: 1  {MARK}\n", GITHUB, "unknown key"),
    (
        "unknown-nested-key-gateway",
        "gateway",
        GATEWAY + f"upstream:\n  timeout: 3\n  timout: 3  {MARK}\n",
        GITHUB,
        "upstream.timout: unknown key",
    ),
    (
        "unknown-nested-key-token",
        "github",
        GATEWAY,
        edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    bogus: 1  {MARK}\n"),
        "upstream.token.bogus: unknown key",
    ),
    (
        "unknown-key-in-refresh",
        "github",
        GATEWAY,
        edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    refresh:\n      endpoint: https://x.example  {MARK}\n"),
        "upstream.token.refresh.endpoint: unknown key",
    ),
    ("port-not-a-number", "gateway", edit(GATEWAY, "port: 9000", f"port: eighty  {MARK}"), GITHUB, "whole number"),
    ("port-out-of-range", "gateway", edit(GATEWAY, "port: 9000", f"port: 70000  {MARK}"), GITHUB, "between"),
    ("code-ttl-over-10-minutes", "gateway", GATEWAY + f"code_ttl: 3600  {MARK}\n", GITHUB, "between"),
    ("timeout-not-a-number", "gateway", GATEWAY + f"upstream:\n  timeout: soon  {MARK}\n", GITHUB, "number"),
    ("secure-not-a-bool", "gateway", GATEWAY + f"cookie:\n  secure: maybe  {MARK}\n", GITHUB, "true or false"),
    ("log-format-choice", "gateway", GATEWAY + f"log:\n  format: xml  {MARK}\n", GITHUB, "must be one of"),
    (
        "client-id-a-list",
        "github",
        GATEWAY,
        edit(GITHUB, "  client_id: alexa-skill", f"  client_id: [a, b]  {MARK}"),
        "must be text",
    ),
    (
        "encoding-choice",
        "github",
        GATEWAY,
        edit(GITHUB, "    client_auth: body", f"    client_auth: body\n    encoding: xml  {MARK}"),
        "must be one of",
    ),
    (
        "short-platform-secret",
        "github",
        GATEWAY,
        edit(GITHUB, "client_secret: alexa-skill-secret", f"client_secret: short  {MARK}"),
        "at least 8",
    ),
    (
        "http-token-url",
        "github",
        GATEWAY,
        edit(GITHUB, "url: https://github.com/login/oauth/access_token", f"url: http://github.com/login/oauth/access_token  {MARK}"),
        "https",
    ),
    (
        "relative-authorize-url",
        "github",
        GATEWAY,
        edit(GITHUB, "url: https://github.com/login/oauth/authorize", f"url: /login/oauth/authorize  {MARK}"),
        "absolute",
    ),
    (
        "non-http-scheme",
        "github",
        GATEWAY,
        edit(GITHUB, "url: https://github.com/login/oauth/authorize", f"url: ftp://github.com/authorize  {MARK}"),
        "absolute",
    ),
    (
        "public-url-http-non-loopback",
        "gateway",
        edit(GATEWAY, "public_url: https://link.example.com/", f"public_url: http://link.example.com/  {MARK}"),
        GITHUB,
        "https",
    ),
    (
        "bad-jmespath",
        "github",
        GATEWAY,
        edit(GITHUB, "    format: auto\n", f"    format: auto\n    root: 'body.[['  {MARK}\n"),
        "bad JMESPath",
    ),
    (
        "bad-jmespath-in-error-when",
        "github",
        GATEWAY,
        edit(GITHUB, "    error:\n", f"    error:\n      when: 'ok == '  {MARK}\n"),
        "bad JMESPath",
    ),
    (
        "yaml-syntax-gateway",
        "gateway",
        edit(GATEWAY, "  port: 9000", f"   port: 9000  {MARK}"),
        GITHUB,
        "not valid YAML",
    ),
    (
        "yaml-syntax-mapping",
        "github",
        GATEWAY,
        edit(GITHUB, "  scope_separator: \",\"", f"  scope_separator: \",\"\n  oops: a: b  {MARK}"),
        "not valid YAML",
    ),
    (
        "duplicate-key",
        "github",
        GATEWAY,
        edit(GITHUB, "  client_id: gh-client\n", f"  client_id: gh-client\n  client_id: again  {MARK}\n"),
        "given twice",
    ),
    (
        "unknown-placeholder-token",
        "github",
        GATEWAY,
        edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    params:\n      add:\n        action: '{{acton}}'  {MARK}\n"),
        "unknown placeholder {acton}",
    ),
    (
        "unknown-placeholder-authorize",
        "github",
        GATEWAY,
        edit(GITHUB, "    scope: repo\n", f"    scope: repo\n    params:\n      add:\n        login: '{{code}}'  {MARK}\n"),
        "unknown placeholder {code}",
    ),
    (
        "error-map-to-non-rfc-code",
        "github",
        GATEWAY,
        edit(
            GITHUB,
            "      map:\n        bad_verification_code: invalid_grant",
            f"      map:\n        bad_verification_code: invalid_code  {MARK}",
        ),
        "not an RFC 6749 token error",
    ),
    ("bad-key", "gateway", edit(GATEWAY, f'keys: ["{KEY_A}"]', f"keys: [not-a-fernet-key]  {MARK}"), GITHUB, "gateway keygen"),
    (
        "star-in-redirect-host",
        "github",
        GATEWAY,
        edit(GITHUB, "  vendor_ids: [M3BVP74N95SP1F]", f"  redirect_uris: ['https://*.example.com/cb']  {MARK}"),
        "'*' may stand only in the path",
    ),
    (
        "cookie-secure-false-public-host",
        "gateway",
        GATEWAY + f"cookie:\n  secure: false  {MARK}\n",
        GITHUB,
        "only allowed for a localhost",
    ),
    ("providers-missing", "gateway", GATEWAY + f"providers: [missing]  {MARK}\n", GITHUB, "no mapping"),
    ("providers-not-a-list", "gateway", GATEWAY + f"providers: github  {MARK}\n", GITHUB, "list of mapping names"),
    ("mappings-folder-missing", "gateway", edit(GATEWAY, "mappings: mappings", f"mappings: nowhere  {MARK}"), GITHUB, "does not exist"),
    (
        "example-grant-choice",
        "github",
        GATEWAY,
        edit(GITHUB, "  - name: form answer\n", f"  - name: form answer\n    grant: password  {MARK}\n"),
        "must be one of",
    ),
    (
        "missing-required-url",
        "github",
        GATEWAY,
        edit(GITHUB, "    url: https://github.com/login/oauth/access_token\n", f"    timeout: 2  {MARK}\n"),
        "upstream.token.url is required",
    ),
]


@pytest.mark.parametrize(
    ("where", "gateway", "github", "fragment"),
    [case[1:] for case in PROBLEMS],
    ids=[case[0] for case in PROBLEMS],
)
def test_each_problem_is_reported_at_its_file_and_line(
    tmp_path: Path, where: str, gateway: str, github: str, fragment: str
) -> None:
    config = write(tmp_path, gateway, {"github": github})
    file, text = (config, gateway) if where == "gateway" else (tmp_path / "mappings" / "github.yaml", github)
    problems = problems_of(config)
    find(problems, file, marked_line(text), fragment)
    assert all(str(problem).startswith(f"{problem.file}:") for problem in problems)
    assert len(problems) == 1, "one mistake, one problem:\n" + "\n".join(map(str, problems))


def test_one_mistake_gives_one_problem(tmp_path: Path) -> None:
    github = edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    bogus: 1  {MARK}\n")
    problems = problems_of(write(tmp_path, GATEWAY, {"github": github}))
    assert len(problems) == 1, problems
    assert str(problems[0]) == (
        f"{tmp_path / 'mappings' / 'github.yaml'}:{marked_line(github)}: "
        + problems[0].message
    )


def test_reserved_mapping_name_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, GATEWAY, {"healthz": GITHUB})
    problems = problems_of(config)
    assert any(
        problem.file == str(tmp_path / "mappings" / "healthz.yaml") and "reserved" in problem.message
        for problem in problems
    ), problems


@pytest.mark.parametrize("name", ["GitHub", "git hub", "-github", "github.v2"])
def test_mapping_name_must_be_a_url_path_segment(tmp_path: Path, name: str) -> None:
    config = write(tmp_path, GATEWAY, {name: GITHUB})
    problems = problems_of(config)
    assert any("mapping name" in problem.message for problem in problems), problems


def test_no_provider_at_all_is_a_problem(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, GATEWAY, {}))
    assert any("no provider" in problem.message for problem in problems), problems


def test_providers_list_picks_mappings(tmp_path: Path) -> None:
    config = write(tmp_path, GATEWAY + "providers: [slack]\n", {"github": GITHUB, "slack": SLACK})
    assert list(load_config(config, env={}).providers) == ["slack"]


def test_every_problem_of_every_file_at_once_sorted_by_file_and_line(tmp_path: Path) -> None:
    gateway = (
        edit(GATEWAY, "port: 9000", f"port: ninety  {MARK}1")
        + f"log:\n  level: loud  {MARK}2\n"
        + f"listne: 1  {MARK}3\n"
    )
    github = edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    bogus: 1  {MARK}4\n")
    github = edit(github, "client_secret: gh-secret", f"client_secret: ${{GITHUB_SECRET}}  {MARK}5")
    slack = edit(SLACK, "    format: json\n", f"    format: json\n    root: 'body[' {MARK}6\n")
    slack = edit(slack, "url: https://slack.com/oauth/v2/authorize", f"url: http://slack.com/oauth/v2/authorize  {MARK}7")
    config = write(tmp_path, gateway, {"github": github, "slack": slack})
    gh_file, slack_file = tmp_path / "mappings" / "github.yaml", tmp_path / "mappings" / "slack.yaml"

    def line(text: str, tag: str) -> int:
        return next(number for number, row in enumerate(text.splitlines(), 1) if f"{MARK}{tag}" in row)

    expected = [
        (config, line(gateway, "1"), "whole number"),
        (config, line(gateway, "2"), "must be one of"),
        (config, line(gateway, "3"), "unknown key"),
        (gh_file, line(github, "4"), "unknown key"),
        (gh_file, line(github, "5"), "GITHUB_SECRET"),
        (slack_file, line(slack, "6"), "bad JMESPath"),
        (slack_file, line(slack, "7"), "https"),
    ]
    problems = problems_of(config)
    assert [(problem.file, problem.line) for problem in problems] == sorted(
        (str(file), number) for file, number, _ in expected
    ), "\n".join(map(str, problems))
    for file, number, fragment in expected:
        find(problems, file, number, fragment)


# -- known bugs --------------------------------------------------------------------------------------
def test_nan_timeout_is_refused(tmp_path: Path) -> None:
    gateway = GATEWAY + f"upstream:\n  timeout: .nan  {MARK}\n"
    config = write(tmp_path, gateway)
    find(problems_of(config), config, marked_line(gateway), "timeout")


def test_superscript_digit_port_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    config = write(tmp_path, edit(GATEWAY, "port: 9000", 'port: "²"'))
    problems_of(config)


def test_malformed_ipv6_url_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    config = write(tmp_path, edit(GATEWAY, "public_url: https://link.example.com/", 'public_url: "https://[::1"'))
    problems_of(config)


def test_malformed_ipv6_redirect_uri_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    github = edit(GITHUB, "  vendor_ids: [M3BVP74N95SP1F]", "  redirect_uris: ['https://[::1/cb']")
    problems_of(write(tmp_path, GATEWAY, {"github": github}))


def test_plain_http_toward_a_hostname_starting_with_127_is_refused(tmp_path: Path) -> None:
    github = edit(
        GITHUB,
        "url: https://github.com/login/oauth/access_token",
        f"url: http://127.0.0.1.evil.example/token  {MARK}",
    )
    config = write(tmp_path, GATEWAY, {"github": github})
    find(problems_of(config), tmp_path / "mappings" / "github.yaml", marked_line(github), "https")


def test_empty_mapping_file_is_reported_even_when_gateway_yaml_has_problems(tmp_path: Path) -> None:
    config = write(tmp_path, GATEWAY + "listne: 1\n", {"github": GITHUB, "slack": ""})
    problems = problems_of(config)
    assert any(problem.file == str(tmp_path / "mappings" / "slack.yaml") for problem in problems), problems


def test_error_map_problem_points_at_the_entry(tmp_path: Path) -> None:
    github = edit(GITHUB, "        bad_verification_code: invalid_grant", "        bad_verification_code: invalid_grant\n"
                  f"        incorrect_client_credentials: wrong_secret  {MARK}")
    config = write(tmp_path, GATEWAY, {"github": github})
    find(problems_of(config), tmp_path / "mappings" / "github.yaml", marked_line(github), "wrong_secret")


def test_bad_key_problem_points_at_the_key(tmp_path: Path) -> None:
    gateway = edit(GATEWAY, f'keys: ["{KEY_A}"]', f"keys:\n  - {KEY_A}\n  - not-a-key  {MARK}")
    config = write(tmp_path, gateway)
    find(problems_of(config), config, marked_line(gateway), "key")


def test_bad_redirect_uri_problem_points_at_the_item(tmp_path: Path) -> None:
    github = edit(
        GITHUB,
        "  vendor_ids: [M3BVP74N95SP1F]",
        f"  redirect_uris:\n    - https://app.example.com/cb\n    - https://*.example.com/cb  {MARK}",
    )
    config = write(tmp_path, GATEWAY, {"github": github})
    find(problems_of(config), tmp_path / "mappings" / "github.yaml", marked_line(github), "'*'")


# -- the CLI ------------------------------------------------------------------------------------------
def test_check_passes_on_a_good_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, GATEWAY, {"github": GITHUB, "slack": SLACK})
    assert main(["check", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok")
    assert "github" in out and "slack" in out
    assert "1 example" in out


def test_check_fails_on_a_bad_config_with_file_line_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    bogus: 1  {MARK}\n")
    config = write(tmp_path, GATEWAY + f"listne: 1  {MARK}\n", {"github": github})
    assert main(["check", "--config", str(config)]) != 0
    out, err = capsys.readouterr()
    assert "ok" not in out
    assert f"{config}:{marked_line(GATEWAY + f'listne: 1  {MARK}')}: " in err
    assert f"{tmp_path / 'mappings' / 'github.yaml'}:{marked_line(github)}: upstream.token.bogus" in err
    located = [row for row in err.splitlines() if re.match(r".+\.yaml:\d+: ", row)]
    assert len(located) == 2, err


def test_check_fails_on_a_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) != 0
    assert "nope.yaml" in capsys.readouterr().err


def test_check_runs_examples_and_names_a_failing_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = GITHUB + (
        f"  - name: wrong expectation  {MARK}\n"
        '    body: {"access_token": "gho_x", "expires_in": 28800}\n'
        '    expect: {"access_token": "gho_x", "token_type": "Bearer", "expires_in": 3600}\n'
    )
    config = write(tmp_path, GATEWAY, {"github": github})
    assert main(["check", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'mappings' / 'github.yaml'}:{marked_line(github)}: example 'wrong expectation'" in err
    assert "form answer" not in err  # the passing example is not reported


def test_check_passes_error_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slack = SLACK + (
        "examples:\n"
        "  - name: used code, HTTP 200\n"
        '    body: {"ok": false, "error": "invalid_code"}\n'
        '    expect: {"error": "invalid_grant"}\n'
        "  - name: bot token\n"
        '    body: {"ok": true, "access_token": "xoxb-1", "token_type": "bot", "scope": "a,b"}\n'
        '    expect: {"access_token": "xoxb-1", "token_type": "Bearer", "expires_in": 3600, "scope": "a b"}\n'
    )
    config = write(tmp_path, GATEWAY, {"slack": slack})
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err
    assert "2 example" in capsys.readouterr().out


def test_keygen_prints_a_fernet_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keygen"]) == 0
    key = capsys.readouterr().out.strip()
    Fernet(key.encode("ascii"))
    assert main(["keygen"]) == 0
    assert capsys.readouterr().out.strip() != key


# -- check also validates mappings that providers: does not serve -----------------------------------------
def test_check_reports_problems_in_an_unserved_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = edit(GITHUB, "    client_auth: body\n", f"    client_auth: body\n    bogus: 1  {MARK}\n")
    config = write(tmp_path, GATEWAY + "providers: [slack]\n", {"github": github, "slack": SLACK})
    assert load_config(config, env={}).providers.keys() == {"slack"}  # serving ignores it
    assert main(["check", "--config", str(config)]) != 0
    assert f"{tmp_path / 'mappings' / 'github.yaml'}:{marked_line(github)}: upstream.token.bogus" in capsys.readouterr().err


def test_check_runs_the_examples_of_an_unserved_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    github = edit(GITHUB, '"expires_in": 3600, "scope": "repo gist"', '"expires_in": 7200, "scope": "repo gist"')
    config = write(tmp_path, GATEWAY + "providers: [slack]\n", {"github": github, "slack": SLACK})
    assert main(["check", "--config", str(config)]) != 0
    assert "example 'form answer'" in capsys.readouterr().err


def test_check_does_not_need_the_secrets_of_an_unserved_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_SECRET_FOR_TEST", raising=False)
    github = edit(GITHUB, "client_secret: gh-secret", "client_secret: ${GITHUB_SECRET_FOR_TEST}")
    config = write(tmp_path, GATEWAY + "providers: [slack]\n", {"github": github, "slack": SLACK})
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err
    assert "1 more mapping" in capsys.readouterr().out


def test_check_does_not_need_an_env_url_of_an_unserved_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN_URL_FOR_TEST", raising=False)
    github = edit(
        GITHUB, "url: https://github.com/login/oauth/access_token", "url: ${GITHUB_TOKEN_URL_FOR_TEST}"
    )
    config = write(tmp_path, GATEWAY + "providers: [slack]\n", {"github": github, "slack": SLACK})
    assert main(["check", "--config", str(config)]) == 0, capsys.readouterr().err


def test_keys_file_adds_keys_after_the_inline_ones(tmp_path: Path) -> None:
    (tmp_path / "keys.txt").write_text(f"# rotated 2026-01\n{KEY_B}\n\n{KEY_A}\n", encoding="utf-8")
    gateway = edit(GATEWAY, f'keys: ["{KEY_A}"]', f"keys: [{KEY_A}]\nkeys_file: keys.txt")
    config = load_config(write(tmp_path, gateway), env={})
    assert config.keys == (KEY_A, KEY_B, KEY_A)
    assert config.ephemeral_key is False


def test_unreadable_keys_file_is_a_problem(tmp_path: Path) -> None:
    gateway = GATEWAY + f"keys_file: missing-keys.txt  {MARK}\n"
    config = write(tmp_path, gateway)
    find(problems_of(config), config, marked_line(gateway), "missing-keys.txt")
