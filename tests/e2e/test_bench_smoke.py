"""bench/bench.py runs end to end on its smoke profile and prints the tables it promises.

Real servers, real wrk, 1-second runs: the test asserts the tables' shape (every row, every column,
numbers where numbers belong), never a timing, since the machine running it is shared.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"-?[\d,]+(\.\d+)?"
SPAN = rf"{NUMBER}((–| to ){NUMBER})?"

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="the bench needs wrk (apt-get install wrk)")


def _tables(output: str) -> dict[str, list[list[str]]]:
    """Each ``### title`` of the output with the cells of its markdown table's body rows."""
    tables: dict[str, list[list[str]]] = {}
    title = ""
    for line in output.splitlines():
        if line.startswith("### "):
            title = line[4:].split(" (")[0]
            tables[title] = []
        elif line.startswith("| ") and title:
            tables[title].append([cell.strip() for cell in line.strip("|").split("|")])
    return {name: rows[1:] for name, rows in tables.items()}  # drop the header row


@pytest.mark.timeout(240)
def test_smoke_profile_prints_every_table() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench.py"), "--profile", "smoke"], cwd=ROOT, capture_output=True, text=True, timeout=230
    )
    assert done.returncode == 0, done.stderr[-3000:]
    tables = _tables(done.stdout)
    assert list(tables) == ["Figures", "Ratios", "The gateway beside the table"], done.stdout

    figures = {row[0]: row for row in tables["Figures"]}
    assert set(figures) == {
        "aiohttp hello-world",
        "bare aiohttp-session 302",
        "bare aiohttp relay, /token refresh",
        "FastAPI + httpx (uvicorn, 1 worker, asyncio)",
        "Node.js http + fetch (1 process)",
        "gateway /authorize",
        "gateway /callback",
        "gateway /token refresh_token",
        "gateway /token authorization_code",
    }
    for row in figures.values():
        assert len(row) == 6, row
        assert re.fullmatch(SPAN, row[1]) and re.fullmatch(SPAN, row[3]), row  # req/s at c=1, c=50
        for pair in row[2], row[4], row[5]:  # p50 / p99 at c=1, c=50; CPU µs/req at c=1 / c=50
            assert re.fullmatch(rf"{SPAN} / {SPAN}", pair), row

    ratios = {(row[0], row[1]): row for row in tables["Ratios"]}
    assert set(ratios) == {
        ("gateway /authorize", "bare aiohttp-session 302"),
        ("gateway /token refresh_token", "bare aiohttp relay, /token refresh"),
        ("gateway /token authorization_code", "bare aiohttp relay, /token refresh"),
        ("gateway /token refresh_token", "FastAPI + httpx (uvicorn, 1 worker, asyncio)"),
        ("gateway /token refresh_token", "Node.js http + fetch (1 process)"),
    }
    for row in ratios.values():
        assert len(row) == 7 and all(re.fullmatch(SPAN, cell) for cell in row[2:]), row

    beside = {row[0]: row[1] for row in tables["The gateway beside the table"]}
    assert re.fullmatch(rf"{SPAN} MB", beside["peak RSS after 500 connections on /authorize"])
    assert re.fullmatch(rf"{SPAN} s", beside["start-up to /healthz with 20 mappings"])
    assert re.fullmatch(rf"{SPAN} req/s \({SPAN}× one\)", beside["/authorize, 2 processes, c=25 each"])


@pytest.mark.timeout(120)
def test_the_in_process_profiler_drives_real_refreshes() -> None:
    """bench/inprocess.py runs the production app in one process and prints the cost per refresh
    (it fails loudly on any answer but a good token answer, so a passing run is real refreshes)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inprocess.py"), "--requests", "30", "--warmup", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(rf"30 refreshes \(memory upstream, \d+ compiled modules\): {NUMBER} µs wall, {NUMBER} µs CPU each", done.stdout), done.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("path", "noun"), [("authorize", "authorizations"), ("callback", "callbacks")])
def test_the_in_process_profiler_drives_real_browser_requests(path: str, noun: str) -> None:
    """``--path authorize`` and ``--path callback`` drive the browser endpoints the same way; each
    answer must be the 302 a real link gets (a callback's flows come from a real /authorize)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inprocess.py"), "--path", path, "--requests", "30", "--warmup", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(rf"30 {noun} \(memory upstream, \d+ compiled modules\): {NUMBER} µs wall, {NUMBER} µs CPU each", done.stdout), done.stdout
