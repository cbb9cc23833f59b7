"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis).

Every operation of ``/api/openapi.json`` (GET, POST, PUT, DELETE) gets requests that schemathesis
generates from the document, valid and invalid, against an app on each time-series backend whose
store holds a few sites with readings (hypothesis also picks those ids, so paths to existing sites
are exercised, not only 404s). Every answer must:

- not be a 5xx (``not_a_server_error``);
- have a status the document lists for the operation (``status_code_conformance``);
- have a documented content type (``content_type_conformance``) and match the documented schema of
  its status (``response_schema_conformance``), headers included (``response_headers_conformance``);
- be strict JSON (RFC 8259: no ``NaN`` or ``Infinity``) when it has a body.

Bounded for ``make test`` (``FUZZ_EXAMPLES`` examples per operation, derandomized: CI is
reproducible); ``make fuzz`` sets ``REDISOLAR_FUZZ_EXAMPLES`` high.

With and without keys: the ``auth`` dimension names a way of calling the API (:data:`AUTH_VARIANTS`):
``none`` (the default ``AUTH_MODE=auto`` from loopback, no key yet), ``anonymous`` (``required``, no
key: 401s), ``read`` and ``admin`` (``required``, with a read or an admin key in ``Authorization:
Bearer``). The store is filled through a second app with ``AUTH_MODE=off``, so every variant starts
from the same data.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import redis
import schemathesis
from conftest import ApiCalls, BackendServer
from flask import Flask
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.pytest.lazy import get_all_tests  # the tests its pytest plugin runs

from redisolar.app import get_services
from redisolar.timeutil import utcnow

FUZZ_EXAMPLES = int(os.environ.get("REDISOLAR_FUZZ_EXAMPLES", "50"))
"""Generated examples per operation (per backend and auth variant)."""

FUZZ_SEED = 12
"""Schemathesis' seed: the bounded run generates the same requests every time."""

SITE_IDS = (1, 2, 3)
"""Sites stored before the run; the fuzzer points path ids at them half of the time."""

AUTH_VARIANTS = ("none", "anonymous", "read", "admin")
"""How the fuzzer calls the API (see the module docstring)."""
KEYED_MODES = {"anonymous": "required", "read": "required", "admin": "required"}

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.unsupported_method,  # an undocumented method is a 405 with `Allow`
    checks.allow_header_conformance,  # OPTIONS' `Allow` lists the documented methods
]


# -- the app under test ----------------------------------------------------------------------------
@pytest.fixture(params=AUTH_VARIANTS, ids=[f"auth-{name}" for name in AUTH_VARIANTS])
def auth(request: pytest.FixtureRequest) -> str:
    """The auth variant of the run (see :data:`AUTH_VARIANTS`)."""
    return str(request.param)


@pytest.fixture
def fuzz_config(auth: str) -> dict[str, Any]:
    """Settings for ``create_app`` under ``auth``."""
    # an event stream ends at once (its lifetime would hold every fuzzed GET /api/events)
    events = {"EVENTS_STREAM_SECONDS": 0}
    return {"AUTH_MODE": KEYED_MODES[auth], **events} if auth in KEYED_MODES else events


@pytest.fixture
def seed_app(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> Flask:
    """An app with ``AUTH_MODE=off`` on the test's (flushed) server, to fill and refill the store."""
    app = app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, AUTH_MODE="off")
    seed_store(ApiCalls(app.test_client()))
    return app


@pytest.fixture
def fuzz_app(
    app_factory: Callable[..., Flask],
    backend_server: BackendServer,
    seed_app: Flask,
    fuzz_config: dict[str, Any],
) -> Flask:
    """The app under test, on the store ``seed_app`` filled with :data:`SITE_IDS` and readings."""
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, **fuzz_config)


