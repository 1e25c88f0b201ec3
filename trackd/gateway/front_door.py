"""``GET /`` for a person, and the headers every answer of the gateway carries.

A browser asking for ``/`` (its ``Accept`` prefers ``text/html`` to JSON) gets a small page
linking the console, the API documentation, the OpenAPI document and the metrics. An API
client (``Accept: application/json``, ``*/*``, or none) gets exactly the JSON 404 every
unknown path gets (:mod:`trackd.gateway.errors_middleware`).

Every answer says ``Server: trackd``: aiohttp would otherwise add
``Server: Python/<version> aiohttp/<version>`` (it only adds the header when none is set,
so it cannot be removed, only replaced). The answers the app gives get it from
:func:`stamp` (an ``on_response_prepare`` signal); the ones given before the app runs (the
HTTP parser's refusals, an unknown ``Expect``) from :func:`neutral` in
:mod:`trackd.gateway.http_protocol`. Every answer also carries ``X-Content-Type-Options:
nosniff`` and ``Referrer-Policy: no-referrer``; the pages trackd writes itself (this one
and the console) carry :data:`PAGE_CSP`, which allows only the gateway's own files.
"""

from __future__ import annotations

from aiohttp import web

from trackd.gateway.errors_middleware import render_http_error

SERVER = "trackd"
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# No inline script or style, nothing from another origin, no framing, no plugins.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
_PAGE_PATHS = web.AppKey("trackd_page_paths", frozenset)

PAGE = b"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>trackd</title>
  <link rel="icon" href="/console/assets/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/console/assets/console.css">
</head>
<body class="front">
  <main>
    <h1>trackd</h1>
    <p>Event ingestion: a gRPC API and vendor REST dialects on MongoDB.</p>
    <ul class="doors">
      <li><a href="/console">Console</a>: watch events arrive, and why each request was
        decided as it was (needs an API key with <code>events:read</code>).</li>
      <li><a href="/docs">API documentation</a> (Swagger UI).</li>
      <li><a href="/openapi.json">OpenAPI document</a> (JSON).</li>
      <li><a href="/metrics">Metrics</a> (Prometheus text format).</li>
    </ul>
  </main>
</body>
</html>
"""


def neutral(response: web.StreamResponse) -> web.StreamResponse:
    """``response`` with the headers every answer carries."""
    response.headers["Server"] = SERVER
    for name, value in COMMON_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def page_headers(response: web.StreamResponse) -> web.StreamResponse:
    """A page of trackd's own: its strict Content-Security-Policy, never cached by others."""
    response.headers["Content-Security-Policy"] = PAGE_CSP
    response.headers.setdefault("Cache-Control", "no-store")
    return neutral(response)


async def stamp(request: web.Request, response: web.StreamResponse) -> None:
    neutral(response)


def prefers_html(accept: str) -> bool:
    """Whether an ``Accept`` header ranks ``text/html`` above JSON (a browser's does;
    ``*/*`` or none does not)."""
    html = json = 0.0
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media == "text/html":
            html = max(html, quality)
        elif media == "application/json":
            json = max(json, quality)
    return html > 0 and html > json


async def front_door(request: web.Request) -> web.StreamResponse:
    """GET /: the page for a browser; the JSON 404 of any unknown path for anyone else."""
    if not prefers_html(request.headers.get("Accept", "")):
        return render_http_error(request, web.HTTPNotFound())
    return page_headers(web.Response(body=PAGE, content_type="text/html", charset="utf-8"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", front_door)
    app.on_response_prepare.append(stamp)
