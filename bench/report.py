"""``make bench-report``: ``docs/benchmarks.md`` from the benchmarks' JSON artifacts, never typed by hand.

    python -m bench.report [--artifacts DIR] [--keep-dir DIR] [--out FILE]

For each benchmark (``bench-routes``, ``bench-http``, ``bench-http-auth``, ``bench-fleet``) it takes the
newer of ``artifacts/bench-NAME.json`` (this machine's last run; ``artifacts/`` is not in git) and
``docs/benchmarks/bench-NAME.json`` (the one the document was last made from, kept in git), copies a
newer artifact into ``docs/benchmarks/``, and writes one section per benchmark: the date, the commit,
the machine's load, the command that reproduces it, and tables of medians with min–max. A benchmark
run with fewer than 3 timed runs is marked as a smoke run (it proves the tooling, not a figure).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:
    sys.exit("Run this as a module from the project root: python -m bench.report")

import argparse
import json
import shutil
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import ROOT, artifacts_dir

NAMES = ("routes", "http", "http-auth", "fleet", "cluster")
MIN_ROUNDS = 3  # issue 11: a figure is the median of at least 3 alternating runs


# -- formatting ----------------------------------------------------------------------------------------
def num(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def ms(value: float) -> str:
    if value >= 1000:
        return num(value)
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def spread_text(median: float, low: float, high: float, digits: int = 0) -> str:
    return f"{num(median, digits)} ({num(low, digits)}–{num(high, digits)})"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def of_runs(runs: list[dict[str, Any]], key: str) -> tuple[float, float, float]:
    values = [r["figures"][key] for r in runs]
    return statistics.median(values), min(values), max(values)


def provenance(data: dict[str, Any], make: str, rounds: int, seconds: float) -> str:
    """When, on what, under what load, and how to run it again."""
    git = data.get("git") or {}
    changed = " (with uncommitted changes in `redisolar/`)" if git.get("redisolar_changed") else ""
    machine = data.get("machine") or {}
    cores = machine.get("cpu_cores") or (data.get("config") or {}).get("cpu_cores", "?")
    load = machine.get("loadavg_at_end")
    loadavg = (
        f"; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)"
        if load
        else ""
    )
    command = f"`{data['command']}`" if data.get("command") else "not recorded"
    lines = [
        f"Measured {data['measured_at']} on commit `{str(git.get('commit', '?'))[:10]}`{changed}, "
        f"{cores} CPU cores{loadavg}.",
        f"Command: {command} (`{make}` runs it with the defaults).",
    ]
    if rounds < MIN_ROUNDS:
        lines.append(
            f"\n**Smoke run** ({rounds} timed run(s) of {seconds:g} s): it proves the tooling end to end; "
            "these are not figures to quote."
        )
    return "\n".join(lines)


# -- sections ------------------------------------------------------------------------------------------
def routes_section(data: dict[str, Any]) -> str:
    cfg, labels = data["config"], data["labels"]
    mine, base = labels["project"], labels.get("baseline")
    intro = (
        f"## Per route, the project beside the seed's design (`bench/routes.py`)\n\n"
        f"Both under their production servers ({_servers(cfg)}; "
        "the project through `redisolar serve`, the seed under gunicorn) on one private Redis Stack, "
        "the five sample sites in each (`redisolar load --sites 5 --days 7 --seed 1 --yes`; the same "
        f"plan through the seed's API); {cfg['connections']} connections from the load generator in its "
        f"own process; timed runs ({cfg['rounds']}) of {cfg['seconds']:g} s per route and server, "
        "alternating. Requests/s: median (min–max); "
        "latencies: medians of the runs' p50 and p99; other cores: CPU used by processes outside the "
        "benchmark during the runs (median, max). Ratio: project / seed, of the medians.\n\n"
        + provenance(data, "make bench-routes", cfg["rounds"], cfg["seconds"])
    )
    rows = []
    for name, entry in data["routes"].items():
        ours = entry["servers"][mine]
        row = [
            f"{name} (`{entry['method']} {entry.get('path') or entry['paths'][0]}`)",
            _rps(ours),
            _rps(entry["servers"][base]) if base else "–",
        ]
        if base:
            met = "met" if entry["target_met"] else "**not met**"
            row.append(
                f"{entry['ratio_project_over_baseline']:.2f}× (target {entry['target_ratio']:g}×: {met})"
            )
        row.append(_latency(ours))
        if base:
            row.append(_latency(entry["servers"][base]))
        errors = sum(entry["servers"][label]["errors"] for label in entry["servers"])
        other = [entry["servers"][label]["other_cores"] for label in entry["servers"]]
        row += [errors, f"{max(o['median'] for o in other):.2f}, {max(o['max'] for o in other):.2f}"]
        rows.append(row)
    headers = ["route", "RediSolar req/s", "seed req/s"] if base else ["route", "RediSolar req/s", "–"]
    if base:
        headers.append("ratio")
    headers += ["RediSolar p50 / p99 ms"] + (["seed p50 / p99 ms"] if base else [])
    headers += ["errors", "other cores (median, max)"]
    return intro + "\n\n" + md_table(headers, rows)


def _rps(s: dict[str, Any]) -> str:
    r = s["requests_per_s"]
    return spread_text(r["median"], r["min"], r["max"])


def _latency(s: dict[str, Any]) -> str:
    return f"{ms(s['p50_ms']['median'])} / {ms(s['p99_ms']['median'])}"


def batch_section(data: dict[str, Any]) -> str:
    cfg = data["config"]
    intro = (
        "## HTTP batch ingest (`bench/http.py`)\n\n"
        f"`POST /api/analytics/readings/<id>/batch` with {cfg['batch_size']:,} readings per request for "
        f"{cfg['sites']} sites, each timestamp sent once; "
        f"{_servers(cfg)}; "
        f"{cfg['connections']} connections; {cfg['rounds']} runs of {cfg['seconds']:g} s per server, "
        "alternating. Median (min–max).\n\n"
        + provenance(data, "make bench-batch", cfg["rounds"], cfg["seconds"])
    )
    by_target: dict[str, list[dict[str, Any]]] = {}
    for run in data["runs"]:
        by_target.setdefault(run["target"], []).append(run)
    rows = []
    for label, runs in by_target.items():
        rows.append(
            [
                label,
                spread_text(*of_runs(runs, "readings_per_s")),
                spread_text(*of_runs(runs, "requests_per_s"), digits=1),
                f"{ms(of_runs(runs, 'p50_ms')[0])} / {ms(of_runs(runs, 'p99_ms')[0])}",
                sum(r["figures"]["errors"] for r in runs),
                f"{of_runs(runs, 'server_cores')[0]:.2f}",
                f"{of_runs(runs, 'other_cores')[0]:.2f}, {of_runs(runs, 'other_cores')[2]:.2f}",
            ]
        )
    ratio = data.get("ratio_project_over_baseline") or {}
    if ratio:
        rows.append(
            ["**ratio project / baseline**", f"**{ratio['readings_per_s']:.1f}×**", "", "", "", "", ""]
        )
    headers = ["server", "readings/s", "requests/s", "p50 / p99 ms", "errors", "server cores"]
    headers.append("other cores (median, max)")
    return intro + "\n\n" + md_table(headers, rows)


def auth_section(data: dict[str, Any]) -> str:
    cfg = data["config"]
    intro = (
        "## What API keys and rate limits cost (`bench/http_auth.py`)\n\n"
        f"Two `redisolar serve` ({_servers(cfg)}) on one Redis "
        "Stack, the five sample sites each: `AUTH_MODE=off` without limits against "
        "`AUTH_MODE=required` with budgets of 10⁹/s (every request checked and counted, none refused) "
        f"and a key on every request; {cfg['connections']} connections; {cfg['rounds']} runs of "
        f"{cfg['seconds']:g} s per server and load, "
        "alternating. Median (min–max).\n\n"
        + provenance(data, "make bench-auth", cfg["rounds"], cfg["seconds"])
    )
    rows = []
    for load, entry in data["summary"].items():
        f = entry["figures"]
        other = [r["figures"]["other_cores"] for r in data["runs"] if r["load"] == load]
        rows.append(
            [
                load,
                spread_text(*f["off"]["requests_per_s"]),
                spread_text(*f["keys"]["requests_per_s"]),
                f"{entry['ratio_keys_over_off']:.2f}",
                " → ".join(f"{f[k]['redis_commands_per_request'][0]:.1f}" for k in ("off", "keys")),
                f"{statistics.median(other):.2f}, {max(other):.2f}" if other else "–",
            ]
        )
    headers = [
        "load",
        "`off` req/s",
        "`required` + limits req/s",
        "ratio",
        "Redis commands/request",
        "other cores (median, max)",
    ]
    return intro + "\n\n" + md_table(headers, rows)


def fleet_section(data: dict[str, Any]) -> str:
    cfg = data["config"]
    intro = (
        "## A whole fleet (`bench/fleet.py`)\n\n"
        f"`redisolar load --sites {cfg['sites']} --days {cfg['days']:g} --interval {cfg['interval']}` "
        f"per backend, then `redisolar serve` ({_servers(cfg)}) on the Redis Stack "
        "data. One run of each part (no spread: its figures are single measurements).\n\n"
        + provenance(data, "make bench-fleet", MIN_ROUNDS, 0)
    )
    loads = md_table(
        ["backend", "readings", "load s", "readings/s", "bytes/sample", "bytes/reading", "other cores"],
        (
            [
                ld["backend"],
                num(ld["readings"]),
                f"{ld['wall_s']:.1f}",
                num(ld["readings_per_s_wall"]),
                f"{ld['bytes_per_sample']:.1f}",
                f"{ld['bytes_per_reading']:.1f}",
                f"{ld['cores']['other']:.2f}",
            ]
            for ld in data.get("load", [])
        ),
    )
    parts = [intro, loads]
    if "reads" in data:
        rows = _latency_rows(data["reads"]["streams"], "")
        if "baseline" in data:
            rows += _latency_rows(data["baseline"]["streams"], "seed design: ")
        parts.append(md_table(["one client, sequential", "requests", "p50 ms", "p99 ms", "errors"], rows))
    if "mixed" in data:
        rows = [
            [
                name,
                num(s["requests"]),
                num(s["requests_per_s"]),
                ms(s["latency_ms"]["p50"]),
                ms(s["latency_ms"]["p99"]),
                s["errors"],
            ]
            for name, s in data["mixed"]["streams"].items()
        ]
        parts.append(md_table(["mixed load", "requests", "req/s", "p50 ms", "p99 ms", "errors"], rows))
    return "\n\n".join(parts)


def _latency_rows(streams: dict[str, Any], prefix: str) -> list[list[Any]]:
    return [
        [
            prefix + name,
            num(s["requests"]),
            ms(s["latency_ms"]["p50"]),
            ms(s["latency_ms"]["p99"]),
            s["errors"],
        ]
        for name, s in streams.items()
    ]


def cluster_section(data: dict[str, Any]) -> str:
    """One node beside a 3-master cluster (and one with replicas and ``DURABILITY=replicated``):
    per backend a table of routes × stores, then what the POST runs predict per added shard."""
    cfg = data["config"]
    intro = (
        "## Redis Cluster: one node beside 3 masters (`bench/cluster.py`)\n\n"
        f"Per backend, three stores from the same binary, each loaded with `redisolar load --sites "
        f"{cfg['sites']} --days 2 --seed 1 --yes` and served by its own `redisolar serve` ({_servers(cfg)}): "
        "`single` (one node), `cluster` (3 masters, `REDIS_CLUSTER=true`), `cluster+replicas` (3 masters "
        "with a replica each, `DURABILITY=replicated`). The load generator of the per-route table, "
        f"{cfg['connections']} connections, one route at a time; {cfg['rounds']} timed runs of "
        f"{cfg['seconds']:g} s per route and store, alternating. Requests/s: median (min–max); latencies: "
        "medians of the runs' p50 and p99. Redis CPU: `INFO` `used_cpu_user + used_cpu_sys` deltas of "
        "every node per answered request, summed over the primaries + over the replicas; ops/s per "
        "primary: `INFO commandstats` calls (those run inside Lua scripts included, `INFO` excluded); "
        "API CPU: `redisolar serve`'s process tree per request. On 2 cores the three masters, the API "
        "and the client share the cores, so requests/s cannot show scaling: the CPU per request is "
        "what carries over to a host per shard.\n\n"
        + provenance(data, "make bench-cluster", cfg["rounds"], cfg["seconds"])
    )
    parts = [intro]
    for backend, result in data["results"].items():
        parts.append(f"### {backend}\n\n" + md_table(_CLUSTER_HEADERS, _cluster_rows(result["routes"])))
    predictions = {b: r["prediction"] for b, r in data["results"].items() if "prediction" in r}
    if predictions:
        parts.append(_cluster_prediction(predictions))
    return "\n\n".join(parts)


_CLUSTER_HEADERS = (
    "route",
    "store",
    "req/s",
    "p50 / p99 ms",
    "Redis CPU µs/req (primaries + replicas)",
    "ops/s per primary",
    "API CPU µs/req",
    "errors",
    "other cores (median, max)",
)


def _cluster_rows(routes: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, by_store in routes.items():
        for label, s in by_store.items():
            replicas = s["replica_cpu_us_per_request"]["median"]
            primaries = [n for n in s["nodes"] if n["role"] == "master"]
            rows.append(
                [
                    name,
                    label,
                    _rps(s),
                    _latency(s),
                    num(s["primary_cpu_us_per_request"]["median"])
                    + (f" + {num(replicas)}" if replicas else ""),
                    " / ".join(num(n["ops_per_s"]) for n in primaries),
                    num(s["api_cpu_us_per_request"]["median"]),
                    s["errors"],
                    f"{s['other_cores']['median']:.2f}, {s['other_cores']['max']:.2f}",
                ]
            )
    return rows


def _cluster_prediction(predictions: dict[str, Any]) -> str:
    """What the POST runs predict: every figure is 1e6 / (CPU µs per reading)."""
    rows = []
    for backend, p in predictions.items():
        api = p.get("api_readings_per_s_per_core") or {}
        rows.append(
            [
                backend,
                num(p["single_node_readings_per_s_at_one_core"]),
                f"{p['cluster_cpu_over_single']:.2f}×",
                num(p["readings_per_s_per_added_shard_at_one_core"]),
                f"{p['busiest_primary_share']:.0%}",
                num(p["three_masters_readings_per_s_at_one_core_each"]),
                " / ".join(num(api[k]) for k in ("single", "cluster") if k in api) or "–",
            ]
        )
    text = (
        "### What it predicts per added shard (from the POST runs)\n\n"
        "Readings/s = 10⁶ / (Redis CPU µs per reading). *Per added shard*: the masters' CPU per reading "
        "summed, i.e. what each master at one core adds when the work spreads evenly over the slots; "
        "*3 masters*: where this cluster stops, its busiest master at one core (the slots every reading "
        "of the hour touches, `{lb:DAY}` and `{fh:HOUR}`, sit on one master each; docs/capacity.md "
        "follows them per key). Measured with each node at a fraction of a core: a saturated Redis "
        "handles more commands per event-loop pass, so these are likely lower bounds. The API is the "
        "other term: "
        "readings/s per API core (`single` / `cluster`).\n\n"
        + md_table(
            [
                "backend",
                "one node, 1 core",
                "cluster CPU / single",
                "per added shard, 1 core",
                "busiest master's share",
                "3 masters, 1 core each",
                "API readings/s per core",
            ],
            rows,
        )
    )
    durable = [[b, p["replicated"]] for b, p in predictions.items() if "replicated" in p]
    if durable:
        text += (
            "\n\n`DURABILITY=replicated` (`WAIT 1` after each write's round trip) against `cluster`, "
            "single-reading POSTs:\n\n"
            + md_table(
                [
                    "backend",
                    "req/s ratio",
                    "p50 added ms",
                    "primaries' CPU ratio",
                    "replicas' CPU µs/reading",
                    "per added shard (master at 1 core)",
                ],
                (
                    [
                        b,
                        f"{r['requests_per_s_ratio']:.2f}×",
                        f"{r['p50_ms_added']:+.1f}",
                        f"{r['primary_cpu_ratio']:.2f}×",
                        num(r["replica_cpu_us_per_reading"]),
                        num(r["readings_per_s_per_added_shard_at_one_core"]),
                    ]
                    for b, r in durable
                ),
            )
        )
    return text


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "routes": routes_section,
    "http": batch_section,
    "http-auth": auth_section,
    "fleet": fleet_section,
    "cluster": cluster_section,
}


# -- files ---------------------------------------------------------------------------------------------
def newest(name: str, fresh: Path, kept: Path) -> dict[str, Any] | None:
    """The newer of the fresh artifact and the kept copy; a newer fresh one is copied into ``kept``."""
    found = []
    for folder in (fresh, kept):
        path = folder / f"bench-{name}.json"
        if path.is_file():
            found.append((json.loads(path.read_text())["measured_at"], folder, path))
    if not found:
        return None
    found.sort(key=lambda item: item[0])
    _, folder, path = found[-1]
    if folder == fresh and path.resolve() != (kept / path.name).resolve():
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, kept / path.name)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def render(sections: dict[str, dict[str, Any]], kept: Path, out: Path) -> str:
    where = kept.relative_to(out.parent) if kept.is_relative_to(out.parent) else kept
    head = [
        "# Benchmarks",
        "",
        "<!-- Generated by `make bench-report` (bench/report.py) from the JSON artifacts; do not edit. -->",
        "",
        "Every figure below is generated from the raw JSON of a benchmark run, kept beside this page in "
        f"`{where}/`; `bench/README.md` says how each benchmark works and how to read its figures. "
        "Each section names the command that reproduces it, when it ran, on which commit, and how busy "
        "the machine was (other cores: CPU seconds per second used by processes outside the benchmark).",
    ]
    missing = [f"`bench-{n}.json`" for n in NAMES if n not in sections]
    if missing:
        head += ["", f"Not measured yet (no artifact): {', '.join(missing)}."]
    head += [
        "",
        "`make bench` (the DAO benchmark, `bench/dao.py`) prints its figures without writing an artifact, "
        "so it has no section here; [earlier figures](benchmarks-earlier.md) holds the figures typed into "
        "the README before this page was generated.",
    ]
    body = [SECTIONS[name](data) for name, data in sections.items()]
    return "\n".join(head) + "\n\n" + "\n\n".join(body) + "\n"


def _servers(cfg: dict[str, Any]) -> str:
    """The project's workers × threads of a run (``redisolar serve``'s defaults when not given),
    and the baseline's when it had its own."""
    project = f"{cfg.get('workers') or 'default'} workers × {cfg.get('threads') or 'default'} threads"
    if cfg.get("baseline_workers"):
        project += f"; the seed {cfg['baseline_workers']} × {cfg.get('baseline_threads')}"
    return project


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=Path, default=None, help="fresh artifacts (default: artifacts/)")
    parser.add_argument(
        "--keep-dir", type=Path, default=ROOT / "docs" / "benchmarks", help="kept copies (in git)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    fresh = args.artifacts or artifacts_dir()
    sections = {}
    for name in NAMES:
        data = newest(name, fresh, args.keep_dir)
        if data is not None:
            sections[name] = data
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(sections, args.keep_dir, args.out))
    print(f"wrote {args.out} ({', '.join(sections) or 'no artifact found'})")


if __name__ == "__main__":
    main()
