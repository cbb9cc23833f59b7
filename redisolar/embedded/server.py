"""Private ``redis-server`` processes: the embedded Redis of ``redisolar demo`` and of the tests.

:class:`RedisServer` runs a :class:`~redisolar.embedded.binaries.ServerSpec` as a child process (not
daemonized, configured entirely on the command line, no config file) on a free or given port, with its
own data directory.

Process-wide hooks are registered by the first :meth:`RedisServer.start`, not at import: an ``atexit``
hook that stops the servers still running when the interpreter exits, and an after-fork hook that makes
a forked child (e.g. a gunicorn worker of ``redisolar demo``) forget its parent's servers.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redisolar.embedded.binaries import EmbeddedRedisError, ServerSpec, libssl_hint

logger = logging.getLogger(__name__)

LOG_FILE = "redis.log"
"""Name of the server's log file inside its data directory."""

OUTPUT_FILE = "redis-server.out"
"""Name of the file inside the data directory receiving the process's stdout and stderr."""

_PORT_RETRIES = 3
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 25


class _PortInUseError(EmbeddedRedisError):
    """The server exited at start-up because its port was taken."""


def _free_port(host: str) -> int:
    """Return a TCP port on ``host`` that is free right now (the OS picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _connect_host(bind: str) -> str:
    """Return the address a client should connect to for a Redis ``bind`` setting."""
    first = bind.split()[0] if bind.split() else "127.0.0.1"
    first = first.lstrip("-")  # Redis 7: a leading "-" marks an optional address
    if first in ("0.0.0.0", "*"):
        return "127.0.0.1"
    if first in ("::", "::*"):
        return "::1"
    return first


def _option_value(args: Sequence[str], option: str) -> str | None:
    """Return the value following the last ``option`` in a command line, if any."""
    value = None
    for name, following in itertools.pairwise(args):
        if name == option:
            value = following
    return value


def _read_tail(path: Path, offset: int, lines: int = _LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", "replace").rstrip()
    return "\n".join(text.splitlines()[-lines:])


def _file_size(path: Path) -> int:
    """Return the size of ``path``, 0 if it does not exist."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


# -- process-wide hooks ----------------------------------------------------------------------------
_live_servers: set[RedisServer] = set()
_live_lock = threading.Lock()
_hooks_installed = False


def _install_process_hooks() -> None:
    """Register the ``atexit`` and after-fork hooks, once per process (they survive a fork)."""
    global _hooks_installed
    with _live_lock:
        if _hooks_installed:
            return
        atexit.register(_stop_live_servers)
        os.register_at_fork(after_in_child=_forget_live_servers)
        _hooks_installed = True


def _stop_live_servers() -> None:
    """Stop servers still running when the interpreter exits, so none is left orphaned."""
    with _live_lock:
        servers = list(_live_servers)
    for server in servers:
        try:
            server.stop(timeout=5.0)
        except Exception:  # best effort at exit: keep stopping the others
            logger.exception("could not stop %r at exit", server)


def _forget_live_servers() -> None:
    """In a forked child (e.g. a gunicorn worker of ``redisolar demo``): the servers belong to the
    parent, so the child's exit must not stop them."""
    _live_servers.clear()


