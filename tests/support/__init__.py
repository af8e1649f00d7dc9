"""Helpers shared by the unit and end-to-end tests (importable: ``pythonpath = ["tests"]`` in pyproject.toml).

* :mod:`support.upstream` — the one recording upstream: a configurable, misbehaving OAuth2 server
  on 127.0.0.1, or the same answers in-process through the upstream client seam;
* :mod:`support.oauth` — small steps many tests repeat: HTTP Basic, loading a mapping from text,
  sealing a code as the gateway's callback does;
* :mod:`support.mappings` — a shipped mapping with the mappings it ``extends:``.

They live here rather than in a ``conftest.py``: pytest advises against importing from conftest
(a second copy of the module, fixtures registered twice).
"""
