"""Open and resolved alerts in Redis, laid out for a cluster.

- a site's alerts live in its slot, ``{site:ID}``: ``alerts:{site:ID}`` (id -> JSON),
  ``alerts:{site:ID}:open`` (rule id -> open alert id) and ``alerts:{site:ID}:history`` (ids by the
  time they opened; the newest :data:`KEEP_PER_SITE` are kept, open ones always). Opening and
  resolving are one script each on that slot (``alert_open.lua``, ``alert_resolve.lua``): an alert
  opens once per rule, whatever the retries;
- the fleet's index, one ``{alerts}`` slot: ``alerts:{alerts}:open`` and ``alerts:{alerts}:resolved``
  (member ``SITE:ALERT``), written after the site's script (``alert_index.lua``) and repaired from
  the sites' open hashes by every evaluator pass (:meth:`AlertStore.repair_open_index`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis

from redisolar.alerts.conditions import Verdict
from redisolar.alerts.rules import Rule
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.timeutil import to_ms

KEEP_PER_SITE = 200
KEEP_RESOLVED = 10_000
"""Resolved alerts the fleet index keeps (a site keeps its own :data:`KEEP_PER_SITE`)."""


@dataclass(frozen=True)
class Opening:
    """An alert to open (if its rule has none open at the site)."""

    site_id: int
    rule_id: str
    alert: dict[str, Any]


@dataclass(frozen=True)
class Resolving:
    """A rule's open alert at a site to resolve."""

    site_id: int
    rule_id: str
    at: str
    values: dict[str, Any]
    resolution: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class AlertStore:
    """The alerts' keys (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: KeyManager) -> None:
        self.redis = client
        self.keys = keys

    def _site_keys(self, site_id: int) -> tuple[str, str, str]:
        k = self.keys
        return k.site_alerts_key(site_id), k.site_open_alerts_key(site_id), k.site_alert_history_key(site_id)

    def open_by_site(self, site_ids: list[int]) -> dict[int, dict[str, str]]:
        """Each site's open alerts, rule id -> alert id (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.hgetall(self.keys.site_open_alerts_key(site_id))
        return {
            s: {_text(k): _text(v) for k, v in reply.items()}
            for s, reply in zip(site_ids, pipe.execute(), strict=True)
        }

    def apply(
        self, openings: list[Opening], resolvings: list[Resolving]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Open and resolve (one round trip on the sites' slots, one on ``{alerts}``). Returns the
        alerts that opened and those that resolved (not those that were open, or closed, already)."""
        calls = self.calls(openings, resolvings)
        opened, resolved = self.results(openings, run_scripts(self.redis, calls) if calls else [])
        index = self.index_calls(opened, resolved)
        if index:
            run_scripts(self.redis, index)
        return opened, resolved

    def calls(self, openings: list[Opening], resolvings: list[Resolving]) -> list[ScriptCall]:
        """The site-slot calls opening and resolving (``alert_open.lua`` and ``alert_resolve.lua``, in
        that order), to run in the caller's round trip; then :meth:`results` of their replies."""
        return [self._open_call(o) for o in openings] + [self._resolve_call(r) for r in resolvings]

    @staticmethod
    def results(
        openings: list[Opening], replies: list[Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The alerts that opened and those that resolved, from the replies of :meth:`calls`."""
        opened = [o.alert for o, reply in zip(openings, replies, strict=False) if int(reply[0]) == 1]
        resolved = [json.loads(_text(r)) for r in replies[len(openings) :] if r]
        return opened, resolved

    def index_calls(self, opened: list[dict[str, Any]], resolved: list[dict[str, Any]]) -> list[ScriptCall]:
        """The fleet index's calls (``{alerts}``) for alerts that opened and resolved."""
        index = [self._index_call("open", a["site_id"], a["id"], to_ms_iso(a["opened_at"])) for a in opened]
        return index + [
            self._index_call("resolve", a["site_id"], a["id"], to_ms_iso(a["resolved_at"])) for a in resolved
        ]

    def _open_call(self, o: Opening) -> ScriptCall:
        opened = to_ms_iso(o.alert["opened_at"])
        args = (o.rule_id, o.alert["id"], json.dumps(o.alert), opened, KEEP_PER_SITE)
        return ScriptCall(script("alert_open"), self._site_keys(o.site_id), args)

    def _resolve_call(self, r: Resolving) -> ScriptCall:
        args = (r.rule_id, r.at, json.dumps(r.values), r.resolution)
        return ScriptCall(script("alert_resolve"), self._site_keys(r.site_id)[:2], args)

    def _index_call(self, op: str, site_id: int, alert_id: str, score: int) -> ScriptCall:
        keys = (self.keys.alerts_open_index_key(), self.keys.alerts_resolved_index_key())
        return ScriptCall(script("alert_index"), keys, (op, f"{site_id}:{alert_id}", score, KEEP_RESOLVED))

    # -- reads -------------------------------------------------------------------------------------
    def site_alerts(self, site_id: int) -> list[dict[str, Any]]:
        """Every kept alert of a site, newest first (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        alerts_key, _, history_key = self._site_keys(site_id)
        pipe.zrevrange(history_key, 0, -1)
        pipe.hgetall(alerts_key)
        ids, stored = pipe.execute()
        by_id = {_text(k): v for k, v in stored.items()}
        return [json.loads(by_id[_text(i)]) for i in ids if _text(i) in by_id]

    def fleet_page(self, state: str, offset: int, count: int) -> tuple[list[dict[str, Any]], bool]:
        """A page of the fleet's open (newest opened first) or resolved (newest resolved first) alerts;
        and whether more follow. Two round trips."""
        key = self.keys.alerts_open_index_key() if state == "open" else self.keys.alerts_resolved_index_key()
        members = [_text(m) for m in self.redis.zrevrange(key, offset, offset + count)]
        more = len(members) > count
        return self.fetch(members[:count]), more

    def fetch(self, members: Iterable[str]) -> list[dict[str, Any]]:
        """The alerts ``SITE:ALERT`` (those still kept), in order (one round trip)."""
        pairs = [(int(m.split(":", 1)[0]), m.split(":", 1)[1]) for m in members]
        pipe = self.redis.pipeline(transaction=False)
        for site_id, alert_id in pairs:
            pipe.hget(self.keys.site_alerts_key(site_id), alert_id)
        return [json.loads(raw) for raw in pipe.execute() if raw is not None]

    def open_index(self) -> dict[str, float]:
        """The fleet's open index, member -> score."""
        replies = self.redis.zrange(self.keys.alerts_open_index_key(), 0, -1, withscores=True)
        return {_text(pair[0]): float(pair[1]) for pair in replies}

    def open_counts(self) -> dict[str, int]:
        """Open alerts by kind (reads the open index's alerts)."""
        counts: dict[str, int] = {}
        for alert in self.fetch(self.open_index()):
            counts[alert["kind"]] = counts.get(alert["kind"], 0) + 1
        return counts

    def repair_open_index(self, open_now: set[str]) -> int:
        """Make the open index hold exactly ``open_now`` (members ``SITE:ALERT``, as the sites' open
        hashes say); returns how many entries changed."""
        indexed = self.open_index()
        stale = [m for m in indexed if m not in open_now]
        missing = {
            f"{a['site_id']}:{a['id']}": to_ms_iso(a["opened_at"])
            for a in self.fetch(m for m in open_now if m not in indexed)
        }
        key = self.keys.alerts_open_index_key()
        if stale:
            self.redis.zrem(key, *stale)
        if missing:
            self.redis.zadd(key, missing)
        return len(stale) + len(missing)

    def delete_site(self, site_id: int) -> None:
        """Forget a site's alerts (its index entries go at the next pass)."""
        self.redis.delete(*self._site_keys(site_id))


def new_alert(site_id: int, rule: Rule, verdict: Verdict, at: str) -> dict[str, Any]:
    """A new open alert of ``rule`` at a site, opened ``at`` (ISO 8601) on ``verdict``'s values."""
    return {
        "id": secrets.token_hex(6),
        "site_id": site_id,
        "rule_id": rule.id,
        "kind": rule.kind,
        "state": "open",
        "message": rule.describe(),
        "opened_at": at,
        "resolved_at": None,
        "values": verdict.values,
        "resolved_values": None,
        "resolution": None,
    }


def to_ms_iso(text: str) -> int:
    """Epoch ms of an ISO 8601 time with offset."""
    from datetime import datetime

    return to_ms(datetime.fromisoformat(text))
