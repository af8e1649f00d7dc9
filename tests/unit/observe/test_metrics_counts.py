"""Counting a request (gateway/observe/metrics.py) goes straight to each child's value; the numbers
exposed are the ones prometheus-client's own ``inc`` and ``observe`` give."""

from __future__ import annotations

import functools
import math
import re

import pytest
from prometheus_client import generate_latest

from gateway.observe import metrics as metrics_module
from gateway.observe.metrics import Metrics
from gateway.observe.record import RequestRecord

RECORDS = [
    RequestRecord("a", provider="p", endpoint="token", outcome="success", grant="refresh_token", upstream_status=200, upstream_seconds=0.012),
    RequestRecord("b", provider="p", endpoint="token", outcome="success", grant="authorization_code", upstream_status=200, upstream_seconds=0.05),
    RequestRecord("c", provider="q", endpoint="token", outcome="server_error", upstream_failure="timeout", upstream_seconds=4.0),
    RequestRecord("d", provider="q", endpoint="token", outcome="invalid_grant", upstream_status=400, upstream_seconds=9.5),
    RequestRecord("e", provider="p", endpoint="authorize", outcome="success"),
    RequestRecord("f", provider="p", endpoint="token", outcome="success", upstream_seconds=math.nan),
    RequestRecord("g", endpoint="token", outcome="invalid_request"),
]


def _exposed(metrics: Metrics) -> str:
    """The exposition without its ``_created`` timestamps (they differ between two registries)."""
    return re.sub(r"(?m)^.*_created\{?.*\n", "", generate_latest(metrics.registry).decode())


def test_the_counts_are_prometheus_clients_own(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = Metrics()
    for record in RECORDS * 3:
        fast.observe(record)
    assert fast._counts and all(isinstance(count, functools.partial) for count in fast._counts.values())  # past the wrappers
    assert fast._latencies and all(latency.__name__ == "observe" and not hasattr(latency, "__self__") for latency in fast._latencies.values())
    monkeypatch.setattr(metrics_module, "_one_up", lambda child: child.inc)
    monkeypatch.setattr(metrics_module, "_observer", lambda child: child.observe)
    public = Metrics()
    for record in RECORDS * 3:
        public.observe(record)
    assert _exposed(fast) == _exposed(public)
    assert 'gateway_requests_total{endpoint="token",outcome="success",provider="p"} 9.0' in _exposed(fast)
    assert 'gateway_upstream_request_duration_seconds_bucket{le="0.025",provider="p"} 3.0' in _exposed(fast)
