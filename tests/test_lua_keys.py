"""Guard: every Lua script touches only keys it declares (KEYS), and every call declares one slot.

- Static: every ``redis.call``/``redis.pcall`` key argument in ``redisolar/dao/lua/*.lua`` is a
  ``KEYS[...]`` expression, or a local name only ever assigned such expressions. There are no
  exceptions: the core backend's day partitions are declared by the Python side, and ``TS.MADD``'s
  ``(key, ms, value)`` triples, built in a table (``ts_write.lua``), are checked to take their keys
  from declared names (:func:`madd_keys_declared`).
- Dynamic: the site, reading, leaderboard, reconcile and migration flows run through the services on
  every target; on the cluster targets Redis itself refuses a script whose declared keys span slots
  (CROSSSLOT) or that touches a key of another node, so a regression fails there. Each call's
  declared keys are also checked to share one slot, on every target.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from typing import Any

import pytest
import redis

from redisolar.dao import scripts
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.migrate import migrate
from redisolar.models.site import Coordinate, MeterReading, Site
from redisolar.services import Services, Settings, build_services
from redisolar.services.ingest import ingest_readings
from redisolar.store import slot_of
from redisolar.timeutil import utcnow
from tests.conftest import BackendServer

LUA = resources.files("redisolar.dao").joinpath("lua")
NO_KEY = {"TIME"}
ALL_KEYS = {"DEL", "EXISTS", "UNLINK"}


def lua_sources() -> Iterator[tuple[str, str]]:
    for entry in sorted(LUA.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".lua"):
            yield entry.name, entry.read_text("utf-8")


def strip_comments(source: str) -> str:
    return "\n".join(re.sub(r"--.*$", "", line) for line in source.splitlines())


def outside_strings(text: str) -> Iterator[tuple[int, str, bool]]:
    """Each character of ``text`` with its index and whether it is outside a string literal."""
    quote = ""
    for at, char in enumerate(text):
        if quote:
            yield at, char, False
            if char == quote and text[at - 1] != "\\":
                quote = ""
        elif char in "'\"":
            quote = char
            yield at, char, False
        else:
            yield at, char, True


def split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a call's argument text."""
    args, depth, current = [], 0, ""
    for _, char, code in outside_strings(text):
        if not code:
            current += char
            continue
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += char
    args.append(current.strip())
    return args


def calls(source: str) -> Iterator[list[str]]:
    """The argument lists of every redis.call / redis.pcall."""
    for match in re.finditer(r"redis\.p?call\(", source):
        depth, end = 1, match.end()
        for at, char, code in outside_strings(source[match.end() :]):
            depth += {"(": 1, ")": -1}.get(char, 0) if code else 0
            if not depth:
                end = match.end() + at
                break
        yield split_args(source[match.end() : end])


def key_names(source: str) -> set[str]:
    """Names only ever assigned KEYS[...] expressions (or other such names)."""
    assigned: dict[str, list[str]] = {}
    for match in re.finditer(r"^\s*(?:local\s+)?([\w, ]+?)\s*=\s*([^=\n].*)$", source, re.M):
        names = [n.strip() for n in match.group(1).split(",")]
        values = split_args(match.group(2))
        for i, name in enumerate(names):
            assigned.setdefault(name, []).append(values[i] if i < len(values) else "nil")
    known: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, values in assigned.items():
            if name not in known and all(is_declared(v, known) for v in values):
                known.add(name)
                changed = True
    return known


def is_declared(expression: str, names: set[str]) -> bool:
    return bool(re.fullmatch(r"KEYS\[[^\]]+\]", expression)) or expression in names


def madd_keys_declared(code: str, table: str, names: set[str]) -> bool:
    """Whether ``TS.MADD``'s arguments, ``unpack(table, ...)``, take their keys from declared names:
    every ``table[<n> + k] = value`` with ``k % 3 == 1`` (the first of a key, ms, value triple) assigns
    a declared name, and there is at least one, and the table is assigned nothing else."""
    assigned = re.findall(rf"\b{table}\[([^\]]*)\]\s*=\s*([^;\n]+?)\s*(?:;|$)", code, re.M)
    offsets = [(re.fullmatch(r"\w+ \+ (\d+)", index), value) for index, value in assigned]
    keys = [value for match, value in offsets if match and int(match.group(1)) % 3 == 1]
    return bool(keys) and all(match for match, _ in offsets) and all(is_declared(v, names) for v in keys)


