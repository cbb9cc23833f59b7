"""The HTTP servers of ``redisolar serve``: Granian by default (measured), gunicorn on request.

The decision (issue 11): Granian's WSGI interface (:mod:`redisolar.granian_server`) serves
``redisolar serve`` and ``redisolar demo``; gunicorn stays one option away (``--server gunicorn``),
built from this module. Measured on the 2-core development machine, shared with other people's test
runs (load average 1-9 during the decisive run, 5-15 during the exploratory ones), with the real app
(AUTH_MODE=off, no rate limits, five sites, Redis Stack), ``wrk -t2 -c16``, 6 s per run, three rounds
in alternation; requests/s, median (min-max), and the median p99:

=========================================  ===================  ===================  ===================
server (decisive run, load 1-9)             GET latest           GET /health          POST one reading
=========================================  ===================  ===================  ===================
gunicorn 4 workers × 4 threads (old dflt)   2531 (2488-2612) 17  2436 (2391-2524) 23  1436 (1339-1473) 28
Granian 2 workers × 4 threads (new dflt)    3598 (3593-3633) 11  3452 (3393-3496) 11  2043 (1999-2137) 17
Granian 2 workers × 8 threads               4127 (4125-4225) 17  3142 (3115-4042) 15  2128 (2037-2217) 20
=========================================  ===================  ===================  ===================

Exploratory runs (load 5-15, wide spreads; medians): gunicorn 2×4 1921 / 1443 / 763 and 4×1 (sync)
1051 / 1044 / 699 against 4×4's 1975 / 2242 / 875; Granian 1 worker (Granian's default of 512
threads) 1848 / 1618 / 903; 2 workers with 1, 2, 4, 8 and Granian's default 256 blocking threads:
2217 / 1993 / 795, 2080 / 1991 / 901, 2916 / 2692 / 1134, 3244 / 3109 / 1262, 2945 / 2598 / 1261;
4 workers × 4: 2998 / 2970 / 952; ``--backpressure 16`` (2 × 4): 2568 / 2121 / 1130.

Defaults chosen from it: Granian, one worker per core (``--workers``; more workers than cores did not
help) and 4 blocking threads per worker (``--threads``): 8 threads served 4-15 % more on two of the
three routes but with a p99 about half again as high, and Granian warns above 2 × cores + 1 threads.
The Granian rows ran ``redisolar serve`` (or, exploring, ``granian --interface wsgi --factory --workers N
--blocking-threads T redisolar.app:create_app``); each POST carried a new timestamp per site, one
reading per request. Under Granian the leaderboard reconciler is a thread of the main process (why:
:mod:`redisolar.granian_server`).

gunicorn: ``redisolar serve --server gunicorn`` runs :class:`GunicornServer` in its own process (it
becomes gunicorn's master), with ``--workers`` 2 × cores and ``--threads`` 4 by default. The hooks below
are gunicorn server hooks, so gunicorn's own command line can use this module as its configuration too::

    gunicorn -c python:redisolar.server --workers 4 'redisolar.app:create_app()'

Which process runs the reconciler under gunicorn: the master designates one worker, in ``pre_fork``, the
first worker it forks, and later the replacement of that worker if it dies (or, after a ``HUP`` reload,
the first new worker). That worker starts :meth:`LeaderboardUpdater.start` once its app is loaded
(interval from the app's config; 0 turns it off), the alert evaluator (``ALERT_EVALUATION_SECONDS``)
and the webhook deliverer (``WEBHOOK_DELIVERY``), and stops them when it exits (Ctrl-C, SIGTERM or a
reload: each waits at most :data:`RECONCILER_STOP_WAIT` seconds for its pass in flight). The
reconcile itself also takes a Redis lock, so several servers (or the short overlap of a reload) never
reconcile at the same time.

Stopping under gunicorn: SIGINT (Ctrl-C) or SIGQUIT stop the workers at once (:func:`worker_int`),
SIGTERM after the requests in flight, up to ``graceful_timeout`` (:func:`worker_exit`). Either way a
worker leaves with ``os._exit``: a Python exit first joins every request thread, and one blocked (on a
Redis that is paused, saving or gone; on a kept-alive connection) held the worker until the master's
SIGKILL ("Worker was sent SIGKILL! Perhaps out of memory?", 20 s after Ctrl-C). Ctrl-C signals the whole
process group, so each worker gets SIGINT and then the master's SIGQUIT: the second signal used to
interrupt gunicorn's exit path before its hooks ran; :func:`worker_int` ignores it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication

from redisolar.metrics_dir import mark_dead

log = logging.getLogger(__name__)

RECONCILER_FLAG = "redisolar_runs_reconciler"
"""Attribute set on the gunicorn worker object that hosts the reconciler."""

ABORTED_FLAG = "redisolar_aborted"
"""Attribute set on a worker that gunicorn aborts (timeout): it keeps gunicorn's own exit path."""

