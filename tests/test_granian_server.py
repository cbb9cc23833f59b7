"""The pieces of the Granian server that run in a worker: counting requests in flight, the app loader."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from redisolar.granian_server import InFlight, WorkerApp
from redisolar.server import granian_workers


def slow_app(release: threading.Event) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        release.wait(5)
        return [b"ok"]

    return app


class Body:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"chunk"

    def close(self) -> None:
        self.closed = True


def test_a_request_is_in_flight_until_its_body_is_closed() -> None:
    body = Body()
    tracker = InFlight(lambda environ, start_response: body, graceful_timeout=1)
    response = tracker({}, lambda *args: None)
    assert not tracker.wait_idle(0.05), "the body is not closed yet"
    assert list(response) == [b"chunk"]
    response.close()  # type: ignore[attr-defined]
    assert body.closed and tracker.wait_idle(0)
    response.close()  # type: ignore[attr-defined]  # a second close counts nothing
    assert tracker.wait_idle(0)


def test_wait_idle_returns_when_the_last_request_ends() -> None:
    release = threading.Event()
    tracker = InFlight(slow_app(release), graceful_timeout=1)
    answers: list[Iterable[bytes]] = []
    caller = threading.Thread(target=lambda: answers.append(tracker({}, lambda *args: None)))
    caller.start()
    time.sleep(0.05)
    threading.Timer(0.1, release.set).start()
    assert not tracker.wait_idle(0.01)
    caller.join(5)
    answers[0].close()  # type: ignore[attr-defined]
    assert tracker.wait_idle(1)


def test_an_app_that_raises_is_not_left_in_flight() -> None:
    def broken(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raise RuntimeError("boom")

    tracker = InFlight(broken, graceful_timeout=1)
    with pytest.raises(RuntimeError):
        tracker({}, lambda *args: None)
    assert tracker.wait_idle(0)


def test_the_worker_app_loader_is_picklable_and_defaults_are_sane() -> None:
    import pickle

    loader = WorkerApp("dev", 20)
    assert pickle.loads(pickle.dumps(loader)) == loader
    assert granian_workers() >= 1
