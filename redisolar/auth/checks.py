"""The request hooks of the trust boundary (see :mod:`redisolar.auth`). Under ``AUTH_MODE=auto``,
whether any key exists comes from :class:`~redisolar.auth.presence.KeyPresence` (what this process
last knew, see there), not from a registry read on every request."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, cast
from urllib.parse import urlsplit

import flask
from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from redisolar.api.errors import error_response
from redisolar.auth.limits import RateDecision, RatePolicy, parse_policy
from redisolar.auth.policy import SAFE_METHODS, Need, need_for, scope_allows
from redisolar.dao.keys_dao import ApiKeyDao

log = logging.getLogger(__name__)

FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""Content types a cross-site HTML form (or a no-CORS fetch) can send."""
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
FIRST_KEY_HINT = (
    "No API key exists yet, so only requests from the server's own machine are served without one. "
    "Create the first key there: `redisolar keys create --scope admin`"
)
KEY_REQUIRED = "An API key is required: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
KEY_INVALID = "The API key is not valid (unknown or revoked)"
KEY_EXPIRED = "The API key has expired"


@dataclass(frozen=True)
class AuthSettings:
    """The app's auth configuration, parsed once."""

    mode: str
    policies: dict[str, RatePolicy | None]
    trusted_proxies: int


def init_auth(app: Flask) -> None:
    """Install the checks on ``app`` (and ProxyFix when ``TRUSTED_PROXIES`` is set)."""
    settings = AuthSettings(
        mode=app.config["AUTH_MODE"],
        policies={
            "writes": parse_policy("writes", app.config["RATE_LIMIT_WRITES"]),
            "reads": parse_policy("reads", app.config["RATE_LIMIT_READS"]),
        },
        trusted_proxies=app.config["TRUSTED_PROXIES"],
    )
    app.extensions["redisolar.auth"] = settings
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    if settings.mode == "off":
        log.warning("AUTH_MODE=off: no API keys are checked; anyone who can reach the port can change data")
    app.before_request(authorize)
    app.after_request(_rate_headers)


def _settings() -> AuthSettings:
    return cast(AuthSettings, flask.current_app.extensions["redisolar.auth"])


def _dao() -> ApiKeyDao:
    return cast(ApiKeyDao, flask.current_app.extensions["redisolar"].api_keys)


def authorize() -> Response | None:
    """``before_request``: None to go on, or the 401/403/415/429 answer."""
    need = need_for(request.endpoint, request.method)
    if need is Need.PUBLIC:
        return None
    settings = _settings()
    budget = "reads" if request.method in SAFE_METHODS else "writes"
    policy = settings.policies[budget]
    secret = presented_secret()
    if secret is not None and settings.mode != "off":
        return _with_key(secret, need, budget, policy, settings.mode)
    return _without_key(need, budget, policy, settings.mode)


