"""The alert rules and the dashboard in deploy/monitoring/ are valid and use only real metrics.

``promtool check rules`` and ``promtool test rules`` (Debian's ``prometheus`` package) judge the
rules; a gateway app is then scraped at /metrics and every metric name the rules and the dashboard
query must be one it exports, so a renamed metric can't leave an alert silently watching nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.config.settings import load_config
from gateway.web.app import create_app

MONITORING = Path(__file__).resolve().parents[3] / "deploy" / "monitoring"

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"), "info": ("_info",)}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, cwd=MONITORING)


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", "alerts.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_the_rules() -> None:
    done = _promtool("test", "rules", "alerts.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_unit_tested() -> None:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    cases = yaml.safe_load((MONITORING / "alerts.test.yaml").read_text(encoding="utf-8"))
    fired = {
        check["alertname"] for test in cases["tests"] for check in test["alert_rule_test"] if check["exp_alerts"]
    }
    assert alerts == fired, f"alerts never shown to fire: {sorted(alerts - fired)}"


def _expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text(encoding="utf-8"))
    found = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    found += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    found += [variable["query"] for variable in dashboard["templating"]["list"] if variable["type"] == "query"]
    return found


def _used() -> set[str]:
    return {name for expr in _expressions() for name in re.findall(r"\bgateway_[a-z_]+\b", expr)}


async def _exported(tmp_path: Path, aiohttp_client: Any) -> set[str]:
    """Sample names a real gateway's /metrics exports (from the families, so before any traffic)."""
    path = tmp_path / "gateway.yaml"
    path.write_text("demo: true\ncookie: {secure: false}\nproviders: []\n")
    client: TestClient[Any, Any] = await aiohttp_client(create_app(load_config(path, env={})))
    response = await client.get("/metrics")
    assert response.status == 200
    names = set()
    for family in text_string_to_metric_families(await response.text()):
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
    return names


async def test_every_metric_used_is_exported_or_planned(tmp_path: Path, aiohttp_client: Any) -> None:
    exported = await _exported(tmp_path, aiohttp_client)
    used = _used()
    assert used, "no metric found in the rules and dashboard"
    assert used - exported == set(), "the rules or dashboard query metrics the gateway does not export"
    # The check can fail: a misspelt name is caught.
    assert "gateway_flow_started_total" not in exported


def test_the_dashboard_covers_what_on_call_needs() -> None:
    used = _used()
    for needed in (
        "gateway_flows_completed_total", "gateway_flows_started_total", "gateway_upstream_failures_total",
        "gateway_upstream_request_duration_seconds_bucket", "gateway_requests_total",
    ):
        assert needed in used, needed
    dashboard = json.loads((MONITORING / "dashboard.json").read_text(encoding="utf-8"))
    latency = [panel for panel in dashboard["panels"] if "latency" in panel["title"].lower()]
    steps = latency[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 4.5 in [step["value"] for step in steps], "mark the platform's 4.5 s budget on the latency panel"
