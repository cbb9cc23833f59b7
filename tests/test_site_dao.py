"""SiteDaoRedis on real Redis servers: CRUD, index upkeep, totals, round trips and search on both paths.

Every search runs on the core path, and on the Stack server also on the RediSearch path; both must give
what a plain-Python filter over the same sites gives.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import run_scripts, script
from redisolar.dao.site_dao_redis import MAX_LIMIT, SearchResult, SiteDaoRedis
from redisolar.dao.sites import GEO_MAX_LAT, MAX_OFFSET, MAX_RADIUS_KM, parse_query
from redisolar.dao.sites.hashes import decoded
from redisolar.dao.sites.store import Write, index_record
from redisolar.dao.sites.totals import stats_from_hash
from redisolar.errors import BackendUnavailable, InvalidInput, InvalidQuery, SiteAlreadyExists, SiteNotFound
from redisolar.models.site import Coordinate, Site
from redisolar.services.sites import stats_of
from redisolar.store import is_cluster
from tests.conftest import BackendServer, target_client

KEYS = KeyManager()
SCRIPTS = ("site_write", "sites_index", "zset_sum")
STACK = [pytest.param("redistimeseries", marks=pytest.mark.redistimeseries)]
CORE = [pytest.param("core", marks=pytest.mark.core)]


# -- helpers -------------------------------------------------------------------------------------
def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def has_search(client: redis.Redis) -> bool:
    if is_cluster(client):  # RediSearch is off on a cluster (its OSS build indexes one shard)
        return False
    try:
        client.execute_command("FT._LIST")
    except redis.ResponseError:
        return False
    return True


def paths(client: redis.Redis) -> list[str]:
    return ["core", "redisearch"] if has_search(client) else ["core"]


def site(site_id: int, **changes: Any) -> Site:
    fields: dict[str, Any] = {
        "capacity": 0.1 + 0.2,
        "panels": 12,
        "address": "4/12 O'Brien St.",
        "city": "Oakland",
        "state": "CA",
        "postal_code": "94601",
        "coordinate": Coordinate(37.80123456789012, -122.27123456789012),
    }
    fields.update(changes)
    return Site(id=site_id, **fields)


def assert_indexes(client: redis.Redis, sites: list[Site]) -> None:
    """The keyspace holds exactly the keys of ``sites``, and every index holds exactly their entries."""
    expected = {KEYS.site_key(s.id) for s in sites}
    groups: dict[str, set[int]] = defaultdict(set)
    for s in sites:
        for key in (
            KEYS.site_state_key(s.state),
            KEYS.site_city_key(s.city),
            KEYS.site_postal_key(s.postal_code),
        ):
            groups[key].add(s.id)
    expected |= set(groups)
    located = {s.id: s.coordinate for s in sites if s.coordinate is not None}
    if sites:
        board = KEYS.capacity_leaderboard_key()
        expected |= {KEYS.site_ids_key(), board, KEYS.board_sum_key(board)}
        expected |= {KEYS.site_indexed_key(), KEYS.site_stats_key()}
        total = math.fsum(s.capacity for s in sites)
        assert float(client.get(KEYS.board_sum_key(board))) == pytest.approx(total, rel=1e-15)
    assert stats_from_hash(client.hgetall(KEYS.site_stats_key())) == stats_of(sites)
    records = client.hgetall(KEYS.site_indexed_key())
    assert {int(k): text(v).split("\x1f")[1:8] for k, v in records.items()} == {
        s.id: index_record(s, 0).split("\x1f")[1:8] for s in sites
    }
    if located:
        expected.add(KEYS.site_geo_key())
    assert {text(k) for k in client.scan_iter(count=1000)} == expected
    for key, ids in groups.items():
        assert {int(m) for m in client.smembers(key)} == ids
    ids = client.zrange(KEYS.site_ids_key(), 0, -1, withscores=True)
    assert {int(m): s for m, s in ids} == {s.id: float(s.id) for s in sites}
    board = client.zrange(KEYS.capacity_leaderboard_key(), 0, -1, withscores=True)
    assert {text(m): s for m, s in board} == {KEYS.member(s.id): s.capacity for s in sites}
    geo = client.zrange(KEYS.site_geo_key(), 0, -1)
    assert {int(m) for m in geo} == set(located)
    for site_id, (lng, lat) in zip(located, client.geopos(KEYS.site_geo_key(), *located), strict=True):
        coordinate = located[site_id]
        assert coordinate is not None
        assert lat == pytest.approx(coordinate.lat, abs=1e-5) and lng == pytest.approx(
            coordinate.lng, abs=1e-5
        )


class CountingConnection(redis.Connection):
    """A connection that counts what it sends: one send per command or per pipeline, one round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def server_address(client: redis.Redis) -> dict[str, Any]:
    kwargs = client.connection_pool.connection_kwargs
    return {"host": kwargs["host"], "port": kwargs["port"], "db": kwargs.get("db", 0)}


