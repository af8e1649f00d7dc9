"""SIGHUP reloads, one at a time and in order, so the last signal's files are what is served.

Loading runs in a thread (it reads files and may fetch discovery documents), so two quick SIGHUPs
used to load concurrently and the *slower* load won the swap: an operator who fixed a mapping and
signalled twice could be left serving the older files. Here every reload waits for the one before
it, and a burst coalesces: a reload that starts after the files were last read for a later signal
has nothing new to read and is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from gateway.config import discovery
from gateway.config.about import warn_of_sunsets
from gateway.config.settings import Config, ConfigError, load_config
from gateway.web.app import reload_config
from gateway.web.heap import freeze_heap

__all__ = ["Reloader"]

log = logging.getLogger("gateway")

#: Reads the config (``load_config`` with the command line's host and port overrides).
Loader = Callable[[Path], Config]


class Reloader:
    """Serialised, coalescing reloads of one app from one config file."""

    def __init__(self, app: web.Application, path: Path, *, host: str | None = None, port: int | None = None,
                 load: Loader | None = None) -> None:
        self._app = app
        self._path = path
        self._load: Loader = load or (lambda file: load_config(file, host=host, port=port))
        self._lock = asyncio.Lock()
        self._asked = 0  # signals received
        self._covered = 0  # signals whose files a finished or running load has read
        self.loads = 0  # loads actually run (a burst of signals runs fewer)

    async def reload(self) -> None:
        """Reload for one signal; returns once the files read after it are served (or refused)."""
        self._asked += 1
        asked = self._asked
        async with self._lock:
            if self._covered >= asked:
                return  # a load that read the files after this signal already ran
            self._covered = self._asked
            self.loads += 1
            await self._reload_once()

    async def _reload_once(self) -> None:
        discovery.clear_cache()  # a reload sees a provider whose endpoints changed
        try:
            config = await asyncio.get_running_loop().run_in_executor(None, self._load, self._path)
        except ConfigError as err:
            for problem in err.problems:
                log.error("reload refused: %s", problem)
            log.error("reload refused: %d problem(s); still serving the previous config", len(err.problems))
            return
        needs_restart = reload_config(self._app, config)
        if needs_restart:
            log.error("reload refused: %s changed; these need a restart", ", ".join(needs_restart))
        else:
            freeze_heap(again=True)  # the new config joins the frozen heap; the old one can go
            log.info("reloaded %s: serving %s", self._path, ", ".join(config.providers))
            warn_of_sunsets(config.providers.values())
