"""Alert rules: their kinds, their one validator (:class:`RuleSchema`, used by the API and the CLI),
and their storage, one hash ``alerts:{alerts}:rules`` (rule id -> JSON).

A rule is fleet-wide (``site_id`` null: the default of every site) or for one site. A site's own rule
of a kind replaces the fleet-wide rules of that kind at that site (for thresholds: of that kind *and*
metric), so an owner can loosen or tighten one site without touching the fleet. Rules are few and
changed by admins: the evaluator reads the whole hash once per pass.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from redisolar.dao.key_manager import KeyManager
from redisolar.errors import InvalidInput, RediSolarError
from redisolar.models.site import MAX_SITE_ID

KINDS = ("offline", "daylight", "underperformance", "threshold")
OPERATORS = (">", ">=", "<", "<=")
METRICS = ("wh_generated", "wh_used", "temp_c", "net_generation")
MAX_RULES = 1000
RULE_ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,39}"


class RuleNotFound(RediSolarError, LookupError):
    """No rule has that id (404)."""

    status = 404

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"No alert rule {rule_id!r}", {"rule_id": rule_id[:40]})


@dataclass(frozen=True)
class Rule:
    """One rule. Parameters a kind does not use are ignored (and kept as given)."""

    id: str
    kind: str
    site_id: int | None = None
    """None: a fleet-wide default."""
    enabled: bool = True
    minutes: float | None = None
    """offline: minutes without a reading; None: 3 × the site's usual interval, at least 15."""
    window_minutes: int = 60
    """daylight, underperformance: the window summed, ending now."""
    near_zero_wh_per_kw: float = 5.0
    """daylight: Wh per kWp per hour of the window at or below which generation counts as none."""
    percent: float = 50.0
    """underperformance: alert below this % of the clear-sky expectation and of the neighbours' yield."""
    radius_km: float = 50.0
    """underperformance: how far the neighbours compared with may be."""
    metric: str | None = None
    op: str | None = None
    value: float | None = None
    """threshold: alert while the latest ``metric`` ``op`` ``value`` (e.g. temp_c > 70)."""

    @property
    def scope(self) -> str:
        """What a site's own rule replaces of the fleet-wide ones: the kind (and metric)."""
        return f"threshold:{self.metric}" if self.kind == "threshold" else self.kind

    def describe(self) -> str:
        """A short human description."""
        if self.kind == "threshold":
            return f"{self.metric} {self.op} {self.value:g}"
        if self.kind == "offline":
            return (
                f"no reading for {self.minutes:g} min"
                if self.minutes
                else "no reading for 3x the usual interval"
            )
        if self.kind == "daylight":
            return f"no generation in daylight over {self.window_minutes} min"
        return f"below {self.percent:g} % of clear sky and neighbours within {self.radius_km:g} km"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_RULES = (
    Rule("offline", "offline"),
    Rule("daylight", "daylight", window_minutes=60),
)
"""Fleet-wide rules a new deployment starts with: silent sites and dead inverters need no tuning;
underperformance and thresholds depend on the fleet, so an admin adds them."""


