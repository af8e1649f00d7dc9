"""The shared store against a Redis that wants a password, and one that speaks only TLS.

``store.url`` reaches redis-py's asyncio client as written, so ``redis://:${VAR}@…`` and
``rediss://…`` were assumed to work; these tests prove it against Debian's real redis-server on
127.0.0.1: the store is really used (``gw:`` keys appear, a retry at a second app sharing Redis is
served from grace), and a wrong password or an untrusted certificate costs no request (the
per-process fallback is counted, no 5xx) and leaves no secret in the log.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.harness import write_gateway_files
from support.redis import REDIS_SERVER, Redis
from support.sockets import bound_socket, port_of, start_site
from support.upstream import RecordingUpstream

from e2e.test_refresh_grace import mapping, metric, refresh, rotating_upstream
from gateway.config.settings import load_config
from gateway.oauth.seal import generate_key
from gateway.web.app import create_app


@dataclass
class PasswordRedis(Redis):
    """A redis-server that refuses every command until ``AUTH password``."""

    password: str = ""

    def command(self) -> list[str]:
        return [*super().command(), "--requirepass", self.password]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True, socket_timeout=1)

    def ping(self) -> bool:
        return answers_ping(self.client())


@dataclass
class TlsRedis(Redis):
    """A redis-server with only a TLS port (no plain one), its certificate signed by ``ca``."""

    ca: Path = Path()
    cert: Path = Path()
    key: Path = Path()

    def command(self) -> list[str]:
        return [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key), "--tls-ca-cert-file", str(self.ca),
                "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(self.directory)]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True, ssl_ca_certs=str(self.ca), decode_responses=True, socket_timeout=1)

    def ping(self) -> bool:
        return answers_ping(self.client())


def answers_ping(client: redis.Redis) -> bool:
    """True if the server answers PING through ``client`` (with its password or TLS); closes it."""
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def keys_in(client: redis.Redis) -> list[str]:
    """Every key name in the server (each must carry a TTL, as the store promises)."""
    try:
        found = [str(key) for key in client.scan_iter(count=1000)]
        assert all(client.pttl(key) > 0 for key in found), "a key without a TTL"
        return found
    finally:
        client.close()


def _need_redis() -> None:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server; .ci/run installs it)")


def _tls_supported() -> bool:
    """A redis-server built without TLS refuses ``tls-port`` as a bad directive; one with it wants a CA."""
    probe = subprocess.run([REDIS_SERVER, "--port", "0", "--tls-port", "1", "--save", ""], capture_output=True, timeout=10, check=False)
    out = probe.stdout + probe.stderr
    return b"Bad directive" not in out and b"not supported" not in out.lower() and b"tls" in out.lower()


def make_ca_and_server_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (IP SAN) that it signed; PEM files (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "redis.pem", directory / "redis.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@pytest.fixture
async def rotating() -> AsyncIterator[tuple[RecordingUpstream, str]]:
    async with rotating_upstream() as upstream:
        yield upstream, upstream.token_endpoint


@pytest.fixture
def password_redis(tmp_path: Path) -> Iterator[PasswordRedis]:
    _need_redis()
    server = PasswordRedis(tmp_path, password="pw-" + secrets.token_urlsafe(18))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    _need_redis()
    if not _tls_supported():
        pytest.skip(f"{REDIS_SERVER} is built without TLS support (tls-port is not a directive)")
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    server = TlsRedis(tmp_path, ca=ca, cert=cert, key=key)
    server.start()
    yield server
    server.stop()


class Apps:
    """In-process gateway apps (as the grace tests run them) with one set of keys; stopped together."""

    def __init__(self, tmp_path: Path, token_url: str) -> None:
        self.tmp_path = tmp_path
        self.token_url = token_url
        self.keys = [generate_key()]
        self.runners: list[web.AppRunner] = []

    async def start(self, store: str, env: dict[str, str] | None = None) -> str:
        directory = self.tmp_path / f"app{len(self.runners)}"
        directory.mkdir()
        sock = bound_socket()
        path, base_env = write_gateway_files(
            directory, {"oidc": mapping(self.token_url, grace=30)}, port=port_of(sock), keys=self.keys, more=f"store: {store}\n"
        )
        runner = web.AppRunner(create_app(load_config(path, env={**base_env, **(env or {})})), access_log=None)
        self.runners.append(runner)
        await runner.setup()
        return await start_site(runner, sock=sock)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


@pytest.fixture
async def apps(tmp_path: Path, rotating: tuple[RecordingUpstream, str]) -> AsyncIterator[Apps]:
    result = Apps(tmp_path, rotating[1])
    yield result
    await result.stop()


async def served_from_grace_across_two_apps(
    apps: Apps, upstream: RecordingUpstream, store: str, env: dict[str, str] | None = None
) -> None:
    """A refresh at one app, its retry at a second app sharing the store: one upstream call, same answer."""
    first, second = await apps.start(store, env), await apps.start(store, env)
    old = upstream.issue_refresh_token()
    async with aiohttp.ClientSession() as client:
        status, answer = await refresh(client, first, old)
        assert status == 200, answer
        status, retried = await refresh(client, second, old)
        assert status == 200 and retried == answer, retried
        assert len(upstream.refresh_requests) == 1, "the retry at the other app was served from the shared grace entry"
        assert await metric(client, second, "gateway_refresh_grace_hits_total") == 1
        for url in (first, second):
            assert await metric(client, url, "gateway_store_errors_total") == 0
            assert await metric(client, url, "gateway_store_fallbacks_total") == 0


async def falls_back_without_a_5xx(apps: Apps, upstream: RecordingUpstream, store: str, env: dict[str, str] | None = None) -> None:
    """The store can not be used: refreshes still work (per-process grace) and the fallback is counted."""
    url = await apps.start(store, env)
    old = upstream.issue_refresh_token()
    async with aiohttp.ClientSession() as client:
        status, answer = await refresh(client, url, old)
        assert status == 200, answer
        status, retried = await refresh(client, url, old)  # the per-process grace entry
        assert status == 200 and retried == answer and len(upstream.refresh_requests) == 1
        assert await metric(client, url, "gateway_store_errors_total") >= 1
        assert await metric(client, url, "gateway_store_fallbacks_total") >= 1


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture, *secrets_: str) -> None:
    records = caplog.records
    assert any(record.name == "gateway.oauth.store" and record.levelno == logging.WARNING for record in records), (
        "the store failure was logged (so the capture works)"
    )
    formatter = logging.Formatter()
    for record in records:
        text = formatter.format(record) + repr(record.args) + repr(getattr(record, "__dict__", {}))
        for secret in secrets_:
            assert secret not in text, f"{record.name}: {record.getMessage()}"


# -- password ----------------------------------------------------------------------------------


def password_store(server: Redis) -> str:
    return f'{{url: "redis://:${{STORE_PASSWORD}}@127.0.0.1:{server.port}/0"}}'


async def test_a_password_from_the_environment_opens_the_store(
    apps: Apps, rotating: tuple[RecordingUpstream, str], password_redis: PasswordRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await served_from_grace_across_two_apps(apps, rotating[0], password_store(password_redis), {"STORE_PASSWORD": password_redis.password})
    found = keys_in(password_redis.client())
    assert any(key.startswith("gw:g:") for key in found), found
    assert all(key.startswith("gw:") for key in found), found
    for record in caplog.records:
        assert password_redis.password not in record.getMessage()


async def test_a_wrong_password_falls_back_and_is_never_logged(
    apps: Apps, rotating: tuple[RecordingUpstream, str], password_redis: PasswordRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + secrets.token_urlsafe(18)
    await falls_back_without_a_5xx(apps, rotating[0], password_store(password_redis), {"STORE_PASSWORD": wrong})
    assert keys_in(password_redis.client()) == []
    assert_no_secret_logged(caplog, wrong, password_redis.password)


async def test_no_password_at_a_server_that_wants_one_falls_back(
    apps: Apps, rotating: tuple[RecordingUpstream, str], password_redis: PasswordRedis
) -> None:
    await falls_back_without_a_5xx(apps, rotating[0], f"{{url: redis://127.0.0.1:{password_redis.port}/0}}")
    assert keys_in(password_redis.client()) == []


# -- TLS ---------------------------------------------------------------------------------------


async def test_rediss_without_the_ca_is_refused_and_falls_back(
    apps: Apps, rotating: tuple[RecordingUpstream, str], tls_redis: TlsRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await falls_back_without_a_5xx(apps, rotating[0], f"{{url: rediss://127.0.0.1:{tls_redis.port}/0}}")
    assert keys_in(tls_redis.client()) == [], "an unverified server was never written to"
    assert_no_secret_logged(caplog)


async def test_rediss_with_the_ca_file_uses_the_store(apps: Apps, rotating: tuple[RecordingUpstream, str], tls_redis: TlsRedis) -> None:
    await served_from_grace_across_two_apps(apps, rotating[0], f'{{url: "rediss://127.0.0.1:{tls_redis.port}/0", ca_file: "{tls_redis.ca}"}}')
    found = keys_in(tls_redis.client())
    assert any(key.startswith("gw:g:") for key in found), found


async def test_plain_redis_at_a_tls_port_falls_back(apps: Apps, rotating: tuple[RecordingUpstream, str], tls_redis: TlsRedis) -> None:
    await falls_back_without_a_5xx(apps, rotating[0], f"{{url: redis://127.0.0.1:{tls_redis.port}/0}}")
    assert keys_in(tls_redis.client()) == []
