"""The multiprocess directory of :mod:`redisolar.metrics`, kept apart from it: prometheus_client picks
its mode when it is first imported, so ``redisolar serve`` must set the directory before anything
imports the client, and this module imports nothing of it at import time.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess directory (set by ``redisolar serve``, or by the operator)."""


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """The multiprocess directory for a server's lifetime, set before it forks: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` if set (kept as it is: empty it between runs), else a new private
    one, removed on the way out. Raises RuntimeError if ``prometheus_client`` is imported already
    (its metrics would be this process's alone, silently)."""
    if ENV_DIR in os.environ:
        yield os.environ[ENV_DIR]
        return
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    path = tempfile.mkdtemp(prefix="redisolar-metrics-")
    os.environ[ENV_DIR] = path
    try:
        yield path
    finally:
        os.environ.pop(ENV_DIR, None)
        shutil.rmtree(path, ignore_errors=True)


def mark_dead(pid: int | None) -> None:
    """Tell the multiprocess files that worker ``pid`` is gone: its live gauges go, its counters keep
    counting in the totals (nothing outside multiprocess mode)."""
    if pid is None or not os.environ.get(ENV_DIR):
        return
    from prometheus_client import multiprocess  # (the directory is set by now)

    multiprocess.mark_process_dead(pid)
