"""The OAuth2 rules the gateway keeps itself, with no web framework: errors and answers as data,
PKCE, sealed values, client auth, what replicas share (the store), single use, refresh grace and
per-link context. Imports only :mod:`gateway.config` below it."""
