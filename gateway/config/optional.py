"""Optional parts the core finds by name, never by import: today, the embedded demo.

The demo (``gateway/demo/``) is a teaching aid with public secrets; the production image leaves it
out. So neither the config loader nor the app imports it: when gateway.yaml says ``demo: true``
they ask :func:`demo` for it, and a missing demo is a config problem with a clear message instead
of an ``ImportError`` at start. The loader needs only the demo's mapping (:class:`DemoMapping`);
the app also sets its routes up (:class:`gateway.web.optional.Demo`, which adds what this layer
can not name: the aiohttp app and the sealer).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEMO_MODULE", "DemoMapping", "demo", "registered_demo", "NO_DEMO"]

#: Where the demo lives when it is installed (a source checkout, ``pip install gateway``).
DEMO_MODULE = "gateway.demo"

#: What ``demo: true`` says when the demo is not installed.
NO_DEMO = "demo: true, but this installation has no demo (the production image leaves it out): set demo: false"


class DemoMapping(Protocol):
    """What the config loader needs of the demo: its provider's mapping."""

    def mapping_file(self) -> Path:
        """The demo provider's mapping (served as provider ``demo``)."""
        ...


def registered_demo() -> Any:
    """What the installed demo registered (``gateway.demo.DEMO``), or None when there is none."""
    try:
        module = importlib.import_module(DEMO_MODULE)
    except ModuleNotFoundError as err:
        if err.name != DEMO_MODULE:
            raise  # the demo is there but something it needs is not: a real bug, say so
        return None
    return module.DEMO


def demo() -> DemoMapping | None:
    """The installed demo, or None when this installation has none."""
    registered: DemoMapping | None = registered_demo()
    return registered
