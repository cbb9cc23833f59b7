"""Writing the per-day generation and efficiency leaderboards from exact, versioned day totals.

Each score is a (site, day) generation total computed on the server right after the write that
changed it, tagged with the site's data version. A day is the site's own local calendar day (its
zone's; UTC for a site without one): the board of date D ranks every site over its own D, and the
efficiency (capacity factor) divides by that local day's real length (23, 24 or 25 hours).
``lb_set.lua`` keeps a score only if its version is newer than the stored one, so retries, overwrites
and concurrent writers converge on the newest total and never double count. Day boards expire once
their day has left the retention window.

This module owns the day boards' keys (``{lb:DAY}``: the two boards, their versions and running sums;
with ``FLEET_SHARDS`` = S > 1, S parts ``{lb:DAY:k}`` holding the sites with ``id % S == k``) and the
index of board days; the ingest service (:mod:`redisolar.services.ingest`) and the reconciler write
them through :class:`DailyBoards` only.

Rank moves: at ingest (:meth:`DailyBoards.calls`, ``ranks=True``) ``lb_set.lua`` also returns, for
each site whose score it set on a board of a current date (UTC today ± 1, which holds every zone's
today), the site's rank on that board before and after (two ``ZREVRANK`` per board: O(log N), in the
script the ingest runs anyway), when they differ and one of them is among the top
:data:`RANK_EVENT_TOP` (the boards the dashboard shows). :meth:`DailyBoards.follow_up_calls` turns
them into ``rank`` events (:func:`redisolar.events.stream.rank_calls`) in the round trip that follows
only when something moved (or a day's board was created). Why the top only (measured with
``python -m bench.events``): on a board of 2,000 sites whose scores grow by a reading at a time, 85 %
of the readings move their site's rank somewhere, so reporting every move would take that follow-up
round trip for most ingests and more than double the stream's rate; moves touching the top 10 are a
small share of them. A site's rank further down is read from the board when it is wanted.
With ``FLEET_SHARDS`` > 1 no rank is reported: a part's rank is not the fleet's (that needs every
part, ``lb_around.lua``, per reading), and a fleet split in parts is one where rank events would be a
firehose; readers then re-read a board.

The index of board days (``lb:days``) changes once a day, so ingest does not write it per reading:
``lb_set.lua`` says when it created a day's board (part), and only then does ingest add the day
(:meth:`DailyBoards.index_calls`, one more round trip, S times a day fleet-wide). A crash between the
two leaves a day out of the index; the reconciler puts back every day whose board exists
(:meth:`DailyBoards.repair_index`) and indexes the day it rebuilds.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple, TypeAlias

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import MEMBERS_PER_CALL, Extra, ScriptCall, chunks, run_scripts, script
from redisolar.events.stream import rank_calls
from redisolar.timeutil import MS_PER_DAY

HOURS_PER_DAY = 24
RANK_EVENT_TOP = 10
"""Rank moves into, out of or within the top this many of a board are ``rank`` events (see above)."""
EPOCH = date(1970, 1, 1)

Score: TypeAlias = (
    tuple[int, int, int, float, float | None] | tuple[int, int, int, float, float | None, float]
)
"""``(site_id, day_number, version, generation_wh, capacity_kw[, hours])``: a site's total of its local
day ``day_number``, lasting ``hours`` (default 24)."""


def efficiency_percent(wh_generated: float, capacity_kw: float | None, hours: float) -> float | None:
    """The capacity factor in percent: 100 × Wh / (kW × 1000 × hours); None without a capacity."""
    if not capacity_kw or hours <= 0:
        return None
    return 100.0 * wh_generated / (capacity_kw * 1000.0 * hours)


def day_of(day_number: int) -> date:
    """The date of a day number (days since the epoch)."""
    return EPOCH + timedelta(days=day_number)


def day_number_of(day: date) -> int:
    """Days since the epoch of ``day``."""
    return (day - EPOCH).days


class DailyBoards:
    """Applies versioned day totals to the daily leaderboards."""

    def __init__(self, client: redis.Redis, keys: KeyManager, retention_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_ms

    def expire_at(self, day_number: int) -> int:
        """When a day's boards expire (unix seconds): end of the day plus retention, or tomorrow. The end
        of the latest local day of that date (UTC-12) is within a day of its UTC end: a day is added."""
        keep_until_ms = (day_number + 2) * MS_PER_DAY + self.retention_ms
        return max(keep_until_ms // 1000, int(time.time()) + 86_400)

    def apply(
        self,
        scores: Iterable[Score],
        extra: Extra | None = None,
        also: Sequence[ScriptCall] = (),
    ) -> int:
        """Apply ``(site_id, day_number, version, generation_wh, capacity_kw)`` tuples in one round trip
        with the index of their days (the reconciler's path: it indexes the days it writes whether or
        not it created their boards; with the script calls ``also`` and the commands ``extra``
        queues). Returns how many (site, day) scores changed."""
        planned = self.calls(scores, ranks=False)
        days = set(planned.days)
        index = [self._index_call(days)] if days else []
        replies = run_scripts(self.client, [*planned.calls, *index, *also], extra)
        return sum(changed_of(r) for r in replies[: len(planned.calls)])

    def calls(self, scores: Iterable[Score], *, ranks: bool = True) -> DayCalls:
        """The calls applying :data:`Score` tuples: one ``lb_set.lua`` per (day, part) and
        :data:`~redisolar.dao.scripts.MEMBERS_PER_CALL` sites, to run in the
        caller's round trip; then :meth:`follow_up_calls` of their replies. ``ranks``: report the rank
        moves on the boards of the current dates (with ``FLEET_SHARDS`` = 1 only; see the module
        docstring)."""
        current = set(current_days()) if ranks and self.keys.fleet_shards == 1 else set()
        by_day: dict[tuple[int, int], list[str | int]] = defaultdict(list)
        for site_id, day_number, version, generation, capacity, *length in scores:
            efficiency = efficiency_percent(generation, capacity, length[0] if length else HOURS_PER_DAY)
            by_day[day_number, self.keys.fleet_shard(site_id)] += [
                self.keys.member(site_id),
                version,
                repr(generation),
                "" if efficiency is None else repr(efficiency),
            ]
        calls, days = [], []
        for (day_number, shard), args in by_day.items():  # 4 arguments a member
            for part in chunks(args, 4 * MEMBERS_PER_CALL):
                top = RANK_EVENT_TOP if day_number in current else 0
                calls.append(self._call(day_number, shard, list(part), top))
                days.append(day_number)
        return DayCalls(calls, days)

    def follow_up_calls(self, planned: DayCalls, replies: Sequence[Any]) -> list[ScriptCall]:
        """After ``planned``'s calls ran with ``replies``: :meth:`index_calls` of the days whose board
        they created and the ``rank`` events of the rank moves they reported (none of either, the
        common case: no round trip)."""
        moves = [
            move for day, reply in zip(planned.days, replies, strict=True) for move in rank_moves(day, reply)
        ]
        return [*self.index_calls(planned.days, replies), *rank_calls(self.keys, moves)]

    def index_calls(self, days: Sequence[int], replies: Sequence[Any]) -> list[ScriptCall]:
        """After the calls of :meth:`calls` (for ``days``) ran with ``replies``: the call adding the
        days whose board they created to the index of days (none, the common case, when no call
        created a board)."""
        created = {day for day, reply in zip(days, replies, strict=True) if created_of(reply)}
        return [self._index_call(created)] if created else []

    def repair_index(self, day_numbers: Iterable[int]) -> int:
        """Add to the index of days those of ``day_numbers`` whose board (any part) exists: two round
        trips. Returns how many days were added."""
        days = sorted(set(day_numbers))
        pipe = self.client.pipeline(transaction=False)
        for day_number in days:
            for shard in self.keys.shards():
                pipe.exists(self.keys.daily_versions_key(day_of(day_number), shard))
        found = pipe.execute()
        shards = self.keys.fleet_shards
        existing = {d for i, d in enumerate(days) if any(found[i * shards : (i + 1) * shards])}
        if not existing:
            return 0
        index = self.keys.leaderboard_days_key()
        stored: Any = self.client.zrange(index, 0, -1)
        known = {int(d) for d in stored}
        missing = existing - known
        if missing:
            run_scripts(self.client, [self._index_call(missing)])
        return len(missing)

    def _index_call(self, day_numbers: Iterable[int]) -> ScriptCall:
        """``zset_add.lua`` of days to ``lb:days`` (a script: derived state is written even when
        memory is full)."""
        days = [str(d) for day_number in sorted(day_numbers) for d in (day_number, day_number)]
        return ScriptCall(script("zset_add"), (self.keys.leaderboard_days_key(),), tuple(days))

    def _call(self, day_number: int, shard: int, args: list[str | int], top: int = 0) -> ScriptCall:
        day = day_of(day_number)
        generation = self.keys.daily_leaderboard_key("generation", day, shard)
        efficiency = self.keys.daily_leaderboard_key("efficiency", day, shard)
        keys = (
            generation,
            efficiency,
            self.keys.daily_versions_key(day, shard),
            self.keys.board_sum_key(generation),
            self.keys.board_sum_key(efficiency),
        )
        return ScriptCall(script("lb_set"), keys, (self.expire_at(day_number), top, *args))


class DayCalls(NamedTuple):
    """The ``lb_set.lua`` calls of some scores and the day number of each."""

    calls: list[ScriptCall]
    days: list[int]


def changed_of(reply: Any) -> int:
    """The number of scores an ``lb_set.lua`` reply says changed."""
    return int(reply[0])


def created_of(reply: Any) -> bool:
    """Whether an ``lb_set.lua`` reply says it created its day's board."""
    return int(reply[1]) == 1


