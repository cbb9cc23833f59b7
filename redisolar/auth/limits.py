"""Rate-limit policies: parsing ``RATE_LIMIT_*`` settings and writing the IETF header fields.

A policy is ``N/PERIOD`` (``600/minute``; periods ``second``, ``minute``, ``hour``, ``day``, or a
number of them: ``100/15minutes``), optionally with a burst, ``600/minute;burst=60``; ``0`` means no
limit. It is enforced as a GCRA (generic cell rate algorithm, an exact token bucket): requests are
admitted one every ``period / N`` on average, and up to ``burst`` (default ``N``) at once after a
quiet spell. The state lives in Redis, so every worker process and every server sharing the Redis
enforce one budget.

Header fields, in the syntax of draft-ietf-httpapi-ratelimit-headers-10 (the httpapi working group's
draft of September 2025, structured fields): every limited response carries
``RateLimit-Policy: "writes";q=600;w=60`` (quota ``q`` per window ``w`` seconds) and
``RateLimit: "writes";r=599;t=1`` (``r`` requests left now, ``t`` seconds until the budget is full
again); a refused request answers 429 with ``Retry-After`` (seconds) and ``r=0``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_UNITS = {"s": "second", "sec": "second", "m": "minute", "min": "minute", "h": "hour", "d": "day"}
_POLICY = re.compile(
    r"^\s*(?P<count>\d+)\s*/\s*(?P<mult>\d*)\s*(?P<unit>[a-z]+?)s?\s*(?:[;,]\s*burst\s*=\s*(?P<burst>\d+))?\s*$",
    re.IGNORECASE,
)
MAX_COUNT = 10**9


@dataclass(frozen=True)
class RatePolicy:
    """``count`` requests per ``window`` seconds, at most ``burst`` at once. Named after its budget."""

    name: str
    count: int
    window: int
    burst: int

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two requests at the steady rate."""
        return self.window * 1000 / self.count

    def policy_header(self) -> str:
        """The ``RateLimit-Policy`` field value."""
        return f'"{self.name}";q={self.count};w={self.window}'


def parse_policy(name: str, text: str) -> RatePolicy | None:
    """The policy ``text`` describes (None for ``0``: no limit); ValueError says what is wrong."""
    if text.strip() == "0":
        return None
    match = _POLICY.match(text)
    unit = _UNITS.get(match["unit"].lower(), match["unit"].lower()) if match else ""
    if match is None or unit not in PERIOD_SECONDS:
        raise ValueError(
            f"{text!r} is not a rate limit: use N/PERIOD (e.g. 600/minute), optionally ;burst=B, or 0"
        )
    count = int(match["count"])
    window = PERIOD_SECONDS[unit] * int(match["mult"] or 1)
    burst = int(match["burst"]) if match["burst"] else count
    if not 1 <= count <= MAX_COUNT or not 1 <= burst <= MAX_COUNT:
        raise ValueError(
            f"{text!r}: the count and burst must be between 1 and {MAX_COUNT} (0 turns limits off)"
        )
    return RatePolicy(name, count, window, burst)


@dataclass(frozen=True)
class RateDecision:
    """What the limiter said about one request: admitted or not, requests left, milliseconds until
    the budget is full again, and (when refused) until the next request would be admitted."""

    policy: RatePolicy
    allowed: bool
    remaining: int
    reset_ms: int
    retry_ms: int

    @property
    def retry_after(self) -> int:
        """``Retry-After`` in whole seconds (at least 1)."""
        return max(1, math.ceil(self.retry_ms / 1000))

    def headers(self) -> dict[str, str]:
        """The header fields of a response to this request."""
        if self.allowed:
            left, reset = max(self.remaining, 0), math.ceil(self.reset_ms / 1000)
        else:
            left, reset = 0, self.retry_after
        fields = {
            "RateLimit-Policy": self.policy.policy_header(),
            "RateLimit": f'"{self.policy.name}";r={left};t={reset}',
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after)
        return fields
