"""The prebuilt compact JSON encoder (gateway/oauth/jsontext.py) writes what JSONEncoder writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.oauth.jsontext import compact

VALUES: list[Any] = [
    {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "rt", "scope": "a b"},
    {"z": 1, "a": [1, 2.5, None, True, False], "m": {"é": "\u2028\"\\\n\x00", "b": {"c": []}}},
    {"u": "up-code", "c": "alexa", "r": "https://pitangui.amazon.com/api/skill/link/M2", "p": "p", "x": {"tenant": "ü"}},
    {"big": 10**30, "small": 1e-7, "neg": -0.0, "nan": math.nan, "inf": math.inf},
    "just text ü",
    [],
    {},
]


@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("value", VALUES)
def test_compact_writes_what_the_json_encoder_writes(value: Any, sort_keys: bool) -> None:
    assert compact(sort_keys=sort_keys)(value) == json.JSONEncoder(separators=(",", ":"), sort_keys=sort_keys).encode(value)


def test_it_refuses_what_the_json_encoder_refuses() -> None:
    encode = compact()
    with pytest.raises(TypeError, match="not JSON serializable"):
        encode({"a": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        encode(loop)
    assert encode({"again": [1]}) == '{"again":[1]}'  # the encoder is still good after a failure
    assert encode([[1], [1]]) == "[[1],[1]]"
