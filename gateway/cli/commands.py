"""The ``gateway`` command: ``serve``, ``check``, ``keygen``, ``linktest``, ``console``, ``schema``, ``init``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cli import init
from gateway.config import optional
from gateway.config.about import check_warnings, today, warn_of_sunsets
from gateway.config.mapping import ProviderMapping
from gateway.config.platforms import PLATFORMS, platform_of
from gateway.config.settings import DEFAULT_CONFIG, Config, ConfigError, load_config
from gateway.oauth.seal import generate_key
from gateway.observe.logs import setup_logging
from gateway.upstream.examples import run_examples

__all__ = ["main"]

log = logging.getLogger("gateway")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="OAuth2 account-linking gateway")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: ./gateway.yaml)")
    serve.add_argument("--host", help="listen address (overrides listen.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides listen.port)")
    serve.add_argument(
        "--fd", type=int, help="serve on this inherited, bound socket instead of binding one (socket activation, a supervisor)"
    )

    check = commands.add_parser("check", help="validate the config and every mapping, run the mappings' examples")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: ./gateway.yaml)")

    commands.add_parser("keygen", help="print a new key for keys:")

    health = commands.add_parser("health", help="exit 0 if the gateway this config describes answers /healthz")
    health.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: ./gateway.yaml)")

    linktest = commands.add_parser(
        "linktest", help="play the platform against a running gateway and say why a link would fail"
    )
    linktest.add_argument("provider", help="the mapping to test")
    linktest.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: ./gateway.yaml)")
    linktest.add_argument("--url", help="the gateway's base URL (default: public_url from the config)")
    linktest.add_argument("--cafile", type=Path, help="trust this CA bundle instead of the system's (testing)")

    console = commands.add_parser("console", help="print the values a platform's developer console wants for a provider")
    console.add_argument("platform", choices=sorted({p.console for p in PLATFORMS.values() if p.console}), help="whose console")
    console.add_argument("provider", help="the mapping")
    console.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config file (default: ./gateway.yaml)")
    console.add_argument(
        "--json", action="store_true", help="JSON (for alexa: the SMAPI accountLinkingRequest body)"
    )
    console.add_argument("--show-secrets", action="store_true", help="print the platform client secret")

    init.add_parser(commands)

    schema = commands.add_parser("schema", help="write the JSON Schemas (and with --docs the reference tables) from the models")
    schema.add_argument("--check", action="store_true", help="write nothing; exit 1 when a committed file is stale")
    schema.add_argument(
        "--docs", action="store_true", help="also the generated tables of docs/configuration.md and docs/mapping-guide.md, and docs/providers.md"
    )
    schema.add_argument("--root", type=Path, default=Path("."), help="the repository (default: .)")
    return parser


def _schema(args: argparse.Namespace) -> int:
    """``gateway schema``: the files made from :mod:`gateway.config.models`, written or (``--check``) compared."""
    from gateway.config import providers_page, reference, schemas

    stale = schemas.stale(args.root, write=not args.check)
    if args.docs:
        stale += reference.stale(args.root, write=not args.check)
        try:
            stale += providers_page.stale(args.root, write=not args.check)
        except ConfigError as err:  # the page is made from the mappings: each must load
            for problem in err.problems:
                print(problem, file=sys.stderr)
            print(f"gateway: {len(err.problems)} problem(s) in the mappings; {providers_page.PAGE} not made", file=sys.stderr)
            return 1
    for name in stale:
        print(f"{args.root / name}: {'stale (run `gateway schema --docs`)' if args.check else 'written'}", file=sys.stderr)
    return 1 if stale and args.check else 0


def _load(path: Path, **overrides: Any) -> Config | None:
    try:
        return load_config(path, **overrides)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        print(f"gateway: {len(err.problems)} problem(s); not starting", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    port = args.port
    if args.fd is not None and port is None:
        # The socket's port is the one the public URL and the logs name (it may be the kernel's pick).
        with socket.socket(fileno=os.dup(args.fd)) as inherited:
            port = int(inherited.getsockname()[1])
    config = _load(args.config, host=args.host, port=port)
    if config is None:
        return 2
    setup_logging(config.log_format, config.log_level)
    from gateway.web.server import serve

    if config.ephemeral_key:
        log.warning("no keys: configured; using a random key: flows break on restart and across replicas")
    if config.demo:
        log.warning("DEMO is on: open %s/_demo/ and never expose a demo gateway to the internet", config.public_url)
    warn_of_sunsets(config.providers.values())
    scheme = "https" if config.tls else "http"
    log.info(
        "serving %s on %s://%s:%d (public URL %s)",
        ", ".join(config.providers), scheme, config.host, config.port, config.public_url,
    )
    serve(config, path=args.config, host=args.host, port=port, fd=args.fd)
    return 0


def _check(args: argparse.Namespace) -> int:
    config = _load(args.config, check_all=True)
    if config is None:
        return 1
    mappings = [*config.providers.values(), *config.unserved.values()]
    failures = [failure for mapping in mappings for failure in run_examples(mapping)]
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        print(f"gateway: {len(failures)} example(s) failed", file=sys.stderr)
        return 1
    for warning in [*_budget_warnings(config, mappings), *_link_key_warnings(config, mappings)]:
        print(warning, file=sys.stderr)
    # The built-in demo talks to the gateway itself: no provider's pages to name.
    demo = optional.demo() if config.demo else None
    builtin = {str(demo.mapping_file())} if demo is not None else set()
    described = [(mapping.file, mapping.about) for mapping in mappings if mapping.file not in builtin]
    for warning in check_warnings(described, today()):
        print(warning, file=sys.stderr)
    examples = sum(len(mapping.examples) for mapping in mappings)
    line = f"ok: {len(config.providers)} provider(s) ({', '.join(config.providers)})"
    if config.unserved:
        line += f", {len(config.unserved)} more mapping(s) checked but not served (not in providers:)"
    print(f"{line}, {examples} example(s) passed")
    return 0


def _linktest(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    from gateway.cli.linktest import run_linktest

    context = ssl.create_default_context(cafile=str(args.cafile)) if args.cafile else None
    checks = asyncio.run(run_linktest(config, args.provider, base_url=args.url, ssl_context=context))
    for check in checks:
        print(check)
    failed = [check for check in checks if check.verdict == "FAIL"]
    print(f"{len(failed)} problem(s) found" if failed else "no problem found: the platform can link through this gateway")
    return 1 if failed else 0


def _budget_warnings(config: Config, mappings: list[ProviderMapping]) -> list[str]:
    """Warnings (not errors) for mappings whose upstream deadline is not under their platform's
    token budget (:data:`gateway.config.platforms.PLATFORMS`): the platform would give up first."""
    warnings = []
    for mapping in mappings:
        timeout = mapping.token.timeout or config.upstream_timeout
        platform = platform_of(mapping.platform.profile)
        if platform.token_budget is not None and timeout >= platform.token_budget:
            warnings.append(
                f"{mapping.file}: warning: upstream deadline {timeout:g} s is not under "
                f"{platform.title}'s {platform.token_budget} s budget"
            )
    return warnings


def _link_key_warnings(config: Config, mappings: list[ProviderMapping]) -> list[str]:
    """A mapping that keeps context seals its refresh tokens; without ``link_keys`` they are sealed
    with the first of ``keys``, and a link that has not refreshed by the time a rotation retires
    that key is ``invalid_grant`` at its next refresh: the platform unlinks it."""
    if config.link_keys:
        return []
    return [
        f"{mapping.file}: warning: this mapping keeps context in the refresh tokens it hands out, and gateway.yaml "
        "has no link_keys: they are sealed with the first of keys, so the first rotation of keys ends every "
        "link that has not refreshed since (add link_keys; deploy/README.md, \"link_keys\")"
        for mapping in mappings
        if mapping.keeps_context
    ]


def _console(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    mapping = config.providers.get(args.provider)
    if mapping is None:
        print(f"gateway: no provider {args.provider!r} is served (served: {', '.join(config.providers)})", file=sys.stderr)
        return 2
    from gateway.cli.console import render

    expected = [name for name, platform in PLATFORMS.items() if platform.console == args.platform]
    if mapping.platform.profile not in expected:
        print(
            f"gateway: warning: {mapping.file} has platform profile {mapping.platform.profile!r}, not "
            f"{expected[0]!r}: {args.platform}'s redirect URIs are refused unless listed in redirect_uris",
            file=sys.stderr,
        )
    print(render(args.platform, config, mapping, as_json=args.json, show_secrets=args.show_secrets))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "keygen":
        print(generate_key())
        return 0
    if args.command == "check":
        return _check(args)
    if args.command == "linktest":
        return _linktest(args)
    if args.command == "console":
        return _console(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "init":
        return init.run_init(args)
    if args.command == "health":
        from gateway.cli.health import check_health

        healthy, seen = check_health(args.config)
        print(seen, file=sys.stdout if healthy else sys.stderr)
        return 0 if healthy else 1
    return _serve(args)
