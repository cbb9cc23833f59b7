"""Rough cost of the observability hooks (redisolar.api.observe, redisolar.metrics), per request and
per Redis round trip, in this process (no multiprocess directory: set PROMETHEUS_MULTIPROC_DIR to
time the memory-mapped values that `redisolar serve` uses).

    python -m bench.metrics_overhead
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask

from redisolar import metrics
from redisolar.api import observe

N = 20_000


def per_call(fn: Any, n: int = N) -> float:
    """Microseconds per call of ``fn``."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    app = Flask("bench")
    app.add_url_rule("/api/sites/<int:site_id>", "site", lambda site_id: "")
    with app.test_request_context("/api/sites/7", headers={"X-Request-ID": "abc"}):
        request_hooks = per_call(lambda: observe.finish_request(_start_and_response(app)))
    bare = per_call(lambda: None)
    timed = metrics._timed(lambda *a: None, None)
    redis_hook = per_call(lambda: timed("GET", "k")) - bare
    print(f"request hooks (id, metrics, access check): {request_hooks:.1f} µs per request")
    print(f"Redis round-trip timing: {redis_hook:.1f} µs per command or pipeline")


def _start_and_response(app: Flask) -> Any:
    observe.start_request()
    return app.response_class("")


if __name__ == "__main__":
    main()