# -- fixtures ------------------------------------------------------------------------------------
VARIANTS = {
    "default": {"decode_responses": True},
    "resp2": {"decode_responses": True, "protocol": 2},
    "resp3": {"decode_responses": True, "protocol": 3},
    "bytes-resp2": {"decode_responses": False, "protocol": 2},
    "bytes-resp3": {"decode_responses": False, "protocol": 3},
}


@pytest.fixture(params=list(VARIANTS))
def any_client(
    request: pytest.FixtureRequest, client: redis.Redis, backend_server: BackendServer
) -> Iterator[redis.Redis]:
    """A client on the test's (flushed) server or cluster, decoding or not, speaking RESP2 or RESP3."""
    if request.param == "bytes-resp2":  # the shared fixture, as other modules use it
        yield request.getfixturevalue("raw_client")
        return
    connection = target_client(backend_server, **VARIANTS[request.param])
    yield connection
    connection.close()


@pytest.fixture
def dao(any_client: redis.Redis) -> SiteDaoRedis:
    return SiteDaoRedis(any_client)


@pytest.fixture
def counting(client: redis.Redis) -> Iterator[redis.Redis]:
    """A client counting round trips, with the sites scripts already loaded."""
    for name in SCRIPTS:
        client.script_load(script(name).source)
    pool = redis.ConnectionPool(
        connection_class=CountingConnection, decode_responses=True, **server_address(client)
    )
    connection = redis.Redis(connection_pool=pool)
    connection.ping()  # connect (the handshake is not counted below)
    yield connection
    connection.close()
    pool.disconnect()


def round_trips(action: Any) -> int:
    CountingConnection.sent = 0
    action()
    return CountingConnection.sent


# -- CRUD ----------------------------------------------------------------------------------------
def test_round_trip_keeps_every_value_exactly(dao: SiteDaoRedis, any_client: redis.Redis) -> None:
    sites = [
        site(1),
        site(2, capacity=1e-05, coordinate=Coordinate(-85.05112878, 180.0)),
        site(3, capacity=123456.78901234567, coordinate=None, address="Ünter den Linden 7", city="Berlin"),
        site(
            2**53 - 1, capacity=7.0, coordinate=Coordinate(0.0, -180.0), state=" ß ", postal_code="SW1A 1AA"
        ),
    ]
    for s in sites:
        dao.insert(s)
    assert [dao.find_by_id(s.id) for s in sites] == sites
    assert dao.find_all() == sites
    assert dao.count() == 4
    assert dao.exists(3) and not dao.exists(4)
    assert dao.find_by_id(4) is None
    assert_indexes(any_client, sites)


def test_create_refuses_an_existing_site(dao: SiteDaoRedis, any_client: redis.Redis) -> None:
    dao.create(site(1))
    with pytest.raises(SiteAlreadyExists) as raised:
        dao.create(site(1, state="NY"))
    assert raised.value.site_id == 1
    assert dao.find_by_id(1) == site(1)
    assert_indexes(any_client, [site(1)])


def test_update_refuses_a_missing_site(dao: SiteDaoRedis, any_client: redis.Redis) -> None:
    with pytest.raises(SiteNotFound):
        dao.update(site(7))
    assert_indexes(any_client, [])
    dao.create(site(7))
    dao.update(site(7, panels=99))
    assert dao.find_by_id(7) == site(7, panels=99)


