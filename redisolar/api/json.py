"""The application's JSON: strict RFC 8259 both ways.

Out: ``allow_nan=False``, so a non-finite number can never leave as ``NaN`` or ``Infinity`` (invalid
JSON that browsers and strict parsers refuse); serializing one raises ValueError, which the error
handlers turn into the generic 500 JSON body. In: a body nested deeper than Python's parser can
follow is a ValueError (so Flask answers 400), not a RecursionError (a 500). Duplicate object keys
keep the last value, as the batch fast path's parser (msgspec) does, so both paths read a body alike.
"""

from __future__ import annotations

import json
from typing import Any

from flask.json.provider import DefaultJSONProvider


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing to write ``NaN``/``Infinity`` and to recurse without end."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        """Serialize ``obj``; ValueError if it holds a non-finite number."""
        kwargs.setdefault("allow_nan", False)
        return super().dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse ``s``; ValueError (a 400 in requests) if it is not JSON or is nested too deep."""
        try:
            return json.loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None
