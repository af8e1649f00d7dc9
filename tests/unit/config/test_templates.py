"""One placeholder grammar at load and at run time (gateway/config/templates.py).

``{name}`` is a placeholder and ``{{``/``}}`` are literal braces, for the loader that judges a URL
template and for the request path that fills it: a URL that loads as ``…/{{v}}/token`` is called
as ``…/{v}/token``, never with a value in it and never refused as "a value is missing".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.oauth import load_mapping

from gateway.config.templates import ContextValue, UnsafeUrl, render_template, render_url, template_names
from gateway.oauth.linkcontext import kept_at_callback
from gateway.upstream.client import prepare_token_request
from unit.oauth.test_linkcontext import with_context
from unit.upstream.test_upstream_request import CALLBACK

REGION = ContextValue("region", re.compile(r"eu|us"))


def test_doubled_braces_are_literal_in_every_template() -> None:
    assert template_names("a {{x}} {y} }}") == ["y"]
    assert render_template("{{x}}-{y}", {"x": "no", "y": "yes"}) == "{x}-yes"


def test_doubled_braces_stay_literal_when_a_url_is_filled_at_run_time() -> None:
    template = "https://{region}.example.com/oauth/{{x}}/token"
    assert render_url(template, {"region": "eu", "x": "not-this"}, [REGION]) == "https://eu.example.com/oauth/{x}/token"
    assert render_url(template, {"region": "eu"}, [REGION]) == "https://eu.example.com/oauth/{x}/token"
    with pytest.raises(UnsafeUrl, match="missing"):
        render_url("https://{region}.example.com/{other}", {"region": "eu"}, [REGION])


def test_a_url_that_loads_with_doubled_braces_is_called_as_it_loaded(tmp_path: Path) -> None:
    mapping = load_mapping(
        tmp_path,
        with_context("callback: {keep: {region: {pattern: 'eu|us'}}}\n", "url: 'https://{region}.example.com/t/{{x}}'"),
    )
    context = kept_at_callback(mapping, {"region": "us"}, {})
    prepared = prepare_token_request(
        mapping, grant_type="authorization_code", callback_url=CALLBACK, code="c", context=context
    )
    assert prepared.url == "https://us.example.com/t/{x}"
