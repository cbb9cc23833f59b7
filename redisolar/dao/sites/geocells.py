"""The cells of a Redis geo set: a map view as a few ranges of scores, and a score back to a position.

A Redis geo set is a sorted set whose score is a 52-bit geohash (documented with ``GEOADD``): the
latitude's 26 bits (range ±:data:`GEO_MAX_LAT`) and the longitude's (±180) interleaved, latitude in
the even bits. At a *step* ``s`` (1 to 26) the world is a grid of ``2**s`` x ``2**s`` cells, and the
members of one cell are exactly the scores of one range: a cell is read with ``ZRANGE BYSCORE lo
(hi LIMIT 0 n``, which costs O(log N + n) and returns nothing outside the cell.

That is why map views read cells rather than ``GEOSEARCH BYBOX``: a box is measured in metres
around its centre, so it covers more degrees of longitude away from the equator than at it, and
with ``COUNT n ANY`` the matches outside the wanted area use up the count (at a world view, one box
returned only sites of its western neighbour). Cells cover degree ranges exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

from redisolar.dao.sites.query import GEO_MAX_LAT

GEO_STEP = 26
"""Bits per coordinate in a geo set's scores."""

LAT_RANGE = 2 * GEO_MAX_LAT
LNG_RANGE = 360.0

BBox = tuple[float, float, float, float]
"""west, south, east, north in degrees."""

Cell = tuple[int, int]
"""A cell's score range ``[low, high)``."""


def cells(bbox: BBox, max_cells: int) -> list[Cell]:
    """The score ranges of the cells that cover ``bbox``, at the finest step that needs at most
    ``max_cells`` of them (at least 4; a view never needs more than 4 cells at step 1)."""
    step = 1
    while step < GEO_STEP and _count(bbox, step + 1) <= max_cells:
        step += 1
    return list(_cells_at(bbox, step))


def position(score: float) -> tuple[float, float]:
    """The (lng, lat) a geo set's score stands for: the centre of its 52-bit cell, as ``GEOPOS``."""
    bits = int(score)
    lat_bits, lng_bits = _deinterleave(bits), _deinterleave(bits >> 1)
    size = 1 << GEO_STEP
    lat = -GEO_MAX_LAT + (lat_bits + 0.5) * LAT_RANGE / size
    lng = -180.0 + (lng_bits + 0.5) * LNG_RANGE / size
    return lng, lat


def _index(value: float, low: float, span: float, step: int) -> int:
    """The cell index of ``value`` along one axis at ``step`` (the last cell holds the upper edge)."""
    size = 1 << step
    return min(size - 1, max(0, int((value - low) / span * size)))


def _ranges(bbox: BBox, step: int) -> tuple[range, range]:
    west, south, east, north = bbox
    lngs = range(_index(west, -180.0, LNG_RANGE, step), _index(east, -180.0, LNG_RANGE, step) + 1)
    lats = range(
        _index(south, -GEO_MAX_LAT, LAT_RANGE, step), _index(north, -GEO_MAX_LAT, LAT_RANGE, step) + 1
    )
    return lngs, lats


def _count(bbox: BBox, step: int) -> int:
    lngs, lats = _ranges(bbox, step)
    return len(lngs) * len(lats)


def _cells_at(bbox: BBox, step: int) -> Iterator[Cell]:
    lngs, lats = _ranges(bbox, step)
    shift = 2 * (GEO_STEP - step)
    for lat in lats:
        for lng in lngs:
            low = _interleave(lat, lng) << shift
            yield low, low + (1 << shift)


def _interleave(lat: int, lng: int) -> int:
    """Latitude bits in the even positions, longitude bits in the odd ones (Redis's ``interleave64``)."""
    return _spread(lat) | (_spread(lng) << 1)


_SPREAD = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)
"""Shift and mask of each round that spreads 32 bits over the even positions of 64 (Redis's
``interleave64``)."""

_PACK = (
    (1, 0x3333333333333333),
    (2, 0x0F0F0F0F0F0F0F0F),
    (4, 0x00FF00FF00FF00FF),
    (8, 0x0000FFFF0000FFFF),
    (16, 0x00000000FFFFFFFF),
)
"""The rounds that undo them (Redis's ``deinterleave64``)."""


def _spread(value: int) -> int:
    """The bits of ``value`` moved to the even positions."""
    for shift, mask in _SPREAD:
        value = (value | (value << shift)) & mask
    return value


def _deinterleave(bits: int) -> int:
    """The even bits of ``bits``, packed (the inverse of :func:`_spread`)."""
    value = bits & 0x5555555555555555
    for shift, mask in _PACK:
        value = (value | (value >> shift)) & mask
    return value
