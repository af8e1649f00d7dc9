"""The demo as the app sets it up, found by name (:mod:`gateway.config.optional`), never imported."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from gateway.config.optional import DemoMapping, registered_demo
from gateway.oauth.seal import Sealer

__all__ = ["Demo", "demo"]


class Demo(DemoMapping, Protocol):
    """What the app needs of the demo: its mapping and its routes."""

    def setup(self, app: web.Application, *, public_url: str, sealer: Sealer) -> None:
        """Add the demo upstream and platform pages to ``app``."""
        ...


def demo() -> Demo | None:
    """The installed demo, or None when this installation has none."""
    registered: Demo | None = registered_demo()
    return registered
