"""``gateway init NAME``: write a working mapping for a new provider, check it, say what comes next.

The inference is :mod:`gateway.init` (no network there); this is the command around it: reading
the flags (or, on a terminal without flags, asking for the same things one at a time), fetching
the metadata, reading the answer files, writing ``mappings/NAME.yaml`` (never over a file without
``--force``), running the checks ``gateway check`` runs on it, writing a first production
``gateway.yaml`` when there is none, and printing the next steps. docs/init.md walks through it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.config.about import check_warnings, today
from gateway.config.discovery import DiscoveryError, read_metadata
from gateway.config.extends import load_mapping_document
from gateway.config.mapping import parse_mapping
from gateway.config.platforms import PLATFORMS
from gateway.config.settings import DEFAULT_CONFIG
from gateway.config.urls import is_loopback_host, split_url, url_problem
from gateway.config.yamlfile import Problems
from gateway.init.answers import InferenceError
from gateway.init.draft import build_draft, env_prefix
from gateway.init.metadata import upstream_from_metadata
from gateway.init.samples import Role, Sample, SampleError, parse_sample
from gateway.oauth.seal import generate_key
from gateway.upstream.examples import run_examples

__all__ = ["add_parser", "run_init", "check_mapping", "production_config"]

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_PROFILES = ("alexa", "google", "smartthings", "alexa-mcp")
#: The environment variable of the sealing key in the gateway.yaml init writes.
KEY_VARIABLE = "GATEWAY_KEY"
Ask = Callable[[str], str]


def add_parser(commands: Any) -> None:
    """``gateway init``'s flags, on the ``gateway`` command's subparsers."""
    init = commands.add_parser("init", help="write a working mapping for a new provider from its metadata, its answers or a sibling")
    init.add_argument("name", help="the provider's mapping name (lower-case letters, digits, - and _; it is a URL path)")
    init.add_argument("--discovery", metavar="URL", help="OpenID Connect discovery or RFC 8414 metadata URL, or the issuer")
    init.add_argument("--answer", metavar="FILE", action="append", default=[], help="a token answer the provider gave (JSON or form; repeatable)")
    init.add_argument("--refresh-answer", metavar="FILE", action="append", default=[], help="a refresh answer (repeatable)")
    init.add_argument("--error-answer", metavar="FILE", action="append", default=[], help="an error answer (repeatable)")
    init.add_argument(
        "--error-status", metavar="N", type=int, action="append", default=[],
        help="the HTTP status of each --error-answer, in order (default: the file's status line, else 400)",
    )
    init.add_argument("--like", metavar="OTHER", help="start from this shipped mapping")
    init.add_argument("--authorize-url", metavar="URL", help="the authorization endpoint (without --discovery)")
    init.add_argument("--token-url", metavar="URL", help="the token endpoint (without --discovery)")
    init.add_argument("--platform", choices=_PROFILES, help="the platform profile (default: alexa)")
    init.add_argument("--public-url", metavar="URL", help="the gateway's public https URL (for a new gateway.yaml)")
    init.add_argument("--out", type=Path, help="where to write the mapping (default: mappings/NAME.yaml beside the config)")
    init.add_argument("--force", action="store_true", help="overwrite an existing mapping file")
    init.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the gateway.yaml to use, or to write when absent")


class InitError(Exception):
    """What stops ``gateway init``, said to the user."""


@dataclass
class _Inputs:
    discovery: str | None = None
    like: str | None = None
    authorize_url: str | None = None
    token_url: str | None = None
    answers: list[tuple[Role, str, int | None]] = field(default_factory=list)
    platform: str | None = None
    public_url: str | None = None


def _from_flags(args: argparse.Namespace) -> _Inputs:
    if len(args.error_status) > len(args.error_answer):
        raise InitError("more --error-status than --error-answer")
    statuses: list[int | None] = [*args.error_status, *([None] * (len(args.error_answer) - len(args.error_status)))]
    answers: list[tuple[Role, str, int | None]] = [("token", f, None) for f in args.answer]
    answers += [("refresh", f, None) for f in args.refresh_answer]
    answers += [("error", f, s) for f, s in zip(args.error_answer, statuses, strict=True)]
    return _Inputs(args.discovery, args.like, args.authorize_url, args.token_url, answers, args.platform, args.public_url)


def _given(args: argparse.Namespace) -> bool:
    """Any flag that says what to write (``--out``, ``--force`` and ``--config`` only say where)."""
    return bool(
        args.discovery or args.like or args.answer or args.refresh_answer or args.error_answer or args.authorize_url
        or args.token_url or args.platform or args.public_url
    )


def _asked(ask: Ask, needs_public_url: bool) -> _Inputs:
    """The same things as the flags, one question at a time (only on a terminal, only without flags)."""
    def question(text: str) -> str | None:
        return ask(text).strip() or None

    given = _Inputs()
    given.discovery = question("OpenID Connect discovery or RFC 8414 metadata URL, or the issuer (empty: none): ")
    if not given.discovery:
        given.like = question("Start from a shipped mapping, by name (empty: none): ")
    if not given.discovery and not given.like:
        given.authorize_url = question("The provider's authorization endpoint: ")
        given.token_url = question("The provider's token endpoint: ")
    answer = question("A token answer the provider gave, saved in a file (empty: none): ")
    if answer:
        given.answers.append(("token", answer, None))
        refresh = question("A refresh answer, in a file (empty: none): ")
        if refresh:
            given.answers.append(("refresh", refresh, None))
        error = question("An error answer, in a file (for a used code, say; empty: none): ")
        if error:
            status = question("Its HTTP status (empty: the file's status line, else 400): ")
            if status and not status.isdigit():
                raise InitError(f"not an HTTP status: {status!r}")
            given.answers.append(("error", error, int(status) if status else None))
    given.platform = question(f"Platform profile, one of {', '.join(_PROFILES)} (empty: alexa): ")
    if given.platform and given.platform not in _PROFILES:
        raise InitError(f"unknown platform profile {given.platform!r}")
    if needs_public_url:
        given.public_url = question("The gateway's public https URL (empty: from ${PUBLIC_URL}): ")
    return given


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InitError(f"can not read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def _samples(answers: list[tuple[Role, str, int | None]]) -> list[Sample]:
    samples = []
    for role, name, status in answers:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
            received = path.stat().st_mtime
        except (OSError, UnicodeDecodeError) as exc:
            raise InitError(f"can not read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            samples.append(parse_sample(text, role, status=status, name=path.name, received=received))
        except SampleError as exc:
            raise InitError(str(exc)) from None
    return samples


def _sibling(folder: Path, other: str, *, extend: bool) -> tuple[str, dict[str, Any]]:
    """The sibling's document: merged over its own bases when the new file will extend it (what
    the new file changes is judged against all it inherits), as written when it is copied."""
    path = folder / f"{other}.yaml"
    if not _NAME.fullmatch(other):
        raise InitError(f"--like {other}: not a mapping name")
    if extend:
        problems = Problems()
        data = load_mapping_document(path, problems, missing_env_ok=True)
        if problems:
            raise InitError(f"--like {other}: {'; '.join(str(p) for p in problems.items)}")
        return other, data if isinstance(data, dict) else {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InitError(f"--like {other}: can not read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict):
        raise InitError(f"--like {other}: {path} is not a mapping")
    return other, data


def check_mapping(path: Path) -> list[str]:
    """What ``gateway check`` says of one mapping file: load problems, then failed examples (offline,
    without its environment variables, as ``gateway check`` judges a mapping it does not serve)."""
    return _checked(path)[0]


def _checked(path: Path) -> tuple[list[str], int]:
    """The problems of ``path`` and how many examples it has (its own or inherited)."""
    problems = Problems()
    data = load_mapping_document(path, problems, env={**os.environ, "GATEWAY_PUBLIC_URL": "https://gateway.invalid"}, missing_env_ok=True)
    mapping = parse_mapping(path.stem, data, file=str(path), problems=problems) if data is not None or not problems else None
    found = [str(problem) for problem in problems.items]
    if mapping is not None and not found:
        found += run_examples(mapping)
    return found, len(mapping.examples) if mapping is not None else 0


def _warnings(path: Path) -> list[str]:
    """``gateway check``'s warnings for the mapping (no ``about:`` yet, say)."""
    problems = Problems()
    data = load_mapping_document(path, problems, missing_env_ok=True)
    mapping = parse_mapping(path.stem, data, file=str(path), problems=Problems()) if data is not None else None
    return check_warnings([(mapping.file, mapping.about)], today()) if mapping is not None else []


