"""The sites resource (the seed's Lesson 2 routes): ``/api/sites/...``.

Decisions where the seed shows no shape:

- ``GET /api/sites/`` answers a JSON array of sites by id (the seed's shape), one page of them:
  ``limit`` (default 100, so the sample's 5 sites come on one page; at most 1000), ``cursor`` (from
  the previous page) and/or ``offset``. When more sites follow, a ``Link: <URL>; rel="next"`` header
  (RFC 8288) gives the next page's absolute URL, with ``limit`` and ``cursor`` (the last id of this
  page; any ``offset`` is behind it). The last page has no ``Link``. The seed's sketch answered every
  site at once, which at 10^5 sites is one Redis call reading them all, every poll.
- ``GET /api/sites/map?bbox=w,s,e,n&limit=N`` answers ``{"sites": [{"id", "lat", "lng", "capacity"}],
  "truncated", "limit", "bbox"}``: at most ``limit`` (default 500) sites of the view, spread over it,
  from the geo index (no site hash is read); ``truncated`` says the view holds more (the dashboard
  says "zoom in").
- ``PUT /api/sites/<id>`` replaces an existing site (404 if there is none: sites are created with
  POST); the body's ``id`` may be left out, and if given must equal the path's (else 400).
- ``DELETE /api/sites/<id>`` answers 204 with no body; the site's readings and leaderboard entries
  go with it.
- ``GET /api/sites/search`` answers ``{"sites": [...], "total", "limit", "offset"}``.
- ``GET /api/sites/stats`` answers ``{"total_sites", "total_capacity_kw", "total_panels",
  "average_capacity_kw", "states": {STATE: {"sites", "capacity_kw"}}}``.
- A path id that cannot be a site's (``0``, ``-1``, ``abc``, above 2**53-1) matches no route: 404.
"""

from __future__ import annotations

from typing import Any

from flask import Response, url_for

from redisolar.api import render
from redisolar.api.common import Blueprint, services
from redisolar.api.schemas import (
    MapArgs,
    MapViewSchema,
    SearchArgs,
    SitePageArgs,
    SiteSearchResultSchema,
    SitesStatsSchema,
    SiteUpdateSchema,
)
from redisolar.errors import InvalidInput
from redisolar.models.schemas import SiteSchema
from redisolar.models.site import Site
from redisolar.services import site_lists, sites
from redisolar.services.sites import stats_of as site_stats

__all__ = ["site_stats", "sites_bp"]

sites_bp = Blueprint("sites", __name__, url_prefix="/api/sites", description="Solar sites (Lesson 2)")


NEXT_LINK_HEADER = {
    "Link": {
        "description": 'When more sites follow: `<URL>; rel="next"` (RFC 8288), the next page',
        "schema": {"type": "string"},
    }
}


@sites_bp.route("/", methods=["GET"], strict_slashes=False)
@sites_bp.arguments(SitePageArgs, location="query")
@sites_bp.response(200, SiteSchema(many=True), headers=NEXT_LINK_HEADER)
@sites_bp.errors()
def all_sites(args: dict[str, Any]) -> Response:
    """A page of sites, by id; a `Link` header (`rel="next"`) when more follow."""
    limit = args["limit"]
    page = site_lists.list_sites(services(), limit=limit, cursor=args.get("cursor"), offset=args["offset"])
    response = render.json_response([render.site(site) for site in page.sites])
    if page.next_cursor is not None:
        url = url_for("sites.all_sites", limit=limit, cursor=page.next_cursor, _external=True)
        response.headers["Link"] = f'<{url}>; rel="next"'
    return response


@sites_bp.route("/map", methods=["GET"])
@sites_bp.arguments(MapArgs, location="query")
@sites_bp.response(200, MapViewSchema)
@sites_bp.errors()
def map_view(args: dict[str, Any]) -> Response:
    """The sites of a map view (at most `limit`, spread over it), for markers: id, position, capacity."""
    bbox, limit = args.get("bbox", site_lists.WORLD), args["limit"]
    view = site_lists.map_sites(services(), bbox, limit)
    body = {
        "sites": [{"id": s.id, "lat": s.lat, "lng": s.lng, "capacity": s.capacity} for s in view.sites],
        "truncated": view.truncated,
        "limit": limit,
        "bbox": list(bbox),
    }
    return render.json_response(body)


@sites_bp.route("/", methods=["POST"], strict_slashes=False)
@sites_bp.arguments(SiteSchema, description="The new site; its id must be free")
@sites_bp.response(201, SiteSchema)
@sites_bp.errors(409, 413, 415)
def create_site(site: Site) -> Site:
    """Register a site (it joins the capacity leaderboard). 409 if the id is taken."""
    return sites.create_site(services(), site)


@sites_bp.route("/<site_id:site_id>", methods=["GET"])
@sites_bp.response(200, SiteSchema)
@sites_bp.errors(404)
def one_site(site_id: int) -> Site:
    """One site."""
    return sites.get_site(services(), site_id)


@sites_bp.route("/<site_id:site_id>", methods=["PUT"])
@sites_bp.arguments(SiteUpdateSchema, description="The site's new details (`id` optional)")
@sites_bp.response(200, SiteSchema)
@sites_bp.errors(404, 413, 415)
def update_site(data: dict[str, Any], site_id: int) -> Site:
    """Replace a site's details (404 if there is no such site; create sites with POST)."""
    given = data.pop("id", None)
    if given is not None and given != site_id:
        raise InvalidInput("Validation failed", {"id": [f"Must equal the site id of the path ({site_id})."]})
    try:
        site = Site(id=site_id, **data)
    except ValueError as exc:
        raise InvalidInput("Validation failed", {"_schema": [exc.args[0]]}) from None
    return sites.update_site(services(), site)


@sites_bp.route("/<site_id:site_id>", methods=["DELETE"])
@sites_bp.response(204)
@sites_bp.errors(404)
def delete_site(site_id: int) -> Response:
    """Delete a site with its readings and leaderboard entries. 204, no body."""
    sites.delete_site(services(), site_id)
    return Response(status=204)


@sites_bp.route("/search", methods=["GET"])
@sites_bp.arguments(SearchArgs, location="query")
@sites_bp.response(200, SiteSearchResultSchema)
@sites_bp.errors()
def search(args: dict[str, Any]) -> dict[str, Any]:
    """Sites matching every given filter: by id, or by distance with a geo filter."""
    result = sites.search_sites(services(), **args)
    return {"sites": result.sites, "total": result.total, "limit": args["limit"], "offset": args["offset"]}


@sites_bp.route("/stats", methods=["GET"])
@sites_bp.response(200, SitesStatsSchema)
@sites_bp.errors()
def stats() -> dict[str, Any]:
    """Totals over every site, and per state (one round trip)."""
    return sites.site_stats(services())
