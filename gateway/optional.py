"""Optional parts the core finds by name, never by import: today, the embedded demo.

The demo (``gateway/demo/``) is a teaching aid with public secrets; the production image leaves it
out. So neither the config loader nor the app imports it: when gateway.yaml says ``demo: true``
they ask :func:`demo` for it, and a missing demo is a config problem with a clear message instead
of an ``ImportError`` at start. The demo registers what the core may call through :class:`Demo`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from aiohttp import web

from gateway.oauth.seal import Sealer

__all__ = ["DEMO_MODULE", "Demo", "demo", "NO_DEMO"]

#: Where the demo lives when it is installed (a source checkout, ``pip install gateway``).
DEMO_MODULE = "gateway.demo"

#: What ``demo: true`` says when the demo is not installed.
NO_DEMO = "demo: true, but this installation has no demo (the production image leaves it out): set demo: false"


class Demo(Protocol):
    """What the core needs of the demo: its provider's mapping and its routes."""

    def mapping_file(self) -> Path:
        """The demo provider's mapping (served as provider ``demo``)."""
        ...

    def setup(self, app: web.Application, *, public_url: str, sealer: Sealer) -> None:
        """Add the demo upstream and platform pages to ``app``."""
        ...


def demo() -> Demo | None:
    """The installed demo, or None when this installation has none."""
    try:
        module = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as err:
        if err.name != DEMO_MODULE:
            raise  # the demo is there but something it needs is not: a real bug, say so
        return None
    registered: Demo = module.DEMO
    return registered
