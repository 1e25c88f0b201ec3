"""``GET /openapi.json`` and ``GET /docs``: the document, and Swagger UI rendering it.

Swagger UI's files come from the PyPI package ``swagger-ui-py`` (its ``static`` folder is
Swagger UI's own dist, 5.x), served by the gateway at ``/docs/assets/``, so the page needs
no internet access. The package is located, not imported: only its files are used.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import orjson
from aiohttp import web

from trackd.gateway.openapi.document import build_document
from trackd.gateway.openapi.meta_paths import DOCS_PATH, DOCUMENT_PATH
from trackd.gateway.settings import GATEWAY_SETTINGS

ASSETS_PATH = f"{DOCS_PATH}/assets"
_DOCUMENT = web.AppKey("openapi_document", bytes)

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>trackd REST API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{DOCUMENT_PATH}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      docExpansion: "list",
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    }});
  </script>
</body>
</html>
"""


def swagger_ui_assets() -> Path:
    """The folder of Swagger UI's dist files inside the ``swagger_ui`` package."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


async def openapi_json(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.Response(body=request.app[_DOCUMENT], content_type="application/json")


async def docs(request: web.Request) -> web.Response:
    """GET /docs."""
    return web.Response(text=PAGE, content_type="text/html")


async def _build(app: web.Application) -> None:
    app[_DOCUMENT] = orjson.dumps(build_document(app[GATEWAY_SETTINGS]))


def add_routes(app: web.Application) -> None:
    app.on_startup.append(_build)
    app.router.add_get(DOCUMENT_PATH, openapi_json)
    app.router.add_get(DOCS_PATH, docs)
    app.router.add_static(ASSETS_PATH, swagger_ui_assets())
