"""Sites stored before sites had a time zone get one: their coordinates' zone, else the default.

Run at every start-up and by ``redisolar migrate`` (:func:`redisolar.preflight.migrate_store`, after
the key-layout migration of :mod:`redisolar.dao.migrate`); idempotent:

1. once it has run, ``migrations:{sites}`` holds ``site-timezones`` and a start-up costs one round
   trip (``HEXISTS``); ``redisolar migrate`` walks the sites again whatever the marker says (``force``),
   which also covers a site an older process wrote without a zone during a rolling upgrade;
2. the walk reads the site ids in pages of 1,000 (one round trip), each page's ``id``, ``lat``,
   ``lng`` and ``timezone`` (one round trip), and sets the zone of those without one with
   ``site_timezone.lua`` (one round trip per page, a single-slot script per site, so it works on a
   cluster): only if the hash still has no zone and the coordinates it was derived from. A site
   changed in between is read again (at most :data:`ATTEMPTS` times); a write since the read that gave
   the site a zone wins.

The zone only ever goes from absent to present, so a second walk changes nothing and a walk racing
``PUT``/``POST`` never replaces the zone they wrote.

Then sites with a zone but no offset history ``tzt`` (stored before it existed; the scripts count
their days in UTC until then) get their zone's (:func:`give_sites_transitions`, marker ``site-tzt``,
the same walk): ``site_tzt.lua`` sets it only if the zone is still the one read, so a ``PUT`` that
changed the zone meanwhile (and wrote its own ``tzt``) wins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.sites.hashes import text
from redisolar.dao.sites.store import SiteStore
from redisolar.localtime import encode_tzt
from redisolar.models.site import Coordinate
from redisolar.timezones import derived_timezone

log = logging.getLogger(__name__)

MIGRATION = "site-timezones"
"""Its field in ``migrations:{sites}`` once it has run (value ``done``)."""
TZT_MIGRATION = "site-tzt"
"""The field of :func:`give_sites_transitions` in ``migrations:{sites}`` once it has run."""
ATTEMPTS = 3
"""Reads of a site whose coordinates change while its zone is being set, before it is left for the
next walk."""
_FIELDS = ("id", "lat", "lng", "timezone")


def give_sites_timezones(client: redis.Redis, keys: KeyManager, default: str, *, force: bool = False) -> int:
    """Give every site without a time zone its coordinates' (or ``default``); returns how many got one.
    Does nothing (one round trip) once it has run, unless ``force``."""
    marker = keys.migrations_key()
    if not force and client.hexists(marker, MIGRATION):
        return 0
    given = sum(_fill_page(client, keys, ids, default) for ids in SiteStore(client, keys=keys).iter_ids())
    _mark(client, marker, MIGRATION)
    if given:
        log.info("Gave %d sites the time zone of their coordinates (or %s)", given, default)
    return given


def give_sites_transitions(client: redis.Redis, keys: KeyManager, *, force: bool = False) -> int:
    """Give every site with a zone but no ``tzt`` its zone's (run after :func:`give_sites_timezones`);
    returns how many got one. Does nothing (one round trip) once it has run, unless ``force``."""
    marker = keys.migrations_key()
    if not force and client.hexists(marker, TZT_MIGRATION):
        return 0
    given = sum(_fill_tzt_page(client, keys, ids) for ids in SiteStore(client, keys=keys).iter_ids())
    _mark(client, marker, TZT_MIGRATION)
    if given:
        log.info("Gave %d sites the offset history of their time zone", given)
    return given


def _fill_tzt_page(client: redis.Redis, keys: KeyManager, ids: Sequence[int]) -> int:
    pipe = client.pipeline(transaction=False)
    for site_id in ids:
        pipe.hget(keys.site_key(site_id), "timezone")
        pipe.hexists(keys.site_key(site_id), "tzt")
    rows: list[Any] = pipe.execute()
    calls = [
        ScriptCall(script("site_tzt"), (keys.site_key(site_id),), (text(zone), encode_tzt(text(zone))))
        for site_id, zone, has in zip(ids, rows[0::2], rows[1::2], strict=True)
        if zone is not None and not has
    ]
    return sum(int(r) for r in run_scripts(client, calls)) if calls else 0


def _mark(client: redis.Redis, marker: str, migration: str) -> None:
    try:
        client.hset(marker, migration, "done")
    except redis.exceptions.OutOfMemoryError:
        # A full Redis refuses even this small write: the walk runs again at the next start-up
        # (idempotent), and the caller's own write meets the same refusal and says so.
        log.warning("Redis is out of memory: the time-zone migration will be checked again at the next start")


def _fill_page(client: redis.Redis, keys: KeyManager, ids: Sequence[int], default: str) -> int:
    given, pending = 0, list(ids)
    for _ in range(ATTEMPTS):
        missing = _without_zone(client, keys, pending)
        if not missing:
            break
        calls = [_call(keys, site_id, lat, lng, default) for site_id, lat, lng in missing]
        replies = run_scripts(client, calls)
        given += sum(int(r) for r in replies)
        pending = [site_id for (site_id, _, _), r in zip(missing, replies, strict=True) if not int(r)]
    return given


def _without_zone(client: redis.Redis, keys: KeyManager, ids: Sequence[int]) -> list[tuple[int, str, str]]:
    """``(id, lat, lng)`` of the sites of ``ids`` that exist without a zone ("" for no coordinate)."""
    pipe = client.pipeline(transaction=False)
    for site_id in ids:
        pipe.hmget(keys.site_key(site_id), list(_FIELDS))
    rows: list[list[Any]] = pipe.execute()
    return [
        (site_id, _str(lat), _str(lng))
        for site_id, (found, lat, lng, zone) in zip(ids, rows, strict=True)
        if found is not None and zone is None
    ]


def _call(keys: KeyManager, site_id: int, lat: str, lng: str, default: str) -> ScriptCall:
    coordinate = Coordinate(float(lat), float(lng)) if lat and lng else None
    zone = derived_timezone(coordinate, default)
    return ScriptCall(script("site_timezone"), (keys.site_key(site_id),), (zone, lat, lng))


def _str(value: Any) -> str:
    return "" if value is None else text(value)
