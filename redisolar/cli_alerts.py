"""``redisolar alerts``: manage alert rules, list alerts, run one evaluation pass (docs/alerts.md).

``alerts rules add`` takes the rule's fields as options and validates them with the API's schema
(:class:`~redisolar.alerts.rules.RuleSchema`): one validator for both.
"""

from __future__ import annotations

import json
from typing import Any

import click

from redisolar.alerts import service
from redisolar.alerts.rules import KINDS, METRICS, OPERATORS, load_rule
from redisolar.cli import CliContext, _friendly_errors, pass_cli


@click.group("alerts")
def alerts() -> None:
    """Alert rules and alerts."""


@alerts.group("rules")
def rules() -> None:
    """List, add and delete alert rules."""


@rules.command("list")
@pass_cli
def list_rules(cli: CliContext) -> None:
    """Every rule, one a line."""
    found = service.list_rules(cli.services())
    if not found:
        click.echo("No alert rules.")
    for rule in found:
        where = f"site {rule['site_id']}" if rule["site_id"] is not None else "every site"
        state = "" if rule["enabled"] else " (disabled)"
        click.echo(f"{rule['id']}: {rule['kind']} at {where}: {rule['description']}{state}")


@rules.command("add")
@click.option("--kind", type=click.Choice(KINDS), required=True)
@click.option("--id", "rule_id", default=None, help="The rule's id (chosen when not given).")
@click.option("--site", "site_id", type=int, default=None, help="Only this site (default: every site).")
@click.option("--minutes", type=float, default=None, help="offline: minutes without a reading.")
@click.option("--window-minutes", type=int, default=None, help="daylight, underperformance: the window.")
@click.option("--percent", type=float, default=None, help="underperformance: alert below this %.")
@click.option("--radius-km", type=float, default=None, help="underperformance: the neighbours' radius.")
@click.option("--metric", type=click.Choice(METRICS), default=None, help="threshold: the metric.")
@click.option("--op", type=click.Choice(OPERATORS), default=None, help="threshold: the comparison.")
@click.option("--value", type=float, default=None, help="threshold: the limit.")
@click.option("--disabled", is_flag=True, help="Store it disabled.")
@pass_cli
def add_rule(cli: CliContext, rule_id: str | None, disabled: bool, **options: Any) -> None:
    """Add a rule."""
    raw = {k: v for k, v in options.items() if v is not None}
    if rule_id is not None:
        raw["id"] = rule_id
    raw["enabled"] = not disabled
    with _friendly_errors():
        stored = service.create_rule(cli.services(), load_rule(raw))
    click.echo(f"Added {stored['id']}: {stored['description']}")


@rules.command("delete")
@click.argument("rule_id")
@pass_cli
def delete_rule(cli: CliContext, rule_id: str) -> None:
    """Delete a rule (its open alerts resolve at the next pass)."""
    with _friendly_errors():
        service.rules(cli.services()).delete(rule_id)
    click.echo(f"Deleted {rule_id}")


@alerts.command("list")
@click.option("--state", type=click.Choice(service.STATES), default=None)
@click.option("--site", "site_id", type=int, default=None)
@click.option("--limit", type=click.IntRange(1, service.MAX_LIMIT), default=100)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@pass_cli
def list_alerts(cli: CliContext, state: str | None, site_id: int | None, limit: int, as_json: bool) -> None:
    """Alerts: the fleet's open ones by default."""
    with _friendly_errors():
        page, _ = service.list_alerts(cli.services(), state, site_id, limit, 0)
    if not page and not as_json:
        click.echo("No alerts.")
    for alert in page:
        if as_json:
            click.echo(json.dumps(alert, separators=(",", ":")))
        else:
            until = f" until {alert['resolved_at']}" if alert["resolved_at"] else ""
            click.echo(f"{alert['id']} site {alert['site_id']} {alert['kind']} {alert['state']} "
                       f"since {alert['opened_at']}{until}: {alert['message']}")  # fmt: skip


@alerts.command("evaluate")
@pass_cli
def evaluate(cli: CliContext) -> None:
    """Run one evaluation pass now."""
    with _friendly_errors():
        report = service.evaluate(cli.services())
    if report is None:
        click.echo("Another process is evaluating; nothing done.")
        return
    click.echo(f"{report.sites} sites: {report.opened} opened, {report.resolved} resolved, "
               f"{report.still_open} open ({report.seconds:.3f} s)")  # fmt: skip