class RuleSchema(Schema):
    """A rule as written by an admin (POST; PUT replaces every field but the id)."""

    id = fields.String(
        validate=validate.Regexp(f"^{RULE_ID_PATTERN}$"),
        metadata={"description": "Chosen when not given"},
    )
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    site_id = fields.Integer(
        strict=True, allow_none=True, load_default=None, validate=validate.Range(1, MAX_SITE_ID),
        metadata={"description": "The site it applies to; null: every site without its own rule of the kind"},
    )  # fmt: skip
    enabled = fields.Boolean(load_default=True)
    minutes = fields.Float(
        allow_none=True, load_default=None, validate=validate.Range(1, 60 * 24 * 30),
        metadata={"description": "offline: minutes without a reading (null: 3x the usual interval, >= 15)"},
    )  # fmt: skip
    window_minutes = fields.Integer(strict=True, load_default=60, validate=validate.Range(15, 24 * 60))
    near_zero_wh_per_kw = fields.Float(load_default=5.0, validate=validate.Range(0, 1000))
    percent = fields.Float(load_default=50.0, validate=validate.Range(1, 100))
    radius_km = fields.Float(load_default=50.0, validate=validate.Range(1, 500))
    metric = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(METRICS))
    op = fields.String(allow_none=True, load_default=None, validate=validate.OneOf(OPERATORS))
    value = fields.Float(allow_none=True, load_default=None, validate=validate.Range(-1e12, 1e12))

    @validates_schema
    def _threshold_complete(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("kind") == "threshold":
            missing = [name for name in ("metric", "op", "value") if data.get(name) is None]
            if missing:
                raise ValidationError({name: ["Required by a threshold rule."] for name in missing})


class RuleOutSchema(RuleSchema):
    """A stored rule."""

    id = fields.String(required=True)
    description = fields.String(required=True)


def rule_from_input(data: dict[str, Any], rule_id: str | None = None) -> Rule:
    """A :class:`Rule` from :class:`RuleSchema`'s loaded ``data`` (a new id unless given)."""
    chosen = rule_id or data.get("id") or f"r{secrets.token_hex(4)}"
    return Rule(**{**{k: v for k, v in data.items() if k != "id"}, "id": chosen})


def load_rule(raw: dict[str, Any]) -> Rule:
    """Validate ``raw`` (a rule as JSON) with :class:`RuleSchema`; :class:`InvalidInput` if bad."""
    try:
        return rule_from_input(RuleSchema().load(raw))
    except ValidationError as exc:
        raise InvalidInput("Invalid alert rule", exc.messages) from None


def rule_out(rule: Rule) -> dict[str, Any]:
    """A rule as the API and the CLI show it."""
    return {**rule.to_json(), "description": rule.describe()}


class RuleStore:
    """The rules' hash."""

    def __init__(self, client: redis.Redis, keys: KeyManager) -> None:
        self.redis = client
        self.key = keys.alert_rules_key()
        self.defaults_key = keys.alert_defaults_key()

    def all(self) -> list[Rule]:
        """Every rule, by id."""
        stored = self.redis.hgetall(self.key)
        return sorted((_decode(v) for v in stored.values()), key=lambda r: r.id)

    def get(self, rule_id: str) -> Rule:
        raw = self.redis.hget(self.key, rule_id)
        if raw is None:
            raise RuleNotFound(rule_id)
        return _decode(raw)

    def put(self, rule: Rule, *, create: bool) -> Rule:
        """Store ``rule``: ``create`` refuses an existing id (409) and more than :data:`MAX_RULES`;
        otherwise the id must exist (404)."""
        exists = bool(self.redis.hexists(self.key, rule.id))
        if create and exists:
            raise RuleExists(rule.id)
        if not create and not exists:
            raise RuleNotFound(rule.id)
        if create and self.redis.hlen(self.key) >= MAX_RULES:
            raise InvalidInput(f"At most {MAX_RULES} alert rules")
        self.redis.hset(self.key, rule.id, json.dumps(rule.to_json()))
        _changed()
        return rule

    def ensure_defaults(self) -> int:
        """Store :data:`DEFAULT_RULES` the first time a deployment runs its evaluator (once: deleting
        one later keeps it deleted). Returns how many were stored."""
        if not self.redis.set(self.defaults_key, "1", nx=True):
            return 0
        stored = sum(int(self.redis.hsetnx(self.key, r.id, json.dumps(r.to_json()))) for r in DEFAULT_RULES)
        _changed()
        return stored

    def delete(self, rule_id: str) -> None:
        if not self.redis.hdel(self.key, rule_id):
            raise RuleNotFound(rule_id)
        _changed()


class RuleExists(RediSolarError):
    """A rule with that id exists (409)."""

    status = 409

    def __init__(self, rule_id: str) -> None:
        super().__init__(f"An alert rule {rule_id!r} exists", {"rule_id": rule_id})


_generation = [0]
"""How many times this process changed the rules: its ingest-time rule caches
(:mod:`redisolar.alerts.at_ingest`) read them again when it moved."""


def _changed() -> None:
    _generation[0] += 1


def generation() -> int:
    """This process's count of rule changes (see :data:`_generation`)."""
    return _generation[0]


def _decode(raw: bytes | str) -> Rule:
    return Rule(**json.loads(raw))


def rules_for_site(rules: list[Rule], site_id: int) -> list[Rule]:
    """The enabled rules that apply at ``site_id``: its own, and the fleet-wide ones of the scopes it
    has none of."""
    own = [r for r in rules if r.enabled and r.site_id == site_id]
    scopes = {r.scope for r in own}
    return own + [r for r in rules if r.enabled and r.site_id is None and r.scope not in scopes]


__all__ = ["KINDS", "Rule", "RuleExists", "RuleNotFound", "RuleSchema", "RuleStore", "replace"]
