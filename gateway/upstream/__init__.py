"""The upstream leg: build the authorization request and build and send the token request a mapping
describes, and normalise the answer. Imports only :mod:`gateway.config` and :mod:`gateway.oauth`."""
