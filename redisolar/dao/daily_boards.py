"""Writing the per-day generation and efficiency leaderboards from exact, versioned day totals.

Each score is a (site, UTC day) generation total computed on the server right after the write that
changed it, tagged with the site's data version. ``lb_set.lua`` keeps a score only if its version is
newer than the stored one, so retries, overwrites and concurrent writers converge on the newest total
and never double count. Day boards expire once their day has left the retention window.

This module owns the day boards' keys (``{lb:DAY}``: the two boards, their versions and running sums)
and the index of board days; the ingest service (:mod:`redisolar.services.ingest`) and the reconciler
write them through :class:`DailyBoards` only.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import Extra, ScriptCall, run_scripts, script
from redisolar.timeutil import MS_PER_DAY

HOURS_PER_DAY = 24
EPOCH = date(1970, 1, 1)


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
        """When a day's boards expire (unix seconds): end of the day plus retention, or tomorrow."""
        keep_until_ms = (day_number + 1) * MS_PER_DAY + self.retention_ms
        return max(keep_until_ms // 1000, int(time.time()) + 86_400)

    def apply(
        self,
        scores: Iterable[tuple[int, int, int, float, float | None]],
        extra: Extra | None = None,
        also: Sequence[ScriptCall] = (),
    ) -> int:
        """Apply ``(site_id, day_number, version, generation_wh, capacity_kw)`` tuples in one round trip
        (with the script calls ``also``, e.g. the fleet rollup's, and the commands ``extra`` queues).
        Returns how many (site, day) scores changed."""
        calls = self.calls(scores)
        replies = run_scripts(self.client, [*calls, *also], extra)
        return sum(int(r) for r in replies[: max(0, len(calls) - 1)])

    def calls(self, scores: Iterable[tuple[int, int, int, float, float | None]]) -> list[ScriptCall]:
        """The calls applying ``(site_id, day_number, version, generation_wh, capacity_kw)`` tuples:
        one ``lb_set.lua`` per day, then (if any) the index of days; to run in the caller's round trip."""
        by_day: dict[int, list[str | int]] = defaultdict(list)
        for site_id, day_number, version, generation, capacity in scores:
            efficiency = efficiency_percent(generation, capacity, HOURS_PER_DAY)
            by_day[day_number] += [
                self.keys.member(site_id),
                version,
                repr(generation),
                "" if efficiency is None else repr(efficiency),
            ]
        calls = [self._call(day_number, args) for day_number, args in by_day.items()]
        if by_day:  # the index of days, by a script too: derived state is written even when memory is full
            days = [str(d) for day_number in by_day for d in (day_number, day_number)]
            calls.append(ScriptCall(script("zset_add"), (self.keys.leaderboard_days_key(),), tuple(days)))
        return calls

    def _call(self, day_number: int, args: list[str | int]) -> ScriptCall:
        day = day_of(day_number)
        generation = self.keys.daily_leaderboard_key("generation", day)
        efficiency = self.keys.daily_leaderboard_key("efficiency", day)
        keys = (
            generation,
            efficiency,
            self.keys.daily_versions_key(day),
            self.keys.board_sum_key(generation),
            self.keys.board_sum_key(efficiency),
        )
        return ScriptCall(script("lb_set"), keys, (self.expire_at(day_number), *args))
