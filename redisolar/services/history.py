"""Long history use cases: backfilling the rollups (:mod:`redisolar.dao.history`) of readings stored
before them.

Decision: the rollups are written at ingest, so only readings stored by a version without them lack
theirs; ``redisolar migrate`` rolls up every site's raw window once more (:func:`backfill_history`),
with the ingest's own script, so it is exact, repeatable and safe beside writers. It is not run at
start-up: it reads every raw reading of the fleet (one site's window, 720 hours, in about 24 round
trips), which is an operator's decision, not a side effect of starting a server.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redisolar.services import Services


def backfill_history(services: Services, site_ids: Iterable[int] | None = None) -> tuple[int, int]:
    """Roll up the raw window of ``site_ids`` (default: every site): returns (sites with readings,
    hours visited)."""
    series = services.timeseries
    pages = [list(site_ids)] if site_ids is not None else services.sites.iter_ids()
    sites = hours = 0
    for page in pages:
        for site_id, newest in series.backend.newest(page).items():
            if newest is None:
                continue
            start = max(0, newest - series.default_retention) if series.default_retention else 0
            hours += series.history.rebuild(series.backend.name, site_id, start, newest + 1)
            sites += 1
    return sites, hours