QUICK_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
"""The signals that stop a worker at once (Ctrl-C reaches every process of the group)."""

RECONCILER_STOP_WAIT = 2.0
"""Seconds an exiting worker waits for its reconciler thread (a daemon) to finish a pass."""

INTERVAL_KEYS = ("LEADERBOARD_UPDATE_INTERVAL",)
"""App config keys read, in order, for the reconciler's interval in seconds (0 = off)."""
DEFAULT_INTERVAL = 300.0


GRANIAN_THREADS = 4
"""Granian's blocking threads per worker by default (the Python threads that run the app; measured)."""
GUNICORN_THREADS = 4
"""gunicorn's threads per worker by default."""


def granian_workers() -> int:
    """Granian's workers by default: one per CPU core (measured)."""
    return os.cpu_count() or 1


def default_workers() -> int:
    """gunicorn's workers by default: two per CPU core."""
    return 2 * (os.cpu_count() or 1)


def bind_address(host: str, port: int) -> str:
    """gunicorn's ``bind`` for a host and port (IPv6 addresses in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- server hooks (gunicorn calls them with these names) ------------------------------------------------
def pre_fork(server: Any, worker: Any) -> None:
    """(master) Designate ``worker`` as the reconciler's host unless a live worker is already."""
    taken = any(getattr(w, RECONCILER_FLAG, False) for w in server.WORKERS.values())
    setattr(worker, RECONCILER_FLAG, not taken)


def on_reload(server: Any) -> None:
    """(master, on HUP) The old workers are going: let the first new worker host the reconciler."""
    for worker in server.WORKERS.values():
        setattr(worker, RECONCILER_FLAG, False)


def post_worker_init(worker: Any) -> None:
    """(worker, app loaded) Stop at once on SIGINT/SIGQUIT; start the reconciler if designated."""
    _quit_at_once(worker)
    if not getattr(worker, RECONCILER_FLAG, False):
        return
    app = worker.wsgi
    from redisolar.alerts.background import start_in_worker  # (not on the CLI's import path)
    from redisolar.events.background import start_in_worker as start_deliverer

    start_in_worker(app)  # the alert evaluator (redisolar.alerts), its own interval
    start_deliverer(app)  # the webhook deliverer (redisolar.events), unless WEBHOOK_DELIVERY is off
    interval = reconciler_interval(app.config)
    if interval <= 0:
        log.info("leaderboard reconciler off (interval 0)")
        return
    app.extensions["redisolar"].updater.start(interval)
    log.info("leaderboard reconciler started in worker %d, every %g s", os.getpid(), interval)


def _quit_at_once(worker: Any) -> None:
    """Handle SIGINT and SIGQUIT with :func:`worker_int` alone. gunicorn's own handler first shuts
    the request thread pool down, taking the pool's lock: a signal that lands while the main thread
    holds that lock (queueing a request) deadlocks the worker until the master's SIGKILL."""

    def quit_now(signum: int, frame: FrameType | None) -> None:
        worker.alive = False
        worker_int(worker)

    for quick in QUICK_SIGNALS:
        signal.signal(quick, quit_now)


def worker_int(worker: Any) -> None:
    """(worker, SIGINT or SIGQUIT: stop now) Ignore the next such signal, stop the reconciler, leave."""
    if threading.current_thread() is threading.main_thread():
        for quick in QUICK_SIGNALS:  # Ctrl-C's SIGINT, then the master's SIGQUIT
            signal.signal(quick, signal.SIG_IGN)
    log.info("worker %d stopping at once", os.getpid())
    _stop_reconciler(worker)
    _exit_now()


