"""The webhook signature: ``X-RediSolar-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is
HMAC-SHA256 with the webhook's secret over ``<t>.<body>`` (the exact bytes sent). A receiver recomputes it
with the secret it was shown at registration, compares in constant time, and refuses a ``t`` older than a
few minutes (a replayed delivery). The scheme is Stripe's, so receivers have libraries for it."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-RediSolar-Signature"
TOLERANCE_S = 300
"""How old a signature :func:`verify` accepts, in seconds."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def header(secret: str, timestamp: int, body: bytes) -> str:
    """The header's value."""
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def verify(secret: str, value: str, body: bytes, now: float, tolerance: float = TOLERANCE_S) -> bool:
    """Whether a header value signs ``body`` with ``secret`` and is recent (a receiver's check)."""
    parts = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), parts.get("v1", ""))
