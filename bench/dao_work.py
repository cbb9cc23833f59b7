"""One DAO benchmark run, in its own process, through whichever ``redisolar`` package is importable.

Usage: python bench/dao_work.py PORT DB SITES DAYS  -> one JSON line of timings (seconds).
The work: insert SITES sites; ingest SITES*DAYS*24 hourly readings in time order through
``add_readings_batch`` in batches of 1,000 (wall-clock time, and the CPU time of this process and
of the server); make the leaderboards current (the seed's design needs
its updater for that, ours keeps them current at ingest); read the top-100 capacity leaderboard 50
times; ask 50 seven-day site analytics; then a backlog upload: a quarter of the sites (their loggers
were online hourly, and kept 5-minute readings) upload the readings between their hourly ones of the last
4 days, per site in time order in batches of up to 1,000, all older than the site's newest reading (the
out-of-order path of both backends). Run with PYTHONPATH pointing at the seed design to measure it.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import time

import redis


def main() -> None:
    port, db, n_sites, days = (int(a) for a in sys.argv[1:5])
    from redisolar.dao.leaderboard_dao import LeaderboardDao
    from redisolar.dao.site_dao_redis import SiteDaoRedis
    from redisolar.dao.timeseries_dao import TimeSeriesDao
    from redisolar.models.site import MeterReading, Site

    client = redis.Redis(port=port, db=db, decode_responses=True)
    client.flushdb()
    rng = random.Random(7)
    sites = [
        Site(
            id=i,
            capacity=round(rng.uniform(2, 10), 1),
            panels=rng.randint(6, 30),
            address=f"{i} Sun St",
            city="Oakland",
            state="CA",
            postal_code="94601",
        )
        for i in range(1, n_sites + 1)
    ]
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0).replace(tzinfo=None)
    readings = []
    for site in sites:
        for h in range(days * 24):
            t = end - dt.timedelta(hours=h)
            f = max(0.0, 1 - abs(t.hour - 12) / 12)
            readings.append(
                MeterReading(
                    site_id=site.id,
                    timestamp=t,
                    wh_generated=site.capacity * 800 * f * rng.uniform(0.7, 1.3),
                    wh_used=site.capacity * 200 * rng.uniform(0.8, 1.2),
                    temp_c=20 + 15 * f,
                )
            )
    readings.sort(key=lambda m: m.timestamp)
    site_dao = SiteDaoRedis(client)
    ts = TimeSeriesDao(client)
    lb = LeaderboardDao(client, site_dao)
    out: dict[str, object] = {"readings": len(readings)}

    t0 = time.perf_counter()
    site_dao.insert_many(*sites)
    out["insert_sites"] = time.perf_counter() - t0

    t0, cpu0 = time.perf_counter(), cpu_seconds(client)
    for i in range(0, len(readings), 1000):
        ts.add_readings_batch(readings[i : i + 1000])
    out["ingest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    lb.rebuild_capacity_leaderboard()
    from redisolar.tasks import leaderboard_updater as updater_module

    updater = getattr(updater_module, "leaderboard_updater", None)
    if updater is not None:  # the seed's design: leaderboards are current only after its updater ran
        updater.update_generation_leaderboard()
        updater.update_efficiency_leaderboard()
    out["leaderboards_current"] = time.perf_counter() - t0
    out["ingest_cpu_client"], out["ingest_cpu_server"] = cpu_used(client, cpu0)  # until boards current

    t0 = time.perf_counter()
    for _ in range(50):
        top = lb.get_capacity_leaders(100)
    out["top100_x50"] = time.perf_counter() - t0
    out["top100_len"] = len(top)

    t0 = time.perf_counter()
    start = end - dt.timedelta(days=7)
    analytics = None
    for i in range(50):
        analytics = ts.get_site_analytics(sites[i % len(sites)].id, start, end)
    out["analytics_x50"] = time.perf_counter() - t0
    out["analytics_count"] = analytics.reading_count if analytics else None
    backlog(ts, sites[: max(1, len(sites) // 4)], end, rng, MeterReading, out)
    out["used_memory"] = int(client.info("memory")["used_memory"])
    print(json.dumps(out))


def cpu_seconds(client: redis.Redis) -> tuple[float, float]:
    """CPU seconds used so far by this process and by the Redis server (user + system): figures that
    a busy machine distorts far less than wall-clock time."""
    info = client.info("cpu")
    return time.process_time(), float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def cpu_used(client: redis.Redis, since: tuple[float, float]) -> tuple[float, float]:
    now = cpu_seconds(client)
    return now[0] - since[0], now[1] - since[1]


def backlog(ts, sites, end, rng, reading_type, out: dict[str, object]) -> None:  # type: ignore[no-untyped-def]
    """Each site's 5-minute readings between its hourly ones over the 4 days before ``end`` (never a
    stored timestamp, so the seed's DUPLICATE_POLICY BLOCK accepts them), per site in batches of 1,000."""
    batches = []
    for site in sites:
        start = end - dt.timedelta(days=4)
        times = [start + dt.timedelta(minutes=5 * k) for k in range(4 * 24 * 12) if k % 12]
        readings = [
            reading_type(site_id=site.id, timestamp=t, wh_generated=rng.uniform(0, 400),
                         wh_used=rng.uniform(0, 100), temp_c=rng.uniform(5, 35))
            for t in times
        ]  # fmt: skip
        batches += [readings[i : i + 1000] for i in range(0, len(readings), 1000)]
    latencies = []
    t0, cpu0 = time.perf_counter(), cpu_seconds(ts.redis)
    for batch in batches:
        b0 = time.perf_counter()
        ts.add_readings_batch(batch)
        latencies.append(time.perf_counter() - b0)
    out["backlog"] = time.perf_counter() - t0
    out["backlog_cpu_client"], out["backlog_cpu_server"] = cpu_used(ts.redis, cpu0)
    out["backlog_readings"] = sum(len(b) for b in batches)
    latencies.sort()
    out["backlog_batch_p50"] = latencies[len(latencies) // 2]
    out["backlog_batch_p99"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]


if __name__ == "__main__":
    main()
