"""The trust boundary: API keys with scopes, rate limits, and requests that cannot be forged
cross-site. :func:`init_auth` installs it on an app; docs/security.md describes the model.

Per request (:func:`authorize`, a ``before_request`` hook), at most one round trip to Redis:

- a presented key (``Authorization: Bearer rsk_…`` or ``X-API-Key``) is checked, its ``last_used``
  set and one request taken from its budget, in one script (``auth_check.lua``);
- without a key, one request is taken from the client address's budget (and, in ``auto`` mode, the
  same round trip asks whether any key exists).

``AUTH_MODE``: ``required`` (every ``/api`` route needs a key), ``writes`` (writes need a key,
reads are open), ``off`` (no checks) and ``auto`` (the default): while no key exists, requests
from this machine (:func:`is_local_request`) need none and others get a 401 saying how to create the
first key; once a key exists, ``writes``. Budgets: ``writes`` for POST/PUT/DELETE, ``reads`` for
the rest (``RATE_LIMIT_WRITES``, ``RATE_LIMIT_READS``); public routes (health, documentation, the
dashboard's pages) are neither checked nor limited.
"""
