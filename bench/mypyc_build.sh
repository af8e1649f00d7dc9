#!/bin/sh
# Compile the /token path's modules with mypyc, in place: an experiment, not a supported build.
#
#   sh bench/mypyc_build.sh            # .so files beside the sources, one shared library at the root
#   find gateway -name '*.so' -delete  # back to pure Python (and remove the root's *__mypyc*.so)
#
# Python prefers an extension module to a .py of the same name, so the compiled build is whatever
# is left beside the sources; `python -c "import gateway.upstream.answer as m; print(m.__file__)"`
# says which one loads. The shared library (<hash>__mypyc.*.so) is imported by name from the
# repository root: run from the root (python -m, pytest) or with PYTHONPATH set to it.
#
# Left out, because mypyc builds them but the result does not behave as the source does:
#   gateway/web/runner.py       _Protocol subclasses aiohttp's RequestHandler, which has __slots__:
#                               "TypeError: mypyc classes can't have __slots__" on import.
#   gateway/oauth/responses.py  OAuthError's subclasses set `error`/`status` as class attributes
#                               over an Exception subclass's defaults; compiled, an instance has no
#                               `error` attribute at all (AttributeError in test_upstream_client_seam).
# Not tried: gateway/config/* (pydantic models), gateway/web/app.py (only builds the app).
set -eu
cd "$(dirname "$0")/.."
exec .venv/bin/mypyc \
    gateway/web/handlers/__init__.py gateway/web/handlers/token.py \
    gateway/upstream/client.py gateway/upstream/answer.py gateway/upstream/failure.py \
    gateway/oauth/formencoding.py gateway/oauth/clientauth.py gateway/oauth/basicauth.py \
    gateway/oauth/refresh.py gateway/oauth/seal.py gateway/oauth/state.py gateway/oauth/linkcontext.py \
    gateway/oauth/replay.py \
    gateway/observe/logs.py gateway/observe/metrics.py gateway/observe/trace.py \
    gateway/web/appkeys.py gateway/web/session.py
