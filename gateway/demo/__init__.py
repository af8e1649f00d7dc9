"""DEMO ONLY: the embedded demo, served when gateway.yaml says ``demo: true``.

A newcomer runs ``gateway serve``, opens ``/`` and links an account end to end without any
outside service. The gateway's app then holds three parties:

* the demo *platform* (``/_demo/platform/``, :mod:`gateway.demo.platform`), which plays Alexa;
* the gateway itself, serving the mapping ``demo`` (``/demo/authorize|callback|token``) from
  ``demo.yaml`` — the lead's code, nothing here;
* the demo *upstream* (``/_demo/oauth/``, :mod:`gateway.demo.upstream`), an authorization server
  with an odd dialect the mapping translates.

Like the gateway, the demo keeps no server memory: every piece of state is sealed with the
gateway's :class:`~gateway.oauth.seal.Sealer`, so it works across replicas. Its client secrets are
public: never enable it on a gateway that faces the internet.
"""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator

from aiohttp import ClientSession, ClientTimeout, web

from gateway.demo import platform, upstream
from gateway.demo.common import DEMO_HTTP, DEMO_SETTINGS, DemoSettings
from gateway.oauth.seal import Sealer

__all__ = ["DEMO", "demo_mapping_file", "setup_demo", "DEMO_SETTINGS", "DEMO_HTTP", "DemoSettings"]

#: The demo platform calls the gateway on the same server; if that takes longer, say so.
_HTTP_TIMEOUT = ClientTimeout(total=10)


def demo_mapping_file() -> pathlib.Path:
    """The demo provider's mapping, shipped inside the package (loaded as provider "demo")."""
    return pathlib.Path(__file__).with_name("demo.yaml")


def setup_demo(app: web.Application, *, public_url: str, sealer: Sealer) -> None:
    """Add the demo upstream, the demo platform and ``GET /`` (→ ``/_demo/``) to ``app``.

    ``public_url`` is the gateway's public base URL (``http://localhost:8080``): the demo's
    redirect URIs and its calls to the gateway's ``/demo/token`` are built from it.
    """
    app[DEMO_SETTINGS] = DemoSettings(public_url=public_url.rstrip("/"), sealer=sealer)
    app.cleanup_ctx.append(_http_session)
    upstream.add_routes(app.router)
    platform.add_routes(app.router)


async def _http_session(app: web.Application) -> AsyncIterator[None]:
    """One client session for the demo platform's calls, opened at startup, closed on shutdown."""
    async with ClientSession(timeout=_HTTP_TIMEOUT) as session:
        app[DEMO_HTTP] = session
        yield


class _Registration:
    """What the core calls (:class:`gateway.web.optional.Demo`): it finds this module by name only."""

    def mapping_file(self) -> pathlib.Path:
        return demo_mapping_file()

    def setup(self, app: web.Application, *, public_url: str, sealer: Sealer) -> None:
        setup_demo(app, public_url=public_url, sealer=sealer)


#: The demo as the core sees it (gateway.config.optional.demo() reads this).
DEMO = _Registration()
