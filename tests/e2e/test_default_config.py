"""The front door: ``gateway serve`` on the shipped gateway.yaml links an account with the demo.

Runs the real console program as a subprocess from the repository root (no environment
variables, no outside service), then plays a person in a browser: open the demo's platform page,
click "Link account", sign in and allow at the demo provider, and see the linked token and a
refresh. Also runs ``gateway check`` on the shipped config.
"""

from __future__ import annotations

import asyncio
import re
import sys
from html import unescape
from pathlib import Path

import aiohttp
from support.oidc_provider import login_and_consent

ROOT = Path(__file__).resolve().parents[2]


def hidden_fields(page: str) -> dict[str, str]:
    return {
        name: unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


async def test_gateway_check_passes_on_the_shipped_config() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "check", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith("ok: 1 provider(s) (demo)")


async def test_link_an_account_with_the_demo(served: str) -> None:
    async with aiohttp.ClientSession() as browser:
        async with browser.get(f"{served}/") as response:  # follows to the landing page
            assert response.status == 200
            landing = await response.text()
        assert "DEMO" in landing and "/_demo/platform/start" in landing

        callback = await login_and_consent(
            browser, f"{served}/_demo/platform/start", stop_at_prefix=f"{served}/_demo/platform/callback", login="newcomer"
        )
        async with browser.get(callback) as response:
            assert response.status == 200
            linked = await response.text()
        assert "Linked" in linked
        assert "&quot;token_type&quot;: &quot;Bearer&quot;" in linked or '"token_type": "Bearer"' in linked
        assert "newcomer" in linked  # the userinfo call with the new access token worked

        fields = hidden_fields(linked)
        async with browser.post(f"{served}/_demo/platform/refresh", data=fields) as response:
            assert response.status == 200
            refreshed = await response.text()
        assert "Refreshed" in refreshed

