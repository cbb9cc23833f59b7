"""Every Redis key RediSolar uses, in one place.

All keys start with the configured prefix (default ``ru102py-app:``). Every script touches one Redis
Cluster slot and declares every key it touches; keys that change together share a hash tag:

- ``{site:ID}``: every key of one site (hash, series, partitions, series meta), written atomically by
  one script per site;
- ``{sites}``: every fleet-wide site structure: the id set, the geo set, the state/city/postal sets,
  the capacity leaderboard and its running sum, the index records and the running totals. A site's
  write is its ``{site:ID}`` script, then one absolute, idempotent ``{sites}`` script
  (``sites_index.lua``; see :mod:`redisolar.dao.sites.store`);
- ``{lb:YYYY-MM-DD}``: one UTC day's generation/efficiency boards; ``{fh:HOUR}``: one hour's fleet
  rollup; ``{apikey:ID}``: one API key (its listing, ``apikeys``, is a separate call).

Why one ``{sites}`` slot (decided for the cluster layout): search intersects the index sets
(``SINTER``) and reads the capacity board and geo set in one pipeline, and a site's index entries,
board score, running sum and totals change together in one atomic script; all of that needs one slot,
and sharding the indexes would make every search a scatter-gather. The slot is written only when a site
is created, changed or deleted (never at ingest), so it is never the hot one: the per-reading hot
spots are the current ``{lb:DAY}`` and ``{fh:HOUR}`` slots, which every ingest batch writes. Its size
grows with the fleet: measured here (Redis 7.0, ``MEMORY USAGE`` of every ``{sites}`` key, 10,000 and
50,000 sites with coordinates, 50 states, ~2,000 cities and random postal codes) about 590 bytes per
site (the ids, geo, board, a ~100-byte record, the set entries; one set per distinct city and postal
code), against ~1,150 bytes per site hash and ~110 KB per site of 30 days of 5-minute readings spread
over all slots. So ``{sites}`` is the largest single slot as soon as a fleet has a few hundred sites
(a site slot holds one or a few sites' readings), and its node carries an extra ~59 MB at 10^5 sites,
~590 MB at 10^6 and ~5.9 GB at 10^7 (then a slot of its own node, or sharding the sets by state, is the
next step). Reads of it are per dashboard and per search, bounded per page.

Which per-reading keys are sharded, and why (``FLEET_SHARDS``, :attr:`KeyManager.fleet_shards`): every
reading of the fleet updates today's day boards (``lb_set.lua``), the current hour's fleet rollup
(``fleet_hour_set.lua``) and last-seen (``zset_add.lua``), each one slot, so each lands on one master
whatever the cluster's size. Measured (docs/capacity.md, server CPU per call on Redis Stack 7.4, one
reading per call): 48.9 us, 42.4 us and 30.6 us. At 5-minute readings, 10^7 sites are 33,333 readings/s:
163 %, 141 % and 102 % of one core on the master of those slots, more than a core can give; 10^6 sites
are 16 %, 14 % and 10 %. So these three are sharded: with ``FLEET_SHARDS`` = S > 1 a site's entries go
to shard ``site_id % S`` (tags ``{lb:DAY:k}``, ``{fh:HOUR:k}``, ``{ls:k}``) and S slots share the
writes (each 1/S of them); readers merge the S parts in one round trip (a top-N page reads N per shard
and merges, a rank sums the members ahead in each shard, totals add up). S = 1 (the default) keeps the
unsharded names. ``lb:days`` (the index of board days) was the fourth per-reading key (95 % of a core
at 10^7): it is no longer sharded but written only when a day's board is created (S times a day). The
``{sites}`` slot and the per-site ``{site:ID}`` slots are not written per reading by fleet-wide code.
Advice: S = 1 up to ~10^6 sites; at 10^7 sites S = 8 (each part at most 20 % of a core; S = 4: 41 %).
"""

from __future__ import annotations

from datetime import date

from redisolar.config import DEFAULT_KEY_PREFIX
from redisolar.models.api_key import is_key_id
from redisolar.models.site import MetricType, check_site_id

LEADERBOARD_TYPES = ("capacity", "generation", "efficiency")
MAX_FLEET_SHARDS = 256
"""The largest ``FLEET_SHARDS``: a reader reads every shard (a page costs N rows per shard)."""


