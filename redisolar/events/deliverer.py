"""The webhook deliverer: reads ``events:{events}:notify`` through the consumer group ``deliverers`` and
POSTs each event to every webhook that wants its kind.

- Where it runs: one per server, with the reconciler (``redisolar serve`` starts it in Granian's main
  process, or under gunicorn in the worker that hosts the reconciler: :mod:`redisolar.events.background`).
  The consumer group makes more than one safe: an entry goes to one consumer, and one that died with
  entries unacknowledged has them claimed by another after :data:`CLAIM_IDLE_MS`.
- A delivery: ``POST`` of ``{"id", "event_id", "kind", "created", "data"}`` as JSON, signed
  (:mod:`redisolar.events.signing`), with ``X-RediSolar-Event`` and ``X-RediSolar-Delivery``; 2xx is
  delivered. Redirects are not followed (a 3xx is a failure: deliveries go only to the registered URL)
  and no proxy from the environment is used. 5xx, 429, a timeout or a refused connection is retried
  with exponential backoff (:attr:`Deliverer.base_delay` x 2^(attempt-1): 10 s, 20 s, 40 s, ... up to
  :attr:`Deliverer.max_attempts` attempts, ~10 minutes with the defaults); any other status is final.
  Every attempt goes to the webhook's delivery log. Retries wait in ``webhooks:{webhooks}:retry``,
  claimed with ``ZREM`` (whoever removes it sends it).
- An entry is acknowledged once each webhook's first attempt is made (sent or scheduled for a retry).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, cast

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.events import signing
from redisolar.events.stream import Event, EventKeys, as_events
from redisolar.events.webhooks import Webhook, WebhookNotFound, WebhookStore

log = logging.getLogger(__name__)

GROUP = "deliverers"
CLAIM_IDLE_MS = 60_000
BATCH = 100


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx becomes an HTTPError: a failed delivery


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status or an error, and whether it may be retried."""

    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500 or self.status == 429


class Deliverer:
    """Delivers the notify stream's events to the webhooks (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeyManager,
        *,
        timeout: float = 5.0,
        max_attempts: int = 6,
        base_delay: float = 10.0,
    ) -> None:
        self.redis = client
        self.stream = EventKeys.of(keys).notify
        self.store = WebhookStore(client, keys)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self._opener = _opener()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the stream ------------------------------------------------------------------------------
    def ensure_group(self) -> None:
        """Create the consumer group (at the stream's start, the stream made if missing) once."""
        try:
            self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def poll(self, block_ms: int | None = None, now: float | None = None) -> int:
        """Deliver the events not yet taken by any consumer (and those a dead consumer left); waits up
        to ``block_ms`` for one (None: not at all). Returns how many events were handled."""
        self.ensure_group()
        claimed = self.redis.xautoclaim(self.stream, GROUP, self.consumer, CLAIM_IDLE_MS, "0-0", count=BATCH)
        events = as_events(cast(list[Any], claimed)[1] if claimed else [])
        reply = self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=BATCH, block=block_ms)
        for _, entries in cast(list[Any], reply or []):
            events += as_events(entries)
        for event in events:
            self.deliver_event(event, now)
            self.redis.xack(self.stream, GROUP, event.id)
        return len(events)

    def deliver_event(self, event: Event, now: float | None = None) -> None:
        """The first attempt of ``event`` to every webhook that wants its kind."""
        body = {
            "id": secrets.token_hex(8),
            "event_id": event.id,
            "kind": event.kind,
            "created": int(event.id.split("-")[0]),
            "data": event.data,
        }
        for hook in self.store.all():
            if hook.wants(event.kind):
                self.attempt(hook, {**body, "id": f"{body['id']}-{hook.id}"}, 1, now)

    # -- one attempt -------------------------------------------------------------------------------
    def attempt(self, hook: Webhook, body: dict[str, Any], attempt: int, now: float | None = None) -> Outcome:
        """POST ``body`` to ``hook``, log the attempt, schedule a retry if it may be retried."""
        when = time.time() if now is None else now
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        outcome = self.post(hook, body, payload, int(when))
        retry_at = None
        if not outcome.delivered and outcome.retryable and attempt < self.max_attempts:
            retry_at = when + self.base_delay * 2 ** (attempt - 1)
            job = {"webhook": hook.id, "body": body, "attempt": attempt + 1}
            self.redis.zadd(self.store.retry_key, {json.dumps(job, separators=(",", ":")): retry_at * 1000})
        state = "delivered" if outcome.delivered else "retrying" if retry_at is not None else "failed"
        record = {
            "delivery": body["id"],
            "event_id": body["event_id"],
            "kind": body["kind"],
            "attempt": attempt,
            "at": int(when * 1000),
            "state": state,
            "http_status": outcome.status,
            "error": outcome.error,
            "next_attempt": None if retry_at is None else int(retry_at * 1000),
        }
        self.store.log(hook.id, record)
        return outcome

    def post(self, hook: Webhook, body: dict[str, Any], payload: bytes, timestamp: int) -> Outcome:
        """One signed POST to the webhook's URL (no redirects, no proxy)."""
        request = urllib.request.Request(hook.url, data=payload, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", "RediSolar-Webhooks/1")
        request.add_header(signing.HEADER, signing.header(hook.secret, timestamp, payload))
        request.add_header("X-RediSolar-Event", str(body["kind"]))
        request.add_header("X-RediSolar-Delivery", str(body["id"]))
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return Outcome(int(response.status), None)
        except urllib.error.HTTPError as exc:
            return Outcome(int(exc.code), None)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Outcome(None, type(reason).__name__ if not isinstance(reason, str) else reason)

    # -- retries -------------------------------------------------------------------------------------
    def retry_due(self, now: float | None = None) -> int:
        """Send the retries that are due (each claimed by ``ZREM``: one sender); returns how many."""
        when = time.time() if now is None else now
        due = cast(list[str], self.redis.zrangebyscore(self.store.retry_key, "-inf", when * 1000, 0, BATCH))
        sent = 0
        for text in due:
            if not self.redis.zrem(self.store.retry_key, text):
                continue  # another deliverer took it
            job = json.loads(text)
            try:
                hook = self.store.get(job["webhook"])
            except WebhookNotFound:
                continue  # deleted since
            self.attempt(hook, job["body"], int(job["attempt"]), when)
            sent += 1
        return sent

    # -- the thread ----------------------------------------------------------------------------------
    def run_once(self, block_ms: int | None = None) -> None:
        """One pass: due retries, then new events."""
        self.retry_due()
        self.poll(block_ms)

    def start(self, block_s: float = 1.0) -> None:
        """Deliver in a daemon thread until :meth:`stop`."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(block_s,), name="webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread after its current pass (a ``poll`` blocks at most ``block_s``), waiting for
        it at most ``timeout`` seconds (None: until it ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the webhook deliverer did not stop within %g s: leaving it", timeout)
            self._thread = None

    def _loop(self, block_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(int(block_s * 1000))
            except redis.RedisError as exc:
                log.warning("webhook deliverer: %s; again in %g s", exc.__class__.__name__, block_s)
                self._stop.wait(block_s)
