"""The REST gateway described as OpenAPI 3.1: the document, built from the dialects'
constants (:mod:`trackd.gateway.openapi.document`), and the routes serving it and its docs page
(:mod:`trackd.gateway.openapi.routes`)."""
