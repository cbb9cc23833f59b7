"""The default HTTP server of ``redisolar serve``: Granian's WSGI interface on the app factory.

Why Granian: measured against gunicorn with the real app (the table and the chosen defaults are in
:mod:`redisolar.server`'s docstring): about 1.4× the requests per second of gunicorn's old defaults on
``GET /api/analytics/readings/<id>/latest``, ``GET /health`` and a single-reading POST, with a lower
p99. gunicorn stays available: ``redisolar serve --server gunicorn``.

Processes: ``redisolar serve`` becomes Granian's main process. It forks ``workers`` worker processes;
each builds its own app with :class:`WorkerApp` (no preloading: every worker has its own Redis
connections) and runs it on ``blocking_threads`` Python threads, behind Granian's Rust HTTP runtime.

Which process runs the leaderboard reconciler: the main process, in a thread started once the workers
are spawned and stopped before Granian stops them (:class:`GranianServer`). Granian 2 has no worker
lifecycle hooks (its ``on_startup``/``on_shutdown`` hooks run in the main process), and the main process
is exactly one per server, lives as long as the server, outlives worker respawns and serves no requests,
so the reconciler competes with no request for a worker's interpreter lock. It uses the app that the
start-up checks built (its own Redis client). The reconcile itself takes a Redis lock, so several
servers never reconcile at the same time.

Stopping (the main process relays the signal; Ctrl-C reaches every process of the group):

- SIGINT (Ctrl-C) or SIGQUIT: each worker leaves at once (``os._exit``), requests in flight are cut.
  Granian's own handling is a graceful shutdown with no bound: a connection that never sent a byte
  held a worker for its 30 s header timeout, a request stuck on a paused Redis for as long as the pause.
- SIGTERM: each worker stops accepting connections, lets the requests in flight finish, and leaves as
  soon as none is left, or after ``graceful_timeout`` seconds at the latest (idle kept-alive
  connections do not hold it). The main process waits for its workers, then exits.
A worker that dies (killed, crashed) is replaced, as gunicorn's master does (a respawn forks the main
process while its reconciler thread runs; the new worker only builds its own app). Workers are never
killed by the main process (``workers_kill_timeout`` is only a backstop, a few seconds past the
workers' own bound).

What this relies on in Granian 2 beyond its documented options (tests/test_shutdown.py and
tests/test_e2e.py fail if an upgrade changes them): ``MPServer`` (``startup``, ``_stop_workers``,
``signal_handler_interrupt``, ``wrks``), the undecorated ``MPServer._spawn_wsgi_worker``, and
``granian._signals.set_sync_signals``, which a worker calls to install its signal handlers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any, NoReturn

from granian import _signals as granian_signals
from granian._granian import WorkerSignal
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.mp import MPServer, WorkerProcess

from redisolar.logs import granian_formatters
from redisolar.metrics_dir import mark_dead

log = logging.getLogger(__name__)

QUICK_SIGNALS = (signal.SIGINT, signal.SIGQUIT)
"""The signals that stop a worker at once."""

IDLE_LINGER = 0.1
"""Seconds a draining worker waits, once no request is in flight, for the last response to be written."""

KILL_BACKSTOP = 5
"""Seconds past ``graceful_timeout`` after which Granian's main process would kill a worker."""

STOP_SETTLE = 1.0
"""Seconds a worker's watcher waits, when the worker left of its own accord (exit code 0), for the main
process to take the same signal (Ctrl-C reaches both) before calling the exit a crash."""

RECONCILER_STOP_WAIT = 2.0
"""Seconds the main process waits for the reconciler thread (a daemon) to finish a pass."""


# -- in the workers --------------------------------------------------------------------------------------
class InFlight:
    """WSGI middleware counting the requests in flight, until their response is closed, so that a
    draining worker knows when it may leave."""

    def __init__(self, app: Callable[..., Iterable[bytes]], graceful_timeout: float) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self._count = 0
        self._changed = threading.Condition()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self._add(1)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._add(-1)
            raise
        return _ClosingBody(body, partial(self._add, -1))

    def _add(self, delta: int) -> None:
        with self._changed:
            self._count += delta
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no request is in flight, at most ``timeout`` seconds; whether it is idle."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count <= 0, timeout)


