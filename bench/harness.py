"""Helpers shared by the HTTP benchmarks (``bench/http.py``, ``bench/fleet.py``).

- :class:`Served`: an HTTP server process (``redisolar serve``, or the seed design under gunicorn) on a
  free port, started and stopped by us (SIGTERM to the process we started, nothing else).
- :func:`run_loadgen`: runs ``bench/loadgen.py`` in its own process and returns its JSON.
- :func:`cpu_of` / :func:`wait_quiet`: CPU seconds of a process tree read from ``/proc`` (Linux), and a
  wait until a server and its Redis are idle (start-up work such as a leaderboard pass is over).
- small formatting helpers and :func:`write_artifact` (``artifacts/bench-*.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.procstat import cpu_of, descendants, machine_busy

ROOT = Path(__file__).resolve().parent.parent


def artifacts_dir() -> Path:
    """``artifacts/``, or ``$REDISOLAR_BENCH_ARTIFACTS`` (smoke runs write there, leaving the figures be)."""
    return Path(os.environ.get("REDISOLAR_BENCH_ARTIFACTS") or ROOT / "artifacts")


# -- processes -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_quiet(
    pids: Sequence[int], *, busy: float = 0.05, window: float = 1.0, timeout: float = 900.0
) -> float:
    """Wait until ``pids`` (with descendants) use less than ``busy`` of a core over two windows in a row;
    returns the seconds waited (a server's start-up work, e.g. a first leaderboard pass, is over)."""
    return _wait_calm(lambda: cpu_of(pids), busy, window, timeout, "the servers")


def wait_machine_quiet(*, busy: float = 0.25, window: float = 1.0, timeout: float | None = None) -> float:
    """Wait until the whole machine is nearly idle (less than ``busy`` of a core over two windows in a
    row): other people's test runs on a shared machine would distort the next timed run. The timeout is
    180 s, or ``$REDISOLAR_BENCH_QUIET_TIMEOUT`` (0 in smoke runs: they prove the tooling, not figures)."""
    if timeout is None:
        timeout = float(os.environ.get("REDISOLAR_BENCH_QUIET_TIMEOUT") or 180.0)
    if timeout <= 0:
        return 0.0
    return _wait_calm(machine_busy, busy, window, timeout, "the machine (other processes)")


def _wait_calm(read: Callable[[], float], busy: float, window: float, timeout: float, what: str) -> float:
    started = time.monotonic()
    calm = 0
    last = read()
    while time.monotonic() - started < timeout:
        time.sleep(window)
        now = read()
        calm = calm + 1 if (now - last) / window < busy else 0
        last = now
        if calm >= 2:
            break
    else:
        print(f"  ({what} still busy after {timeout:.0f} s; going on)", flush=True)
    return time.monotonic() - started


class Served:
    """A server process we start on ``port`` and stop with SIGTERM (its log kept in a temp file)."""

    def __init__(
        self,
        label: str,
        command: Sequence[str],
        port: int,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        probe: str = "/",
    ) -> None:
        self.label = label
        self.command = list(command)
        self.port = port
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.probe = probe
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix=f"redisolar-bench-{label}-", suffix=".log")[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 120.0) -> Self:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited ({self.proc.returncode}):\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base_url + self.probe, timeout=30):
                    return self
            except urllib.error.HTTPError:
                return self  # it answers
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.label} did not answer in {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM to the process we started; after ``timeout`` s, SIGKILL to it and to the workers it
        had forked (found before the SIGTERM, so that none is left orphaned)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = [(pid, _cmdline(pid)) for pid in descendants(self.proc.pid) if pid != self.proc.pid]
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pid, cmdline in tree:
            if cmdline and _cmdline(pid) == cmdline:  # still the same process
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is None:
            self.log.unlink(missing_ok=True)
        else:
            print(f"  ({self.label}'s log: {self.log})", file=sys.stderr)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


NO_RATE_LIMITS = {"REDISOLAR_RATE_LIMIT_WRITES": "0", "REDISOLAR_RATE_LIMIT_READS": "0"}
"""The load comes from one address far faster than the default budgets allow: throughput benchmarks
run the project without limits unless they say otherwise (bench/http_auth.py measures their cost)."""


def add_server_arguments(parser: argparse.ArgumentParser, *, baseline: bool) -> None:
    """The servers' options: the project's workers and threads (``redisolar serve``'s defaults when
    not given) and, with ``baseline``, the seed's under gunicorn (2 × cores × 4, as issue 11 measured)."""
    from redisolar.server import default_workers

    parser.add_argument("--workers", type=int, default=None, help="project workers (default: serve's)")
    parser.add_argument("--threads", type=int, default=None, help="project threads (default: serve's)")
    if baseline:
        parser.add_argument("--baseline-workers", type=int, default=default_workers(), help="seed's workers")
        parser.add_argument("--baseline-threads", type=int, default=4, help="seed's threads per worker")


def project_server(
    redis_url: str,
    port: int,
    workers: int | None,
    threads: int | None,
    extra_env: dict[str, str] | None = None,
) -> Served:
    """The project as production serves it: ``redisolar serve`` (its default server, Granian; its
    default workers and threads where ``workers``/``threads`` are None), built-in defaults + env only
    (an empty instance folder, so a developer's ``instance/dev.cfg`` does not change the figures)."""
    instance = tempfile.mkdtemp(prefix="redisolar-bench-instance-")
    script = Path(sys.executable).with_name("redisolar")
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "redisolar"]
    command = [*cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers)] if workers else []
    command += ["--threads", str(threads)] if threads else []
    command += ["--log-level", "warning"]
    env = {
        "REDISOLAR_REDIS_URL": redis_url,
        "REDISOLAR_INSTANCE_PATH": instance,
        **NO_RATE_LIMITS,
        **(extra_env or {}),
    }
    return Served("redisolar", command, port, env=env, cwd=ROOT, probe="/api/analytics/summary")


