"""Running totals over the sites, exact: count, panels, capacity, and per state.

``sites_index.lua`` keeps them in the hash ``sites:{sites}:stats`` as each site is indexed, changed or
removed, from the values it recorded for the site (absolute: a retried call changes nothing). Reading
them is one ``HGETALL``, O(states), whatever the fleet size.

Capacities are floats (kW, 1e-6 to 1e7, see :class:`~redisolar.models.site.Site`), and a float running
sum drifts with every change. Instead a capacity ``c`` is kept as the integer ``N = c × 2**80``, exact
for every capacity the model allows (the lowest mantissa bit of 1e-6 ≈ 2**-19.9 is 2**-72), split
in three limbs of 35 bits (``N < 1e7 × 2**80 < 2**104``), each summed
with ``HINCRBY`` (exact 64-bit integers: 2**28 sites before one could overflow). The total read back is
``sum(N) / 2**80`` rounded once by Python's integer division: exactly ``math.fsum`` of the capacities.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redisolar.dao.sites.hashes import text

SCALE_BITS = 80
"""A capacity ``c`` (kW) is summed as the integer ``c × 2**SCALE_BITS``."""
LIMB_BITS = 35
LIMBS = 3
_MASK = (1 << LIMB_BITS) - 1


def capacity_limbs(capacity: float) -> tuple[int, int, int]:
    """The three limbs of ``capacity × 2**80`` (low first); ValueError if that is not an integer."""
    scaled = capacity * (1 << SCALE_BITS)  # a power of two: exact
    n = int(scaled)
    if n != scaled or not 0 < n < 1 << (LIMB_BITS * LIMBS):
        raise ValueError(f"Capacity {capacity!r} cannot be summed exactly")
    return n & _MASK, (n >> LIMB_BITS) & _MASK, n >> (2 * LIMB_BITS)


def limbs_total(limbs: tuple[int, int, int]) -> float:
    """The float nearest to the sum the limb sums stand for."""
    low, middle, high = limbs
    return (low + (middle << LIMB_BITS) + (high << (2 * LIMB_BITS))) / (1 << SCALE_BITS)


def stats_from_hash(fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The site stats (see :func:`redisolar.services.sites.site_stats`) from an HGETALL of the stats
    hash."""
    values = {text(k): int(text(v)) for k, v in fields.items()}
    count = values.get("sites", 0)
    total = limbs_total(_limbs(values, ""))
    states = sorted(name[2:] for name in values if name.startswith("n:") and values[name] > 0)
    return {
        "total_sites": count,
        "total_capacity_kw": total,
        "total_panels": values.get("panels", 0),
        "average_capacity_kw": total / count if count else 0.0,
        "states": {
            state: {"sites": values[f"n:{state}"], "capacity_kw": limbs_total(_limbs(values, f":{state}"))}
            for state in states
        },
    }


def _limbs(values: Mapping[str, int], suffix: str) -> tuple[int, int, int]:
    return values.get(f"c0{suffix}", 0), values.get(f"c1{suffix}", 0), values.get(f"c2{suffix}", 0)