class _ClosingBody:
    """A response body that calls ``done`` once, when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[], None]) -> None:
        self.body = body
        self.done: Callable[[], None] | None = done

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            done, self.done = self.done, None
            if done is not None:
                done()


@dataclass(frozen=True)
class WorkerApp:
    """Builds a worker's app (Granian's target loader, called in each worker): the app factory with
    the ``--config`` name, wrapped in :class:`InFlight`."""

    config_name: str
    graceful_timeout: float

    def __call__(self) -> InFlight:
        from redisolar.app import create_app

        return InFlight(create_app(self.config_name), self.graceful_timeout)


def _worker_signals(app: InFlight) -> WorkerSignal:
    """Replaces Granian's ``set_sync_signals`` in a worker: SIGINT/SIGQUIT leave at once; SIGTERM
    stops accepting (Granian's graceful shutdown) and leaves when no request is in flight, or after
    the graceful timeout.

    The kernel hands a signal to any thread of the worker, often one of Granian's (a blocking thread
    waiting on Redis, say); Python then runs the handler only once the main thread wakes, and it
    sleeps in a lock until shutdown (seen: Ctrl-C ignored until the master's kill, 25 s). So the
    signal numbers also go through a wake-up pipe to a thread of ours, which acts on them at once."""
    stop = _WorkerStop(app, WorkerSignal())
    for signum in (*QUICK_SIGNALS, signal.SIGTERM):
        signal.signal(signum, stop.on_signal)
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    threading.Thread(target=stop.relay, args=(read,), name="signals", daemon=True).start()
    return stop.shutdown


class _WorkerStop:
    """What a worker does on a stop signal, whichever thread learns of it first."""

    def __init__(self, app: InFlight, shutdown: WorkerSignal) -> None:
        self.app = app
        self.shutdown = shutdown
        self._draining = False
        self._lock = threading.RLock()  # (re-entered when a handler interrupts the main thread here)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.act(signum)

    def relay(self, fd: int) -> None:
        while True:
            for signum in os.read(fd, 64):
                self.act(signum)

    def act(self, signum: int) -> None:
        if signum in QUICK_SIGNALS:
            _exit_now()
        if signum != signal.SIGTERM:
            return
        with self._lock:
            if self._draining:
                return
            self._draining = True
        self.shutdown.set()
        threading.Thread(target=_exit_when_idle, args=(self.app,), name="drain", daemon=True).start()


def _exit_when_idle(app: InFlight) -> NoReturn:
    deadline = time.monotonic() + app.graceful_timeout
    if app.wait_idle(app.graceful_timeout):
        time.sleep(min(IDLE_LINGER, max(0.0, deadline - time.monotonic())))
    else:
        log.warning("requests still in flight after %g s: leaving", app.graceful_timeout)
    _exit_now()


def _exit_now() -> NoReturn:
    """End the worker process now (logs flushed), skipping the interpreter's join of its threads."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


_GRANIAN_WSGI_WORKER = MPServer._spawn_wsgi_worker.__wrapped__


@WorkerProcess.wrap_target
def _wsgi_worker(worker_id: int, callback: InFlight, sock: Any, ipc: Any, loop: Any, *args: Any) -> None:
    """Granian's WSGI worker, with :func:`_worker_signals` in place of its own signal handling."""
    granian_signals.set_sync_signals = partial(_worker_signals, callback)
    _GRANIAN_WSGI_WORKER(worker_id, callback, sock, ipc, loop, *args)


# -- the main process ----------------------------------------------------------------------------------
class GranianServer(MPServer):
    """Granian's multi-process server, which runs :data:`reconciler` (start, stop) once its workers are
    spawned and relays SIGINT/SIGQUIT to them as such (Granian would send SIGTERM)."""

    def __init__(
        self,
        *args: Any,
        reconciler: tuple[Callable[[], None], Callable[[], None]] | None = None,
        on_ready: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.reconciler = reconciler
        self.on_ready = on_ready
        self.stop_signal: int | None = None
        self.stopping = threading.Event()

    def startup(self, spawn_target: Any, target_loader: Any) -> None:
        super().startup(spawn_target, target_loader)
        signal.signal(signal.SIGQUIT, self.signal_handler_interrupt)
        if self.reconciler is not None:
            self.reconciler[0]()
        if self.on_ready is not None:
            self.on_ready()

    def signal_handler_interrupt(self, signum: int | None = None, *args: Any, **kwargs: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        for worker in self.wrks:  # Ctrl-C: the workers leave by themselves, which is not a crash
            worker.interrupt_by_parent = True
        self.stopping.set()
        super().signal_handler_interrupt()

    def _spawn_worker(self, *args: Any, **kwargs: Any) -> WorkerProcess:
        worker = super()._spawn_worker(*args, **kwargs)
        worker._watcher = partial(self._watch_worker, worker)  # type: ignore[method-assign]
        return worker

    def _watch_worker(self, worker: WorkerProcess) -> None:
        """Granian's watcher of a worker, which calls any exit it did not ask for a crash (and then
        respawns the worker): a worker that left with code 0 was told to stop, by a signal that the
        main process takes too, unless :data:`STOP_SETTLE` seconds pass without it. The worker's
        metrics files are marked dead (:mod:`redisolar.metrics_dir`)."""
        worker.inner.join()
        mark_dead(worker.inner.pid)
        if worker.inner.exitcode == 0 and not worker.interrupt_by_parent:
            self.stopping.wait(STOP_SETTLE)
            worker.interrupt_by_parent = worker.interrupt_by_parent or self.stopping.is_set()
        WorkerProcess._watcher(worker)

    def _stop_workers(self) -> None:
        if self.reconciler is not None:
            _stop_within(self.reconciler[1], RECONCILER_STOP_WAIT)
        if self.stop_signal in QUICK_SIGNALS:
            for worker in self.wrks:
                _signal_worker(worker, signal.SIGINT)
        super()._stop_workers()


def _signal_worker(worker: WorkerProcess, signum: int) -> None:
    pid = worker.inner.pid
    if pid is not None and worker.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _stop_within(stop: Callable[[], None], seconds: float) -> None:
    stopper = threading.Thread(target=stop, name="reconciler-stop", daemon=True)
    stopper.start()
    stopper.join(seconds)
    if stopper.is_alive():
        log.warning("the reconciler did not stop within %g s: leaving it", seconds)


def logging_config(log_format: str) -> dict[str, Any]:
    """Granian's loggers (its own and the access log) writing like ours (``LOG_FORMAT``: text or
    json), to stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": granian_formatters(log_format),
        "handlers": {
            "console": {
                "formatter": "generic",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def run_granian(
    app: WorkerApp,
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    log_level: str = "info",
    log_format: str = "text",
    access_log: bool = False,
    reconciler: tuple[Callable[[], None], Callable[[], None]] | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` until a signal stops it (see the module's docstring)."""
    server = GranianServer(
        "redisolar.app:create_app",  # Granian's target name; the app comes from ``app`` (the loader)
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=threads,
        websockets=False,
        log_level=LogLevels(log_level),
        log_dictconfig=logging_config(log_format),
        log_access=access_log,
        workers_kill_timeout=int(app.graceful_timeout) + KILL_BACKSTOP,
        respawn_failed_workers=True,  # as gunicorn does (Granian's default: stop the server)
        reconciler=reconciler,
        on_ready=on_ready,
    )
    server.serve(spawn_target=_wsgi_worker, target_loader=app, wrap_loader=False)


__all__ = [
    "GranianServer",
    "InFlight",
    "WorkerApp",
    "run_granian",
]
