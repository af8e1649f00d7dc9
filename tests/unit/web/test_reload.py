"""Reloads: one at a time and in order (gateway.web.reload), and what a reload may change."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from prometheus_client import generate_latest

from gateway.config.settings import Config, load_config
from gateway.oauth.seal import generate_key
from gateway.observe.metrics import METRICS
from gateway.web.app import create_app, reload_config
from gateway.web.appkeys import RUNTIME
from gateway.web.reload import Reloader

MAPPING = """\
platform: {profile: none, redirect_uris: ["https://platform.example/cb"], client_id: platform-client, client_secret: platform-secret-1}
upstream:
  client_id: upstream-client
  client_secret: upstream-secret
  authorize: {url: "https://auth.example/authorize"}
  token: {url: "https://auth.example/token"}
"""


def _write(tmp_path: Path, providers: list[str], *, key: str, timeout: float = 4.0) -> Path:
    (tmp_path / "mappings").mkdir(exist_ok=True)
    for name in providers:
        (tmp_path / "mappings" / f"{name}.yaml").write_text(MAPPING)
    for stale in (tmp_path / "mappings").glob("*.yaml"):
        if stale.stem not in providers:
            stale.unlink()
    path = tmp_path / "gateway.yaml"
    path.write_text(f"keys: ['{key}']\npublic_url: https://link.example\nupstream: {{timeout: {timeout}}}\n")
    return path


def _served(app_config: Config) -> list[str]:
    return sorted(app_config.providers)


async def test_two_quick_reloads_serve_the_files_of_the_last_signal(tmp_path: Path) -> None:
    """The first load is held after reading the files; the second signal's files must still win.

    Without serialisation the second load finishes first and the first, older one swaps in last.
    """
    key = generate_key()
    path = _write(tmp_path, ["first"], key=key)
    app = create_app(load_config(path))
    first_read = threading.Event()
    release = threading.Event()

    def slow_first_load(file: Path) -> Config:
        config = load_config(file)
        if not first_read.is_set():
            first_read.set()
            assert release.wait(10), "the test never released the first load"
        return config

    reloader = Reloader(app, path, load=slow_first_load)
    _write(tmp_path, ["first", "second"], key=key)
    older = asyncio.create_task(reloader.reload())
    assert await asyncio.to_thread(first_read.wait, 10)
    _write(tmp_path, ["first", "third"], key=key)
    newer = asyncio.create_task(reloader.reload())
    await asyncio.sleep(0)  # the second reload is now waiting for the first
    release.set()
    await asyncio.wait_for(asyncio.gather(older, newer), 10)
    assert _served(app[RUNTIME].current.config) == ["first", "third"]
    assert reloader.loads == 2


async def test_a_burst_of_signals_during_a_load_runs_one_more_load(tmp_path: Path) -> None:
    key = generate_key()
    path = _write(tmp_path, ["first"], key=key)
    app = create_app(load_config(path))
    started = threading.Event()
    release = threading.Event()

    def held_load(file: Path) -> Config:
        started.set()
        assert release.wait(10)
        return load_config(file)

    reloader = Reloader(app, path, load=held_load)
    running = asyncio.create_task(reloader.reload())
    assert await asyncio.to_thread(started.wait, 10)
    _write(tmp_path, ["first", "last"], key=key)
    burst = [asyncio.create_task(reloader.reload()) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(running, *burst), 10)
    assert reloader.loads == 2  # the one running, and one for all five signals after it
    assert _served(app[RUNTIME].current.config) == ["first", "last"]


def test_upstream_timeout_is_reloadable_and_the_new_deadline_is_the_one_read(tmp_path: Path) -> None:
    key = generate_key()
    app = create_app(load_config(_write(tmp_path, ["first"], key=key, timeout=4.0)))
    assert reload_config(app, load_config(_write(tmp_path, ["first"], key=key, timeout=1.5))) == []
    assert app[RUNTIME].current.config.upstream_timeout == 1.5


def test_a_listener_change_still_needs_a_restart(tmp_path: Path) -> None:
    key = generate_key()
    path = _write(tmp_path, ["first"], key=key)
    app = create_app(load_config(path))
    assert reload_config(app, load_config(path, port=9999)) == ["port"]
    assert app[RUNTIME].current.config.port != 9999


def test_a_provider_added_by_a_reload_has_its_failure_series_at_zero(tmp_path: Path) -> None:
    key = generate_key()
    app = create_app(load_config(_write(tmp_path, ["first"], key=key)))
    assert reload_config(app, load_config(_write(tmp_path, ["first", "added"], key=key))) == []
    exposition = generate_latest(app[METRICS].registry).decode()
    assert 'provider="added"' in exposition
