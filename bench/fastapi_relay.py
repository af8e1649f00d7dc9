"""The token relay as FastAPI + httpx under uvicorn: what a Python developer would write today.

    BENCH_UPSTREAM=http://127.0.0.1:PORT/token uvicorn --app-dir bench fastapi_relay:app --workers 1 \\
        --loop asyncio|uvloop --http httptools

As FastAPI's and httpx's documentation recommend: one ``httpx.AsyncClient`` for the life of the
application (opened in the lifespan, so connections to the upstream are pooled and kept alive),
the form read with ``request.form()`` (python-multipart), and the upstream's JSON returned with the
RFC 6749 §5.1 no-store headers. It does exactly the bare relay's work (``bench/servers.py``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with httpx.AsyncClient(timeout=4.0) as client:
        app.state.client = client
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.post("/p/token")
async def token(request: Request) -> JSONResponse:
    form = await request.form()
    client: httpx.AsyncClient = request.app.state.client
    answer = await client.post(UPSTREAM, data={key: str(value) for key, value in form.items()})
    body: Any = answer.json()
    return JSONResponse(body, headers=NO_STORE)