def baseline_server(
    baseline: Path, redis_port: int, redis_db: int, port: int, workers: int, threads: int
) -> Served:
    """A baseline app (e.g. the seed design: ``redisolar.app:create_app()`` read from ``baseline``) under
    gunicorn with the same worker and thread counts as the project."""
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads)]
    command += ["-b", f"127.0.0.1:{port}", "--no-control-socket", "--log-level", "warning"]
    # (the seed's workers hang at exit joining their updater thread, asleep for 300 s: don't wait 30 s)
    command += ["--graceful-timeout", "3"]
    command += ["redisolar.app:create_app()"]
    env = {
        "PYTHONPATH": str(baseline),
        "PYTHONUNBUFFERED": "1",
        "SEEDREF_REDIS_PORT": str(redis_port),
        "SEEDREF_REDIS_DB": str(redis_db),
    }
    return Served("baseline", command, port, env=env, cwd=baseline, probe="/")


def shell_line(served: Served) -> str:
    """The server's command line, with the environment it was given (for the report)."""
    keys: tuple[str, ...] = (
        "REDISOLAR_REDIS_URL",
        "REDISOLAR_AUTH_MODE",
        "REDISOLAR_RATE_LIMIT_WRITES",
        "REDISOLAR_RATE_LIMIT_READS",
    )
    keys += ("PYTHONPATH", "SEEDREF_REDIS_PORT", "SEEDREF_REDIS_DB")
    env = " ".join(
        f"{k}={served.env[k]}" for k in keys if k in served.env and os.environ.get(k) != served.env[k]
    )
    return f"{env} {' '.join(served.command)}".strip()


# -- the load generator -------------------------------------------------------------------------------
def run_loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``bench.loadgen`` with ``spec`` in a separate process; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return result


def http_json(
    method: str, url: str, body: Any = None, timeout: float = 300.0, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One request with the standard library (setup and checks, not timed work): (status, JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


# -- figures -------------------------------------------------------------------------------------------
def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def write_artifact(name: str, data: dict[str, Any]) -> Path:
    """``artifacts/bench-NAME.json``, with when, on which commit (and whether redisolar/ had changes),
    the command that reproduces it and the machine's load average as it ends."""
    folder = artifacts_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"bench-{name}.json"
    stamped = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": git_state(),
        "command": reproduce_command(),
        "machine": {"cpu_cores": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())},
        **data,
    }
    path.write_text(json.dumps(stamped, indent=2, default=str) + "\n")
    return path


def reproduce_command() -> str:
    """This benchmark's command line, as run from the project root (``python -m bench.NAME ...``)."""
    module = f"bench.{Path(sys.argv[0]).stem}"
    return shlex.join([".venv/bin/python", "-m", module, *sys.argv[1:]])


def git_state() -> dict[str, Any]:
    """The commit, whether ``redisolar/`` differs from it, and a hash of the code in ``redisolar/`` (the
    code the servers run: other people may change it while a benchmark runs)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    digest = hashlib.sha1()
    for path in sorted((ROOT / "redisolar").rglob("*")):
        if path.suffix in (".py", ".lua") and path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {
        "commit": git("rev-parse", "HEAD"),
        "redisolar_changed": bool(git("status", "--porcelain", "redisolar")),
        "redisolar_code_sha1": digest.hexdigest(),
    }


def warn_if_code_changed(at_start: dict[str, Any]) -> None:
    """Say so when the code in ``redisolar/`` changed while the benchmark ran (other people may be
    working in the same tree): servers started before and after the change ran different code."""
    now = git_state()
    if now["redisolar_code_sha1"] != at_start["redisolar_code_sha1"]:
        print(
            "WARNING: the code in redisolar/ changed while the benchmark ran "
            f"(commit {at_start['commit'][:10]} -> {now['commit'][:10]}): the figures may mix two versions"
        )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