def worker_abort(worker: Any) -> None:
    """(worker, SIGABRT after a timeout) Remember it, so that :func:`worker_exit` keeps the exit code."""
    setattr(worker, ABORTED_FLAG, True)


def worker_exit(server: Any, worker: Any) -> None:
    """(worker, exiting) Stop the reconciler if this worker runs it; then, if the worker was told to
    stop (SIGINT, SIGQUIT, SIGTERM, max requests), leave at once without joining request threads."""
    _stop_reconciler(worker)
    told_to_stop = getattr(worker, "booted", False) and not getattr(worker, "alive", True)
    if told_to_stop and not getattr(worker, ABORTED_FLAG, False):
        _exit_now()


def _stop_reconciler(worker: Any) -> None:
    """Stop the worker's reconciler thread, waiting at most :data:`RECONCILER_STOP_WAIT` seconds."""
    app = getattr(worker, "wsgi", None)
    from redisolar.alerts.background import stop_in_worker
    from redisolar.events.background import stop_in_worker as stop_deliverer

    stop_in_worker(app)  # the alert evaluator, if this worker runs it
    stop_deliverer(app, RECONCILER_STOP_WAIT)  # the webhook deliverer, if this worker runs it
    extensions = getattr(app, "extensions", None) or {}
    services = extensions.get("redisolar")
    if services is None or not services.updater.is_running:
        return
    stopper = threading.Thread(target=services.updater.stop, name="reconciler-stop", daemon=True)
    stopper.start()
    stopper.join(RECONCILER_STOP_WAIT)
    if stopper.is_alive():
        log.warning("the reconciler did not stop within %g s: leaving it", RECONCILER_STOP_WAIT)


def _exit_now() -> NoReturn:
    """End the worker process now (logs flushed), skipping the interpreter's join of its threads."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def child_exit(server: Any, worker: Any) -> None:
    """(master, a worker has exited) Mark its metrics files dead (:mod:`redisolar.metrics_dir`)."""
    mark_dead(worker.pid)


def reconciler_interval(config: Any) -> float:
    """The reconciler's interval in seconds from an app config (0 = off)."""
    for key in INTERVAL_KEYS:
        if config.get(key) is not None:
            return float(config[key])
    return DEFAULT_INTERVAL


HOOKS: dict[str, Callable[..., None]] = {
    "pre_fork": pre_fork,
    "on_reload": on_reload,
    "post_worker_init": post_worker_init,
    "worker_int": worker_int,
    "worker_abort": worker_abort,
    "worker_exit": worker_exit,
    "child_exit": child_exit,
}


# -- the programmatic server ------------------------------------------------------------------------------
class GunicornServer(BaseApplication):
    """gunicorn running the WSGI app that ``factory`` builds, once in each worker (no preloading: every
    worker has its own Redis connections)."""

    def __init__(
        self,
        factory: Callable[[], Any],
        options: dict[str, Any],
        *,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.options = options
        self.on_ready = on_ready
        super().__init__()

    def load_config(self) -> None:
        for name, value in {**HOOKS, **self.options}.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn ≥ 25 opens a control socket at one per-user path: two servers would clash.
            self.cfg.set("control_socket_disable", True)
        if self.on_ready is not None:
            ready = self.on_ready

            def when_ready(server: Any) -> None:
                ready()

            self.cfg.set("when_ready", when_ready)

    def load(self) -> Any:
        return self.factory()


def gunicorn_options(
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    timeout: int = 30,
    graceful_timeout: int = 20,
    log_level: str = "info",
    access_log: bool = False,
) -> dict[str, Any]:
    """gunicorn settings for ``redisolar serve``: threaded workers when ``threads`` > 1."""
    return {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "loglevel": log_level,
        "accesslog": "-" if access_log else None,
        "preload_app": False,
        "proc_name": "redisolar",
    }


__all__ = [
    "GRANIAN_THREADS",
    "GUNICORN_THREADS",
    "GunicornServer",
    "bind_address",
    "child_exit",
    "default_workers",
    "granian_workers",
    "gunicorn_options",
    "on_reload",
    "post_worker_init",
    "pre_fork",
    "reconciler_interval",
    "worker_abort",
    "worker_exit",
    "worker_int",
]
