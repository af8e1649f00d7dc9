"""The flow trace: what happened to the last N account links, hop by hop, with every secret redacted.

All an integrator sees of a failed link is "We were unable to link … at this time" (Alexa) or
"Bad response from IdP" (Google). With ``trace: {token: …, flows: 200}`` in gateway.yaml each
replica keeps its last ``flows`` flows in memory (nothing is written anywhere) and serves them at
``/_trace/`` (a list of flows), ``/_trace/flow/<id>`` (one flow as a server-rendered sequence
diagram, lanes platform | gateway | upstream, no script) and ``/_trace/flows.json``.

What anyone can send must not cost the gateway much more than its size (a request's parameters
are the sender's to choose): a token request is recorded with its parameters only once its
client has authenticated (otherwise one small hop, joined to no flow); every hop is bounded
(:data:`~model.MAX_HOP_BYTES`), every flow keeps :data:`~model.MAX_HOPS` hops and
:data:`~model.MAX_KEYS` keys, and the whole trace ``max_bytes`` bytes of its JSON, evicting by kind
of flow (:class:`~model.FlowTrace`).

The package, read bottom-up:

- :mod:`.redact`: what a hop shows of a value (secrets as ``sha256:`` and 8 hex digits), bounded;
- :mod:`.model`: hops, flows and the bounded store of the recent flows;
- :mod:`.hooks`: what the handlers' frames call at fixed points of a request (no-ops with tracing off);
- :mod:`.render`: one flow as HTML (the trace's pages and the demo's platform page use it).

The HTTP views (the pages, the JSON and their login) are handlers like any other and read the
running config, so they live in the web layer, :mod:`gateway.web.traceviews`; nothing in this
package imports :mod:`gateway.web`.
"""

__all__: list[str] = []
