"""The store's reader, its per-process form, its fallback when the shared one fails, its deploy files."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gateway.config.settings import load_config
from gateway.config.yamlfile import ConfigError
from gateway.oauth.seal import generate_key
from gateway.oauth.store import MemoryStore, RedisStore, SharedStore, StoreSettings, store_key
from gateway.observe.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
COMPONENT = ROOT / "deploy" / "kubernetes" / "components" / "redis"


def _config(tmp_path: Path, store: str) -> Path:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    (tmp_path / "gateway.yaml").write_text(f"keys: [{generate_key()}]\ndemo: true\ncookie: {{secure: false}}\n{store}\n")
    return tmp_path / "gateway.yaml"


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("", None),
        ("store: memory", None),
        ('store: {url: ""}', None),
        ("store: {url: redis://127.0.0.1:6379/0}", "redis://127.0.0.1:6379/0"),
        ("store: {url: 'rediss://:${PW}@cache.example:6380/1', timeout: 0.2}", "rediss://:s3cret@cache.example:6380/1"),
    ],
)
def test_store_settings_load(tmp_path: Path, text: str, url: str | None) -> None:
    config = load_config(_config(tmp_path, text), env={"PW": "s3cret"})
    assert config.store.url == url


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("store: redis", "must be memory or"),
        ("store: {url: http://127.0.0.1:6379}", "redis:// or rediss://"),
        ("store: {url: redis://h:1/0, timeout: 5}", "timeout"),
        ("store: {url: redis://h:1/0, tls: true}", "unknown key"),
        ("store: {url: rediss://h:1/0, ca_file: missing-ca.pem}", "ca_file: no file"),
        ("store: {url: redis://h:1/0, ca_file: gateway.yaml}", "ca_file: needs a rediss://"),
    ],
)
def test_bad_store_settings_are_load_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_config(tmp_path, text), env={})


def test_store_ca_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    config = load_config(_config(tmp_path, "store: {url: rediss://h:1/0, ca_file: ca.pem}"), env={})
    assert config.store.ca_file == str(tmp_path / "ca.pem")
    assert load_config(_config(tmp_path, "store: {url: rediss://h:1/0}"), env={}).store.ca_file is None


async def test_memory_claims_are_single_until_their_ttl() -> None:
    now = [100.0]
    store: MemoryStore[str] = MemoryStore(clock=lambda: now[0])
    assert await store.claim("k", 1.0, "1")
    assert not await store.claim("k", 1.0, "1")
    now[0] += 1.01
    assert await store.claim("k", 1.0, "1"), "an expired claim is free again"
    await store.put("v", "x", 0.5)
    assert await store.get("v") == "x"
    now[0] += 0.6
    assert await store.get("v") is None


async def test_a_full_memory_store_drops_the_oldest() -> None:
    store: MemoryStore[str] = MemoryStore(capacity=3)
    for name in "abcd":
        await store.put(name, name, 60)
    assert await store.get("a") is None and await store.get("d") == "d"


def test_writes_drop_expired_entries_from_the_oldest_end_and_a_full_store_keeps_the_newest() -> None:
    """A store written at a steady rate with one lifetime stays at its live size (no scan waits
    for the capacity); a store full of live entries drops exactly the oldest tenth."""
    now = [0.0]
    store: MemoryStore[int] = MemoryStore(capacity=1000, clock=lambda: now[0])
    for n in range(5000):
        now[0] += 1.0
        store.keep(f"k{n}", n, 50)
        assert len(store) <= 51
    assert store.lookup("k4999") == 4999 and store.lookup("k4949") is None
    full: MemoryStore[int] = MemoryStore(capacity=1000, clock=lambda: 0.0)
    for n in range(1000):
        full.keep(f"k{n}", n, 60)
    full.keep("k1000", 1000, 60)
    assert len(full) == 901
    assert full.lookup("k99") is None and full.lookup("k100") == 100 and full.lookup("k1000") == 1000
    # an expired entry behind a live one is dropped when the store is full, before any live one
    mixed: MemoryStore[int] = MemoryStore(capacity=10, clock=lambda: now[0])
    mixed.keep("long", 0, 1000)
    for n in range(9):
        mixed.keep(f"short{n}", n, 1)
    now[0] += 2
    mixed.keep("new", 1, 1000)
    assert mixed.lookup("long") == 0 and len(mixed) == 2


class _DeadRemote(RedisStore):
    """A remote that hangs past the deadline (a Redis that does not answer)."""

    def __init__(self) -> None:
        self.calls = 0

    async def claim(self, key: str, ttl: float, value: str = "1") -> bool:
        self.calls += 1
        await asyncio.sleep(10)
        return True


async def test_a_hanging_store_falls_back_within_its_deadline(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    remote = _DeadRemote()
    store = SharedStore(StoreSettings(url="redis://x", timeout=0.05), metrics, remote=remote)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING):
        assert await store.claim("c", 5)
        assert not await store.claim("c", 5), "the per-process store still makes a claim single"
    # The deadline, not the 10 s hang: the bound is far from both, so a busy machine can't fail it.
    assert loop.time() - started < 5.0
    assert remote.calls == 1, "after a failure the remote is left alone for a while"
    assert metrics.store_errors.labels("claim")._value.get() == 1
    assert metrics.store_fallbacks.labels("claim")._value.get() == 2
    assert sum("serving from this process only" in record.message for record in caplog.records) == 1


def test_key_names_are_short_hashes_that_no_key_changes() -> None:
    key = store_key("g", "oidc", "client", "rt-secret")
    assert key.startswith("gw:g:") and len(key) <= 32 and "rt-secret" not in key
    assert key == SharedStore(StoreSettings(), Metrics()).key("g", "oidc", "client", "rt-secret")
    assert key != store_key("c", "oidc", "client", "rt-secret"), "each kind its own names"


async def test_a_lock_is_released_only_by_its_owner() -> None:
    store: MemoryStore[str] = MemoryStore()
    assert await store.claim("gw:l:x", 5, "mine")
    await store.release("gw:l:x", "someone else's")
    assert store.lookup("gw:l:x") == "mine"
    await store.release("gw:l:x", "mine")
    assert store.lookup("gw:l:x") is None


def test_the_redis_component_points_the_gateway_at_its_service() -> None:
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    docs = list(yaml.safe_load_all((COMPONENT / "redis.yaml").read_text()))
    service = next(doc for doc in docs if doc["kind"] == "Service")
    patch = yaml.safe_load(kustomization["patches"][0]["patch"])
    value = patch[0]["value"]
    assert value["name"] == "GATEWAY_STORE_URL"
    assert value["value"] == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    assert "${GATEWAY_STORE_URL:-}" in (ROOT / "deploy" / "gateway.yaml").read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_the_redis_component_renders_with_the_manifests(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "deploy" / "kubernetes", tmp_path / "kubernetes")  # kustomize wants relative paths
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [../kubernetes]\ncomponents: [../kubernetes/components/redis]\n")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(overlay)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    docs = [doc for doc in yaml.safe_load_all(rendered) if doc]
    gateway = next(doc for doc in docs if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "gateway")
    env = {item["name"]: item.get("value") for item in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GATEWAY_STORE_URL"] == "redis://gateway-redis:6379/0"
    assert any(doc["kind"] == "Deployment" and doc["metadata"]["name"] == "gateway-redis" for doc in docs)
