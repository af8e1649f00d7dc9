"""How an upstream token call failed: one closed vocabulary for the record, the metrics and linktest.

Each failed upstream call is classified once (:func:`gateway.upstream.client.send` for the
transport, :func:`gateway.web.handlers.exchange` for the answer) into a :data:`FailureKind`. The
kind is the ``kind`` label of ``gateway_upstream_failures_total`` (:mod:`gateway.observe.metrics`),
a field of the request log, the key of the trace's sentence (:mod:`gateway.observe.reasons`), and —
in the :data:`FAILURE_HEADER` of a ``/token`` error — the machine signal ``gateway linktest`` reads
to tell "the upstream refused the gateway's own request" from a bad grant, whatever the
``error_description`` says.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["FailureKind", "FAILURE_KINDS", "FAILURE_HEADER", "as_failure_kind"]

FailureKind = Literal["timeout", "connection", "too_large", "http_5xx", "throttled", "refused", "unusable_answer"]
"""``timeout``/``connection``: no whole answer in time; ``too_large``: over 64 KiB; ``http_5xx`` and
``throttled`` (429, 408): try later; ``refused``: a 4xx about the gateway's own request or
credentials (RFC 6749 §5.2 ``invalid_client`` and friends, or no OAuth error at all);
``unusable_answer``: a 2xx the mapping can not read as a token answer."""
FAILURE_KINDS: tuple[FailureKind, ...] = get_args(FailureKind)

#: The response header of a ``/token`` error that names the upstream failure kind (no ``X-``
#: prefix, RFC 6648). It carries a word of :data:`FAILURE_KINDS`, never upstream text.
FAILURE_HEADER = "Gateway-Upstream-Failure"


def as_failure_kind(value: str | None) -> FailureKind | None:
    """``value`` as a failure kind (a header ``gateway linktest`` read), or ``None``."""
    return next((kind for kind in FAILURE_KINDS if value == kind), None)
