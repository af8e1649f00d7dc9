"""Compact JSON text from one prebuilt encoder per layout, instead of one built per call.

``json.dumps(value, separators=…)`` builds a ``JSONEncoder`` for each call, and even a prebuilt
``JSONEncoder.encode`` builds its C encoder (``_json.make_encoder``) anew for each value: about as
much work as encoding a token answer. :func:`compact` builds that C encoder once and gives the very
text ``JSONEncoder(separators=(",", ":"), sort_keys=…).encode`` gives (tests/unit/oauth/test_jsontext.py
compares them); without the C accelerator it is that ``encode`` itself.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

__all__ = ["compact"]


def _refuse(value: object) -> object:
    """What ``JSONEncoder.default`` does with a value JSON has no form for."""
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def compact(*, sort_keys: bool = False) -> Callable[[Any], str]:
    """``JSONEncoder(separators=(",", ":"), sort_keys=sort_keys).encode``, with its C encoder built once."""
    make = getattr(json.encoder, "c_make_encoder", None)  # the typeshed stubs leave the accelerator out
    if make is None:  # pragma: no cover - CPython always has the accelerator
        return json.JSONEncoder(separators=(",", ":"), sort_keys=sort_keys).encode
    quote = json.encoder.encode_basestring_ascii
    # As JSONEncoder.iterencode calls it: circular references checked (a dict of the ids being
    # encoded), NaN allowed. The dict is this encoder's own: empty again after each value, but the
    # C encoder leaves an id in it when it fails midway, so a failure empties it.
    markers: dict[int, Any] = {}
    encode_parts = make(markers, _refuse, quote, None, ":", ",", sort_keys, False, True)

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return quote(value)
        try:
            return "".join(encode_parts(value, 0))
        except BaseException:
            markers.clear()
            raise

    return encode
