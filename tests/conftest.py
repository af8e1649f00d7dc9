"""Fixtures the unit and end-to-end tests share (the end-to-end ones alone are in tests/e2e/conftest.py).

Helpers that are not fixtures live in the ``support`` package (tests/support/), imported by name:
pytest advises against importing from a conftest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.upstream import RecordingUpstream


@pytest.fixture
async def fake() -> AsyncIterator[RecordingUpstream]:
    """The recording upstream on 127.0.0.1, fresh for each test: it answers as the test tells it
    (or as a well-behaved OAuth2 server) and records every request it received."""
    async with RecordingUpstream() as upstream:
        yield upstream
