"""``redisolar keys``: create, list and revoke API keys (docs/security.md).

``keys create`` prints the new key alone on the last line of standard output, so scripts can take it
with ``tail -n 1``; it is shown this once (only its hash is stored).
"""

from __future__ import annotations

from datetime import datetime

import click

from redisolar.cli import CliContext, _friendly_errors, pass_cli
from redisolar.models.api_key import SCOPES, ApiKey
from redisolar.services import keys as key_cases
from redisolar.services.keys import MAX_EXPIRES_DAYS


@click.group("keys")
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--scope", type=click.Choice(SCOPES), required=True, help="admin, write (to sites) or read.")
@click.option(
    "--site", "sites", type=click.IntRange(1), multiple=True, help="A site a write key may post to."
)
@click.option("--all-sites", is_flag=True, help="A write key for every site.")
@click.option("--name", default="", help="What the key is for.")
@click.option("--expires-days", type=click.FloatRange(0, MAX_EXPIRES_DAYS, min_open=True), default=None)
@pass_cli
def create(
    cli: CliContext,
    scope: str,
    sites: tuple[int, ...],
    all_sites: bool,
    name: str,
    expires_days: float | None,
) -> None:
    """Create a key; its secret is printed once, alone on the last line."""
    with _friendly_errors():
        key, secret = key_cases.create_api_key(
            cli.services(), scope, sites=sites, all_sites=all_sites, name=name, expires_days=expires_days
        )
    click.echo(f"Created {describe(key)}", err=False)
    click.echo("The key is shown this once; keep it secret. Send it as 'Authorization: Bearer <key>'.")
    click.echo(secret)


@keys.command("list")
@pass_cli
def list_keys(cli: CliContext) -> None:
    """List keys (never their secrets)."""
    found = key_cases.list_api_keys(cli.services())
    if not found:
        click.echo("No API keys.")
    for key in found:
        click.echo(describe(key))


@keys.command("revoke")
@click.argument("key_id")
@pass_cli
def revoke(cli: CliContext, key_id: str) -> None:
    """Revoke a key: every server refuses it from the next request on."""
    with _friendly_errors():
        key_cases.revoke_api_key(cli.services(), key_id)
    click.echo(f"Revoked key {key_id}")


def describe(key: ApiKey) -> str:
    """One line about a key."""
    sites = "all sites" if key.all_sites else ", ".join(map(str, key.sites))
    parts = [
        key.id,
        key.scope + (f" ({sites})" if key.scope == "write" else ""),
        repr(key.name) if key.name else "",
        f"created {_when(key.created)}",
        f"expires {_when(key.expires)}" if key.expires else "never expires",
        f"last used {_when(key.last_used)}" if key.last_used else "never used",
    ]
    return "  ".join(part for part in parts if part)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"
