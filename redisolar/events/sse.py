"""The Server-Sent Events body of ``GET /api/events``.

Each event is ``id: <stream id>``, ``event: <kind>``, ``data: <json>``; ``EventSource`` sends the last
id back as ``Last-Event-ID`` when it reconnects, and the stream goes on from there (``XREAD`` after that
id: no gap, no repeat). When the entries after that id were trimmed (``events:{events}`` keeps about
100,000, :mod:`redisolar.events.stream`), the first event is a ``gap`` saying from which id the stream
resumes, so the client reloads what it shows. A comment line (``: keepalive``) is sent after
:attr:`SseLimits.heartbeat` seconds without an event, so proxies keep the connection and a dead client is
noticed at the next write.

Why bounded (decided for WSGI under Granian, where a stream holds one of the worker's ``--threads``
blocking threads for its whole life): a stream ends after :attr:`SseLimits.lifetime` seconds (the client
reconnects with ``Last-Event-ID``: nothing is lost), and a worker serves at most
:attr:`SseLimits.max_streams` streams at once (``EVENTS_MAX_STREAMS``; default 2 of the default 4
threads, so half the threads always serve requests); beyond that the answer is 503 with
``Retry-After`` and the dashboard falls back to polling. A server's capacity is workers x that number
(e.g. 4 workers: 8 live dashboards); more needs an async front (or a dedicated ``serve`` for streams).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from redisolar.events.stream import Event, as_events

STREAM_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


@dataclass(frozen=True)
class SseLimits:
    """How long a stream lives, how often it proves it is alive, how many a worker serves."""

    heartbeat: float = 15.0
    lifetime: float = 300.0
    max_streams: int = 2
    retry_ms: int = 3000


def parse_id(value: str) -> tuple[int, int] | None:
    """A stream id ``MS-SEQ`` (or ``MS``) as a pair; None when it is not one."""
    match = STREAM_ID.match(value.strip())
    if match is None:
        return None
    ms, seq = int(match.group(1)), int(match.group(2) or 0)
    return (ms, seq) if ms < 2**64 and seq < 2**64 else None


def id_text(pair: tuple[int, int]) -> str:
    """The id ``MS-SEQ`` of a pair."""
    return f"{pair[0]}-{pair[1]}"


class Slots:
    """This process's live streams: at most ``limit`` (a non-blocking semaphore)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None

    def take(self) -> bool:
        """Take a slot; False when all are taken."""
        return self._free is not None and self._free.acquire(blocking=False)

    def give(self) -> None:
        """Give a slot back."""
        if self._free is not None:
            self._free.release()


def frame(event: Event) -> str:
    """One event in the SSE wire format."""
    data = json.dumps({"kind": event.kind, **event.data}, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


def newest_id(client: redis.Redis, stream: str) -> str:
    """The id of the stream's newest entry (``0-0`` when empty): a new client starts after it."""
    newest = as_events(client.xrevrange(stream, count=1))
    return newest[0].id if newest else "0-0"


def gap_after(client: redis.Redis, stream: str, last: str) -> str | None:
    """When entries after ``last`` may have been trimmed: the id the stream resumes at (None: no gap).
    Trimming removes the oldest entries, so while ``last`` itself is kept nothing after it is gone;
    once it is gone, a kept entry (or a generated id) newer than it means some may be (the entry
    right after it may have been trimmed too; ``XTRIM``/``MAXLEN`` do not record what they drop, so
    the one case of no loss, ``last`` being exactly the last one dropped, is reported as a gap too:
    the client reloads once, harmlessly)."""
    if client.xrange(stream, min=last, max=last, count=1):
        return None
    try:
        info: dict[str, Any] = client.xinfo_stream(stream)
    except redis.ResponseError:  # no such stream: nothing was ever written or trimmed
        return None
    if "entries-added" in info and int(info["entries-added"]) == int(info.get("length", -1)):
        return None  # Redis 7: nothing was ever trimmed (an id older than the stream's start loses nothing)
    mark = parse_id(last)
    first = info.get("first-entry")
    newest = parse_id(str(first[0] if first else info.get("last-generated-id", "0-0")))
    if mark is None or newest is None or newest <= mark:
        return None
    return id_text(newest)


def gap_frame(last: str, resume: str) -> str:
    """The ``gap`` event: events after ``last`` up to ``resume`` were trimmed."""
    data = json.dumps({"kind": "gap", "after": last, "resumes_at": resume}, separators=(",", ":"))
    return f"event: gap\ndata: {data}\n\n"


def body(
    client: redis.Redis,
    stream: str,
    last: str | None,
    limits: SseLimits,
    *,
    block_s: float,
    site_id: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """The stream's text: events after ``last`` (or after the newest when None) until
    ``limits.lifetime`` has passed, with heartbeats; ``block_s``: how long one ``XREAD`` waits (below
    the client's socket timeout). ``site_id``: only that site's events (and every non-site event)."""
    resume = None if last is None else gap_after(client, stream, last)
    last = newest_id(client, stream) if last is None else last
    yield f"retry: {limits.retry_ms}\n\n"  # once the start is fixed: what follows it reaches the client
    if resume is not None:
        yield gap_frame(last, resume)
    end = clock() + limits.lifetime
    quiet_since = clock()
    while clock() < end:
        wait = max(0.01, min(block_s, end - clock()))
        reply = client.xread({stream: last}, count=100, block=int(wait * 1000))
        for _, entries in cast(list[Any], reply or []):
            for event in as_events(entries):
                last = event.id
                if site_id is None or event.data.get("site_id", site_id) == site_id:
                    quiet_since = clock()
                    yield frame(event)
        if clock() - quiet_since >= limits.heartbeat:
            quiet_since = clock()
            yield ": keepalive\n\n"