def test_changes_move_every_index_entry(dao: SiteDaoRedis, any_client: redis.Redis) -> None:
    other = site(2, city="Berkeley")
    dao.insert_many(site(1), other)
    moved = site(1, capacity=9.5, state="NY", city="New York", postal_code="10001", coordinate=None)
    dao.update(moved)
    assert dao.find_by_id(1) == moved
    assert_indexes(any_client, [moved, other])
    back = site(1, coordinate=Coordinate(10.5, 20.25))
    dao.insert(back)
    assert_indexes(any_client, [back, other])
    assert dao.delete(1) is True
    assert dao.delete(1) is False
    assert dao.find_by_id(1) is None
    assert_indexes(any_client, [other])
    assert dao.delete(2) is True
    assert_indexes(any_client, [])


def test_find_all_is_in_numeric_id_order(dao: SiteDaoRedis) -> None:
    ids = [10, 2, 33, 1, 100, 9]
    dao.insert_many(*(site(i, capacity=float(i)) for i in ids))
    assert [s.id for s in dao.find_all()] == sorted(ids)
    assert SiteDaoRedis(dao.redis).find_all() == [site(i, capacity=float(i)) for i in sorted(ids)]


def test_find_by_ids_keeps_order_and_reports_missing(dao: SiteDaoRedis) -> None:
    dao.insert_many(site(1), site(3))
    assert dao.find_by_ids([3, 2, 1, 3]) == [site(3), None, site(1), site(3)]
    assert dao.find_by_ids([]) == []
    assert dao.find_all() == [site(1), site(3)]


def test_insert_many_upserts_and_the_last_of_an_id_wins(dao: SiteDaoRedis, any_client: redis.Redis) -> None:
    dao.insert_many(site(1), site(2), site(3))
    changed = [
        site(2, state="TX", coordinate=None),
        site(4),
        site(1, city="Alameda"),
        site(1, city="Emeryville"),
    ]
    dao.insert_many(*changed)
    final = [site(1, city="Emeryville"), site(2, state="TX", coordinate=None), site(3), site(4)]
    assert dao.find_all() == final
    assert_indexes(any_client, final)
    dao.insert_many()
    assert dao.count() == 4


def test_total_capacity(dao: SiteDaoRedis) -> None:
    assert dao.get_total_capacity() == 0.0
    capacities = [0.1 * i + 1e-3 for i in range(1, 200)]
    dao.insert_many(*(site(i + 1, capacity=c) for i, c in enumerate(capacities)))
    assert dao.get_total_capacity() == pytest.approx(math.fsum(capacities), rel=1e-15)
    dao.insert(site(1, capacity=1000.0))
    dao.delete(2)
    expected = math.fsum([1000.0, *capacities[2:]])
    assert dao.get_total_capacity() == pytest.approx(expected, rel=1e-15)


@pytest.mark.standalone_only  # a cluster pipeline takes no scripts
def test_insert_in_a_pipeline(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client)
    dao.insert(site(1))
    pipe = client.pipeline()
    dao.insert(site(1, state="NY"), pipeline=pipe)
    dao.insert(site(2), pipeline=pipe)
    pipe.incr("ru102py-app:other")
    assert dao.find_by_id(1) == site(1) and not dao.exists(2)
    pipe.execute()
    assert dao.find_all() == [site(1, state="NY"), site(2)]
    client.delete("ru102py-app:other")
    assert_indexes(client, [site(1, state="NY"), site(2)])


@pytest.mark.standalone_only  # a cluster pipeline takes no scripts
def test_a_queued_insert_fails_rather_than_corrupting_indexes(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client)
    dao.insert(site(1))
    pipe = client.pipeline(transaction=False)
    dao.insert(site(1, state="NY"), pipeline=pipe)
    dao.insert(site(1, state="TX"))  # changes the site after the pipelined write read it
    with pytest.raises(redis.ResponseError, match="STALE"):
        pipe.execute()
    assert_indexes(client, [site(1, state="TX")])


