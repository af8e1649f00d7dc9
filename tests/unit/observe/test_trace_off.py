"""The trace hooks with tracing off (gateway/observe/trace/hooks.py): in a process that never made a
trace they return without asking the app; once one exists, each asks its request's app."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiohttp import web

from gateway.config.settings import TraceSettings
from gateway.observe.trace import hooks
from gateway.observe.trace.model import TRACE, FlowTrace


class _NoApp:
    """A request whose app must not be looked at."""

    @property
    def app(self) -> web.Application:
        raise AssertionError("the hook asked the app")


class _Request:
    def __init__(self, app: web.Application) -> None:
        self.app = app


def test_before_any_trace_exists_no_hook_asks_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FlowTrace, "made", False)
    request = cast(web.Request, _NoApp())
    assert hooks._store(request) is None
    hooks.token_answered(request, web.Response())
    hooks.normalised(request, cast(Any, None), {})


def test_once_a_trace_exists_each_app_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FlowTrace, "made", False)
    trace = FlowTrace(TraceSettings(token="t" * 32))
    assert FlowTrace.made
    with_trace, without = web.Application(), web.Application()
    with_trace[TRACE] = trace
    assert hooks._store(cast(web.Request, _Request(with_trace))) is trace
    assert hooks._store(cast(web.Request, _Request(without))) is None
