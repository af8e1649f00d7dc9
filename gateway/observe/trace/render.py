"""The flow trace as HTML: one flow as a server-rendered sequence diagram, and the page around it.

Three lanes (platform | gateway | upstream), one row per hop, plain CSS and no script, so the
pages can be served under ``default-src 'none'``. Used by the trace's own pages
(:mod:`gateway.web.traceviews`) and by the demo's platform page.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Mapping
from typing import Any

from gateway.observe.trace.model import LANES, Flow

__all__ = ["render_flow", "document", "esc", "STYLE"]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _detail(detail: Mapping[str, Any]) -> str:
    return esc(json.dumps(detail, ensure_ascii=False, indent=1)) if detail else ""


def render_flow(flow: Flow) -> str:
    """One flow as a sequence diagram: a CSS grid of three lanes, one row per hop, no script."""
    failure = flow.failure
    verdict = (f'<p class="bad">Failed at <strong>{esc(failure.step)}</strong>: {esc(failure.reason)}</p>'
               if failure else '<p class="good">No step failed.</p>')
    rows = []
    for hop in flow.hops:
        a, b = LANES.index(hop.src), LANES.index(hop.dst)
        left, right = min(a, b), max(a, b)
        arrow = "self" if a == b else ("right" if b > a else "left")
        tags = " ".join(f'<span class="tag">{esc(t)}</span>' for t in (hop.google,) if t)
        timing = f" · {hop.ms:g} ms" if hop.ms is not None else ""
        if isinstance(hop.detail.get("status"), int):
            timing = f" · HTTP {hop.detail['status']}{timing}"
        reason = f'<div class="why">{esc(hop.reason)}</div>' if hop.reason else ""
        mapping = f'<div class="map">mapping: {esc(hop.mapping)}</div>' if hop.mapping else ""
        rows.append(
            f'<div class="hop {arrow}{"" if hop.ok else " failed"}" style="grid-column:{left + 1}/{right + 2}">'
            f'<div class="label"><strong>{esc(hop.step)}</strong> {tags}<small>{esc(hop.src)} → {esc(hop.dst)}{timing}</small></div>'
            f'<div class="line"></div>{reason}{mapping}'
            f'<details><summary>detail</summary><pre>{_detail(hop.detail)}</pre></details></div>'
        )
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(flow.started))
    lanes = "".join(f'<div class="lane">{lane}</div>' for lane in LANES)
    return (f'<section class="flow" id="flow-{esc(flow.id)}"><h2>{esc(flow.provider)} · flow {esc(flow.id)} · {started} UTC</h2>'
            f'{verdict}<div class="diagram">{lanes}{"".join(rows)}</div></section>')


STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
.flow{border:1px solid #ccc;border-radius:6px;padding:0 1em 1em;margin:1em 0}
.diagram{display:grid;grid-template-columns:1fr 1fr 1fr;row-gap:.4em;position:relative;
 background:linear-gradient(90deg,transparent calc(16.66% - 1px),#bbb calc(16.66% - 1px),#bbb 16.66%,transparent 16.66%,
 transparent calc(50% - 1px),#bbb calc(50% - 1px),#bbb 50%,transparent 50%,transparent calc(83.33% - 1px),#bbb calc(83.33% - 1px),#bbb 83.33%,transparent 83.33%)}
.lane{text-align:center;font-weight:bold;background:#eef;border:1px solid #99c;padding:.3em;margin:0 .5em}
.hop{position:relative;padding:0 calc(16.66% / 1) 0;margin:0;text-align:center}
.hop .label{background:rgba(255,255,255,.9);display:inline-block;padding:0 .4em}
.hop .label small{display:block;color:#666}
.hop .line{height:0;border-top:2px solid #36c;margin:.1em 16.5%;position:relative}
.hop.right .line::after{content:"▶";position:absolute;right:-.4em;top:-.8em;color:#36c}
.hop.left .line::before{content:"◀";position:absolute;left:-.4em;top:-.8em;color:#36c}
.hop.self .line{border-top:2px dashed #36c;margin:.1em 30%}
.hop.failed .line{border-color:#c00}.hop.failed .line::after,.hop.failed .line::before{color:#c00}
.why{color:#a00;font-weight:bold;background:#fee;display:inline-block;padding:.1em .4em}
.map{color:#555;font-size:12px}.tag{background:#ffd;border:1px solid #cc9;font-size:11px;padding:0 .3em}
details{text-align:left;margin:0 10%}pre{white-space:pre-wrap;font-size:12px;background:#f6f6f6;padding:.4em}
.bad{color:#a00}.good{color:#070}"""


def document(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")