def undeclared(name: str, source: str) -> list[str]:
    """The key arguments of ``source``'s calls that are not declared keys."""
    code = strip_comments(source)
    names = key_names(code)
    found = []
    for args in calls(code):
        command = args[0].strip("'\"").upper()
        if command in NO_KEY or args[0][:1] not in "'\"":
            continue
        keys = args[1:] if command in ALL_KEYS else args[1:2]
        for key in keys:
            table = re.fullmatch(r"unpack\((\w+)(, .*)?\)", key) if command == "TS.MADD" else None
            if is_declared(key, names) or (table and madd_keys_declared(code, table.group(1), names)):
                continue
            found.append(f"{command} {key}")
    return found


@pytest.mark.parametrize("name", [name for name, _ in lua_sources()])
def test_every_key_a_script_touches_is_declared(name: str) -> None:
    source = dict(lua_sources())[name]
    assert undeclared(name, source) == []


def test_the_guard_catches_an_undeclared_key() -> None:
    assert undeclared("x.lua", "local k = KEYS[1]\nredis.call('GET', k)\nredis.call('DEL', ARGV[1])") == [
        "DEL ARGV[1]"
    ]
    assert undeclared("x.lua", "local k = ARGV[1] .. 'x'\nredis.call('HGET', k, 'f')") == ["HGET k"]
    assert undeclared("x.lua", "redis.call('TIME')\nredis.call('SET', KEYS[2], 1)") == []
    assert undeclared("x.lua", "local p = ARGV[1]\nredis.call('GET', p .. 7)") == ["GET p .. 7"]
    assert undeclared("x.lua", "redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')") == []


def test_the_guard_checks_ts_madd_triples() -> None:
    declared = "local K = KEYS[1]\nlocal a, n = {}, 0\na[n + 1] = K; a[n + 2] = 5; a[n + 3] = 1.0\n"
    call = "redis.call('TS.MADD', unpack(a, 1, n))"
    assert undeclared("x.lua", declared + call) == []
    wrong = declared.replace("a[n + 1] = K", "a[n + 1] = ARGV[2]")
    assert undeclared("x.lua", wrong + call) == ["TS.MADD unpack(a, 1, n)"]


# -- dynamic ---------------------------------------------------------------------------------------
@pytest.fixture(params=[1, 4], ids=["shards1", "shards4"])
def services(
    request: pytest.FixtureRequest, backend_server: BackendServer, client: redis.Redis
) -> Iterator[Services]:
    settings = Settings(
        redis=backend_server.config(), timeseries_backend=backend_server.name, fleet_shards=request.param
    )
    built = build_services(settings)
    yield built
    built.redis.close()


@pytest.fixture
def slots_checked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Records every script call's keys (the calls still run unchanged)."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    original = scripts.run_scripts_collect

    def recording(client: redis.Redis, calls: list[scripts.ScriptCall], *args: Any, **kwargs: Any) -> Any:
        seen.extend((call.script.name, call.keys) for call in calls)
        return original(client, calls, *args, **kwargs)

    monkeypatch.setattr(scripts, "run_scripts_collect", recording)
    return seen


def test_the_flows_declare_one_slot_per_script_call(
    services: Services, client: redis.Redis, slots_checked: list[tuple[str, tuple[str, ...]]]
) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for i in range(1, 7):
        services.create_site(
            Site(i, 2.5 * i, 10, f"{i} Main", "Oakland", "CA", "94601", Coordinate(37.8, -122.2))
        )
    services.update_site(Site(2, 9.0, 12, "2 Elm St", "Austin", "TX", "73301"))
    readings = [
        MeterReading(
            site_id=i, timestamp=now - timedelta(hours=h), wh_generated=100.0 * h, wh_used=50.0, temp_c=20.0
        )
        for i in range(1, 7)
        for h in range(1, 4)
    ]
    ingest_readings(services, readings)
    services.leaderboards.get_capacity_leaders(10)
    services.leaderboards.get_generation_leaders(10)
    services.leaderboards.get_sites_around_rank(2, "generation", 2)
    services.leaderboards.get_leaderboard_stats("efficiency")
    services.timeseries.get_latest_readings(1)
    services.summary()
    services.leaderboards.get_leaderboard_stats("capacity")
    services.sites.search(state="ca", min_capacity=1.0)
    services.updater.update_all_leaderboards()
    services.delete_site(3)
    migrate(client, KeyManager())
    assert services.sites.stats()["total_sites"] == 5
    names = {name for name, _ in slots_checked}
    assert {"site_write", "sites_index", "lb_set", "fleet_hour_set"} <= names
    if services.keys.fleet_shards > 1:
        assert "lb_around" in names
    for name, keys in slots_checked:
        assert len({slot_of(k) for k in keys}) <= 1, (name, keys)
