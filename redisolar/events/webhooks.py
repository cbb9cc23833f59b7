"""Registered webhooks, their secrets and delivery logs (one hash tag, ``{webhooks}``: a few admin-made
records, written per delivery, never per reading).

Keys (prefixed as every RediSolar key):

- hash ``webhooks:{webhooks}``: webhook id -> the webhook as JSON (url, kinds, secret, created);
- list ``webhooks:{webhooks}:log:ID``: the webhook's newest :data:`LOG_SIZE` delivery attempts, newest
  first (JSON);
- sorted set ``webhooks:{webhooks}:retry``: deliveries waiting for a retry, score = when (ms).

The secret: it must be usable to sign, so it is stored as it is (unlike API keys, of which only a hash
is kept). How it is protected: it is shown once, in the 201 of its registration, and never again (no
GET returns it, no log line carries it); it lives in Redis next to the data it signs, so whoever can
read that Redis can read it: Redis' own protections (ACL user and password, TLS, no public port) are
its protection. Rotating it is deleting the webhook and registering it again.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.errors import RediSolarError

LOG_SIZE = 100
"""Delivery attempts kept per webhook."""
MAX_WEBHOOKS = 100
MAX_URL = 2000
DEFAULT_KINDS = ("alert.opened", "alert.resolved")
WEBHOOK_ID = r"[0-9a-f]{12}"


class WebhookNotFound(RediSolarError):
    """No webhook has that id."""

    status = 404

    def __init__(self, webhook_id: str) -> None:
        super().__init__(f"webhook {webhook_id} not found")


@dataclass(frozen=True)
class Webhook:
    """A registered webhook."""

    id: str
    url: str
    secret: str
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))
    created: int = 0
    """Ms since the epoch."""

    def wants(self, kind: str) -> bool:
        """Whether events of ``kind`` go to this webhook."""
        return kind in self.kinds

    def public(self) -> dict[str, Any]:
        """Its fields without the secret."""
        return {"id": self.id, "url": self.url, "kinds": list(self.kinds), "created": self.created}


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be a webhook (None: it can): http(s), a host, no credentials, no fragment."""
    parts = urlsplit(url)
    if len(url) > MAX_URL:
        return f"at most {MAX_URL} characters"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "an http:// or https:// URL with a host"
    if parts.username or parts.password or parts.fragment:
        return "no user, password or #fragment"
    return None


class WebhookStore:
    """The webhooks of one deployment (its key prefix)."""

    def __init__(self, client: redis.Redis, keys: KeyManager) -> None:
        self.redis = client
        self.keys = keys

    @property
    def hooks_key(self) -> str:
        """Hash ``webhooks:{webhooks}``."""
        return self.keys.webhooks_key()

    def log_key(self, webhook_id: str) -> str:
        """List ``webhooks:{webhooks}:log:ID``."""
        return self.keys.webhook_log_key(webhook_id)

    @property
    def retry_key(self) -> str:
        """Sorted set ``webhooks:{webhooks}:retry``."""
        return self.keys.webhook_retry_key()

    def register(self, url: str, kinds: list[str]) -> Webhook:
        """Store a new webhook with a new secret (``whsec_`` and 43 random URL-safe characters)."""
        hook = Webhook(
            id=secrets.token_hex(6),
            url=url,
            secret="whsec_" + secrets.token_urlsafe(32),
            kinds=sorted(set(kinds)),
            created=int(time.time() * 1000),
        )
        self.redis.hset(self.hooks_key, hook.id, json.dumps(asdict(hook)))
        return hook

    def all(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        stored = cast(dict[str, str], self.redis.hgetall(self.hooks_key))
        hooks = [Webhook(**json.loads(text)) for text in stored.values()]
        return sorted(hooks, key=lambda hook: (hook.created, hook.id))

    def count(self) -> int:
        """How many webhooks are registered."""
        return int(cast(int, self.redis.hlen(self.hooks_key)))

    def get(self, webhook_id: str) -> Webhook:
        """One webhook (:class:`WebhookNotFound`)."""
        text = cast(str | None, self.redis.hget(self.hooks_key, webhook_id))
        if text is None:
            raise WebhookNotFound(webhook_id)
        return Webhook(**json.loads(text))

    def delete(self, webhook_id: str) -> None:
        """Delete a webhook and its log (:class:`WebhookNotFound`); its pending retries are dropped
        when they come due."""
        if not self.redis.hdel(self.hooks_key, webhook_id):
            raise WebhookNotFound(webhook_id)
        self.redis.delete(self.log_key(webhook_id))

    def log(self, webhook_id: str, record: dict[str, Any]) -> None:
        """Add a delivery attempt to the webhook's log (the newest :data:`LOG_SIZE` kept)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.lpush(self.log_key(webhook_id), json.dumps(record, separators=(",", ":")))
        pipe.ltrim(self.log_key(webhook_id), 0, LOG_SIZE - 1)
        pipe.execute()

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        """The webhook's delivery attempts, newest first (:class:`WebhookNotFound`)."""
        self.get(webhook_id)
        texts = cast(list[str], self.redis.lrange(self.log_key(webhook_id), 0, -1))
        return [json.loads(text) for text in texts]
