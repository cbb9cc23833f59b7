"""The site hash: its fields, how a :class:`Site` reads back from it, and its search fields.

Shared by the store (which writes the hashes) and both search paths (which read them). The ``idx_*``
fields exist only for search; see :mod:`redisolar.dao.sites` for their meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redisolar.models.site import Coordinate, Site

SITE_FIELDS = (
    "id",
    "capacity",
    "panels",
    "address",
    "city",
    "state",
    "postal_code",
    "lat",
    "lng",
    "timezone",
)
"""The hash fields a :class:`Site` is read from, in the order the reads return them."""

TAG_SEPARATOR = "\x1f"
"""Separates the words of ``idx_prefixes``: a character no site text may contain (control characters
are rejected)."""

MIN_TERM_LENGTH = 2
"""Shortest search term and shortest indexed prefix: shorter ones would match nearly everything (and
bloat ``idx_prefixes``)."""


# -- decoding replies ------------------------------------------------------------------------------
def text(value: Any) -> str:
    """``value`` as a string (bytes decoded as UTF-8)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def decoded(value: Any) -> Any:
    """``value`` with every bytes object (also inside lists and dicts) decoded as UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {decoded(k): decoded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [decoded(v) for v in value]
    return value


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat ``[name, value, name, value, ...]`` reply as a dict."""
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}


# -- sites from hashes -----------------------------------------------------------------------------
def site_from_fields(fields: Mapping[str, Any]) -> Site | None:
    """The site in ``fields`` (hash field -> value; missing fields None or absent), None without an id."""
    values = {name: text(v) for name, v in fields.items() if v is not None}
    if "id" not in values:
        return None
    coordinate = None
    if "lat" in values and "lng" in values:
        coordinate = Coordinate(float(values["lat"]), float(values["lng"]))
    return Site(
        id=int(values["id"]),
        capacity=float(values["capacity"]),
        panels=int(values["panels"]),
        address=values["address"],
        city=values["city"],
        state=values["state"],
        postal_code=values["postal_code"],
        coordinate=coordinate,
        timezone=values.get("timezone"),
    )


def site_from_row(row: Sequence[Any]) -> Site | None:
    """The site in an ``HMGET`` of :data:`SITE_FIELDS` (values in that order), None without an id."""
    return site_from_fields(dict(zip(SITE_FIELDS, row, strict=True)))


# -- search fields ---------------------------------------------------------------------------------
def words(value: str) -> list[str]:
    """The words of ``value`` as search sees them: runs of letters and digits, case-folded."""
    return [w.casefold() for w in "".join(c if c.isalnum() else " " for c in value).split()]


def word_prefixes(*texts: str) -> list[str]:
    """Every prefix of at least ``MIN_TERM_LENGTH`` characters of every word of ``texts``, sorted."""
    found = {w[:n] for t in texts for w in words(t) for n in range(MIN_TERM_LENGTH, len(w) + 1)}
    return sorted(found)


def normalized(key_of: Callable[[str], str], value: str) -> str:
    """The normalized ``value`` as the index set key name ``key_of(value)`` holds it."""
    return key_of(value)[len(key_of("")) :]
