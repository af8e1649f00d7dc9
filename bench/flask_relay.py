"""The token relay as a Flask + requests middleware, served by gunicorn with one sync worker.

    BENCH_UPSTREAM=http://127.0.0.1:PORT/token gunicorn -w 1 --chdir bench flask_relay:plain_app
    (or flask_relay:pooled_app)

This is what many account-linking shims look like: a WSGI app forwarding the platform's form to the
upstream with ``requests``. ``plain_app`` calls ``requests.post`` (a new connection per request),
``pooled_app`` reuses one ``requests.Session`` (keep-alive to the upstream).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "")


def _build(post: Callable[..., requests.Response]) -> Flask:
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> str:
        return "ok"

    @app.post("/p/token")
    def token() -> Response:
        answer: Any = post(UPSTREAM, data=request.form.to_dict(), timeout=4).json()
        response = jsonify(answer)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    return app


plain_app = _build(requests.post)
pooled_app = _build(requests.Session().post)