def production_config(name: str, mappings: str, public_url: str | None) -> str:
    """A first ``gateway.yaml`` for production: the sealing key from the environment, never in the file."""
    url = public_url or "${PUBLIC_URL}"
    parts = split_url(public_url) if public_url else None
    local = parts is not None and parts.scheme == "http" and is_loopback_host(parts.hostname)
    lines = [
        "# yaml-language-server: $schema=gateway.schema.json",
        "#",
        "# A first gateway.yaml for production, written by `gateway init` (docs/init.md). Every key and its",
        "# default: gateway.schema.json and docs/configuration.md.",
        "listen:",
        f"  host: {'127.0.0.1' if local else '0.0.0.0'}  # behind a TLS-terminating proxy; or tls: {{cert, key}} to serve https itself",
        f"  port: {parts.port if local and parts is not None and parts.port else 8080}",
        f"public_url: {url}  # browsers and the provider reach the gateway here; <public_url>/<provider>/callback is the redirect URI",
        "keys:",
        f'  - "${{{KEY_VARIABLE}}}"  # a sealing key from `gateway keygen`, kept in the environment or a secret store, never here',
    ]
    if local:
        lines.append("cookie: {secure: false}  # plain http is only for localhost: serve https anywhere else")
    lines += [f"mappings: {mappings}", f"providers: [{name}]  # the mappings served; add the next provider here", ""]
    return "\n".join(lines)


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:
        return str(path.resolve())


