"""What each route needs: nothing, a read, a write to one site's readings, or an admin.

The table is by endpoint (``blueprint.view``) and method, so the request hooks and the OpenAPI
document read the same rules.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Need(Enum):
    """What a request must be allowed to do."""

    PUBLIC = "public"  # health, index, documentation, the dashboard's pages and files
    READ = "read"  # every other GET (readings and their export, analytics, boards, ...)
    WRITE_SITE = "write"  # POST readings of the path's site
    ADMIN = "admin"  # sites, keys, webhooks, leaderboard reconciles, alert rules and evaluations


PUBLIC_ENDPOINTS = frozenset({"service.health", "service.index", "static"})
PUBLIC_PREFIXES = ("api-docs.", "swagger_ui_assets.", "web.")
WRITE_SITE_ENDPOINTS = frozenset({"analytics.add_meter_reading", "analytics.add_meter_readings_batch"})
ADMIN_PREFIXES = ("keys.", "alerts.rule_", "webhooks.")


@lru_cache(maxsize=1024)  # (asked on every request; a few endpoints × methods)
def need_for(endpoint: str | None, method: str) -> Need:
    """What a request to ``endpoint`` with ``method`` needs (PUBLIC when no route matched: the 404
    or 405 answers; and for OPTIONS, which only lists the methods)."""
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
        return Need.PUBLIC
    if method.upper() == "OPTIONS":  # Flask's automatic answer: the Allow header, no data
        return Need.PUBLIC
    if endpoint.startswith(ADMIN_PREFIXES):
        return Need.ADMIN
    if method.upper() in SAFE_METHODS:
        return Need.READ
    if endpoint in WRITE_SITE_ENDPOINTS:
        return Need.WRITE_SITE
    return Need.ADMIN


def scope_allows(scope: str, need: Need, site_ok: bool, *, open_reads: bool) -> bool:
    """Whether a valid key of ``scope`` may do what ``need`` says (``site_ok``: the key covers the
    request's site; ``open_reads``: reads need no key in this mode)."""
    if scope == "admin" or need is Need.PUBLIC:
        return True
    if need is Need.READ:
        return open_reads or scope == "read"
    if need is Need.WRITE_SITE:
        return scope == "write" and site_ok
    return False
