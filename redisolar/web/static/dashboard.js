/* RediSolar dashboard: a client of the public REST API. Vanilla JS, inline SVG, no dependencies.
 * <body data-page="fleet|site" data-api="/api" data-refresh-ms="7000" data-site-id="1"> */
(() => {
  "use strict";

  const body = document.body;
  const API = body.dataset.api || "/api";
  const REFRESH_MS = Math.max(100, Number(body.dataset.refreshMs) || 7000);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BOARDS = {
    capacity: { label: "Capacity", format: (v) => fmt(v, 1) + " kW" },
    generation: { label: "Generation", format: (v) => fmtEnergy(v) },
    efficiency: { label: "Efficiency", format: (v) => fmt(v, 1) + " %" },
  };
  const HOUR = 3600 * 1000;
  const RANGES = { "24h": 24 * HOUR, "7d": 7 * 24 * HOUR };

  // -- helpers ------------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }
  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  function fmt(value, digits = 0) {
    if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
    return Number(value).toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function fmtEnergy(wh) {
    const v = Number(wh);
    if (!Number.isFinite(v)) return "–";
    if (Math.abs(v) >= 1e6) return fmt(v / 1e6, 2) + " MWh";
    if (Math.abs(v) >= 1e3) return fmt(v / 1e3, 1) + " kWh";
    return fmt(v, 0) + " Wh";
  }
  // `timeZone`: an IANA name (the site's), or undefined for the browser's own zone.
  function fmtTime(iso, timeZone) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone });
  }
  // The UTC offset (ms) of `timeZone` at the instant `t` (ms), from Intl's wall-clock parts.
  function zoneOffset(t, timeZone) {
    if (!timeZone) return -new Date(t).getTimezoneOffset() * 60000;
    const parts = {};
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    for (const p of format.formatToParts(new Date(t))) parts[p.type] = Number(p.value);
    const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
    return wall - (t - (((t % 1000) + 1000) % 1000));
  }
  function knownZone(name) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: name });
      return true;
    } catch (err) {
      return false;
    }
  }
  function siteName(site) {
    return site ? `${site.address}, ${site.city}, ${site.state}` : "";
  }
  function siteUrl(id) {
    return `/sites/${encodeURIComponent(id)}`;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // -- the API key, when the server asks for one (AUTH_MODE=required) ------------------------------------
  // Kept in this browser's localStorage and sent as the X-API-Key header: never in a URL or a cookie.
  const KEY_STORE = "redisolar.apiKey";
  const keyForm = document.getElementById("key-form");

  function storedKey() {
    try {
      return localStorage.getItem(KEY_STORE) || "";
    } catch (err) {
      return "";
    }
  }
  function saveKey(key) {
    try {
      if (key) localStorage.setItem(KEY_STORE, key);
      else localStorage.removeItem(KEY_STORE);
    } catch (err) {
      /* storage disabled: the key lasts as long as the page */
    }
  }
  function askForKey(message) {
    if (!keyForm || !keyForm.hidden) return;
    document.getElementById("key-message").textContent = message;
    keyForm.hidden = false;
    statusLine.textContent = "Needs an API key";
    document.getElementById("key-input").focus();
  }
  if (keyForm) {
    keyForm.addEventListener("submit", (event) => {
      event.preventDefault();
      saveKey(document.getElementById("key-input").value.trim());
      window.location.reload();
    });
  }

  async function api(path) {
    return (await apiFetch(path)).data;
  }

  // The JSON body and the response (for its headers, e.g. Link).
  async function apiFetch(path) {
    const headers = { Accept: "application/json" };
    const key = storedKey();
    if (key) headers["X-API-Key"] = key;
    let response;
    try {
      response = await fetch(API + path, { headers, cache: "no-store", credentials: "omit" });
    } catch (err) {
      throw new ApiError(0, "the API cannot be reached");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const message = (data && (data.error || data.message)) || response.statusText || "error";
      if (response.status === 401) {
        if (key) saveKey("");
        askForKey(
          key
            ? `The saved API key was refused (${message}). Enter a read key.`
            : "This RediSolar server needs an API key to show its data. Enter a read key."
        );
      }
      throw new ApiError(response.status, message);
    }
    return { data, response };
  }

  // The cursor of a `Link: <URL>; rel="next"` header (RFC 8288), or null on the last page.
  function nextCursor(response) {
    const link = response.headers.get("Link") || "";
    const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(link);
    if (!match) return null;
    try {
      return new URL(match[1], window.location.href).searchParams.get("cursor");
    } catch (err) {
      return null;
    }
  }

  // -- status and the "API down" alert --------------------------------------------------------------
  const alertBox = document.getElementById("api-alert");
  const statusLine = document.getElementById("status");

  function apiDown(err) {
    const what = err && err.status ? `answered ${err.status}: ${err.message}` : "cannot be reached";
    alertBox.textContent = `The RediSolar API ${what}. Showing the last data received; retrying every ${
      Math.round(REFRESH_MS / 100) / 10
    } s.`;
    alertBox.hidden = false;
    statusLine.textContent = "Offline";
    statusLine.classList.add("offline");
  }
  function apiUp() {
    alertBox.hidden = true;
    alertBox.textContent = "";
    statusLine.textContent = "Updated " + new Date().toLocaleTimeString();
    statusLine.classList.remove("offline");
  }
  function isOutage(err) {
    return !(err instanceof ApiError) || err.status === 0 || err.status >= 500;
  }

  // Run `refresh` now and then every REFRESH_MS after it finishes (never overlapping); `poke` runs it early.
  // With `events` (a GET /api/events path) and the stream open, it runs when an event arrives instead (at
  // most every LIVE_MIN_MS; every LIVE_SAFETY_MS regardless, which also notices an API that fails while the
  // stream stays open), and polls as before whenever the stream is not open: see `follow`.
  const LIVE_MIN_MS = Math.min(2000, REFRESH_MS);
  const LIVE_SAFETY_MS = 5 * REFRESH_MS;
  function poll(refresh, events) {
    let timer = null;
    let running = false;
    let again = false;
    let live = false;
    let lastRun = 0;
    function schedule(ms) {
      clearTimeout(timer);
      timer = setTimeout(tick, ms);
    }
    async function tick() {
      clearTimeout(timer);
      if (running) {
        again = true;
        return;
      }
      running = true;
      lastRun = Date.now();
      try {
        await refresh();
        apiUp();
      } catch (err) {
        if (isOutage(err)) apiDown(err);
        else console.warn(err);
      } finally {
        running = false;
        timer = setTimeout(tick, again ? 0 : live ? LIVE_SAFETY_MS : REFRESH_MS);
        again = false;
      }
    }
    if (events) {
      const changed = () => (running ? (again = true) : schedule(Math.max(0, lastRun + LIVE_MIN_MS - Date.now())));
      follow(events, changed, (open) => {
        body.dataset.live = String(open); // (the page follows the stream: tests and styles can tell)
        if (open === live) return;
        live = open;
        if (!running) schedule(open ? LIVE_SAFETY_MS : REFRESH_MS);
      });
    }
    tick();
    return tick;
  }

  // The event stream: `changed()` at each event, `state(open)` when it opens or fails. Not used (the page
  // polls) without EventSource, or with a stored API key: EventSource cannot send the X-API-Key header and
  // the key never goes in a URL. A refused stream (503: the server's streams are all taken) stays closed,
  // so the page keeps polling; after an outage EventSource reconnects by itself with Last-Event-ID.
  function follow(path, changed, state) {
    if (typeof EventSource === "undefined" || storedKey()) return;
    const source = new EventSource(API + path);
    source.onopen = () => state(true);
    source.onerror = () => state(false);
    for (const kind of ["reading", "alert.opened", "alert.resolved", "gap"]) source.addEventListener(kind, changed);
  }

  // -- tabs (shared by both pages) ------------------------------------------------------------------
  function setupTabs(tablist, onSelect) {
    const tabs = Array.from(tablist.querySelectorAll('[role="tab"]'));
    function select(tab, focus) {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
      }
      const panel = document.getElementById(tab.getAttribute("aria-controls"));
      if (panel) panel.setAttribute("aria-labelledby", tab.id);
      if (focus) tab.focus();
      onSelect(tab.dataset.board);
    }
    tablist.addEventListener("click", (event) => {
      const tab = event.target.closest('[role="tab"]');
      if (tab) select(tab, false);
    });
    tablist.addEventListener("keydown", (event) => {
      const i = tabs.indexOf(document.activeElement);
      if (i < 0) return;
      let next = null;
      if (event.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (event.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (event.key === "Home") next = tabs[0];
      else if (event.key === "End") next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        select(next, true);
      }
    });
    return tabs.find((t) => t.getAttribute("aria-selected") === "true") || tabs[0];
  }

  // -- the map ---------------------------------------------------------------------------------------
  // Lower 48 states, a coarse outline (lng, lat) for orientation only.
  const US_OUTLINE = [
    [-124.7, 48.4], [-124.1, 46.3], [-124.0, 44.0], [-124.5, 42.8], [-124.2, 41.8], [-123.8, 39.8],
    [-122.5, 37.8], [-121.9, 36.6], [-120.6, 34.6], [-118.5, 34.0], [-117.1, 32.5], [-114.7, 32.7],
    [-111.1, 31.3], [-108.2, 31.3], [-108.2, 31.8], [-106.5, 31.8], [-104.5, 29.6], [-103.2, 29.0],
    [-102.4, 29.8], [-101.4, 29.8], [-99.5, 27.5], [-97.2, 25.9], [-97.4, 27.8], [-96.0, 28.6],
    [-94.7, 29.4], [-93.8, 29.7], [-92.0, 29.6], [-90.2, 29.1], [-89.2, 29.3], [-89.6, 30.2],
    [-88.0, 30.4], [-86.5, 30.4], [-85.0, 29.7], [-84.0, 30.1], [-82.8, 29.0], [-82.6, 27.8],
    [-81.8, 26.1], [-81.1, 25.1], [-80.4, 25.2], [-80.1, 26.5], [-80.6, 28.5], [-81.3, 30.4],
    [-80.9, 32.0], [-79.2, 33.2], [-77.9, 33.9], [-76.5, 34.7], [-75.5, 35.2], [-75.9, 36.9],
    [-75.6, 38.0], [-75.0, 38.8], [-74.0, 39.8], [-73.9, 40.5], [-71.9, 41.1], [-70.0, 41.7],
    [-70.7, 43.1], [-69.0, 44.1], [-67.0, 44.8], [-67.8, 47.1], [-69.2, 47.4], [-70.9, 45.3],
    [-74.7, 45.0], [-76.4, 44.1], [-79.1, 43.3], [-78.9, 42.9], [-82.5, 41.7], [-83.1, 42.3],
    [-82.4, 43.0], [-83.5, 46.1], [-84.4, 46.5], [-89.6, 48.0], [-95.2, 49.0], [-123.0, 49.0],
    [-122.8, 48.5], [-124.7, 48.4],
  ];
  const US_BOUNDS = { west: -126, east: -65, south: 24, north: 50 };
  const WORLD = { west: -180, east: 180, south: -85, north: 85 };
  const MAP_LIMIT = 500; // markers per view: GET /sites/map answers at most this many, spread over the view
  const LABELLED = 40; // with at most this many markers, each shows its id
  const MAP_WIDTH = 1000;

  // The map shows one view (west/south/east/north, degrees) and asks the API for the sites of that view
  // only: GET /sites/map?bbox=...&limit=MAP_LIMIT. A view holding more answers `truncated`, and the map
  // says "showing N of more: zoom in" (decision: a sample spread over the view plus that note, rather
  // than clusters, which would need a count per area that no bounded read gives).
  function clampView(v) {
    const width = Math.min(WORLD.east - WORLD.west, Math.max(0.01, v.east - v.west));
    const height = Math.min(WORLD.north - WORLD.south, Math.max(0.01, v.north - v.south));
    const west = Math.min(WORLD.east - width, Math.max(WORLD.west, v.west));
    const south = Math.min(WORLD.north - height, Math.max(WORLD.south, v.south));
    return { west, south, east: west + width, north: south + height };
  }
  function zoomView(v, factor, lng, lat) {
    const cx = lng === undefined ? (v.west + v.east) / 2 : lng;
    const cy = lat === undefined ? (v.south + v.north) / 2 : lat;
    return clampView({
      west: cx - (cx - v.west) * factor, east: cx + (v.east - cx) * factor,
      south: cy - (cy - v.south) * factor, north: cy + (v.north - cy) * factor,
    });
  }
  function bboxParam(v) {
    return [v.west, v.south, v.east, v.north].map((n) => n.toFixed(4)).join(",");
  }
  function projection(v) {
    const k = Math.cos((((v.north + v.south) / 2) * Math.PI) / 180); // equirectangular, true at mid-latitude
    const scale = MAP_WIDTH / ((v.east - v.west) * k);
    const height = Math.max(200, Math.min(1000, Math.round((v.north - v.south) * scale)));
    const sy = height / (v.north - v.south);
    return {
      height,
      x: (lng) => (lng - v.west) * k * scale,
      y: (lat) => (v.north - lat) * sy,
      lng: (px) => v.west + px / (k * scale),
      lat: (py) => v.north - py / sy,
    };
  }

  function drawMap(container, view, data, alerting = new Set()) {
    const sites = (data && Array.isArray(data.sites) ? data.sites : []).filter(
      (x) => Number.isFinite(x.lat) && Number.isFinite(x.lng)
    );
    const p = projection(view);
    const svg = s("svg", {
      viewBox: `0 0 ${MAP_WIDTH} ${p.height}`,
      class: "map-svg",
      role: "group",
      "aria-label": `Map of ${sites.length} sites${data && data.truncated ? " (more in this view: zoom in)" : ""}`,
      "data-bbox": bboxParam(view),
    });
    const grid = s("g", { class: "grid", "aria-hidden": "true" });
    const span = view.east - view.west;
    const stepLng = span > 60 ? 10 : span > 12 ? 5 : span > 3 ? 1 : 0.25;
    const stepLat = stepLng / 2;
    for (let lng = Math.ceil(view.west / stepLng) * stepLng; lng <= view.east; lng += stepLng) {
      grid.append(s("line", { x1: p.x(lng), x2: p.x(lng), y1: 0, y2: p.height }));
      grid.append(s("text", { x: p.x(lng) + 4, y: p.height - 6, text: `${Math.abs(+lng.toFixed(2))}°${lng < 0 ? "W" : "E"}` }));
    }
    for (let lat = Math.ceil(view.south / stepLat) * stepLat; lat <= view.north; lat += stepLat) {
      grid.append(s("line", { x1: 0, x2: MAP_WIDTH, y1: p.y(lat), y2: p.y(lat) }));
      grid.append(s("text", { x: 4, y: p.y(lat) - 4, text: `${Math.abs(+lat.toFixed(2))}°${lat < 0 ? "S" : "N"}` }));
    }
    const outline = US_OUTLINE.map(([lng, lat], i) => `${i ? "L" : "M"}${p.x(lng).toFixed(1)},${p.y(lat).toFixed(1)}`);
    svg.append(s("path", { class: "land", d: outline.join("") + "Z", "aria-hidden": "true" }));
    svg.append(grid);

    const labelled = sites.length <= LABELLED;
    const maxCapacity = Math.max(1, ...sites.map((site) => Number(site.capacity) || 0));
    const markers = s("g", { class: labelled ? "markers" : "markers dense" });
    for (const site of [...sites].sort((a, c) => (c.capacity || 0) - (a.capacity || 0))) {
      const cx = p.x(site.lng);
      const cy = p.y(site.lat);
      const r = (labelled ? 7 : 2.5) + (labelled ? 11 : 4) * Math.sqrt((Number(site.capacity) || 0) / maxCapacity);
      const name = `Site ${site.id} (${fmt(site.capacity, 1)} kW)`;
      markers.append(
        s(
          "a",
          { href: siteUrl(site.id), class: alerting.has(site.id) ? "marker alerting" : "marker", "data-site-id": site.id,
            "aria-label": alerting.has(site.id) ? `${name}, open alert` : name },
          s("title", { text: name }),
          s("circle", { cx: cx.toFixed(1), cy: cy.toFixed(1), r: r.toFixed(1) }),
          labelled ? s("text", { x: cx, y: cy + 4, class: "marker-id", "aria-hidden": "true", text: String(site.id) }) : null
        )
      );
    }
    svg.append(markers);
    const note = !sites.length
      ? "No sites in this view."
      : data.truncated
        ? `Showing ${fmt(sites.length)} sites spread over this view; it holds more: zoom in to see them all.`
        : `${fmt(sites.length)} site${sites.length === 1 ? "" : "s"} in this view.`;
    container.replaceChildren(svg);
    const status = document.getElementById("map-note");
    if (status) {
      status.textContent = note;
      status.dataset.truncated = String(Boolean(data && data.truncated));
      status.dataset.count = String(sites.length);
    }
    return p;
  }

  function sitesOf(data) {
    if (Array.isArray(data)) return data;
    if (data && typeof data === "object") {
      for (const key of ["sites", "items", "data", "results"]) if (Array.isArray(data[key])) return data[key];
    }
    return [];
  }

  // -- leaderboard tables ----------------------------------------------------------------------------
  function boardTable(type, entries, currentId) {
    if (!entries.length) return h("p", { class: "empty", text: "No sites on this leaderboard yet." });
    const rows = entries.map((entry) => {
      const site = entry.site || {};
      const current = currentId !== undefined && String(site.id) === String(currentId);
      return h(
        "tr",
        { "data-site-id": site.id, "data-score": entry.score, "data-rank": entry.rank, class: current ? "current" : null,
          "aria-current": current ? "true" : null },
        h("td", { class: "num", text: `#${entry.rank}` }),
        h("td", {}, h("a", { href: siteUrl(site.id), text: `Site ${site.id}` }), h("span", { class: "sub", text: siteName(site) })),
        h("td", { class: "num", text: BOARDS[type].format(entry.score) })
      );
    });
    return h(
      "table",
      { class: "board", "data-board": type },
      h("caption", { class: "visually-hidden", text: `${BOARDS[type].label} leaderboard` }),
      h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Rank" }), h("th", { scope: "col", text: "Site" }),
        h("th", { scope: "col", class: "num", text: BOARDS[type].label }))),
      h("tbody", {}, ...rows)
    );
  }

  // -- fleet page ------------------------------------------------------------------------------------
  // -- the fleet list: a page of sites at a time (GET /sites?limit=&cursor=, next page from the Link header) --
  const LIST_LIMIT = 10;

  function siteRows(sites) {
    return sites.map((site) =>
      h(
        "tr",
        { "data-site-id": site.id },
        h("td", { class: "num", text: String(site.id) }),
        h("td", {}, h("a", { href: siteUrl(site.id), text: `Site ${site.id}` }), h("span", { class: "sub", text: siteName(site) })),
        h("td", { class: "num", text: fmt(site.capacity, 1) + " kW" })
      )
    );
  }

  function fleetList() {
    const body = document.getElementById("site-rows");
    const first = document.getElementById("list-first");
    const next = document.getElementById("list-next");
    const where = document.getElementById("list-where");
    let cursor = null; // where the shown page starts (null: the first page)
    let following = null; // the cursor of the page after it, from its Link header
    let page = 1;

    async function refresh() {
      const query = new URLSearchParams({ limit: String(LIST_LIMIT) });
      if (cursor !== null) query.set("cursor", cursor);
      const shown = cursor;
      const { data, response } = await apiFetch(`/sites?${query}`);
      if (shown !== cursor) return; // the user moved meanwhile
      const sites = sitesOf(data);
      following = nextCursor(response);
      body.replaceChildren(...(sites.length ? siteRows(sites) : [h("tr", {}, h("td", { colspan: 3, class: "empty", text: "No sites yet." }))]));
      body.dataset.cursor = cursor === null ? "" : cursor;
      next.disabled = following === null;
      first.disabled = cursor === null;
      where.textContent = sites.length ? `Page ${page}: sites ${sites[0].id} to ${sites[sites.length - 1].id}` : "";
    }
    function go(to, number) {
      cursor = to;
      page = number;
      refresh().catch((err) => (isOutage(err) ? apiDown(err) : console.warn(err)));
    }
    next.addEventListener("click", () => following !== null && go(following, page + 1));
    first.addEventListener("click", () => go(null, 1));
    return refresh;
  }

  // -- fleet page ------------------------------------------------------------------------------------
  // Alerts (GET /api/alerts, /api/alerts/site/{id}): a table, newest first.
  function alertTable(alerts, withSite) {
    if (!alerts.length) return h("p", { class: "empty", text: withSite ? "No open alerts." : "No alerts." });
    const head = ["Kind", "State", "Since", "Resolved", "What"];
    if (withSite) head.unshift("Site");
    const rows = alerts.map((a) =>
      h("tr", { class: `alert-${a.state}`, "data-alert-id": a.id },
        withSite ? h("td", {}, h("a", { href: siteUrl(a.site_id), text: `Site ${a.site_id}` })) : null,
        h("td", { text: a.kind }), h("td", { text: a.state }), h("td", { text: fmtTime(a.opened_at) }),
        h("td", { text: a.resolved_at ? fmtTime(a.resolved_at) : "–" }), h("td", { text: a.message }))
    );
    return h("table", { class: "board alerts" },
      h("thead", {}, h("tr", {}, ...head.map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, ...rows));
  }

  function fleetPage() {
    const summary = document.getElementById("summary");
    const map = document.getElementById("map");
    const panel = document.getElementById("board-panel");
    let board = "capacity";
    let view = clampView(US_BOUNDS);
    let proj = null;
    let mapKey = "";
    let asked = ""; // the bbox of the newest map request
    let alerting = new Set(); // ids of the sites with an open alert (red markers)
    const openAlerts = document.getElementById("open-alerts");

    const formats = {
      total_sites: (v) => fmt(v),
      active_sites_24h: (v) => fmt(v),
      total_capacity_kw: (v) => fmt(v, 1) + " kW",
      total_generation_24h_wh: (v) => fmtEnergy(v),
      overall_efficiency_percent: (v) => fmt(v, 1) + " %",
    };

    async function refreshBoard() {
      const type = board;
      const data = await api(`/analytics/leaderboards/${type}`);
      if (type !== board) return; // the user switched tabs meanwhile
      panel.replaceChildren(boardTable(type, data.entries || []));
      panel.dataset.board = type;
    }

    async function refreshMap() {
      const bbox = bboxParam(view);
      const shown = view;
      asked = bbox;
      const data = await api(`/sites/map?bbox=${bbox}&limit=${MAP_LIMIT}`);
      if (asked !== bbox) return; // the view moved meanwhile; a newer request draws it
      const key = bbox + JSON.stringify(data) + [...alerting].join(",");
      if (key === mapKey) return;
      mapKey = key;
      proj = drawMap(map, shown, data, alerting);
    }

    async function refreshSummary() {
      const sum = await api("/analytics/summary");
      const values = (sum && sum.summary) || sum || {};
      for (const tile of summary.querySelectorAll(".tile")) {
        const key = tile.dataset.key;
        const value = values[key] === undefined && key === "total_sites" ? 0 : values[key];
        tile.querySelector(".value").textContent = formats[key](value);
        tile.dataset.value = value === undefined ? "" : value;
      }
    }

    async function refreshAlerts() {
      const data = await api("/alerts?state=open&limit=500");
      const alerts = data.alerts || [];
      alerting = new Set(alerts.map((a) => a.site_id));
      openAlerts.replaceChildren(alertTable(alerts.slice(0, 20), true));
    }

    const refreshList = fleetList();
    async function refresh() {
      await refreshAlerts();
      await Promise.all([refreshSummary(), refreshMap(), refreshList(), refreshBoard()]);
    }

    // Moving the view asks for its sites (after the user pauses: one request per gesture, not per frame).
    let moveTimer = null;
    function moveTo(next) {
      view = clampView(next);
      if (proj) map.querySelector("svg").setAttribute("data-bbox", bboxParam(view));
      clearTimeout(moveTimer);
      moveTimer = setTimeout(() => refreshMap().catch((err) => (isOutage(err) ? apiDown(err) : console.warn(err))), 150);
    }
    document.getElementById("map-in").addEventListener("click", () => moveTo(zoomView(view, 0.5)));
    document.getElementById("map-out").addEventListener("click", () => moveTo(zoomView(view, 2)));
    document.getElementById("map-reset").addEventListener("click", () => moveTo(US_BOUNDS));
    function pointAt(event) {
      const svg = map.querySelector("svg");
      if (!svg || !proj) return null;
      const box = svg.getBoundingClientRect();
      const px = ((event.clientX - box.left) / box.width) * MAP_WIDTH;
      const py = ((event.clientY - box.top) / box.height) * proj.height;
      return { lng: proj.lng(px), lat: proj.lat(py) };
    }
    map.addEventListener("wheel", (event) => {
      const at = pointAt(event);
      if (!at) return;
      event.preventDefault();
      moveTo(zoomView(view, event.deltaY < 0 ? 0.8 : 1.25, at.lng, at.lat));
    }, { passive: false });
    let drag = null;
    map.addEventListener("pointerdown", (event) => {
      if (event.target.closest("a")) return; // a marker opens its site
      const at = pointAt(event);
      if (at) drag = { at, view };
    });
    window.addEventListener("pointerup", () => (drag = null));
    map.addEventListener("pointermove", (event) => {
      if (!drag || !(event.buttons & 1)) return;
      const at = pointAt(event);
      if (!at) return;
      const dx = drag.at.lng - at.lng;
      const dy = drag.at.lat - at.lat;
      moveTo({ west: drag.view.west + dx, east: drag.view.east + dx, south: drag.view.south + dy, north: drag.view.north + dy });
    });

    const poke = poll(refresh, "/events");
    setupTabs(document.querySelector(".tabs"), (type) => {
      board = type;
      panel.classList.add("loading");
      refreshBoard()
        .then(() => panel.classList.remove("loading"))
        .catch((err) => (isOutage(err) ? apiDown(err) : console.warn(err)));
    });
    void poke;
  }

  // -- charts ----------------------------------------------------------------------------------------
  function niceTicks(min, max, count) {
    if (min === max) {
      min -= 1;
      max += 1;
    }
    const raw = (max - min) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
    const lo = Math.floor(min / step) * step;
    const hi = Math.ceil(max / step) * step;
    const ticks = [];
    for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.round(v / step) * step);
    return { lo, hi, ticks };
  }

  function drawChart(figure, series, start, end, unit, timeZone) {
    const plot = figure.querySelector(".plot");
    const width = Math.max(280, Math.round(plot.clientWidth || 600));
    const height = 200;
    const m = { left: 52, right: 12, top: 10, bottom: 26 };
    const values = series.map((p) => p.value);
    const { lo, hi, ticks } = niceTicks(Math.min(0, ...values), Math.max(0, ...values), 4);
    const x = (t) => m.left + ((t - start) / (end - start)) * (width - m.left - m.right);
    const y = (v) => m.top + ((hi - v) / (hi - lo || 1)) * (height - m.top - m.bottom);
    const label = figure.querySelector("figcaption").textContent;
    const svg = s("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img",
      "aria-label": `${label}: ${series.length} points`,
    });
    const axes = s("g", { class: "axes", "aria-hidden": "true" });
    for (const v of ticks) {
      axes.append(s("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: v === 0 ? "zero" : null }));
      axes.append(s("text", { x: m.left - 6, y: y(v) + 4, class: "ylabel", text: fmt(v, Math.abs(hi - lo) < 10 ? 1 : 0) }));
    }
    const span = end - start;
    const stepMs = span > 2 * 24 * HOUR ? 24 * HOUR : 6 * HOUR;
    // Ticks on the site's local midnights / hours: wall-clock steps, each turned back into an instant
    // with the offset of its own moment (so a DST change moves the ticks, not the labels).
    const firstWall = Math.ceil((start + zoneOffset(start, timeZone)) / stepMs) * stepMs;
    for (let wall = firstWall; ; wall += stepMs) {
      const t = wall - zoneOffset(wall - zoneOffset(wall, timeZone), timeZone);
      if (t >= end) break;
      if (t < start) continue;
      const d = new Date(t);
      const text = stepMs >= 24 * HOUR
        ? d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", timeZone })
        : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", timeZone });
      axes.append(s("line", { x1: x(t), x2: x(t), y1: m.top, y2: height - m.bottom, class: "v" }));
      axes.append(s("text", { x: x(t), y: height - 8, class: "xlabel", text }));
    }
    svg.append(axes);
    if (!series.length) {
      svg.append(s("text", { x: width / 2, y: height / 2, class: "nodata", text: "No readings in this range" }));
    } else {
      const d = series.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.value).toFixed(1)}`).join("");
      svg.append(s("path", { d, class: "line" }));
      const points = s("g", { class: "points" });
      const r = series.length > 100 ? 1.8 : 3;
      for (const p of series) {
        points.append(
          s("circle", { cx: x(p.t).toFixed(1), cy: y(p.value).toFixed(1), r, class: "point",
            "data-timestamp": p.timestamp, "data-value": p.value },
          s("title", { text: `${fmtTime(p.timestamp, timeZone)}: ${fmt(p.value, 2)} ${unit}` }))
        );
      }
      svg.append(points);
    }
    plot.replaceChildren(svg);
  }

  // Daily energy: one bar per local day of GET /analytics/energy (every day of the range is a period,
  // so 30 days are 30 bars; a day without readings is a grey stub).
  function drawBars(figure, data) {
    const plot = figure.querySelector(".plot");
    const periods = Array.isArray(data.periods) ? data.periods : [];
    const width = Math.max(280, Math.round(plot.clientWidth || 600));
    const height = 200;
    const m = { left: 64, right: 12, top: 10, bottom: 26 };
    const values = periods.map((p) => Number(p.wh_generated) || 0);
    const { lo, hi, ticks } = niceTicks(0, Math.max(0, ...values), 4);
    const y = (v) => m.top + ((hi - v) / (hi - lo || 1)) * (height - m.top - m.bottom);
    const slot = (width - m.left - m.right) / Math.max(1, periods.length);
    const svg = s("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, class: "chart-svg", role: "img",
      "aria-label": `Generated per local day in ${data.timezone}: ${periods.length} days`,
    });
    const axes = s("g", { class: "axes", "aria-hidden": "true" });
    for (const v of ticks) {
      axes.append(s("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: v === 0 ? "zero" : null }));
      axes.append(s("text", { x: m.left - 6, y: y(v) + 4, class: "ylabel", text: fmtEnergy(v) }));
    }
    const every = Math.ceil(periods.length / 8);
    periods.forEach((p, i) => {
      if (i % every) return;
      const [, month, day] = p.period.split("-").map(Number);
      axes.append(s("text", { x: m.left + slot * (i + 0.5), y: height - 8, class: "xlabel", text: `${month}/${day}` }));
    });
    svg.append(axes);
    const bars = s("g", { class: "bars" });
    periods.forEach((p, i) => {
      const value = Number(p.wh_generated) || 0;
      const top = p.count ? y(value) : y(0) - 2;
      const note = `${p.period} (${data.timezone}): ${fmtEnergy(value)}, ` +
        `${fmt(p.capacity_factor_percent, 1)} % capacity factor, ${fmt(p.count)} readings`;
      bars.append(
        s("rect", { x: (m.left + slot * i + slot * 0.12).toFixed(1), y: top.toFixed(1), width: (slot * 0.76).toFixed(1),
          height: Math.max(0, y(0) - top).toFixed(1), class: p.count ? "bar" : "bar empty",
          "data-period": p.period, "data-value": value, "data-count": p.count },
        s("title", { text: note }))
      );
    });
    svg.append(bars);
    plot.replaceChildren(svg);
    figure.dataset.count = String(periods.length);
    figure.dataset.timezone = data.timezone;
  }

  // -- site page -------------------------------------------------------------------------------------
  function sitePage() {
    const id = body.dataset.siteId;
    const title = document.getElementById("site-title");
    const details = document.getElementById("details");
    const latest = document.getElementById("latest");
    const form = document.getElementById("chart-controls");
    const range = document.getElementById("range");
    const aggregation = document.getElementById("aggregation");
    const bucket = document.getElementById("bucket");
    const figures = Array.from(document.querySelectorAll(".chart"));
    const rankPanel = document.getElementById("rank-panel");
    const chartZone = document.getElementById("chart-tz");
    const energyZone = document.getElementById("energy-tz");
    const energyBars = document.getElementById("energy-bars");
    let board = "capacity";
    let missing = false;
    let siteZone; // the site's IANA zone: charts are drawn and labelled in it (undefined: the browser's)

    function showDetails(site) {
      siteZone = site.timezone && knownZone(site.timezone) ? site.timezone : undefined;
      chartZone.textContent = siteZone ? `Times in ${siteZone} (the site's local time)` : "Times in your browser's time zone";
      chartZone.dataset.timezone = siteZone || "";
      title.textContent = `Site ${site.id} · ${site.city}, ${site.state}`;
      document.title = `Site ${site.id} · RediSolar`;
      const rows = [
        ["Capacity", fmt(site.capacity, 1) + " kW"],
        ["Panels", fmt(site.panels)],
        ["Address", site.address],
        ["City", `${site.city}, ${site.state} ${site.postal_code}`],
        ["Time zone", site.timezone || "–"],
        ["Coordinates", site.coordinate ? `${fmt(site.coordinate.lat, 4)}, ${fmt(site.coordinate.lng, 4)}` : "–"],
      ];
      details.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]));
    }

    function showLatest(readings) {
      for (const tile of latest.querySelectorAll(".tile")) {
        const r = readings[tile.dataset.metric];
        const unit = tile.dataset.metric === "temp_c" ? " °C" : " Wh";
        tile.querySelector(".value").textContent = r ? fmt(r.value, tile.dataset.metric === "temp_c" ? 1 : 0) + unit : "–";
        tile.querySelector(".when").textContent = r ? fmtTime(r.timestamp, siteZone) : "no reading";
        tile.dataset.value = r ? r.value : "";
        tile.dataset.timestamp = r ? r.timestamp : "";
      }
    }

    async function refreshCharts() {
      const end = Date.now();
      const start = end - RANGES[range.value];
      const agg = aggregation.value;
      const params = new URLSearchParams({ start: new Date(start).toISOString(), end: new Date(end).toISOString(), aggregation: agg });
      if (agg !== "raw") params.set("bucket_size", bucket.value);
      const results = await Promise.all(
        figures.map((f) => api(`/analytics/readings/${id}/${f.dataset.metric}?${params}`))
      );
      figures.forEach((figure, i) => {
        const data = results[i].data || [];
        const series = data
          .map((p) => ({ timestamp: p.timestamp, value: Number(p.value), t: new Date(p.timestamp).getTime() }))
          .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.value));
        figure.dataset.query = params.toString();
        figure.dataset.count = String(series.length);
        drawChart(figure, series, start, end, figure.dataset.unit, siteZone);
      });
    }

    async function refreshEnergy() {
      const data = await api(`/analytics/energy/${id}?granularity=day`);
      energyZone.textContent = `Local days in ${data.timezone}, ${data.start} to ${data.end} (exclusive)`;
      energyZone.dataset.timezone = data.timezone;
      drawBars(energyBars, data);
    }

    async function refreshRank() {
      const type = board;
      let content;
      try {
        const data = await api(`/analytics/leaderboards/${type}/site/${id}?context=2`);
        content = [
          h("p", { class: "rank-line" }, h("strong", { text: `#${data.rank}` }),
            ` on the ${BOARDS[type].label.toLowerCase()} leaderboard · ${BOARDS[type].format(data.score)}`),
          boardTable(type, data.surrounding_sites || [], id),
        ];
      } catch (err) {
        if (isOutage(err) || err.status !== 404) throw err;
        content = [h("p", { class: "empty", text: `Not on the ${BOARDS[type].label.toLowerCase()} leaderboard yet.` })];
      }
      if (type !== board) return;
      rankPanel.dataset.board = type;
      rankPanel.replaceChildren(...content);
    }

    async function refresh() {
      if (missing) return;
      let site;
      try {
        site = await api(`/sites/${id}`);
      } catch (err) {
        if (err.status === 404) {
          missing = true;
          title.textContent = `Site ${id} not found`;
          document.querySelector("main").replaceChildren(
            title, h("p", {}, "There is no such site. ", h("a", { href: "/dashboard", text: "Back to the fleet" }))
          );
          return;
        }
        throw err;
      }
      showDetails(site.site || site);
      const [latestData, alertData] = await Promise.all([
        api(`/analytics/readings/${id}/latest`), api(`/alerts/site/${id}`), refreshCharts(), refreshRank(), refreshEnergy(),
      ]);
      showLatest(latestData.latest_readings || {});
      document.getElementById("site-alerts").replaceChildren(alertTable((alertData.alerts || []).slice(0, 50), false));
    }

    const poke = poll(refresh, `/events?site_id=${id}`);
    form.addEventListener("change", () => {
      bucket.disabled = aggregation.value === "raw";
      poke();
    });
    form.addEventListener("submit", (event) => event.preventDefault());
    setupTabs(document.querySelector(".tabs"), (type) => {
      board = type;
      refreshRank().catch((err) => (isOutage(err) ? apiDown(err) : console.warn(err)));
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(poke, 250);
    });
  }

  if (body.dataset.page === "fleet") fleetPage();
  else if (body.dataset.page === "site") sitePage();
})();
