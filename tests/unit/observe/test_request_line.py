"""The direct request line (gateway/observe/logs.py) is the line logging would write, byte for byte;
it steps aside for any other logging setup; request ids stay unique and well-formed."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from gateway.observe import logs
from gateway.observe.logs import TEXT_FORMAT, DirectRequestLine, JsonFormatter, TextFormatter
from gateway.observe.record import RequestRecord

FIELDS: dict[str, Any] = {
    "request_id": "abc", "method": "GET", "path": "/p/a\nb\u2028", "status": 302, "ms": 1.5,
    "provider": "p", "endpoint": "authorize", "outcome": "success", "upstream_status": 200, "upstream_ms": 0.7,
}
MESSAGE = "GET /p/a\nb\u2028 302"


def _record(created: float) -> logging.LogRecord:
    record = logging.getLogger("gateway.request").makeRecord(
        "gateway.request", logging.INFO, __file__, 1, "%s %s %d", ("GET", FIELDS["path"], 302), None, extra=FIELDS
    )
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    return record


@pytest.mark.parametrize("created", [1_764_640_000.0, 1_764_640_000.9996, 1_764_640_123.042])
def test_the_direct_json_line_is_the_formatters(created: float) -> None:
    direct = DirectRequestLine(logging.StreamHandler(io.StringIO()), "json")
    assert direct.line(MESSAGE, FIELDS, created) == JsonFormatter().format(_record(created))
    assert json.loads(direct.line(MESSAGE, FIELDS, created))["path"] == FIELDS["path"]


HOSTILE = ['"quoted" \\ back', "ctl \x00\x01\x1f\x7f\x9f", "tab\tline\r\n", "caf\u00e9 \u2028 \U0001f600", "", "</script>"]


@pytest.mark.parametrize("text", HOSTILE)
def test_the_direct_json_line_spells_hostile_values_as_the_encoder_does(text: str) -> None:
    """The request line is written without the generic JSON encoder: every value a client can put
    in it (the path, the grant it names) comes out as the encoder would write it, and parses back."""
    fields: dict[str, Any] = {
        **FIELDS, "path": f"/p/{text}", "grant": text, "ms": 0.1 + 0.2, "upstream_ms": 1e-7, "status": 200,
        "flag": True, "none": None, "big": 10**30, "huge": 1e300, "odd": ["a", text],
    }
    message = f"POST /p/{text} 200"
    direct = DirectRequestLine(logging.StreamHandler(io.StringIO()), "json")
    line = direct.line(message, fields, 1_764_640_000.25)
    assert line == logs._json_line("2025-12-02T01:46:40.250Z", "info", "gateway.request", message, fields)
    assert json.loads(line) == {
        "time": "2025-12-02T01:46:40.250Z", "level": "info", "logger": "gateway.request", "message": message, **fields
    }
    assert line.isascii() and "\n" not in line


@pytest.mark.parametrize("created", [1_764_640_000.0, 1_764_640_000.9996, 1_764_640_123.042])
def test_the_direct_text_line_is_the_formatters(created: float) -> None:
    direct = DirectRequestLine(logging.StreamHandler(io.StringIO()), "text")
    line = direct.line(MESSAGE, FIELDS, created)
    assert line == TextFormatter(TEXT_FORMAT).format(_record(created))
    assert "\n" not in line and "\u2028" not in line  # still one line per record (CWE-117)


@contextmanager
def installed() -> Iterator[tuple[DirectRequestLine, io.StringIO]]:
    """``setup_logging("json")`` as ``gateway serve`` does, writing to a buffer; undone after.

    Entered inside the test: pytest adds its own capture handler to the root for each phase.
    """
    root = logging.getLogger()
    saved_handlers, saved_level, saved_direct = root.handlers[:], root.level, logs._direct
    logs.setup_logging("json", "info")
    direct = logs._direct
    assert direct is not None
    buffer = io.StringIO()
    direct.handler.setStream(buffer)
    try:
        yield direct, buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        logs._direct = saved_direct
        logging.getLogger("aiohttp.access").disabled = False


def test_it_writes_only_while_the_setup_is_the_servers() -> None:
    with installed() as (direct, buffer):
        _steps_aside(direct, buffer)


def _steps_aside(direct: DirectRequestLine, buffer: io.StringIO) -> None:
    assert direct.ready()
    direct.write(MESSAGE, FIELDS)
    [line] = buffer.getvalue().splitlines()
    assert json.loads(line)["request_id"] == "abc"

    extra = logging.StreamHandler(io.StringIO())  # caplog, or a handler an embedding program adds
    logging.getLogger().addHandler(extra)
    assert not direct.ready()
    logging.getLogger().removeHandler(extra)
    logging.getLogger("gateway.request").addHandler(extra)
    assert not direct.ready()
    logging.getLogger("gateway.request").removeHandler(extra)
    assert direct.ready()
    logging.getLogger().setLevel(logging.WARNING)  # log.level: warning leaves the request line out
    assert not direct.ready()
    logging.getLogger().setLevel(logging.INFO)
    logging.disable(logging.INFO)
    try:
        assert not direct.ready()
    finally:
        logging.disable(logging.NOTSET)
    assert direct.ready()


def test_request_ids_are_unique_hex_and_differ_between_processes() -> None:
    ids = logs._RequestIds()
    made = [ids.next() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", made_id) for made_id in made)
    prefix = made[0][:16]
    ids.renew()  # what a forked child does: a new random prefix
    assert ids.next()[:16] != prefix


RECORDS = [
    RequestRecord("abc"),
    RequestRecord("abc", provider="p", endpoint="token", outcome="success", grant="refresh_token", upstream_status=200, upstream_seconds=0.0123),
    RequestRecord("abc", provider="p", endpoint="token", outcome="server_error", grant="authorization_code", upstream_failure="timeout",
                  upstream_seconds=4),
    RequestRecord('a"b', provider="p", endpoint="token", outcome="invalid_request", grant='x"\\\n\u2028\x00é', upstream_status=503),
]


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("path", ["/p/token", '/p/"\\\n\u2028é/token'])
def test_the_written_out_json_request_line_is_the_formatters(record: RequestRecord, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_finish`` writes the JSON line itself (no fields dict): the same bytes as a log record through
    JsonFormatter, whichever optional fields the record has and whatever a client put in them."""
    monkeypatch.setattr(time, "time", lambda: 1_764_640_000.25)
    request = make_mocked_request("POST", path.replace("\n", "%0A"))
    request = request.clone(rel_url=URL.build(path=path))
    with installed() as (direct, buffer):
        assert direct.ready()  # the first line is written out, not logged
        logs._finish(request, record, 400, 0.00237)
        logs._direct = None  # the same request through logging and its JsonFormatter
        logs._finish(request, record, 400, 0.00237)
        logs._direct = direct
    written, logged = buffer.getvalue().splitlines()
    assert written == logged
    assert json.loads(written)["path"] == path
