"""``gateway init``: a first working mapping for a provider, from what the provider publishes or answers.

Three sources, each a small module with no network and no web framework in it:

- :mod:`gateway.init.metadata`: an OpenID Connect discovery document or RFC 8414 metadata gives
  the endpoints, client authentication, PKCE and refresh-token scopes (``upstream``);
- :mod:`gateway.init.answers`: real token, refresh and error answers (:mod:`gateway.init.samples`)
  give the ``answer:`` section (format, root, field names, lifetime form, scope separator, the
  error condition and its codes);
- a sibling mapping (``--like``), copied or extended.

:mod:`gateway.init.draft` puts the parts together into one mapping document, runs the answers
through the real normaliser to write each ``examples:`` entry's ``expect``, and
:mod:`gateway.init.yamltext` writes it as YAML with a comment at every line where a choice was
made between readings. The command itself (prompts, files, checks, next steps) is
:mod:`gateway.cli.init`.
"""
