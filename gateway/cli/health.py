"""``gateway health``: ask the running gateway's /healthz, for a container HEALTHCHECK.

A HEALTHCHECK baked into the image can't know the port or whether the listener speaks TLS; this
command reads them from the same gateway.yaml the server reads. It prefers the ops listener
(``metrics:``, always plain http), else the public listener (https when ``tls:`` is set; the
certificate is for the public name, not 127.0.0.1, so it is not verified: this is the process
talking to itself over loopback). It reads only ``listen``, ``metrics`` and ``tls``: no mappings,
no discovery documents, no secrets, so a health check never touches the network beyond loopback.

Never through a proxy: ``http_proxy``/``https_proxy`` in the container's environment (set for the
gateway's own upstream calls, or by a base image) would send the check to the proxy, whose answer
(often 200) would call a stopped gateway healthy. Healthy means the gateway's own ``ok`` answer.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gateway.config.yamlfile import Problems, load_yaml

__all__ = ["health_url", "check_health"]

_ANY = {"", "0.0.0.0", "::"}


def _loopback(host: object) -> str:
    text = str(host or "")
    if text in _ANY:
        return "127.0.0.1" if text != "::" else "[::1]"
    return f"[{text}]" if ":" in text else text


def health_url(path: Path) -> str:
    """Where the gateway configured by ``path`` answers /healthz, seen from inside its container."""
    problems = Problems()
    data: Any = load_yaml(path, problems, missing_env_ok=True) or {}
    metrics = data.get("metrics") or {}
    if isinstance(metrics, dict) and metrics.get("port"):
        return f"http://{_loopback(metrics.get('host', '127.0.0.1'))}:{int(metrics['port'])}/healthz"
    listen = data.get("listen") or {}
    scheme = "https" if data.get("tls") else "http"
    return f"{scheme}://{_loopback(listen.get('host', '127.0.0.1'))}:{int(listen.get('port', 8080))}/healthz"


def check_health(path: Path, *, timeout: float = 2.0) -> tuple[bool, str]:
    """(healthy, what was seen): healthy only on a 200 from /healthz within ``timeout``."""
    url = health_url(path)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # No ProxyHandler from the environment, no redirects: the loopback address and nothing else.
    opener = urllib.request.OpenerDirector()
    handlers = (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(context=context))
    for handler in (*handlers, urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    try:
        with opener.open(url, timeout=timeout) as answer:
            body = answer.read(64)
            healthy = answer.status == 200 and body.startswith(b"ok")
            return healthy, f"{url}: {answer.status}" + ("" if healthy or answer.status != 200 else " (not the gateway's answer)")
    except (OSError, urllib.error.URLError) as exc:
        return False, f"{url}: {exc}"