@pytest.fixture
def fuzz_headers(auth: str, fuzz_app: Flask) -> dict[str, str]:
    """Headers added to every fuzzed request under ``auth``: a key of the variant's scope, if any."""
    if auth not in ("read", "admin"):
        return {}
    _, secret = get_services(fuzz_app).create_api_key(auth, name=f"fuzz {auth}")
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def fuzz_environ(auth: str) -> dict[str, str]:
    """The WSGI environ of every fuzzed request under ``auth``: from loopback, as the Flask test client
    calls (schemathesis' own WSGI client sends no REMOTE_ADDR, which AUTH_MODE=auto treats as remote)."""
    return {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def api_schema(fuzz_app: Flask) -> schemathesis.BaseSchema:
    """The app's OpenAPI document, loaded by schemathesis (calls go to the app in-process)."""
    config = schemathesis.Config.from_dict(
        {
            "seed": FUZZ_SEED,
            "generation": {
                "max-examples": FUZZ_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # no made-up keys from the security schemes: the keys of a run are `fuzz_headers`
                "with-security-parameters": False,
            },
        }
    )
    loaded = schemathesis.openapi.from_wsgi("/api/openapi.json", fuzz_app, config=config)
    loaded.hook("flatmap_case")(aimed_at_the_store)
    return loaded


def seed_store(api: ApiCalls) -> None:
    """Store :data:`SITE_IDS`, each with readings over the last six hours (idempotent)."""
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for site_id in SITE_IDS:
        if api.http.get(f"/api/sites/{site_id}").status_code == 404:
            api.create_site(site_id, capacity=2.0 + site_id)
        readings = [
            api.reading_body(now - timedelta(hours=hours), wh_generated=100.0 * site_id + hours)
            for hours in range(6)
        ]
        api.post_readings(site_id, readings)


# -- the checks ------------------------------------------------------------------------------------
def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


def strict_json(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """A body is strict JSON (no NaN/Infinity), an NDJSON body every line of it; a CSV export and
    the Prometheus text of ``/metrics`` are not JSON. A 204 has none; HEAD and OPTIONS may have none."""
    if response.status_code == 204:
        assert not response.content, f"204 with a body: {response.content[:200]!r}"
        return
    if not response.content and response.request.method in ("HEAD", "OPTIONS"):
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    if media_type in ("text/csv", "text/plain", "text/event-stream"):  # an export, /metrics' Prometheus
        return  # text, the event stream (content types are checked against the document)
    documents = response.content.splitlines() if media_type == "application/x-ndjson" else [response.content]
    for document in documents:
        try:
            json.loads(document, parse_constant=_no_constant)
        except ValueError as exc:
            raise AssertionError(f"The body is not strict JSON ({exc}): {document[:300]!r}") from None


# -- aiming requests at the stored data -------------------------------------------------------------
EXISTING_IDS = st.sampled_from((None, *SITE_IDS))
"""A stored site's id to put in the path instead of the generated one (None: keep it)."""

READING_AGES = st.one_of(st.none(), st.timedeltas(timedelta(0), timedelta(days=3)))
"""How long ago a generated reading was taken, so that some fall in the retention window (None: keep)."""


def aimed_at_the_store(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """Schemathesis hook ``flatmap_case``: ``case``, or a copy pointed at a stored site whose readings
    are dated in the last days (hypothesis chooses; random ids and timestamps almost never name a stored
    site or a time a reading may have, so without this the paths that find a site and store readings
    would hardly run)."""
    return st.tuples(EXISTING_IDS, READING_AGES).map(lambda choice: aim(case, *choice))


def aim(case: schemathesis.Case, existing: int | None, age: timedelta | None) -> schemathesis.Case:
    """``case`` with the path's ``site_id`` set to ``existing`` and readings ``age`` old (None: as is)."""
    if existing is not None and "site_id" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "site_id": existing}
    if age is not None and isinstance(case.body, dict | list):
        case.body = copy.deepcopy(case.body)
        items = case.body if isinstance(case.body, list) else [case.body]
        when = (utcnow() - age).isoformat()
        for item in items:
            if isinstance(item, dict) and "timestamp" in item:
                item["timestamp"] = when
    return case


# -- the run ---------------------------------------------------------------------------------------
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,  # the same requests on every run
    deadline=None,
    database=None,
    print_blob=False,
    suppress_health_check=[hypothesis.HealthCheck.too_slow, hypothesis.HealthCheck.filter_too_much],
)


def test_api_answers_as_documented(
    api_schema: schemathesis.BaseSchema,
    seed_app: Flask,
    fuzz_headers: dict[str, str],
    fuzz_environ: dict[str, str],
    subtests: pytest.Subtests,
) -> None:
    """Every generated request gets a documented, schema-valid, strict-JSON answer (never a 5xx).

    Schemathesis' three generation phases run per operation: the document's examples, "coverage"
    (boundary values, missing and malformed parameters, other content types and methods) and
    fuzzing (:data:`FUZZ_EXAMPLES` valid and invalid requests; hypothesis shrinks a failure to its
    simplest). One subtest per operation, so that one run reports every operation that fails.
    """

    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=fuzz_headers, environ_base=fuzz_environ)
        case.validate_response(response, checks=CHECKS, additional_checks=[strict_json], headers=fuzz_headers)
        if response.status_code == 204:  # a site was deleted: put the store back for the next examples
            seed_store(ApiCalls(seed_app.test_client()))

    tests = get_all_tests(
        schema=api_schema,
        test_func=check,
        settings=FUZZ_SETTINGS,
        given_kwargs={},
    )
    for result in sorted(tests, key=creates_keys_last):
        operation, test = result.ok()
        with subtests.test(msg=operation.label):
            test()


def creates_keys_last(result: Any) -> bool:
    """Sort key: the keys routes last (once a key exists, AUTH_MODE=auto wants keys for writes)."""
    operation, _ = result.ok()
    return bool(operation.path.startswith("/api/keys"))
