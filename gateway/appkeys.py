"""Typed keys for what the application shares between handlers (aiohttp's ``web.AppKey``)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from .config import Config
from .seal import Sealer

__all__ = ["CONFIG", "SEALER", "HTTP_CLIENT"]

CONFIG = web.AppKey("config", Config)
SEALER = web.AppKey("sealer", Sealer)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
