"""Leaderboards: a page of a board, a site's position with its neighbours, and reconciling them.

Boards: ``capacity`` (kW, no day), ``generation`` and ``efficiency`` (of a date D: every site over
its own local D). Without ``day``, "today" is: for a board page, today's date in ``DEFAULT_TIMEZONE``
(the fleet's zone, default UTC); for a site's position, the site's own local today (the date its
current day totals count towards).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from redisolar.dao.key_manager import LEADERBOARD_TYPES
from redisolar.errors import InvalidQuery
from redisolar.models.site import LeaderboardEntry
from redisolar.services.analytics import require_site
from redisolar.tasks.leaderboard_updater import UpdateReport, fleet_today

if TYPE_CHECKING:
    from redisolar.services import Services


@dataclass(frozen=True)
class BoardPage:
    """A page of a board, best first, and the board's stats."""

    kind: str
    day: date | None
    entries: list[LeaderboardEntry]
    stats: dict[str, Any]


@dataclass(frozen=True)
class Position:
    """A site's rank and score on a board, with its neighbours (itself included)."""

    kind: str
    day: date | None
    rank: int
    score: float
    surrounding: list[LeaderboardEntry]


def board_kind(leaderboard_type: str) -> str:
    """``leaderboard_type`` if it names a board, else ``InvalidQuery`` (400)."""
    if leaderboard_type not in LEADERBOARD_TYPES:
        raise InvalidQuery(
            f"Invalid leaderboard type: {leaderboard_type}. Must be one of: {', '.join(LEADERBOARD_TYPES)}"
        )
    return leaderboard_type


def board_day(kind: str, day: date | None, timezone: str = "UTC") -> date | None:
    """The day a board request is about: None for capacity, else ``day`` or today in ``timezone``."""
    if kind == "capacity":
        return None
    return day or fleet_today(timezone)


def board_page(
    services: Services, leaderboard_type: str, limit: int = 10, offset: int = 0, day: date | None = None
) -> BoardPage:
    """Entries ``offset + 1 .. offset + limit`` of a board with their sites, and its stats."""
    kind = board_kind(leaderboard_type)
    when = board_day(kind, day, services.settings.default_timezone)
    boards = services.leaderboards
    entries = boards.get_leaders(kind, limit, offset, when)
    return BoardPage(kind, when, entries, boards.get_leaderboard_stats(kind, when))


def site_position(
    services: Services,
    leaderboard_type: str,
    site_id: int,
    context: int = 2,
    day: date | None = None,
    *,
    known: bool | None = None,
) -> Position | None:
    """A site's rank and score with ``context`` neighbours on each side; None when the site is not on
    the board (``SiteNotFound`` when there is no such site)."""
    kind = board_kind(leaderboard_type)
    require_site(services, site_id, known)
    zone = services.settings.default_timezone
    if day is None and kind != "capacity":  # the site's own today (one more read)
        site = services.sites.find_by_id(site_id)
        zone = site.timezone if site is not None and site.timezone else zone
    when = board_day(kind, day, zone)
    surrounding = services.leaderboards.get_sites_around_rank(site_id, kind, context, when)
    mine = [entry for entry in surrounding if entry.site.id == site_id]
    if not mine:
        return None
    return Position(kind, when, mine[0].rank, mine[0].score, surrounding)


def reconcile(services: Services, day: date | None = None) -> UpdateReport | None:
    """Reconcile the boards now (capacity, and ``day``'s generation and efficiency; default the
    fleet's today, in ``DEFAULT_TIMEZONE``);
    None when another process holds the reconciler's lock (that run does the work)."""
    return services.updater.update_all_leaderboards(day)