def test_concurrent_writers_keep_indexes_consistent(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client)
    dao.insert(site(1))

    def write(states: list[str]) -> None:
        for i, state in enumerate(states * 25):
            coordinate = None if i % 2 else site(1).coordinate
            dao.insert(site(1, state=state, city=f"City {i % 3}", coordinate=coordinate))

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(write, states) for states in (["A", "B"], ["C", "D"], ["E"])]
    for future in futures:
        future.result()  # a writer's exception (e.g. WatchError) fails the test
    final = dao.find_by_id(1)
    assert final is not None
    assert_indexes(client, [final])


def test_a_write_whose_index_call_was_outrun_still_indexes_its_hash(client: redis.Redis) -> None:
    """A forced interleaving of two writers' script calls (no timing): A's index call is told OLD while
    its site call is STALE (X, with a later version, got in first); on A's next attempt the hash takes
    A's values and the index call is STALE (A's belief of the record is X's no more): A is not done
    until its values are indexed, so the indexes end matching the hash."""
    dao = SiteDaoRedis(client)
    dao.insert(site(1))

    def attempt(write: Write) -> None:
        calls = dao._calls(write)
        for (_, apply), reply in zip(calls, run_scripts(client, [c for c, _ in calls]), strict=True):
            apply(decoded(reply))

    a = Write(1, "upsert", site(1, state="A", city="City A"))
    x = Write(1, "upsert", site(1, state="X", city="City X", coordinate=None))
    a.next_version()
    x.next_version()
    attempt(a)  # both learn the stored version and index record
    attempt(x)
    assert not a.done and not x.done
    x.version = a.version + 1  # X's version is the later one
    attempt(x)  # X writes the hash and the index
    assert x.done
    attempt(a)  # A's site call is STALE (X's hash), its index call OLD (X's later version)
    assert not a.site_done
    for _ in range(3):
        if a.done:
            break
        attempt(a)
    assert a.done
    final = dao.find_by_id(1)
    assert final == a.site
    assert_indexes(client, [final])


def test_invalid_input_is_refused_before_writing(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client)
    for bad in (0, -1, 2**53, "1", 1.0, True):
        with pytest.raises(InvalidInput):
            dao.find_by_id(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            dao.delete(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="Latitude"):
        dao.insert(site(1, coordinate=Coordinate(89.0, 0.0)))
    with pytest.raises(InvalidInput):
        dao.insert_many(site(2), site(1, coordinate=Coordinate(-86.0, 0.0)))
    assert_indexes(client, [])


@pytest.mark.standalone_only  # counts a standalone connection's sends
def test_round_trips_do_not_grow_with_the_number_of_sites(counting: redis.Redis) -> None:
    dao = SiteDaoRedis(counting, search="core")
    many = [site(i, city=f"City {i % 5}") for i in range(1, 201)]
    assert round_trips(lambda: dao.insert_many(*many)) == 1
    assert round_trips(lambda: dao.insert_many(*(site(i, state="NY") for i in range(1, 201)))) == 2
    assert round_trips(lambda: dao.insert(site(500))) == 1
    assert round_trips(lambda: dao.insert(site(500, state="NY"))) == 2
    assert round_trips(lambda: dao.create(site(501))) == 1
    assert round_trips(dao.find_all) == 2  # a page of ids, then their hashes (no script reads many slots)
    assert round_trips(lambda: dao.find_by_ids(range(1, 301))) == 1
    assert round_trips(dao.get_total_capacity) == 1
    assert round_trips(lambda: dao.search(q="bri st", state="ny", min_capacity=0.1)) == 3
    assert round_trips(lambda: dao.search(lat=37.8, lng=-122.3, radius_km=10)) == 2
    assert round_trips(lambda: dao.delete(500)) == 2


@pytest.mark.parametrize("backend_server", STACK, indirect=True)
def test_redisearch_costs_one_round_trip(counting: redis.Redis) -> None:
    dao = SiteDaoRedis(counting, search="redisearch")
    dao.insert_many(*(site(i) for i in range(1, 101)))
    assert dao.search_backend == "redisearch"  # creates the index (an unfiltered search reads the ids)
    assert round_trips(lambda: dao.search(q="bri st", state="ca", limit=10)) == 1
    assert round_trips(lambda: dao.search(lat=37.8, lng=-122.3, radius_km=10)) == 1


# -- search: arguments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"q": "a"},
        {"q": "ok a"},
        {"q": "   "},
        {"q": 12},
        {"q": "x" * 201},
        {"q": "bad\x00"},
        {"state": ""},
        {"city": "  "},
        {"postal_code": 94601},
        {"state": "C\nA"},
        {"min_capacity": float("nan")},
        {"max_capacity": float("inf")},
        {"min_capacity": "1"},
        {"min_capacity": True},
        {"min_capacity": 5, "max_capacity": 4},
        {"lat": 37.0, "lng": -122.0},
        {"radius_km": 5},
        {"lat": 37.0, "radius_km": 5},
        {"lat": 86.0, "lng": 0.0, "radius_km": 5},
        {"lat": 0.0, "lng": 180.5, "radius_km": 5},
        {"lat": 0.0, "lng": 0.0, "radius_km": 0},
        {"lat": 0.0, "lng": 0.0, "radius_km": -1},
        {"lat": float("nan"), "lng": 0.0, "radius_km": 1},
        {"limit": 0},
        {"limit": MAX_LIMIT + 1},
        {"limit": 10.0},
        {"offset": -1},
        {"offset": True},
        {"offset": 999_999, "limit": 2},
    ],
)
def test_bad_search_arguments(client: redis.Redis, kwargs: dict[str, Any]) -> None:
    for path in paths(client):
        with pytest.raises(InvalidQuery) as raised:
            SiteDaoRedis(client, search=path).search(**kwargs)  # type: ignore[arg-type]
        assert raised.value.status == 400 and raised.value.message


