"""The event streams: ``publish`` appends, readers read by stream id.

Two Redis Streams, one hash tag ``{events}`` (so both live in one cluster slot, and one pipeline can
write both):

- ``events:{events}`` (:meth:`EventKeys.stream`): every event; read by ``GET /api/events`` (Server-Sent
  Events, resumed by ``Last-Event-ID``). Trimmed to about :data:`STREAM_MAXLEN` entries (``XADD MAXLEN
  ~``: Redis trims whole macro-nodes, so a little more is kept, at no extra cost). Why a length and
  not an age: the length bounds memory whatever the fleet's size (an event is ~150-250 bytes of
  stream, so 100,000 events are ~20 MB); the resume window is then 100,000 / rate: ~5 minutes at
  10^5 sites reporting every 5 minutes (333 events/s), ~30 s at 10^6. A client whose ``Last-Event-ID``
  was trimmed is told so (a ``gap`` event) and should reload what it shows.
- ``events:{events}:notify`` (:meth:`EventKeys.notify`): only the kinds of :data:`NOTIFY_KINDS`
  (alerts: rare), which the webhook deliverer consumes through a consumer group; trimmed to about
  :data:`NOTIFY_MAXLEN` entries, so a deliverer stopped for hours still finds every alert when it
  comes back (reading events are never delivered by webhook: at fleet rates they would be a firehose).

On a Redis Cluster a stream is one key, so one slot, so one master: every ingest call appends one
entry. Measured cost (``bench/events.py``): an ``XADD ... MAXLEN ~`` of a reading event is a few
microseconds of server CPU; at 333 events/s (10^5 sites) and 3,333 events/s (10^6 sites) that is a few
per cent of one core; at 10^7 sites (33,333 events/s) it approaches half a core and the stream must be
sharded (one stream per ``FLEET_SHARDS`` part, readers merging by id) or sampled. Until then one
stream keeps ``Last-Event-ID`` a single, totally ordered id.

An entry has two fields: ``kind`` (``reading``, ``rank``, ``alert.opened``, ...) and ``data`` (the
payload as compact JSON). An ingest's ``reading`` events ride in its derived-state round trip
(:func:`reading_calls`: no round trip of their own); its ``rank`` events (:func:`rank_calls`: a site
moved on the generation or efficiency board of its day) come from that round trip's board scripts'
replies and take one more, only when a rank moved (:mod:`redisolar.dao.daily_boards`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from redisolar.dao.scripts import ScriptCall, script

if TYPE_CHECKING:
    from redisolar.dao.daily_boards import RankMove
    from redisolar.dao.key_manager import KeyManager
    from redisolar.dao.timeseries.base import Record, WriteOutcome

STREAM_MAXLEN = 100_000
"""About how many events ``events:{events}`` keeps (see the module docstring)."""

NOTIFY_MAXLEN = 10_000
"""About how many events ``events:{events}:notify`` keeps (alerts only)."""

NOTIFY_KINDS = frozenset({"alert.opened", "alert.resolved"})
"""The kinds also appended to the notify stream, which webhooks are delivered from."""

READING = "reading"
RANK = "rank"


@dataclass(frozen=True)
class EventKeys:
    """The key names of the event streams (:class:`~redisolar.dao.key_manager.KeyManager` holds them)."""

    keys: KeyManager

    @classmethod
    def of(cls, keys: KeyManager) -> EventKeys:
        """The streams of ``keys``' deployment (its key prefix)."""
        return cls(keys)

    @property
    def stream(self) -> str:
        """Stream ``events:{events}``: every event."""
        return self.keys.events_stream_key()

    @property
    def notify(self) -> str:
        """Stream ``events:{events}:notify``: the events webhooks are delivered from."""
        return self.keys.events_notify_key()


@dataclass(frozen=True)
class Event:
    """One stream entry: its id (``MS-SEQ``), kind and payload."""

    id: str
    kind: str
    data: dict[str, Any]

    @classmethod
    def from_entry(cls, entry_id: str, fields: Mapping[str, str]) -> Event:
        """The event of a stream entry (``fields`` decoded)."""
        try:
            data = json.loads(fields.get("data", "{}"))
        except ValueError:
            data = {}
        return cls(str(entry_id), str(fields.get("kind", "")), data if isinstance(data, dict) else {})


Entries = list[tuple[str, dict[str, str]]]
"""Stream entries as a decoding client returns them: ``(id, fields)``."""


def as_events(entries: Any) -> list[Event]:
    """The events of an ``XRANGE``/``XREAD`` entry list (None: none)."""
    return [Event.from_entry(entry_id, fields or {}) for entry_id, fields in cast(Entries, entries or [])]