class RedisServer:
    """A ``redis-server`` child process with its own port and data directory.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        spec = find_best_server()
        if spec is None:
            raise SystemExit("no redis-server found")
        with RedisServer(spec, data_dir=Path("var/redis"), persistence=True) as server:
            client = server.client(decode_responses=True)

    The port is chosen when the object is created (a free one unless ``port`` is given) and
    stays the same across :meth:`stop`/:meth:`start` and :meth:`restart`, so clients can
    reconnect after a simulated outage. If the very first start finds an auto-picked port taken
    ("Address already in use"), it retries up to three times with new ports.

    Servers still running when the interpreter exits are stopped by an ``atexit`` hook, registered by
    the first :meth:`start` of the process.
    """

    def __init__(
        self,
        spec: ServerSpec,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        persistence: bool = False,
        bind: str = "127.0.0.1",
        extra_args: Sequence[str] = (),
    ) -> None:
        """Describe a server; nothing is started until :meth:`start`.

        Args:
            spec: which binary and modules to run.
            port: the TCP port; ``None`` picks a free one.
            data_dir: the working directory (data files, log); ``None`` uses a temporary
                directory that :meth:`stop` removes. A given directory is created if needed
                and never removed.
            persistence: ``True`` enables the append-only file and Redis's default RDB save
                points, and saves on :meth:`stop`; ``False`` disables both (``--save ''``,
                ``--appendonly no``) and stops with ``SHUTDOWN NOSAVE``.
            bind: the ``bind`` setting (space-separated addresses); clients connect to the first.
            extra_args: more command-line arguments for ``redis-server``, e.g.
                ``["--maxmemory", "64mb"]``. A ``--requirepass`` given here is also used by
                the start-up and shutdown commands (but not by :meth:`client`).
        """
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"invalid port {port}")
        if not bind.split():
            raise ValueError("bind must name at least one address")
        self._spec = spec
        self._bind = bind
        self._host = _connect_host(bind)
        self._auto_port = port is None
        self._port = port if port is not None else _free_port(self._host)
        self._port_proven = port is not None  # a fixed port is never replaced
        self._data_dir: Path | None = data_dir
        self._temp_dir: Path | None = None
        self._persistence = persistence
        self._extra_args = tuple(extra_args)
        self._password = _option_value(self._extra_args, "--requirepass")
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._log_offset = 0
        self._output_offset = 0
        self._lock = threading.RLock()

    # -- properties ---------------------------------------------------------------------

    @property
    def spec(self) -> ServerSpec:
        """The binary and modules this server runs."""
        return self._spec

    @property
    def host(self) -> str:
        """The address clients connect to (``127.0.0.1`` by default)."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port (fixed for the lifetime of the object once a start succeeded)."""
        return self._port

    @property
    def url(self) -> str:
        """The server's URL, e.g. ``redis://127.0.0.1:51234``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"redis://{host}:{self._port}"

    @property
    def persistence(self) -> bool:
        """Whether the server persists its data (AOF + RDB) in :attr:`data_dir`."""
        return self._persistence

    @property
    def data_dir(self) -> Path | None:
        """The working directory, or ``None`` while a temporary one is not yet created."""
        return self._data_dir

    @property
    def log_path(self) -> Path | None:
        """The server's log file, or ``None`` while there is no data directory yet."""
        return self._data_dir / LOG_FILE if self._data_dir is not None else None

    @property
    def pid(self) -> int | None:
        """The process id while running, else ``None``."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<RedisServer {self._spec.name} {self.url} {state}>"

    # -- lifecycle ----------------------------------------------------------------------

    def is_running(self) -> bool:
        """Return whether the server process is alive."""
        proc = self._proc
        return proc is not None and proc.poll() is None

    def start(self, timeout: float = 20.0) -> Self:
        """Start the server and wait until it answers ``PING``; a no-op if it is running.

        Args:
            timeout: seconds to wait for the server to become ready.

        Returns:
            ``self``, for chaining.

        Raises:
            EmbeddedRedisError: the process could not be launched, exited, or did not answer
                in time; the message carries the tail of its log.
        """
        with self._lock:
            if self.is_running():
                return self
            _install_process_hooks()
            deadline = time.monotonic() + timeout
            attempts = 1 + (_PORT_RETRIES if self._auto_port and not self._port_proven else 0)
            for attempt in range(1, attempts + 1):
                try:
                    self._launch()
                    self._wait_ready(deadline, timeout)
                except _PortInUseError as exc:
                    if attempt == attempts:
                        raise EmbeddedRedisError(str(exc)) from None
                    old_port, self._port = self._port, _free_port(self._host)
                    logger.warning(
                        "port %d was taken, retrying redis-server (%s) on port %d",
                        old_port,
                        self._spec.name,
                        self._port,
                    )
                    continue
                except BaseException:
                    self._discard_process()
                    self._remove_temp_dir()
                    raise
                self._port_proven = True
                with _live_lock:
                    _live_servers.add(self)
                logger.info(
                    "started redis-server (%s) pid %d on %s, data in %s",
                    self._spec.name,
                    self.pid,
                    self.url,
                    self._data_dir,
                )
                return self
            raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for the process to exit; a no-op if it is not running.

        Sends ``SHUTDOWN NOSAVE`` (``SHUTDOWN``, which saves, when persistent) and falls back to
        SIGTERM, then SIGKILL. Removes the temporary data directory, if one was created.
        """
        with self._lock:
            self._stop_process(timeout)
            self._remove_temp_dir()

    def restart(self, timeout: float = 20.0) -> Self:
        """Stop the server (keeping its data directory) and start it again on the same port.

        Without persistence the data is gone afterwards, as after a crash; with persistence it
        is reloaded. Meant to simulate an outage and a recovery.
        """
        with self._lock:
            self._stop_process(timeout=10.0)
            return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (no shutdown, no save); a no-op if it is not running.

        Its data directory is kept, so :meth:`start` brings it back on the same port (a cluster node
        rejoins from its ``nodes.conf``)."""
        with self._lock:
            self._discard_process()

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return a new ``redis.Redis`` client for this server; ``kwargs`` go to its constructor."""
        return redis.Redis(host=self._host, port=self._port, **kwargs)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ----------------------------------------------------------------------

    def _ensure_data_dir(self) -> Path:
        """Create the data directory (a temporary one unless given) and return it."""
        if self._data_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix=f"redisolar-redis-{self._spec.name}-"))
            self._data_dir = self._temp_dir
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    def _command(self, data_dir: Path) -> list[str]:
        """Return the ``redis-server`` command line."""
        args = [
            str(self._spec.binary),
            "--port", str(self._port),
            "--bind", *self._bind.split(),
            "--dir", str(data_dir),
            "--logfile", str(data_dir / LOG_FILE),
            "--daemonize", "no",
        ]  # fmt: skip
        if self._persistence:
            args += ["--appendonly", "yes"]  # and Redis's default save points
        else:
            args += ["--save", "", "--appendonly", "no"]
        for module in self._spec.modules:
            args += ["--loadmodule", str(module)]
        args += self._extra_args
        return args

    def _launch(self) -> None:
        """Launch the process, its output going to a file in the data directory."""
        data_dir = self._ensure_data_dir()
        log_path = data_dir / LOG_FILE
        output_path = data_dir / OUTPUT_FILE
        self._log_offset = _file_size(log_path)
        self._output_offset = _file_size(output_path)
        command = self._command(data_dir)
        logger.debug("launching %s", subprocess.list2cmdline(command))
        self._output = output_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                command,
                cwd=data_dir,
                env=self._spec.environ(),
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        except OSError as exc:
            self._close_output()
            raise EmbeddedRedisError(
                f"cannot launch redis-server ({self._spec.name}) {self._spec.binary}: {exc}"
            ) from exc

    def _control_client(self, timeout: float) -> redis.Redis:
        """Return a client for start-up and shutdown: short timeouts, no retries."""
        return redis.Redis(
            host=self._host,
            port=self._port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            password=self._password,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
        )

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        """Wait until *our* process answers on the port, or raise with the log tail."""
        probe = self._control_client(timeout=1.0)
        try:
            while not self._answers(probe):
                self._check_alive()
                if time.monotonic() >= deadline:
                    diagnostics = self._diagnostics()
                    self._kill()
                    raise EmbeddedRedisError(
                        f"redis-server ({self._spec.name}) did not answer PING on "
                        f"{self.url} within {timeout:g}s\n{diagnostics}"
                    )
                time.sleep(_POLL_INTERVAL)
        finally:
            probe.close()

    def _answers(self, probe: redis.Redis) -> bool:
        """Return whether our process (not another one on the same port) answers PING."""
        proc = self._proc
        try:
            probe.ping()
            info = probe.info("server")
        except (redis.RedisError, OSError):
            return False  # not listening yet, still loading, or not a Redis server
        return proc is not None and str(info.get("process_id")) == str(proc.pid)

    def _check_alive(self) -> None:
        """Raise with the log tail if the process has exited."""
        status = self._proc.poll() if self._proc is not None else -1
        if status is None:
            return
        diagnostics = self._diagnostics()
        self._discard_process()
        message = (
            f"redis-server ({self._spec.name}) exited with status {status} while "
            f"starting on {self.url}\n{diagnostics}{libssl_hint(diagnostics)}"
        )
        if "Address already in use" in diagnostics:
            raise _PortInUseError(message)
        raise EmbeddedRedisError(message)

    def _diagnostics(self) -> str:
        """Return what the current launch wrote to its log file and to stdout/stderr."""
        if self._data_dir is None:
            return ""
        parts = []
        log = _read_tail(self._data_dir / LOG_FILE, self._log_offset)
        if log:
            parts.append(f"--- {self._data_dir / LOG_FILE} (tail) ---\n{log}")
        output = _read_tail(self._data_dir / OUTPUT_FILE, self._output_offset)
        if output:
            parts.append(f"--- stdout/stderr (tail) ---\n{output}")
        return "\n".join(parts) if parts else "(the server wrote nothing)"

    def _stop_process(self, timeout: float) -> None:
        """Shut the process down (gracefully if possible) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            client = self._control_client(timeout=timeout)
            try:
                # redis-py treats the dropped connection as success and raises otherwise.
                client.shutdown(nosave=not self._persistence)
            except redis.RedisError as exc:
                logger.warning(
                    "SHUTDOWN of redis-server (%s) on %s failed (%s); terminating it",
                    self._spec.name,
                    self.url,
                    exc,
                )
                proc.terminate()  # (Popen ignores an already-reaped process)
            finally:
                client.close()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("redis-server pid %d ignored SHUTDOWN/SIGTERM; killing it", proc.pid)
                self._kill()
        logger.info("stopped redis-server (%s) on %s", self._spec.name, self.url)
        self._discard_process()

    def _kill(self) -> None:
        """Kill the process and reap it."""
        proc = self._proc
        if proc is None:
            return
        proc.kill()
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            logger.error("redis-server pid %d survived SIGKILL", proc.pid)

    def _discard_process(self) -> None:
        """Forget the process (killing it if still alive) and close its output file."""
        if self._proc is not None and self._proc.poll() is None:
            self._kill()
        self._proc = None
        self._close_output()
        with _live_lock:
            _live_servers.discard(self)

    def _remove_temp_dir(self) -> None:
        """Remove the temporary data directory, if one was created."""
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None
            self._data_dir = None

    def _close_output(self) -> None:
        """Close the file receiving the process's output."""
        if self._output is not None:
            self._output.close()
            self._output = None
