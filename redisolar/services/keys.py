"""API keys: create (the secret shown once), list, look up and revoke them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from redisolar.errors import ApiKeyNotFound, InvalidInput
from redisolar.models.api_key import ApiKey

if TYPE_CHECKING:
    from redisolar.services import Services

MAX_EXPIRES_DAYS = 36_500


def create_api_key(
    services: Services,
    scope: str,
    *,
    sites: Iterable[int] = (),
    all_sites: bool = False,
    name: str = "",
    expires_days: float | None = None,
) -> tuple[ApiKey, str]:
    """A new API key and its secret (shown once; only its hash is stored). Raises
    :class:`InvalidInput` for a scope, sites or name that do not fit together."""
    try:
        key = ApiKey("0" * 12, scope, name, tuple(sites), all_sites)
    except ValueError as exc:
        raise InvalidInput(str(exc), {"_schema": [str(exc)]}) from None
    if expires_days is not None and not 0 < expires_days <= MAX_EXPIRES_DAYS:
        raise InvalidInput(f"expires_days must be between 0 and {MAX_EXPIRES_DAYS}")
    return services.api_keys.create(key, expires_days)


def list_api_keys(services: Services) -> list[ApiKey]:
    """Every key, oldest first (never their secrets)."""
    return services.api_keys.find_all()


def get_api_key(services: Services, key_id: str) -> ApiKey:
    """One key's metadata (``ApiKeyNotFound`` if there is none)."""
    key = services.api_keys.find(key_id)
    if key is None:
        raise ApiKeyNotFound(key_id)
    return key


def revoke_api_key(services: Services, key_id: str) -> None:
    """Revoke a key at once, in every process (``ApiKeyNotFound`` if there is none)."""
    if not services.api_keys.revoke(key_id):
        raise ApiKeyNotFound(key_id)
