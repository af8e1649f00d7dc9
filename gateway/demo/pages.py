"""DEMO ONLY: the HTML of the demo pages, kept small, with every interpolated value escaped.

Two roles share one look but carry different banners, so a newcomer always knows which side of
the link the page plays: the *upstream* (the provider's login and consent) or the *platform*
(Alexa, Google Home). Every page says DEMO.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from aiohttp import web

__all__ = ["Role", "PAGE_HEADERS", "esc", "page", "hidden", "message_page"]

Role = Literal["upstream", "platform"]

#: Sent with every demo page. Several pages carry codes or tokens (in the URL that led to them,
#: or in hidden fields): nobody caches them, no Referer leaks them, no frame hides them.
PAGE_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    }
)

_BANNERS: Mapping[Role, str] = MappingProxyType(
    {
        "upstream": "DEMO upstream: this page plays the provider's authorization server",
        "platform": "DEMO platform: this page plays Alexa / Google Home",
    }
)

_CSS = """
body{font:16px/1.5 system-ui,sans-serif;max-width:44em;margin:0 auto;padding:0 1em 3em;color:#222}
.demo{margin:0 -1em 1.5em;padding:.5em 1em;font-weight:600;color:#fff;letter-spacing:.02em}
.demo.upstream{background:#7a3fb0}.demo.platform{background:#0b6e4f}
.demo span{display:inline-block;margin-right:.6em;padding:0 .4em;border:2px solid #fff;border-radius:3px}
pre{background:#f4f4f4;padding:.8em;overflow-x:auto;border-radius:4px;font-size:14px}
code{background:#f2f2f2;padding:.1em .3em;border-radius:3px}
button,.button{font:inherit;padding:.45em 1.2em;border-radius:4px;border:1px solid #888;background:#fafafa;
  cursor:pointer;text-decoration:none;color:#222;display:inline-block}
button.primary,.button.primary{background:#0b6e4f;border-color:#0b6e4f;color:#fff}
label{display:block;margin:.6em 0 .2em}input[type=text],input[type=password]{font:inherit;padding:.3em;width:16em}
.error{border-left:4px solid #b00020;padding-left:.8em}.ok{border-left:4px solid #0b6e4f;padding-left:.8em}
small{color:#555}ol li{margin:.3em 0}
"""

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>DEMO · {title}</title><style>{css}</style></head>
<body><div class="demo {role}"><span>DEMO</span>{banner}</div>
<h1>{title}</h1>
{body}
<p><small>gateway demo: its client secrets are public. Never enable <code>demo: true</code> on a
gateway that faces the internet.</small></p>
</body></html>
"""


def esc(value: object) -> str:
    """HTML-escape anything, quotes included (values also land in attributes)."""
    return html.escape(str(value), quote=True)


def hidden(name: str, value: str) -> str:
    """A hidden form field; how the demo carries sealed state without server memory."""
    return f'<input type="hidden" name="{esc(name)}" value="{esc(value)}">'


def page(role: Role, title: str, body: str, *, status: int = 200) -> web.Response:
    """A complete demo page. ``body`` is HTML that its caller built with :func:`esc`."""
    return web.Response(
        status=status,
        text=_TEMPLATE.format(title=esc(title), css=_CSS, role=role, banner=esc(_BANNERS[role]), body=body),
        content_type="text/html",
        headers=PAGE_HEADERS,
    )


def message_page(role: Role, title: str, message: str, *, status: int = 400, link: tuple[str, str] | None = None) -> web.Response:
    """A page that explains a problem in one sentence, with an optional way out (href, label)."""
    body = f'<p class="error">{esc(message)}</p>'
    if link is not None:
        href, label = link
        body += f'<p><a class="button" href="{esc(href)}">{esc(label)}</a></p>'
    return page(role, title, body, status=status)
