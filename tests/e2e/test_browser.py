"""The demo in a real browser: Debian's chromium, driven by Playwright, through ``gateway serve``.

Open the demo, click "Link account", sign in and allow at the demo upstream, see the token, the
userinfo and the trace's sequence diagram of this very link, refresh, and see it again. Then a
*failed* link (an upstream answering form data to a mapping that reads JSON) on its trace page,
reached through the trace's login form, with a screenshot kept for a person to look at.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``. Where that is
absent the tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import ALEXA_REDIRECT
from support.upstream import Fault, RecordingUpstream

from e2e.test_trace import TRACE_TOKEN, link, start, token, trace_json

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
#: Where the failed link's screenshot is written (kept after the test for a person to look at).
SHOTS = Path(os.environ.get("GATEWAY_SCREENSHOTS", "/tmp/gateway-screenshots"))

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (pip install -e '.[test]')")
if shutil.which(CHROMIUM) is None:
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)", allow_module_level=True)


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 1280, "height": 1400})
        tab = await context.new_page()
        tab.set_default_timeout(15_000)
        yield tab
        await browser.close()


async def test_the_demo_links_refreshes_and_draws_the_trace(served: str, page: Any) -> None:
    await page.goto(f"{served}/")
    assert "DEMO" in await page.content()
    await page.click("text=Link account")
    await page.fill("#username", "chromium-user")
    await page.click("button:has-text('Sign in')")
    await page.click("button:has-text('Allow')")
    await page.wait_for_selector("text=Linked!")
    text = await page.inner_text("body")
    assert '"token_type": "Bearer"' in text and "chromium-user" in text
    diagram = page.locator(".diagram")
    assert await diagram.count() == 1
    lanes = await page.locator(".diagram .lane").all_inner_texts()
    assert lanes == ["platform", "gateway", "upstream"]
    steps = await page.locator(".diagram .hop .label strong").all_inner_texts()
    assert steps[:5] == ["authorize", "upstream authorize", "callback", "platform redirect", "token"]
    assert "AUTH_CODE_EXCHANGE" in text and "No step failed." in text

    await page.click("button:has-text('Refresh the token')")
    await page.wait_for_selector("text=Refreshed!")
    text = await page.inner_text("body")
    assert "REFRESH_ACCESS_TOKEN" in text
    steps = await page.locator(".diagram .hop .label strong").all_inner_texts()
    assert steps.count("refresh") == 1 and steps[0] == "authorize"  # the same flow, one refresh longer
    assert await page.evaluate("document.scripts.length") == 0  # drawn by the server, no script


async def test_a_failed_links_trace_page_in_chromium(tmp_path: Path, page: Any) -> None:
    async with RecordingUpstream() as fake:
        gateway = await start(tmp_path, fake, upstream_extra="answer:\n  format: json\n")
        try:
            code, _ = await link(gateway)
            fake.fault = Fault(status=200, body="access_token=at.form-answer-1&token_type=bearer", content_type="text/plain")
            status, _ = await token(gateway, {"grant_type": "authorization_code", "code": code, "redirect_uri": ALEXA_REDIRECT})
            assert status == 502
            assert (await trace_json(gateway))[0]["failed_step"] == "normalise"

            response = await page.goto(f"{gateway.url}/_trace/")
            assert response.status == 401
            await page.fill("input[name=token]", TRACE_TOKEN)
            await page.click("button:has-text('Open the trace')")
            await page.click("a[href*='/_trace/flow/']")  # the list of flows, then the one flow's page
            await page.wait_for_selector(".diagram")
            text = await page.inner_text("body")
            assert "Failed at normalise" in text
            assert "the upstream answered text/plain form data; the mapping reads json" in text
            failed = page.locator(".hop.failed")
            assert await failed.count() == 1
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "failed-link-trace.png"), full_page=True)
            assert (SHOTS / "failed-link-trace.png").stat().st_size > 10_000
        finally:
            await gateway.runner.cleanup()
