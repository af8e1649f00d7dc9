"""Small steps many tests repeat: HTTP Basic as a platform sends it, a mapping loaded from text.

Written independently of the gateway's own helpers on purpose (the tests build what a platform
sends; the gateway's code is what they check).
"""

from __future__ import annotations

import base64
from pathlib import Path

from gateway.config.extends import load_mapping_document
from gateway.config.mapping import ProviderMapping, parse_mapping
from gateway.config.yamlfile import Problems

__all__ = ["ALEXA_MAPPING", "basic", "load_mapping", "read_mapping"]


#: The smallest valid mapping: an Alexa skill in front of one authorization server (no secrets needed).
ALEXA_MAPPING = """\
platform:
  profile: alexa
  client_id: alexa-skill
  client_secret: alexa-skill-secret
upstream:
  client_id: gateway
  authorize:
    url: https://id.example.com/authorize
  token:
    url: https://id.example.com/token
"""


def basic(client_id: str, secret: str) -> str:
    """``Authorization: Basic`` for ``client_id:secret`` as Alexa and Google send it (RFC 7617 §2:
    the pair joined by ``:`` and base64-encoded; no form-encoding of either part)."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def read_mapping(
    tmp_path: Path, text: str, *, name: str = "prov", env: dict[str, str] | None = None, missing_env_ok: bool = False
) -> tuple[Problems, ProviderMapping | None]:
    """Write ``text`` as ``<name>.yaml`` and read it as the loader reads a mapping file (merged over its ``extends:`` base):
    the problems found and the mapping (None when it could not be built)."""
    file = tmp_path / f"{name}.yaml"
    file.write_text(text, encoding="utf-8")
    problems = Problems()
    data = load_mapping_document(file, problems, env=env or {}, missing_env_ok=missing_env_ok)
    return problems, parse_mapping(name, data, file=str(file), problems=problems)


def load_mapping(tmp_path: Path, text: str, *, name: str = "prov", env: dict[str, str] | None = None) -> ProviderMapping:
    """:func:`read_mapping`, asserting the mapping has no problems."""
    problems, mapping = read_mapping(tmp_path, text, name=name, env=env)
    assert not problems, "\n".join(map(str, problems.items))
    assert mapping is not None
    return mapping