@dataclass(frozen=True)
class RankMove:
    """A site's position on a day board before and after an ingest (1 = first; None: not on it)."""

    site_id: int
    board: str
    """``generation`` or ``efficiency``."""
    day: date
    before: int | None
    after: int | None
    score: float | None
    """Its score now (None: it left the board, e.g. its capacity is unknown)."""


def current_days(now_ms: int | None = None) -> tuple[int, int, int]:
    """The day numbers that are today somewhere: the UTC date's, the day before and the day after
    (every zone's local date is within a day of UTC's)."""
    today = (int(time.time() * 1000) if now_ms is None else now_ms) // MS_PER_DAY
    return today - 1, today, today + 1


def rank_moves(day_number: int, reply: Any) -> list[RankMove]:
    """The rank moves an ``lb_set.lua`` reply reports (after its two counts, five values each)."""
    values = [v.decode() if isinstance(v, bytes) else v for v in list(reply)[2:]]
    return [_move(day_number, *values[i : i + 5]) for i in range(0, len(values), 5)]


def _move(day_number: int, member: Any, board: Any, before: Any, after: Any, score: Any) -> RankMove:
    return RankMove(
        site_id=int(str(member).rsplit(":", 1)[1]),
        board=str(board),
        day=day_of(day_number),
        before=None if int(before) < 0 else int(before) + 1,
        after=None if int(after) < 0 else int(after) + 1,
        score=float(score) if score not in ("", None) else None,
    )
