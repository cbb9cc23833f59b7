"""FLEET_SHARDS: the per-reading fleet-wide keys (day boards, fleet hours, last-seen) split into parts,
read back merged into the answers one part gives; the index of board days written once a day; a
change of FLEET_SHARDS rebuilt by the reconciler. Every target; S = 1 and S = 4 side by side on one
server (two key prefixes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import redis

from redisolar.dao import scripts
from redisolar.dao.key_manager import KeyManager
from redisolar.models.site import MeterReading, Site
from redisolar.services import Services, Settings, build_services
from redisolar.services.ingest import ingest_readings
from redisolar.settings import ConfigError, from_environment, validate_config
from redisolar.timeutil import utcnow
from tests.conftest import BackendServer

SITES = 30
DAY = date(2026, 6, 1)


def test_unsharded_names_are_unchanged() -> None:
    keys = KeyManager("p:")
    assert keys.daily_leaderboard_key("generation", DAY) == "p:lb:{lb:2026-06-01}:generation"
    assert keys.daily_versions_key(DAY) == "p:lb:{lb:2026-06-01}:versions"
    assert keys.fleet_hour_total_key(5) == "p:fleet:gen:{fh:5}"
    assert keys.fleet_hour_bucket_key(5, 2) == "p:fleet:gen:{fh:5}:s:2"
    assert keys.fleet_last_seen_key() == "p:fleet:last_seen"
    assert keys.fleet_shard(7) == 0


def test_sharded_names_carry_the_part_in_their_tag() -> None:
    keys = KeyManager("p:", fleet_shards=4)
    assert keys.fleet_shard(7) == 3
    assert keys.daily_leaderboard_key("efficiency", DAY, 3) == "p:lb:{lb:2026-06-01:3}:efficiency"
    assert keys.fleet_hour_index_key(5, 1) == "p:fleet:gen:{fh:5:1}:b"
    assert keys.fleet_last_seen_key(2) == "p:fleet:last_seen:{ls:2}"
    with pytest.raises(ValueError):
        keys.fleet_last_seen_key(4)
    for bad in (0, 257, True):
        with pytest.raises(ValueError):
            KeyManager(fleet_shards=bad)


def test_the_setting() -> None:
    assert from_environment({"REDISOLAR_FLEET_SHARDS": "4"}) == {"FLEET_SHARDS": 4}
    config: dict[str, Any] = {"FLEET_SHARDS": 0}
    with pytest.raises(ConfigError, match="FLEET_SHARDS"):
        validate_config(config)


def make(backend_server: BackendServer, shards: int, prefix: str) -> Services:
    config = backend_server.config(redis_key_prefix=prefix)
    return build_services(Settings(redis=config, timeseries_backend=backend_server.name, fleet_shards=shards))


@pytest.fixture
def pair(backend_server: BackendServer, client: redis.Redis) -> Iterator[tuple[Services, Services]]:
    one, four = make(backend_server, 1, "s1:"), make(backend_server, 4, "s4:")
    yield one, four
    one.redis.close()
    four.redis.close()


def load(services: Services, now: datetime) -> None:
    """30 sites; today's and yesterday's readings with many equal day totals (ties across parts)."""
    for i in range(1, SITES + 1):
        services.create_site(Site(i, 1.0 + i % 4, 8, f"{i} Main", "Provo", "UT", "84601", timezone="UTC"))
    readings = [
        MeterReading(site_id=i, timestamp=now - timedelta(hours=h), wh_generated=100.0 * (i % 5 + h % 2),
                     wh_used=1.0, temp_c=20.0)
        for i in range(1, SITES + 1)
        for h in (0, 1, 26, 27)
    ]  # fmt: skip
    ingest_readings(services, readings)


def answers(services: Services, now: datetime) -> dict[str, Any]:
    """Every board read for today and yesterday, and the summary."""
    boards = services.leaderboards
    found: dict[str, Any] = {}
    for day in (now.date(), now.date() - timedelta(days=1)):
        for kind in ("generation", "efficiency"):
            at = f"{kind} {day}"
            for limit, offset in ((10, 0), (7, 5), (1000, 0), (5, 28), (3, 40)):
                page = boards.get_leaders(kind, limit, offset, day)
                found[f"{at} page {limit}/{offset}"] = [(e.site.id, e.score, e.rank) for e in page]
            for site_id in (1, 2, 5, 17, 30, 31):
                found[f"{at} rank {site_id}"] = boards.get_site_rank(site_id, kind, day)
                found[f"{at} score {site_id}"] = boards.get_site_score(site_id, kind, day)
                around = boards.get_sites_around_rank(site_id, kind, 3, day)
                found[f"{at} around {site_id}"] = [(e.site.id, e.score, e.rank) for e in around]
            stats = boards.get_leaderboard_stats(kind, day)
            found[f"{at} stats"] = {k: pytest.approx(v, rel=1e-12) for k, v in stats.items()}
    summary = services.summary(now)
    found["summary"] = {
        k: v if isinstance(v, str | int) else pytest.approx(v, rel=1e-12) for k, v in summary.items()
    }
    return found


def test_four_parts_answer_as_one(pair: tuple[Services, Services]) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    one, four = pair
    load(one, now)
    load(four, now)
    expected = answers(one, now)
    assert expected[f"generation {now.date()} page 1000/0"]  # the data is there
    assert answers(four, now) == expected
    parts = [four.keys.daily_leaderboard_key("generation", now.date(), k) for k in four.keys.shards()]
    sizes = [sum(1 for i in range(1, SITES + 1) if i % 4 == k) for k in range(4)]
    assert [four.redis.zcard(key) for key in parts] == sizes  # each site in its own part only


@pytest.mark.parametrize("shards, first, second", [(1, 1, 2), (4, 1, 5)])
def test_the_index_of_days_is_written_when_a_board_is_created(
    backend_server: BackendServer,
    client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    shards: int,
    first: int,
    second: int,
) -> None:
    services = make(backend_server, shards, "ix:")
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for site_id in (first, second):
        services.create_site(Site(site_id, 2.0, 8, "1 Main", "Provo", "UT", "84601", timezone="UTC"))
    days = services.keys.leaderboard_days_key()
    ingest_readings(
        services, [MeterReading(site_id=first, timestamp=now, wh_generated=5.0, wh_used=1.0, temp_c=20.0)]
    )
    assert client.zrange(days, 0, -1) == [str((now.date() - date(1970, 1, 1)).days)]
    client.delete(days)  # as if a crash came between the board's creation and the index
    seen: list[tuple[str, ...]] = []
    original = scripts.run_scripts_collect

    def recording(redis_client: redis.Redis, calls: list[scripts.ScriptCall], *args: Any) -> Any:
        seen.extend(call.keys for call in calls)
        return original(redis_client, calls, *args)

    monkeypatch.setattr(scripts, "run_scripts_collect", recording)
    later = MeterReading(site_id=second, timestamp=now, wh_generated=7.0, wh_used=1.0, temp_c=20.0)
    ingest_readings(services, [later])  # same day, same part: the board exists
    assert not client.exists(days)
    assert all(days not in keys for keys in seen)
    services.leaderboards.prune_daily_boards(30)  # the reconciler's repair
    assert client.zrange(days, 0, -1) == [str((now.date() - date(1970, 1, 1)).days)]
    services.redis.close()


def test_changing_fleet_shards_is_rebuilt_by_the_reconciler(
    backend_server: BackendServer, client: redis.Redis
) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    one = make(backend_server, 1, "sw:")
    load(one, now)
    expected = answers(one, now)
    four = make(backend_server, 4, "sw:")
    assert four.updater.update_all_leaderboards() is not None
    assert answers(four, now) == expected
    assert client.get("sw:fleet:shards") == "4"
    assert not client.exists("sw:fleet:last_seen")  # the former layout's last-seen is dropped
    assert one.updater.update_all_leaderboards() is not None  # and back
    assert answers(one, now) == expected
    assert client.get("sw:fleet:shards") == "1"
    assert not any(client.exists(four.keys.fleet_last_seen_key(k)) for k in four.keys.shards())
    one.redis.close()
    four.redis.close()
