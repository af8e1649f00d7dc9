"""Prometheus metrics at ``/metrics`` (prometheus-client), one registry per application.

What operators of an account-linking proxy ask first: how many links start and finish, which
OAuth errors platforms get, how slow and how flaky each upstream is. Every request is counted
once, from its :class:`~gateway.observe.record.RequestRecord`, by the logging middleware.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from gateway import __version__
from gateway.config.about import today
from gateway.observe.record import RequestRecord
from gateway.upstream.failure import FAILURE_KINDS

__all__ = ["Metrics", "METRICS"]

_M = TypeVar("_M", bound=MetricWrapperBase)
_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 4.5, 8.0)


class SunsetDays(Collector):
    """``gateway_provider_sunset_days{provider}``: days until each served provider's ``about.sunset``.

    Worked out at each scrape from the date (a gauge set at start would stand still while the day
    comes closer); negative once past. Only mappings with a sunset have a series.
    """

    def __init__(self, on: Callable[[], datetime.date] = today) -> None:
        self.sunsets: Mapping[str, datetime.date] = {}
        self._on = on

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "gateway_provider_sunset_days",
            "Days until the provider (or the API its mapping speaks) turns off (about.sunset.date); negative once past.",
            labels=["provider"],
        )
        on = self._on()
        for provider, date in sorted(self.sunsets.items()):
            family.add_metric([provider], (date - on).days)
        yield family


class Metrics:
    """The gateway's metrics, registered in a private registry (no global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "gateway_requests",
            "Requests by provider, endpoint and outcome (success or the OAuth error code).",
            ["provider", "endpoint", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Upstream token calls, from send to the last byte of the answer.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.upstream_failures = Counter(
            "gateway_upstream_failures",
            f"Upstream token calls that failed, by kind ({', '.join(FAILURE_KINDS)}).",
            ["provider", "kind"],
            registry=self.registry,
        )
        self.answer_expression_failures = Counter(
            "gateway_answer_expression_failures",
            "Mapping expressions (JMESPath, answer.*) that failed at run time on an upstream answer, by mapping key.",
            ["provider", "key"],
            registry=self.registry,
        )
        self.flows_started = Counter(
            "gateway_flows_started", "Link attempts sent on to the upstream by /authorize.", ["provider"], registry=self.registry
        )
        self.flows_completed = Counter(
            "gateway_flows_completed",
            "Link attempts that ended with a token (code exchange at /token, or implicit at /callback).",
            ["provider"],
            registry=self.registry,
        )
        self.grace_hits = Counter(
            "gateway_refresh_grace_hits",
            "Refreshes answered from the grace window (gateway/oauth/refresh.py) without an upstream call.",
            registry=self.registry,
        )
        self.single_flight_joins = Counter(
            "gateway_single_flight_joins",
            "Refreshes that waited for a refresh of the same token already in flight.",
            registry=self.registry,
        )
        self.store_errors = Counter(
            "gateway_store_errors", "Shared store operations that failed or ran out of time, by operation.", ["op"], registry=self.registry
        )
        self.store_fallbacks = Counter(
            "gateway_store_fallbacks",
            "Store operations served by this process alone because the shared store was unavailable, by operation.",
            ["op"],
            registry=self.registry,
        )
        self.sunset_days = SunsetDays()
        self.registry.register(self.sunset_days)
        Info("gateway_build", "Version of the gateway and of Python.", registry=self.registry).info(
            {"version": __version__, "python": platform.python_version()}
        )
        # ``labels()`` checks and joins the values and takes a lock on every call; a request's
        # label sets repeat, so each child is looked up there once (the sets are bounded by the
        # providers, endpoints and outcome codes, as the registry's own children are).
        self._children: dict[tuple[int | str, ...], MetricWrapperBase] = {}
        #: What ``observe`` calls per label set: each child's own value, past the wrapper's checks.
        self._counts: dict[tuple[str, ...], Callable[[], None]] = {}
        self._latencies: dict[str, Callable[[float], None]] = {}

    def _child(self, metric: _M, *values: str) -> _M:
        key: tuple[int | str, ...] = (id(metric), *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child  # type: ignore[return-value]  # the child of ``metric``, hence of its type

    def declare(self, providers: Iterable[str]) -> None:
        """Start every failure kind (:data:`gateway.upstream.failure.FAILURE_KINDS`) of each provider at 0,
        so ``rate()`` and alerts see a series before the first failure of its kind."""
        for provider in providers:
            for kind in FAILURE_KINDS:
                self.upstream_failures.labels(provider, kind)

    def declare_sunsets(self, sunsets: Mapping[str, datetime.date]) -> None:
        """The sunset date of each served provider that has one (start-up and each reload)."""
        self.sunset_days.sunsets = dict(sunsets)

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request."""
        if not record.endpoint:
            return  # operational endpoints and the demo are not counted
        provider = record.provider or "unknown"
        key = (provider, record.endpoint, record.outcome or "none")
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = _one_up(self.requests.labels(*key))
        count()
        if record.upstream_seconds is not None:
            latency = self._latencies.get(provider)
            if latency is None:
                latency = self._latencies[provider] = _observer(self.upstream_latency.labels(provider))
            latency(record.upstream_seconds)
        if record.upstream_failure:
            self._child(self.upstream_failures, provider, record.upstream_failure).inc()
        if record.outcome == "success":
            if record.endpoint == "authorize":
                self._child(self.flows_started, provider).inc()
            elif record.grant in ("authorization_code", "implicit"):
                self._child(self.flows_completed, provider).inc()

    def expressions_failed(self, provider: str, keys: list[str]) -> None:
        """Count the answer expressions of ``provider`` that failed on one answer."""
        for key in keys:
            self._child(self.answer_expression_failures, provider, key).inc()

    async def handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _one_up(child: Counter) -> Callable[[], None]:
    """``child.inc()``, straight to the child's value: a child (a label set) is always observable,
    so ``inc``'s check and argument handling are three Python calls per request for nothing.
    A prometheus-client without that value gets ``child.inc`` itself."""
    value = getattr(child, "_value", None)
    inc = getattr(value, "inc", None)
    return functools.partial(inc, 1) if callable(inc) else child.inc


def _observer(child: Histogram) -> Callable[[float], None]:
    """``child.observe``, likewise: the sum and the first bucket whose bound holds the amount
    (found by bisection, as the loop would find it; none for NaN, as the loop finds none)."""
    total, buckets, bounds = getattr(child, "_sum", None), getattr(child, "_buckets", None), getattr(child, "_upper_bounds", None)
    if not (callable(getattr(total, "inc", None)) and isinstance(buckets, list) and isinstance(bounds, list) and len(buckets) == len(bounds)):
        return child.observe
    add = total.inc  # type: ignore[union-attr]  # checked above
    counts = [bucket.inc for bucket in buckets]
    last = len(bounds)

    def observe(amount: float) -> None:
        add(amount)
        index = bisect.bisect_left(bounds, amount)
        if index < last and amount == amount:  # noqa: PLR0124 - NaN is in no bucket
            counts[index](1)

    return observe


METRICS = web.AppKey("metrics", Metrics)
