"""The flow trace's model: hops, flows, and the bounded store of the recent flows.

A :class:`FlowTrace` keeps the last ``flows`` flows of this process and at most ``max_bytes`` bytes
of their JSON; hops are joined into a flow by the hashed secrets that link them
(:func:`gateway.observe.trace.redact.redact`). Nothing here knows HTTP beyond the app key the
store is kept under.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from gateway.config.settings import TraceSettings
from gateway.observe.trace.redact import redact

__all__ = [
    "FlowTrace", "Flow", "Hop", "TRACE", "LANES", "PLATFORM", "GATEWAY", "UPSTREAM",
    "GOOGLE_STEPS", "MAX_HOP_BYTES", "MAX_HOPS", "MAX_KEYS", "MAX_REASON", "hop_size",
]

PLATFORM, GATEWAY, UPSTREAM = "platform", "gateway", "upstream"
LANES = (PLATFORM, GATEWAY, UPSTREAM)
#: Google's account-linking step names (Google Home "Troubleshoot account linking").
GOOGLE_STEPS = {"authorization_code": "AUTH_CODE_EXCHANGE", "refresh_token": "REFRESH_ACCESS_TOKEN"}
#: A hop's reason is cut to this many characters.
MAX_REASON = 400
#: A hop whose JSON would still be larger keeps only its step, lanes and outcome.
MAX_HOP_BYTES = 4096
#: Hops kept per flow: the link's own, then the latest refreshes (a link refreshes for months).
MAX_HOPS = 64
LINK_HOPS = 9
#: Keys kept per flow: each refresh rotates the refresh token, and only the latest few lead anywhere.
MAX_KEYS = 8
#: What a key costs beside its hop (the key string in the flow and in the index).
_KEY_BYTES = 160
#: What a flow costs beside its hops (id, provider, the dataclass and list headers).
_FLOW_BYTES = 400


@dataclass
class Hop:
    """One message between two lanes."""

    step: str
    src: str
    dst: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)
    ms: float | None = None
    ok: bool = True
    reason: str = ""
    google: str = ""
    mapping: str = ""


def hop_size(hop: Hop) -> int:
    """What ``hop`` weighs in the trace's budget: the length of its JSON (``vars``, not ``asdict``,
    which deep-copies: a hop's detail is plain JSON already, and this runs for every hop)."""
    return len(json.dumps(vars(hop), ensure_ascii=False))


#: The share each kind of flow may claim when the trace is full (:meth:`FlowTrace.evict`): flows
#: that reached the token endpoint (an authenticated platform), flows still in the browser, and
#: flows refused at their first step (anyone can send those).
TOKEN, BROWSER, REFUSED = "token", "browser", "refused"
KINDS = (TOKEN, BROWSER, REFUSED)


@dataclass
class Flow:
    """One link (authorize → … → token) and the refreshes of the tokens it gave."""

    id: str
    provider: str
    started: float
    hops: list[Hop] = field(default_factory=list)
    #: The hashed keys that lead here, oldest first, each once (a dict as an ordered set).
    keys: dict[str, None] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list, repr=False)
    size: int = _FLOW_BYTES
    kind: str = BROWSER

    @property
    def failure(self) -> Hop | None:
        """The last failed hop, if the flow's last attempt failed."""
        failed = [hop for hop in self.hops if not hop.ok]
        return failed[-1] if failed else None

    def summary(self) -> dict[str, Any]:
        failure = self.failure
        return {
            "id": self.id,
            "provider": self.provider,
            "started": self.started,
            "failed_step": failure.step if failure else None,
            "reason": failure.reason if failure else None,
        }

    def as_json(self) -> dict[str, Any]:
        return {**self.summary(), "hops": [dict(vars(hop)) for hop in self.hops]}