def presented_secret() -> str | None:
    """The key of the request: ``Authorization: Bearer <key>``, else ``X-API-Key``; None if neither."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("X-API-Key", "").strip()
    return key or None


def _with_key(secret: str, need: Need, budget: str, policy: RatePolicy | None, mode: str) -> Response | None:
    site_id = (request.view_args or {}).get("site_id") if need is Need.WRITE_SITE else None
    prefetch = _site_to_prefetch()
    check = _dao().check_key(secret, budget, policy, site_id, prefetch_site=prefetch)
    _remember_site(prefetch, check.site_exists)
    if check.verdict != "ok":
        return _unauthorized(KEY_EXPIRED if check.verdict == "expired" else KEY_INVALID, invalid=True)
    g.rate = check.rate
    if check.rate is not None and not check.rate.allowed:
        return _too_many(check.rate)
    if not scope_allows(check.scope, need, check.site_ok, open_reads=mode != "required"):
        return _forbidden(check.scope, need)
    return None


def _without_key(need: Need, budget: str, policy: RatePolicy | None, mode: str) -> Response | None:
    """A request without a key: its address's budget and, under ``auto``, whether any key exists,
    which the process remembers once seen (:mod:`redisolar.auth.presence`: the registry re-read every
    5 s, its last answer kept while it cannot be read), so a failing-over registry slot does not
    turn these requests into 503s and most cost no registry read."""
    prefetch = _site_to_prefetch()
    address = _dao().check_address(
        client_address(), budget, policy, want_exists=mode == "auto", prefetch_site=prefetch
    )
    rate, keys_exist = address.rate, address.keys_exist
    _remember_site(prefetch, address.site_exists)
    g.rate = rate
    if mode == "auto" and not keys_exist:
        if not is_local_request():
            return _unauthorized(FIRST_KEY_HINT)
    elif mode != "off" and not (need is Need.READ and mode != "required"):
        return _unauthorized(KEY_REQUIRED)
    if rate is not None and not rate.allowed:
        return _too_many(rate)
    if request.method not in SAFE_METHODS:
        return cross_site_refusal()
    return None


SITE_READ_IN_DATA_ROUND_TRIP = frozenset(
    {"analytics.get_latest_readings", "analytics.get_site_readings", "analytics.get_site_analytics"}
)
"""The analytics views that learn whether their site exists from their own data round trip (which
reads the site's zone from its hash): nothing to prefetch for them."""


def _site_to_prefetch() -> int | None:
    """The site whose existence the other analytics views check first (``_require_site``): read in
    the check's round trip rather than in one of its own."""
    if request.blueprint != "analytics" or request.method not in SAFE_METHODS:
        return None  # the readings POSTs: the write script itself refuses a missing site
    if request.endpoint in SITE_READ_IN_DATA_ROUND_TRIP:
        return None
    site_id = (request.view_args or {}).get("site_id")
    return site_id if isinstance(site_id, int) else None


def _remember_site(site_id: int | None, exists: bool | None) -> None:
    if exists is not None:
        g.site_exists = (site_id, exists)


def known_site_existence(site_id: int) -> bool | None:
    """Whether ``site_id`` exists, if the check of this request read it (else None)."""
    known = g.get("site_exists")
    return known[1] if known is not None and known[0] == site_id else None


def may_see_details() -> bool:
    """Whether the current request may see what a public route (``/health``, ``/``) tells beyond
    its status: always, unless ``AUTH_MODE=required``; then with a valid read or admin key."""
    if _settings().mode != "required":
        return True
    secret = presented_secret()
    if secret is None:
        return False
    check = _dao().check_key(secret, "reads", None)
    return check.verdict == "ok" and check.scope in ("read", "admin")


def cross_site_refusal() -> Response | None:
    """Refuse a state-changing request without a key that a page of another site could have sent:
    a form's content type (415), or a browser's cross-site marks (403)."""
    if request.mimetype in FORM_TYPES:
        return error_response(415, f"A request that changes data must send JSON, not {request.mimetype}")
    origin = request.headers.get("Origin")
    cross = request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site")
    if cross or (origin is not None and urlsplit(origin).netloc != request.host):
        return error_response(403, "Cross-site requests may not change data without an API key")
    return None


def client_address() -> str:
    """The client's address for its rate budget (an IPv6 client's /64 network)."""
    return _peer(request.remote_addr or "unknown").budget


class _Peer(NamedTuple):
    budget: str
    """The address a rate budget is kept for."""
    loopback: bool


@lru_cache(maxsize=4096)
def _peer(address: str) -> _Peer:
    """What a peer address means here, worked out once per address (parsing it is a cost per
    request otherwise): its budget's address and whether it is a loopback address."""
    try:
        ip = _unmapped(ipaddress.ip_address(address))
    except ValueError:
        return _Peer(address, False)
    if ip.version == 6:
        return _Peer(str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address), ip.is_loopback)
    return _Peer(str(ip), ip.is_loopback)


def _unmapped(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it maps."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


def is_local_request() -> bool:
    """Whether the request comes from this machine, directly: a loopback peer, a local host name
    (not a DNS name rebound to 127.0.0.1), and, unless proxies are trusted, no forwarding headers
    (a reverse proxy on this machine forwards other machines' requests)."""
    req: flask.Request = request._get_current_object()  # type: ignore[attr-defined]
    if not _peer(req.remote_addr or "").loopback:
        return False
    if not _settings().trusted_proxies and ("Forwarded" in req.headers or "X-Forwarded-For" in req.headers):
        return False
    return _is_local_host(req.host)


@lru_cache(maxsize=256)
def _is_local_host(host_header: str) -> bool:
    """Whether a Host header names this machine (a local name, not a DNS name)."""
    host = urlsplit(f"//{host_header}").hostname or ""
    return host in LOCAL_HOSTS or host.endswith(".localhost") or host.startswith("127.")


def _unauthorized(message: str, *, invalid: bool = False) -> Response:
    response = error_response(401, message)
    challenge = 'Bearer realm="RediSolar"'
    response.headers["WWW-Authenticate"] = challenge + (', error="invalid_token"' if invalid else "")
    return response


def _forbidden(scope: str, need: Need) -> Response:
    what = {
        Need.READ: "read data (use a read key)",
        Need.WRITE_SITE: "post readings of this site",
        Need.ADMIN: "do this (it needs an admin key)",
    }.get(need, "do this")
    return error_response(403, f"This {scope} key may not {what}", {"scope": scope})


def _too_many(rate: RateDecision) -> Response:
    return error_response(
        429,
        f"Too many requests: the {rate.policy.name} budget allows {rate.policy.count} per "
        f"{rate.policy.window} s; retry after {rate.retry_after} s",
    )


def _rate_headers(response: Response) -> Response:
    """``after_request``: the RateLimit header fields on every limited response."""
    rate: RateDecision | None = g.get("rate")
    if rate is not None:
        response.headers.update(rate.headers())
    return response


__all__ = [
    "authorize",
    "init_auth",
    "is_local_request",
    "may_see_details",
    "presented_secret",
]