def read_range(client: redis.Redis, key: str, start: str = "-", count: int | None = None) -> list[Event]:
    """The events of stream ``key`` from id ``start`` on (inclusive), at most ``count``."""
    return as_events(client.xrange(key, min=start, count=count))


def encode(kind: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """The fields of an entry."""
    return {"kind": kind, "data": json.dumps(payload, separators=(",", ":"), allow_nan=False)}


def queue(pipe: Any, keys: EventKeys, kind: str, payload: Mapping[str, Any]) -> None:
    """Queue the ``XADD`` (or two, for :data:`NOTIFY_KINDS`) of one event on ``pipe``."""
    fields = encode(kind, payload)
    pipe.xadd(keys.stream, fields, maxlen=STREAM_MAXLEN, approximate=True)
    if kind in NOTIFY_KINDS:
        pipe.xadd(keys.notify, fields, maxlen=NOTIFY_MAXLEN, approximate=True)


def publish(client: redis.Redis, keys: KeyManager, kind: str, payload: Mapping[str, Any]) -> str:
    """Append one event of ``kind`` (and to the notify stream for :data:`NOTIFY_KINDS`) in one round
    trip; returns its id in ``events:{events}``. Raises redis-py's errors (the caller decides whether
    an event is worth failing for)."""
    pipe = client.pipeline(transaction=False)
    queue(pipe, EventKeys.of(keys), kind, payload)
    return str(pipe.execute()[0])


def reading_payload(outcome: WriteOutcome, records: list[Record]) -> dict[str, Any]:
    """A ``reading`` event's payload: the site, how many readings the call stored for it, and its
    newest reading's values (``ts``: ms since the epoch, UTC). Rank moves are ``rank`` events of their
    own (:func:`rank_calls`)."""
    newest = max(records, key=lambda record: record[0]) if records else None
    payload: dict[str, Any] = {"site_id": outcome.site_id, "ts": outcome.newest, "count": len(records)}
    if newest is not None and newest[0] == outcome.newest:
        payload.update(wh_generated=newest[1], wh_used=newest[2], temp_c=newest[3])
    return payload


def reading_calls(
    keys: KeyManager, by_site: Mapping[int, list[Record]], outcomes: list[WriteOutcome]
) -> list[ScriptCall]:
    """The call appending one ``reading`` event per site written by an ingest call
    (``events_add.lua``), for the ingest's derived-state round trip: no round trip of its own, and
    allowed when Redis is out of memory as the rest of the derived state (an event reports a write
    already accepted; the stream is trimmed, so the overshoot is bounded). None when nothing was written."""
    if not outcomes:
        return []
    args: list[Any] = [STREAM_MAXLEN]
    for outcome in outcomes:
        fields = encode(READING, reading_payload(outcome, by_site.get(outcome.site_id, [])))
        args += [fields["kind"], fields["data"]]
    return [ScriptCall(script("events_add"), (EventKeys.of(keys).stream,), tuple(args))]


def rank_payload(move: RankMove) -> dict[str, Any]:
    """A ``rank`` event's payload: the site, the board (``generation`` / ``efficiency``), its day (the
    board's date: the site's local day), its rank before and after (1 = first; null: not on the board)
    and its score now (Wh, or capacity factor in %)."""
    return {
        "site_id": move.site_id,
        "board": move.board,
        "day": move.day.isoformat(),
        "rank_before": move.before,
        "rank": move.after,
        "score": move.score,
    }


def rank_calls(keys: KeyManager, moves: list[RankMove]) -> list[ScriptCall]:
    """The call appending one ``rank`` event per rank move (``events_add.lua``); none without moves."""
    if not moves:
        return []
    args: list[Any] = [STREAM_MAXLEN]
    for move in moves:
        fields = encode(RANK, rank_payload(move))
        args += [fields["kind"], fields["data"]]
    return [ScriptCall(script("events_add"), (EventKeys.of(keys).stream,), tuple(args))]


def event_calls(keys: KeyManager, events: list[tuple[str, Mapping[str, Any]]]) -> list[ScriptCall]:
    """The calls appending ``(kind, payload)`` events (``events_add.lua``), those of
    :data:`NOTIFY_KINDS` to the notify stream too: :func:`publish` as script calls, to run in a caller's
    round trip (the ingest's, for alerts opened or resolved at ingest). None without events."""
    streams = EventKeys.of(keys)
    calls = []
    for key, maxlen, wanted in (
        (streams.stream, STREAM_MAXLEN, events),
        (streams.notify, NOTIFY_MAXLEN, [e for e in events if e[0] in NOTIFY_KINDS]),
    ):
        if wanted:
            args: list[Any] = [maxlen]
            for kind, payload in wanted:
                fields = encode(kind, payload)
                args += [fields["kind"], fields["data"]]
            calls.append(ScriptCall(script("events_add"), (key,), tuple(args)))
    return calls
