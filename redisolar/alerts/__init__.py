"""Alerts: rules, their evaluation against the readings, and the alerts they open and resolve.

- :mod:`~redisolar.alerts.rules`: the rule kinds (offline, no generation in daylight,
  underperformance, threshold), their one validator, and their storage (``alerts:{alerts}:rules``);
- :mod:`~redisolar.alerts.solar`: where the sun is and what a clear sky yields;
- :mod:`~redisolar.alerts.conditions`: one verdict per (site, rule) from the data, pure functions;
- :mod:`~redisolar.alerts.store`: open and resolved alerts (a site's in ``{site:ID}``, the fleet's
  index in ``{alerts}``, single-slot scripts);
- :mod:`~redisolar.alerts.evaluator`: the background evaluator (one per deployment, a Redis lock);
- :mod:`~redisolar.alerts.service`: the use cases the API and the CLI share.

Alert state is derived from the readings: the evaluator writes it from absolute verdicts (an alert
opens once, a second pass with the same data changes nothing) and rebuilds the fleet index each pass.
"""
