"""``GET /metrics``: the operators' metrics in Prometheus' text format (:mod:`redisolar.metrics`).

A read like any other (:mod:`redisolar.auth.policy`): with ``AUTH_MODE=required`` it needs a read or
admin key (Prometheus sends it with ``authorization: {credentials: …}``), and it spends the reads'
rate budget. It is not counted in the request metrics it reports.
"""

from __future__ import annotations

from flask import Response

from redisolar import metrics as metric_set
from redisolar.api.common import Blueprint

metrics_bp = Blueprint("metrics", __name__, description="Operators' metrics, in Prometheus' text format")


@metrics_bp.route("/metrics", methods=["GET"])
@metrics_bp.response(
    200,
    content_type="text/plain",
    description="Prometheus text exposition format, summed over the server's processes",
)
def metrics() -> Response:
    """Requests by route and status, latencies, readings stored and refused, rate-limited requests,
    Redis round trips and errors, leaderboard reconciles."""
    body, content_type = metric_set.exposition()
    return Response(body, 200, content_type=content_type)