# -- search: the reference filter ----------------------------------------------------------------
EARTH_RADIUS_M = 6372797.560856  # Redis's


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (lat, lng) points, as Redis computes it."""
    lat1, lng1, lat2, lng2 = (math.radians(v) for v in (*a, *b))
    u, v = math.sin((lat2 - lat1) / 2), math.sin((lng2 - lng1) / 2)
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(u * u + math.cos(lat1) * math.cos(lat2) * v * v))


def word_list(value: str) -> list[str]:
    return [w.casefold() for w in re.findall(r"[^\W_]+", value)]


def expected_ids(sites: list[Site], query: dict[str, Any]) -> tuple[list[int], int]:
    """The ids of one page and the total, by the documented semantics, in plain Python."""

    def matches(s: Site) -> bool:
        if "state" in query and s.state.strip().upper() != query["state"].strip().upper():
            return False
        if "city" in query and s.city.strip().lower() != query["city"].strip().lower():
            return False
        if "postal_code" in query and s.postal_code.strip().upper() != query["postal_code"].strip().upper():
            return False
        if not query.get("min_capacity", -math.inf) <= s.capacity <= query.get("max_capacity", math.inf):
            return False
        if "lat" in query and (s.coordinate is None or distance(s) > min(query["radius_km"], 20_100) * 1000):
            return False
        site_words = word_list(s.address) + word_list(s.city)
        return all(any(w.startswith(t.casefold()) for w in site_words) for t in query.get("q", "").split())

    def distance(s: Site) -> float:
        assert s.coordinate is not None
        return distance_m((query["lat"], query["lng"]), (s.coordinate.lat, s.coordinate.lng))

    found = [s for s in sites if matches(s)]
    found.sort(key=(lambda s: (distance(s), s.id)) if "lat" in query else (lambda s: s.id))
    offset, limit = query.get("offset", 0), query.get("limit", 100)
    return [s.id for s in found[offset : offset + limit]], len(found)


def geo_is_unambiguous(sites: list[Site], query: dict[str, Any]) -> bool:
    """No site within 5 m of the circle, and no two distances (of distinct points) within 5 m."""
    if "lat" not in query:
        return True
    center = (query["lat"], query["lng"])
    points = {(s.coordinate.lat, s.coordinate.lng) for s in sites if s.coordinate is not None}
    distances = sorted(distance_m(center, p) for p in points)
    radius = min(query["radius_km"], 20_100) * 1000
    return all(abs(d - radius) > 5 for d in distances) and all(
        b - a > 5 for a, b in itertools.pairwise(distances)
    )


def check_search(client: redis.Redis, sites: list[Site], query: dict[str, Any]) -> None:
    ids, total = expected_ids(sites, query)
    by_id = {s.id: s for s in sites}
    want = SearchResult([by_id[i] for i in ids], total)
    for path in paths(client):
        got = SiteDaoRedis(client, search=path).search(**query)  # type: ignore[arg-type]
        assert got == want, (path, query)


# -- search: generated sites and queries -------------------------------------------------------
POINTS = [
    (37.8044, -122.2712),
    (37.7749, -122.4194),
    (37.8715, -122.273),
    (34.0522, -118.2437),
    (40.7128, -74.006),
    (51.5074, -0.1278),
    (-33.8688, 151.2093),
    (48.1351, 11.582),
    (-23.5505, -46.6333),
    (35.6762, 139.6503),
    (0.0, 0.0),
    (84.9, 179.99),
    (-85.0, -179.5),
    (37.80441234567891, -122.27127654321098),
]
STATES = ["CA", "ca", " Ca ", "NY", "N-Y", "ß", "SS", "É", "é", "@x", "a b", "x|y", "{z}", "Texas"]
CITIES = [
    "Oakland", "oakland", " Oakland ", "San Francisco", "SAN FRANCISCO", "St. Louis", "Winston-Salem",
    "Coeur d'Alene", "São Paulo", "München", "MÜNCHEN", "x|y", "a,b", "{c}", "New  York", "İzmir",
]  # fmt: skip
POSTAL_CODES = ["94601", "94601-1234", "SW1A 1AA", "sw1a 1aa", "12*", "a|b", '"q"', "10001"]
ADDRESS_WORDS = [
    "12", "123", "4/12", "Main", "main", "St.", "O'Brien", "foo_bar", "Straße", "Ünter", "café", "Cafe",
    "x|y", "@home", "-west", "(a)", '"q"', "{b}", "*", "Rd", "MAIN-Street", "Ave", "100%", "a.b.c",
]  # fmt: skip
CAPACITIES = [0.1, 0.30000000000000004, 1.0, 2.5, 7.5, 10.0, 1e-05, 123.456789, 1000.0]
PUNCTUATION_TERMS = ["O'B", "4/1", "x|", "@h", "-w", "**", '"q', "{b", "st.", "ma*", "a.b", "(a", "%%"]


def prefixes(values: list[str]) -> list[str]:
    return sorted({w[:n] for v in values for w in re.findall(r"[^\W_]+", v) for n in range(2, len(w) + 1)})


TERMS = (
    prefixes(ADDRESS_WORDS + CITIES)
    + PUNCTUATION_TERMS
    + ["zz", "MAI", "stra", "strasse", "Straß", "İz", "iz"]
)

capacities = st.one_of(st.sampled_from(CAPACITIES), st.floats(min_value=0.001, max_value=1e4))
coordinates = st.one_of(st.none(), st.sampled_from(POINTS).map(lambda p: Coordinate(*p)))
sites_strategy = st.lists(
    st.builds(
        Site,
        id=st.one_of(st.integers(1, 40), st.just(2**53 - 1)),
        capacity=capacities,
        panels=st.integers(1, 100),
        address=st.lists(st.sampled_from(ADDRESS_WORDS), min_size=1, max_size=4).map(" ".join),
        city=st.sampled_from(CITIES),
        state=st.sampled_from(STATES),
        postal_code=st.sampled_from(POSTAL_CODES),
        coordinate=coordinates,
    ),
    max_size=14,
    unique_by=lambda s: s.id,
)


@st.composite
def queries(draw: st.DrawFn) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if draw(st.booleans()):
        query["q"] = " ".join(draw(st.lists(st.sampled_from(TERMS), min_size=1, max_size=3)))
    for name, values in (("state", [*STATES, "zz"]), ("city", CITIES), ("postal_code", POSTAL_CODES)):
        if draw(st.integers(0, 3)) == 0:
            query[name] = draw(st.sampled_from(values))
    bounds = sorted(draw(st.lists(capacities, min_size=2, max_size=2)))
    if draw(st.booleans()):
        query["min_capacity"] = bounds[0]
    if draw(st.booleans()):
        query["max_capacity"] = bounds[1]
    if draw(st.integers(0, 2)) == 0:
        lat, lng = draw(st.sampled_from([*POINTS, (37.79, -122.3), (-10.0, 60.0)]))
        query.update(
            lat=lat, lng=lng, radius_km=draw(st.sampled_from([0.5, 5, 50, 1000, 5000, 20000, 40000]))
        )
    query["limit"] = draw(st.sampled_from([1, 2, 5, 100]))
    query["offset"] = draw(st.sampled_from([0, 0, 1, 3]))
    return query


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sites=sites_strategy, searches=st.lists(queries(), min_size=1, max_size=6))
def test_search_matches_a_plain_python_filter(
    client: redis.Redis, sites: list[Site], searches: list[dict[str, Any]]
) -> None:
    for query in searches:
        assume(geo_is_unambiguous(sites, query))
    client.flushall()
    SiteDaoRedis(client, search="core").insert_many(*sites)
    for query in searches:
        check_search(client, sites, query)


# -- search: fixed cases -------------------------------------------------------------------------
FIXED = [
    site(1),
    site(2, address="1 Main St", city="Berkeley", state="ca", postal_code="94701", coordinate=None),
    site(3, address="5 foo_bar Rd", state="NY", postal_code="10001", coordinate=Coordinate(37.9, -122.3)),
    site(4, address='x|y @home "q" {b} *', city="x|y", state="a} | @idx_state:{b", postal_code="a|b"),
    site(10, capacity=7.5, address="Ünter Straße 9", city="São Paulo", state="SP", postal_code="01000-000"),
]
FIXED_QUERIES: list[dict[str, Any]] = [
    {},
    {"state": "ca"},
    {"state": " CA "},
    {"city": "oakland"},
    {"city": "OAK"},
    {"postal_code": "94601"},
    {"q": "ob"},
    {"q": "bri st"},
    {"q": "12 bar"},
    {"q": "ünt STRASSE"},
    {"q": "stra são"},
    {"q": "Straß ÜNTER"},
    {"q": "O'B"},
    {"q": "x|y"},
    {"q": "ho"},
    {"q": "**"},
    {"q": '"q'},
    {"q": "{b"},
    {"q": "-ma"},
    {"q": "@home"},
    {"state": "a} | @idx_state:{b"},
    {"state": "b"},
    {"state": "*"},
    {"state": "c*"},
    {"city": "x|y"},
    {"city": "x"},
    {"postal_code": "a|b"},
    {"postal_code": "a"},
    {"min_capacity": 0.30000000000000004, "max_capacity": 0.30000000000000004},
    {"min_capacity": 0.3},
    {"max_capacity": 0.3},
    {"min_capacity": 7.5},
    {"lat": 37.8, "lng": -122.27, "radius_km": 20},
    {"lat": 37.9, "lng": -122.3, "radius_km": 1, "state": "ny"},
    {"lat": 0.0, "lng": 0.0, "radius_km": 1e9},
    {"lat": 37.8, "lng": -122.27, "radius_km": 20, "limit": 1, "offset": 1},
    {"limit": 2, "offset": 1},
    {"offset": 50},
]


def test_search_fixed_cases_on_every_client(any_client: redis.Redis) -> None:
    SiteDaoRedis(any_client, search="core").insert_many(*FIXED)
    for query in FIXED_QUERIES:
        check_search(any_client, FIXED, query)
    assert SiteDaoRedis(any_client).search(state="CA").total == 2


def test_search_backend_follows_the_server(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client)
    assert dao.search_backend == ("redisearch" if has_search(client) else "core")
    assert SiteDaoRedis(client, search="core").search_backend == "core"
    with pytest.raises(ValueError):
        SiteDaoRedis(client, search="fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("backend_server", CORE, indirect=True)
def test_redisearch_needs_the_module(client: redis.Redis) -> None:
    with pytest.raises(BackendUnavailable):
        SiteDaoRedis(client, search="redisearch").search(state="CA")


@pytest.mark.parametrize("backend_server", STACK, indirect=True)
def test_index_built_over_existing_sites_is_complete(client: redis.Redis) -> None:
    sites = [
        site(i, capacity=float(i % 17 + 1), coordinate=None if i % 3 else site(1).coordinate)
        for i in range(1, 3001)
    ]
    SiteDaoRedis(client, search="core").insert_many(*sites)
    dao = SiteDaoRedis(client, search="redisearch")
    assert dao.search(limit=5).total == 3000
    assert dao.search(min_capacity=17).total == len([s for s in sites if s.capacity >= 17])


@pytest.mark.parametrize("backend_server", STACK, indirect=True)
def test_index_comes_back_after_a_flush(client: redis.Redis) -> None:
    dao = SiteDaoRedis(client, search="redisearch")
    dao.insert(site(1))
    assert dao.search(state="CA").total == 1
    client.flushall()  # drops the index too
    dao.insert_many(site(2), site(3))
    assert [s.id for s in dao.search(state="CA").sites] == [2, 3]


@pytest.mark.parametrize("backend_server", STACK, indirect=True)
def test_an_outdated_index_is_replaced(client: redis.Redis) -> None:
    index = KEYS.site_search_index()
    client.execute_command(
        "FT.CREATE", index, "ON", "HASH", "PREFIX", 1, KEYS.site_key_prefix(), "SCHEMA", "city", "TEXT"
    )
    dao = SiteDaoRedis(client, search="redisearch")
    dao.insert_many(site(1), site(2, city="Berkeley"))
    assert [s.id for s in dao.search(city="berkeley").sites] == [2]
    info = client.execute_command("FT.INFO", index)
    assert "idx_prefixes" in str(info)


def test_a_term_matching_many_words_finds_every_site(client: redis.Redis) -> None:
    """More than 200 words share the prefix (RediSearch expands a prefix query to 200 words at most)."""
    sites = [site(i, address=f"{12000 + i} Main St", coordinate=None) for i in range(1, 401)]
    SiteDaoRedis(client, search="core").insert_many(*sites)
    for path in paths(client):
        dao = SiteDaoRedis(client, search=path)
        assert dao.search(q="12").total == 400
        assert dao.search(q="1201 mai").total == 10  # 12010..12019
        assert [s.id for s in dao.search(q="12400").sites] == [400]


# The API's SearchArgs is a front for redisolar.dao.sites.query (the authority): whatever it accepts at
# the bounds, the DAO accepts too (the API may be stricter).
API_EDGES: list[dict[str, Any]] = [
    {"limit": MAX_LIMIT},
    {"limit": MAX_LIMIT + 1},
    {"limit": MAX_LIMIT, "offset": MAX_OFFSET},
    {"limit": MAX_LIMIT, "offset": MAX_OFFSET + 1},
    {"lat": GEO_MAX_LAT, "lng": 180, "radius_km": MAX_RADIUS_KM},
    {"lat": -GEO_MAX_LAT, "lng": -180, "radius_km": 0.001},
    {"lat": GEO_MAX_LAT + 1e-6, "lng": 0, "radius_km": 1},
    {"lat": 0, "lng": 180.5, "radius_km": 1},
    {"lat": 0, "lng": 0, "radius_km": 0},
    {"lat": 0, "lng": 0},
    {"min_capacity": 2, "max_capacity": 1},
    {"min_capacity": 1, "max_capacity": 1},
]


@pytest.mark.parametrize("args", API_EDGES)
def test_api_search_args_never_accept_what_the_dao_refuses(args: dict[str, Any]) -> None:
    from marshmallow import ValidationError

    from redisolar.api.schemas import SearchArgs

    try:
        loaded = SearchArgs().load({name: str(value) for name, value in args.items()})
    except ValidationError:
        return
    parse_query(KEYS, **loaded)  # raises InvalidQuery if the API let through what the DAO refuses