def run_init(args: argparse.Namespace, *, ask: Ask = input, interactive: bool | None = None, out: Callable[[str], None] = print) -> int:
    """``gateway init``; ``ask`` and ``interactive`` let tests play the terminal."""
    try:
        return _run(args, ask, sys.stdin.isatty() if interactive is None else interactive, out)
    except InitError as exc:
        print(f"gateway init: {exc}", file=sys.stderr)
        return 2
    except (EOFError, KeyboardInterrupt):  # the questions were left unanswered: nothing is written
        print("\ngateway init: stopped; nothing written", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, ask: Ask, interactive: bool, out: Callable[[str], None]) -> int:
    name: str = args.name
    if not _NAME.fullmatch(name):
        raise InitError(f"the name {name!r} must be lower-case letters, digits, '-' or '_' (it is a URL path)")
    config_path: Path = args.config
    config = _read_config(config_path)
    folder = config_path.parent / str(config.get("mappings") or "mappings")
    target: Path = args.out or folder / f"{name}.yaml"
    if target.exists() and not args.force:
        raise InitError(f"{target} exists: give --force to overwrite it, or --out PATH")
    write_config = not config_path.exists()
    if _given(args):
        given = _from_flags(args)
    elif interactive:
        given = _asked(ask, write_config)
    else:
        raise InitError("say where the mapping comes from: --discovery URL, --answer FILE or --like OTHER (on a terminal, init asks)")
    for flag, url in (("--public-url", given.public_url), ("--authorize-url", given.authorize_url), ("--token-url", given.token_url)):
        problem = url_problem(url) if url else None
        if problem:
            raise InitError(f"{flag} {problem}")
    if not (given.discovery or given.like or (given.authorize_url and given.token_url)):
        raise InitError("the endpoints are missing: give --discovery URL, --like OTHER, or --authorize-url and --token-url")

    metadata = None
    if given.discovery:
        try:
            discovered = read_metadata(given.discovery)
        except DiscoveryError as exc:
            raise InitError(f"--discovery {given.discovery}: {exc}") from None
        metadata = upstream_from_metadata(discovered.document, discovered.url or given.discovery)
    # extends: names a mapping of the same folder, so a mapping written elsewhere is a copy
    sibling_folder = folder
    extend = target.parent.resolve() == sibling_folder.resolve()
    like = _sibling(sibling_folder, given.like, extend=extend) if given.like else None
    samples = _samples(given.answers)
    try:
        draft = build_draft(
            name, platform=given.platform, metadata=metadata, samples=samples, like=like,
            authorize_url=given.authorize_url, token_url=given.token_url, extend=extend,
        )
    except InferenceError as exc:
        raise InitError(str(exc)) from None
    sources = [f"--discovery {given.discovery}"] if given.discovery else []
    sources += [f"--like {given.like}"] if given.like else []
    sources += [f"--{'answer' if r == 'token' else r + '-answer'} {Path(f).name}" for r, f, _ in given.answers]
    prefix = env_prefix(name)
    draft.header[:0] = [
        "yaml-language-server: $schema=schema.json",
        "",
        f"{name}: written by `gateway init {name} {' '.join(sources)}`.".replace("  ", " "),
        f"Platform: {draft.document.get('platform', {}).get('profile', 'from the sibling')}. Credentials: {prefix}_CLIENT_ID / "
        f"{prefix}_CLIENT_SECRET, {prefix}_PLATFORM_CLIENT_ID / {prefix}_PLATFORM_CLIENT_SECRET.",
        "A comment at a line says what init chose there and why: check each against the provider's documentation.",
        "Then say where the facts come from (gateway check warns until it is there), e.g.:",
        "about:",
        f"  name: {name.replace('-', ' ').title()}",
        "  category: …            # identity, productivity, storage, home, device, …",
        f"  sources: [{given.discovery or 'https://… (the provider pages this mapping follows)'}]",
        f"  checked: {today().isoformat()}",
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(draft.text(), encoding="utf-8")
    out(f"wrote {target}")

    problems, examples = _checked(target)
    for problem in problems:
        print(problem, file=sys.stderr)
    for warning in [] if problems else _warnings(target):
        print(warning, file=sys.stderr)
    if not problems:
        out(f"checked {target}: it loads, and its {examples} example(s) give what they expect")

    served_name = target.stem
    public_url = given.public_url or config.get("public_url")
    key = None
    if write_config:
        key = generate_key()
        config_path.parent.mkdir(parents=True, exist_ok=True)
        config_path.write_text(production_config(served_name, _relative(target.parent, config_path.parent), given.public_url), encoding="utf-8")
        out(f"wrote {config_path} (the sealing key is not in it: see below)")
    _next_steps(out, draft.variables, served_name, config_path, config, public_url, key, draft.document)
    if problems:
        print(f"gateway init: {target} has {len(problems)} problem(s) (above); fix them, then run `gateway check`", file=sys.stderr)
        return 1
    return 0


def _next_steps(
    out: Callable[[str], None], variables: list[str], name: str, config_path: Path, config: dict[str, Any],
    public_url: str | None, key: str | None, document: dict[str, Any],
) -> None:
    base = str(public_url).rstrip("/") if public_url else "${PUBLIC_URL}"
    profile = str(document.get("platform", {}).get("profile", "alexa"))
    console = PLATFORMS[profile].console if profile in PLATFORMS else None
    flag = "" if config_path == DEFAULT_CONFIG else f" --config {config_path}"
    steps = [f"Register this redirect URI with the provider: {base}/{name}/callback"]
    steps.append("Set these environment variables (the provider's client, the platform's client):")
    steps += [f"    {variable}" for variable in variables if variable != "GATEWAY_PUBLIC_URL"]
    if key is not None:
        steps.append(f"Keep this new sealing key as {KEY_VARIABLE} (a secret store; never in a file in the repository):")
        steps.append(f"    {KEY_VARIABLE}={key}")
    if not public_url:
        steps.append("Set PUBLIC_URL to the https URL the gateway is reached at")
    providers = config.get("providers")
    if isinstance(providers, list) and name not in providers:
        steps.append(f"Add {name} to providers: in {config_path}")
    if console:
        steps.append(f"Fill in the platform's console: gateway console {console} {name}{flag}")
    steps.append(f"Check everything: gateway check{flag}")
    steps.append(f"Start the gateway (gateway serve{flag}), then play a link: gateway linktest {name}{flag}")
    out("Next:")
    number = 0
    for step in steps:
        if not step.startswith("    "):
            number += 1
        out(step if step.startswith("    ") else f"{number}. {step}")
