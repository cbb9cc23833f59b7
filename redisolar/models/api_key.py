"""API keys: who may call the API, and how a key's secret looks.

A key's secret is ``rsk_<id>_<43 random URL-safe characters>`` (256 random bits): the recognisable
prefix lets secret scanners find leaked keys, and the 12-hex-digit id inside it says which record to
check without a lookup table. Only the SHA-256 of the whole secret is stored: the secret has 256
random bits, so a fast hash is as safe as a slow one and costs nothing per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from redisolar.models.site import check_site_id, check_text

SCOPES = ("admin", "write", "read")
"""``admin``: everything. ``write``: POST readings to its sites. ``read``: every GET."""
SECRET_PREFIX = "rsk_"
MAX_SITES_PER_KEY = 10_000
KEY_ID_PATTERN = "[0-9a-f]{12}"
"""A key id: 12 lowercase hex digits (the routes' converter and the OpenAPI document use it too)."""
_KEY_ID = re.compile(f"^{KEY_ID_PATTERN}$")
_SECRET = re.compile(f"^rsk_({KEY_ID_PATTERN})_[A-Za-z0-9_-]{{43}}$")


def new_secret() -> tuple[str, str]:
    """A new key id and its secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"{SECRET_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def is_key_id(text: str) -> bool:
    """Whether ``text`` is shaped like a key id."""
    return _KEY_ID.match(text) is not None


def key_id_of(secret: str) -> str | None:
    """The key id inside ``secret``, or None if it is not shaped like a key."""
    match = _SECRET.match(secret)
    return match[1] if match else None


def secret_hash(secret: str) -> str:
    """What is stored of a secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One API key's metadata (never its secret)."""

    id: str
    scope: str
    name: str = ""
    sites: tuple[int, ...] = field(default_factory=tuple)
    all_sites: bool = False
    created: datetime | None = None
    expires: datetime | None = None
    last_used: datetime | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"Scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.name:
            check_text("Name", self.name, max_length=100)
        for site_id in self.sites:
            check_site_id(site_id)
        if len(self.sites) > MAX_SITES_PER_KEY:
            raise ValueError(f"A key may name at most {MAX_SITES_PER_KEY} sites (use all_sites)")
        if self.scope == "write" and not (self.sites or self.all_sites):
            raise ValueError("A write key needs at least one site, or all_sites")
        if self.scope != "write" and (self.sites or self.all_sites):
            raise ValueError(f"Only write keys are bound to sites; a {self.scope} key covers every site")

    def may_write(self, site_id: int) -> bool:
        """Whether this key may post readings of ``site_id``."""
        return self.scope == "admin" or (self.scope == "write" and (self.all_sites or site_id in self.sites))