class KeyManager:
    """Builds key names. Site ids are validated before they become key segments.

    ``fleet_shards`` (``FLEET_SHARDS``): in how many parts the per-reading fleet-wide keys are split
    (the day boards, the fleet hours, last-seen; see the module docstring). Their methods take a
    ``shard`` (0 .. fleet_shards - 1, :meth:`fleet_shard` of a site); with 1 the names are unsharded."""

    def __init__(self, key_prefix: str = DEFAULT_KEY_PREFIX, fleet_shards: int = 1) -> None:
        if isinstance(fleet_shards, bool) or not isinstance(fleet_shards, int):
            raise ValueError(f"fleet_shards must be an integer, got {fleet_shards!r}")
        if not 1 <= fleet_shards <= MAX_FLEET_SHARDS:
            raise ValueError(f"fleet_shards must be 1..{MAX_FLEET_SHARDS}, got {fleet_shards}")
        self.key_prefix = key_prefix
        self.fleet_shards = fleet_shards

    # -- fleet shards ------------------------------------------------------------------------------
    def fleet_shard(self, site_id: int) -> int:
        """The shard of a site's per-reading fleet-wide entries: ``site_id % fleet_shards``."""
        return check_site_id(site_id) % self.fleet_shards

    def shards(self) -> range:
        """Every shard number."""
        return range(self.fleet_shards)

    def _shard_suffix(self, shard: int) -> str:
        """``''`` unsharded, else ``:k`` (inside the hash tag)."""
        if not 0 <= shard < self.fleet_shards:
            raise ValueError(f"shard {shard} is not in 0..{self.fleet_shards - 1}")
        return "" if self.fleet_shards == 1 else f":{int(shard)}"

    def fleet_layout_key(self) -> str:
        """String ``fleet:shards``: the ``fleet_shards`` the sharded keys were last rebuilt with (the
        reconciler rebuilds them when it differs; missing means 1)."""
        return f"{self.key_prefix}fleet:shards"

    # -- sites -------------------------------------------------------------------------------------
    @staticmethod
    def site_tag(site_id: int) -> str:
        """The hash tag shared by all keys of one site: ``{site:ID}``."""
        return f"{{site:{check_site_id(site_id)}}}"

    def site_key(self, site_id: int) -> str:
        """Hash ``site:{site:ID}``: the site's fields (id, capacity, panels, address, ..., lat, lng)."""
        return f"{self.key_prefix}site:{self.site_tag(site_id)}"

    def site_key_prefix(self) -> str:
        """The prefix of every site hash (what the RediSearch index covers)."""
        return f"{self.key_prefix}site:{{site:"

    # -- fleet-wide site indexes: one hash tag, {sites} ------------------------------------------------
    @staticmethod
    def sites_tag() -> str:
        """The hash tag of every fleet-wide site structure: ``{sites}`` (see the module docstring)."""
        return "{sites}"

    def site_ids_key(self) -> str:
        """Sorted set ``sites:{sites}:ids``: every site id, scored by the id itself (so it reads in order)."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:ids"

    def site_state_key(self, state: str) -> str:
        """Set ``sites:{sites}:state:STATE``: ids of the sites in a state (core search, upper-cased)."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:state:{state.strip().upper()}"

    def site_city_key(self, city: str) -> str:
        """Set ``sites:{sites}:city:CITY``: ids of the sites in a city (core search, lower-cased)."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:city:{city.strip().lower()}"

    def site_postal_key(self, postal_code: str) -> str:
        """Set ``sites:{sites}:postal:CODE``: ids of the sites with a postal code (core search)."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:postal:{postal_code.strip().upper()}"

    def site_geo_key(self) -> str:
        """Geo set ``sites:{sites}:geo``: member = site id, for sites with coordinates (core search)."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:geo"

    def site_indexed_key(self) -> str:
        """Hash ``sites:{sites}:indexed``: site id -> what the index holds for it (``sites_index.lua``:
        version, state, city, postal code, capacity, panels, lng, lat and the capacity's sum limbs,
        joined by U+001F), so the index script removes a site's old entries by itself."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:indexed"

    def site_stats_key(self) -> str:
        """Hash ``sites:{sites}:stats``: running totals over the indexed sites: ``sites``, ``panels``,
        ``c0``..``c2`` (the capacities' exact sum in integer limbs, see ``dao/sites/totals.py``) and per
        state ``n:STATE``, ``c0:STATE``..``c2:STATE``."""
        return f"{self.key_prefix}sites:{self.sites_tag()}:stats"

    # -- the layout before {sites} (read by the migration only) ---------------------------------------
    def legacy_site_index_keys(self) -> tuple[str, str, str]:
        """``sites:ids``, ``sites:geo``, ``capacity_leaderboard`` of earlier versions (no hash tag)."""
        p = self.key_prefix
        return f"{p}sites:ids", f"{p}sites:geo", f"{p}capacity_leaderboard"

    def legacy_site_set_patterns(self) -> tuple[str, str, str]:
        """SCAN patterns of the earlier ``sites:state:*``, ``sites:city:*``, ``sites:postal:*`` sets."""
        p = self.key_prefix
        return f"{p}sites:state:*", f"{p}sites:city:*", f"{p}sites:postal:*"

    def migrations_key(self) -> str:
        """Hash ``migrations:{sites}``: migration name -> what it did, once done (a later start-up skips
        it in one round trip): ``site-timezones`` (:mod:`redisolar.dao.site_timezones`)."""
        return f"{self.key_prefix}migrations:{self.sites_tag()}"

    def site_search_index(self) -> str:
        """Name of the RediSearch index over the site hashes."""
        return f"{self.key_prefix}sites:idx"

    # -- time series -------------------------------------------------------------------------------
    def timeseries_key(self, site_id: int, metric: MetricType) -> str:
        """RedisTimeSeries series ``ts:{site:ID}:METRIC`` (backend ``redistimeseries``)."""
        return f"{self.key_prefix}ts:{self.site_tag(site_id)}:{metric.value}"

    def series_meta_key(self, site_id: int) -> str:
        """Hash ``tsmeta:{site:ID}``: ``v`` = version of the site's readings (both backends); backend
        ``core`` adds ``lo``/``hi`` (first/last partition day) and ``newest`` (ms of the newest reading);
        backend ``redistimeseries`` adds a cache valid while ``cv`` equals ``v``: ``newest``
        (``ts_write.lua``; the ``dsum``/``hsum`` sums of earlier versions are dropped on write)."""
        return f"{self.key_prefix}tsmeta:{self.site_tag(site_id)}"

    def core_partition_key(self, site_id: int, day: int) -> str:
        """String ``core:{site:ID}:d:DAY`` (backend ``core``): one UTC day of packed readings."""
        return f"{self.key_prefix}core:{self.site_tag(site_id)}:d:{day}"

    def core_partition_prefix(self, site_id: int) -> str:
        """The partition keys' common prefix; the Lua scripts append the day number."""
        return f"{self.key_prefix}core:{self.site_tag(site_id)}:d:"

    def history_meta_key(self, site_id: int) -> str:
        """Hash ``hist:{site:ID}:meta`` (:mod:`redisolar.dao.history`): ``newest`` (ms of the newest
        reading rolled up), ``lh``/``hh`` and ``ld``/``hd`` (lowest/highest hour and day block written),
        ``hv`` (the series data version the day records reflect; read with them by the reconciler)."""
        return f"{self.key_prefix}hist:{self.site_tag(site_id)}:meta"

    def history_hours_key(self, site_id: int, block: int) -> str:
        """String ``hist:{site:ID}:h:B``: the site's rollups of UTC hours ``B*720 .. B*720+719``."""
        return f"{self.key_prefix}hist:{self.site_tag(site_id)}:h:{block}"

    def history_days_key(self, site_id: int, block: int) -> str:
        """String ``hist:{site:ID}:d:B``: the site's rollups of local days ``B*360 .. B*360+359``."""
        return f"{self.key_prefix}hist:{self.site_tag(site_id)}:d:{block}"

    # -- leaderboards ------------------------------------------------------------------------------
    def member(self, site_id: int) -> str:
        """A site's member name in every leaderboard: ``site:ID``."""
        return f"site:{check_site_id(site_id)}"

    def capacity_leaderboard_key(self) -> str:
        """Sorted set ``capacity_leaderboard:{sites}``: member ``site:ID``, score = capacity in kW; kept
        by ``sites_index.lua`` with its running sum (same slot as the site indexes)."""
        return f"{self.key_prefix}capacity_leaderboard:{self.sites_tag()}"

    @staticmethod
    def board_sum_key(board_key: str) -> str:
        """String ``<board>:sum``: the running sum of a leaderboard's scores (for its average without
        reading every member); missing on a non-empty board means "not known yet"."""
        return f"{board_key}:sum"

    def day_tag(self, day: date, shard: int = 0) -> str:
        """The hash tag of one UTC day's leaderboards: ``{lb:YYYY-MM-DD}``, or ``{lb:YYYY-MM-DD:k}`` for
        shard k when sharded."""
        return f"{{lb:{day.isoformat()}{self._shard_suffix(shard)}}}"

    def daily_leaderboard_key(self, kind: str, day: date, shard: int = 0) -> str:
        """Sorted set ``lb:{lb:DAY}:KIND`` (KIND generation or efficiency): member ``site:ID``; sharded,
        ``lb:{lb:DAY:k}:KIND`` holds the sites of shard k."""
        if kind not in ("generation", "efficiency"):
            raise ValueError(f"Unknown daily leaderboard: {kind}")
        return f"{self.key_prefix}lb:{self.day_tag(day, shard)}:{kind}"

    def daily_versions_key(self, day: date, shard: int = 0) -> str:
        """Hash ``lb:{lb:DAY}:versions`` (sharded ``lb:{lb:DAY:k}:versions``): member -> version of
        the site data its scores came from."""
        return f"{self.key_prefix}lb:{self.day_tag(day, shard)}:versions"

    def leaderboard_days_key(self) -> str:
        """Sorted set ``lb:days``: the UTC days (as day numbers) that have daily leaderboards; added to
        when a day's board is created (not per reading), repaired by the reconciler."""
        return f"{self.key_prefix}lb:days"

    # -- fleet rollups ------------------------------------------------------------------------------
    def legacy_fleet_hourly_key(self) -> str:
        """Hash ``fleet:generation:hourly`` of earlier versions (hour -> fleet Wh, kept by deltas);
        no longer written: the reconciler deletes it."""
        return f"{self.key_prefix}fleet:generation:hourly"

    def fleet_hour_tag(self, hour: int, shard: int = 0) -> str:
        """The hash tag of one clock hour's fleet rollup: ``{fh:HOUR}`` (HOUR = ms // 3,600,000), or
        ``{fh:HOUR:k}`` for shard k when sharded."""
        return f"{{fh:{int(hour)}{self._shard_suffix(shard)}}}"

    def fleet_hour_total_key(self, hour: int, shard: int = 0) -> str:
        """String ``fleet:gen:{fh:HOUR}``: Wh generated by the whole fleet (sharded: by the sites of
        shard k) in that hour, the sum of the site entries below (kept by ``fleet_hour_set.lua``);
        expires with the hour's entries."""
        return f"{self.key_prefix}fleet:gen:{self.fleet_hour_tag(hour, shard)}"

    def fleet_hour_index_key(self, hour: int, shard: int = 0) -> str:
        """Set ``fleet:gen:{fh:HOUR}:b``: the bucket numbers B that have site entries in that hour."""
        return f"{self.key_prefix}fleet:gen:{self.fleet_hour_tag(hour, shard)}:b"

    def fleet_hour_bucket_key(self, hour: int, bucket: int, shard: int = 0) -> str:
        """Hash ``fleet:gen:{fh:HOUR}:s:B``: site id -> 16 bytes '<dd' (data version, absolute Wh the
        site generated in that hour), for the sites of bucket B (``fleet_hours.bucket_of``)."""
        return f"{self.key_prefix}fleet:gen:{self.fleet_hour_tag(hour, shard)}:s:{int(bucket)}"

    def fleet_last_seen_key(self, shard: int = 0) -> str:
        """Sorted set ``fleet:last_seen`` (sharded: ``fleet:last_seen:{ls:k}``): member = site id,
        score = ms of its newest reading."""
        if self.fleet_shards == 1:
            return f"{self.key_prefix}fleet:last_seen"
        return f"{self.key_prefix}fleet:last_seen:{{ls{self._shard_suffix(shard)}}}"

    # -- API keys and rate limits --------------------------------------------------------------------
    @staticmethod
    def api_key_tag(key_id: str) -> str:
        """The hash tag of one API key's keys: ``{apikey:ID}`` (ID: 12 lowercase hex digits)."""
        if not is_key_id(key_id):
            raise ValueError(f"Invalid API key id {key_id!r}")
        return f"{{apikey:{key_id}}}"

    def api_key_key(self, key_id: str) -> str:
        """Hash ``apikey:{apikey:ID}``: one key's metadata and the SHA-256 of its secret (``hash``;
        never the secret): id, name, scope, all_sites, created, expires, last_used (ms); and the
        state of its rate budgets, ``rl:reads`` and ``rl:writes`` (theoretical arrival times in ms,
        GCRA)."""
        return f"{self.key_prefix}apikey:{self.api_key_tag(key_id)}"

    def api_key_sites_key(self, key_id: str) -> str:
        """Set ``apikey:{apikey:ID}:sites``: the site ids a ``write`` key may post readings to."""
        return f"{self.key_prefix}apikey:{self.api_key_tag(key_id)}:sites"

    def api_keys_key(self) -> str:
        """Sorted set ``apikeys``: every API key id, scored by its creation time in ms."""
        return f"{self.key_prefix}apikeys"

    def address_bucket_key(self, address: str, budget: str) -> str:
        """String ``rl:{addr:ADDRESS}:BUDGET``: the rate-limit state of requests without a key from
        one client address (as the API key buckets)."""
        return f"{self.key_prefix}rl:{{addr:{address}}}:{budget}"

    # -- alerts (redisolar.alerts) ---------------------------------------------------------------------
    @staticmethod
    def alerts_tag() -> str:
        """The hash tag of the fleet-wide alert structures (rules, the open and resolved indexes):
        ``{alerts}``. Written once per alert opened or resolved and per rule change, never per reading."""
        return "{alerts}"

    def alert_rules_key(self) -> str:
        """Hash ``alerts:{alerts}:rules``: rule id -> the rule as JSON (fleet-wide and per site)."""
        return f"{self.key_prefix}alerts:{self.alerts_tag()}:rules"

    def alert_defaults_key(self) -> str:
        """String ``alerts:{alerts}:defaults``: set once the default rules were stored (an admin's
        deletion of a default rule is not undone at the next start)."""
        return f"{self.key_prefix}alerts:{self.alerts_tag()}:defaults"

    def alerts_open_index_key(self) -> str:
        """Sorted set ``alerts:{alerts}:open``: member ``SITE:ALERT`` of every open alert, score = ms it
        opened (repaired from the sites' open hashes by every evaluator pass)."""
        return f"{self.key_prefix}alerts:{self.alerts_tag()}:open"

    def alerts_resolved_index_key(self) -> str:
        """Sorted set ``alerts:{alerts}:resolved``: member ``SITE:ALERT`` of the newest resolved alerts,
        score = ms it resolved (capped)."""
        return f"{self.key_prefix}alerts:{self.alerts_tag()}:resolved"

    def site_alerts_key(self, site_id: int) -> str:
        """Hash ``alerts:{site:ID}``: alert id -> the alert as JSON (open and resolved, capped)."""
        return f"{self.key_prefix}alerts:{self.site_tag(site_id)}"

    def site_open_alerts_key(self, site_id: int) -> str:
        """Hash ``alerts:{site:ID}:open``: rule id -> the id of the rule's open alert at this site."""
        return f"{self.key_prefix}alerts:{self.site_tag(site_id)}:open"

    def site_alert_history_key(self, site_id: int) -> str:
        """Sorted set ``alerts:{site:ID}:history``: alert id, score = ms it opened."""
        return f"{self.key_prefix}alerts:{self.site_tag(site_id)}:history"

    # -- events and webhooks (redisolar.events) ------------------------------------------------------
    def events_stream_key(self) -> str:
        """Stream ``events:{events}``: every event (``reading``, ``alert.*``), about 100,000 kept; read by
        ``GET /api/events`` (one slot: the ordering of ``Last-Event-ID``; see redisolar.events.stream)."""
        return f"{self.key_prefix}events:{{events}}"

    def events_notify_key(self) -> str:
        """Stream ``events:{events}:notify``: the alert events, which webhooks are delivered from
        (consumer group ``deliverers``), about 10,000 kept."""
        return f"{self.key_prefix}events:{{events}}:notify"

    def webhooks_key(self) -> str:
        """Hash ``webhooks:{webhooks}``: webhook id -> the webhook as JSON (url, kinds, secret, created)."""
        return f"{self.key_prefix}webhooks:{{webhooks}}"

    def webhook_log_key(self, webhook_id: str) -> str:
        """List ``webhooks:{webhooks}:log:ID``: a webhook's newest 100 delivery attempts (JSON)."""
        return f"{self.key_prefix}webhooks:{{webhooks}}:log:{webhook_id}"

    def webhook_retry_key(self) -> str:
        """Sorted set ``webhooks:{webhooks}:retry``: deliveries waiting for a retry, score = when (ms)."""
        return f"{self.key_prefix}webhooks:{{webhooks}}:retry"

    # -- tasks -------------------------------------------------------------------------------------
    def lock_key(self, name: str) -> str:
        """String ``lock:NAME``: a lock token with an expiry (background reconciler)."""
        return f"{self.key_prefix}lock:{name}"


key_manager = KeyManager()