class FlowTrace:
    """The recent flows of this process, and the hashed keys that lead to each.

    Bounded twice: at most ``settings.flows`` flows, and at most ``settings.max_bytes`` bytes of
    their JSON (each hop is bounded on its own, :data:`MAX_HOP_BYTES`). When either is exceeded
    the oldest flow of the kind (:data:`KINDS`) holding the largest share goes first, so a flood of
    refused or abandoned requests evicts its own kind before any flow a platform completed."""

    #: Whether this process ever made one: until it does, no app can have a trace, and the hooks
    #: (:mod:`gateway.observe.trace.hooks`) return at once without looking (tracing is off by default).
    made: ClassVar[bool] = False

    def __init__(self, settings: TraceSettings) -> None:
        FlowTrace.made = True
        self.settings = settings
        self._flows: OrderedDict[str, Flow] = OrderedDict()
        self._kinds: dict[str, OrderedDict[str, Flow]] = {kind: OrderedDict() for kind in KINDS}
        self._bytes = dict.fromkeys(KINDS, 0)
        self._index: dict[str, str] = {}
        self._counter = 0

    @property
    def size(self) -> int:
        """The bytes the kept flows weigh together."""
        return sum(self._bytes.values())

    def flows(self) -> list[Flow]:
        """Newest first."""
        return list(reversed(self._flows.values()))

    def get(self, flow_id: str) -> Flow | None:
        return self._flows.get(flow_id)

    def find(self, kind: str, secret: str) -> Flow | None:
        flow_id = self._index.get(f"{kind}:{redact(secret)}")
        return self._flows.get(flow_id) if flow_id else None

    def link(self, flow: Flow, kind: str, secret: str) -> None:
        """Let a later hop that carries ``secret`` find ``flow`` (the latest ``MAX_KEYS`` keys do)."""
        if flow.id not in self._flows:
            return
        key = f"{kind}:{redact(secret)}"
        self._index[key] = flow.id
        if key in flow.keys:
            return
        flow.keys[key] = None
        self._grow(flow, _KEY_BYTES)
        while len(flow.keys) > MAX_KEYS:
            old = next(iter(flow.keys))
            del flow.keys[old]
            self._grow(flow, -_KEY_BYTES)
            if self._index.get(old) == flow.id:
                del self._index[old]

    def start(self, provider: str, kind: str = "", secret: str = "", *, fresh: bool = False) -> Flow:
        """The flow ``secret`` leads to, or a new one (evicting as :meth:`evict` says)."""
        flow = self.find(kind, secret) if secret and not fresh else None
        if flow is not None:
            self._flows.move_to_end(flow.id)
            self._kinds[flow.kind].move_to_end(flow.id)
            return flow
        self._counter += 1
        flow = Flow(id=f"{self._counter}-{redact(str(time.time_ns()))[7:]}", provider=provider, started=time.time())
        self._flows[flow.id] = flow
        self._kinds[flow.kind][flow.id] = flow
        self._bytes[flow.kind] += flow.size
        if secret:
            self.link(flow, kind, secret)
        self.evict(keep=flow)
        return flow

    def add(self, flow: Flow, hop: Hop) -> None:
        """Append ``hop`` to ``flow`` (keeping the link's hops and the latest), re-judge its kind, evict."""
        if flow.id not in self._flows:  # evicted while its request ran: the hop goes nowhere
            return
        size = hop_size(hop)
        if size > MAX_HOP_BYTES:
            hop.detail = {"…": f"detail left out: {size} bytes"}
            hop.reason = hop.reason[:MAX_REASON]
            size = hop_size(hop)
        flow.hops.append(hop)
        flow.sizes.append(size)
        grown = size
        if len(flow.hops) > MAX_HOPS:
            del flow.hops[LINK_HOPS]
            grown -= flow.sizes.pop(LINK_HOPS)
        self._grow(flow, grown)
        kind = _kind_of(flow)
        if kind != flow.kind:
            del self._kinds[flow.kind][flow.id]
            self._bytes[flow.kind] -= flow.size
            flow.kind = kind
            self._kinds[kind][flow.id] = flow
            self._bytes[kind] += flow.size
        self.evict(keep=flow)

    def _grow(self, flow: Flow, by: int) -> None:
        flow.size += by
        self._bytes[flow.kind] += by

    def evict(self, keep: Flow | None = None) -> None:
        """Drop flows until both bounds hold: each time the oldest of the kind with the largest share
        (of the flow count or of the bytes, whichever is larger), never ``keep``."""
        limit_flows, limit_bytes = self.settings.flows, self.settings.max_bytes
        while len(self._flows) > limit_flows or self.size > limit_bytes:
            shares = {
                kind: max(len(flows) / limit_flows, self._bytes[kind] / limit_bytes)
                for kind, flows in self._kinds.items() if any(f is not keep for f in _oldest_two(flows))
            }
            if not shares:
                return
            kind = max(shares, key=lambda k: shares[k])
            old = next(f for f in _oldest_two(self._kinds[kind]) if f is not keep)
            self._drop(old)

    def _drop(self, flow: Flow) -> None:
        del self._flows[flow.id]
        del self._kinds[flow.kind][flow.id]
        self._bytes[flow.kind] -= flow.size
        for key in flow.keys:
            if self._index.get(key) == flow.id:
                del self._index[key]


def _oldest_two(flows: OrderedDict[str, Flow]) -> list[Flow]:
    """The two oldest flows of a kind: the oldest that is not the one being added to is among them."""
    found: list[Flow] = []
    for flow in flows.values():
        found.append(flow)
        if len(found) == 2:
            break
    return found


def _kind_of(flow: Flow) -> str:
    """Which share ``flow`` counts against (:data:`KINDS`)."""
    if any(hop.step in ("token", "refresh") and hop.src == PLATFORM and hop.ok for hop in flow.hops):
        return TOKEN
    if flow.hops and all(not hop.ok for hop in flow.hops):
        return REFUSED
    return BROWSER


TRACE = web.AppKey("trace", FlowTrace)
