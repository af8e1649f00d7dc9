"""Every helper the unit and end-to-end tests share, in one package (importable as ``support``:
``pythonpath = ["tests"]`` in pyproject.toml).

* :mod:`support.upstream` — the one recording upstream: a configurable, misbehaving OAuth2 server
  on 127.0.0.1, or the same answers in-process through the upstream client seam;
* :mod:`support.documented` — what a provider's documentation says its token request looks like,
  and how a recorded one differs;
* :mod:`support.oidc_provider` — the real OAuth2/OIDC upstream (panva's oidc-provider, the Node
  project in ``oidc-provider/``), shared per configuration, and a user's login and consent;
* :mod:`support.harness` — the platform's and upstream's credentials, the test mappings, a gateway
  started in process, a user's walk through a link, and :func:`~support.harness.post_token`;
* :mod:`support.sockets`, :mod:`support.processes`, :mod:`support.redis` — sockets bound before
  anything listens, ``gateway serve`` subprocesses, a redis-server of the test's own;
* :mod:`support.oauth`, :mod:`support.mappings`, :mod:`support.builders` — HTTP Basic, a mapping
  loaded from text, a shipped mapping with its bases, small mappings and a self-signed certificate.

They live here rather than in a ``conftest.py``: pytest advises against importing from conftest
(a second copy of the module, fixtures registered twice). The fixtures are in tests/conftest.py
(shared) and tests/e2e/conftest.py (end to end).
"""
