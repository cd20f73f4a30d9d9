"""The interactive API docs (/docs), off unless DISTILLERY_API_DOCS=true.

Swagger UI is not shipped in the package, and FastAPI's default page loads it from a CDN at an
unpinned version with no integrity check, on the origin where the dashboard signs in: a
compromised script there could act with the dashboard's session. So by default there is no
/docs (the OpenAPI document stays at /openapi.json for clients and tools). An operator who
turns it on gets this page: one pinned Swagger UI release, its files checked by Subresource
Integrity (a changed file is not run), and a Content-Security-Policy that lets the page run
only those two files and its own initialiser, and talk only to this origin.
"""

from fastapi import APIRouter, Response

router = APIRouter(include_in_schema=False)

SWAGGER_UI = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0"
# sha384 of the release's files (npm's swagger-ui-dist 5.36.0, which jsdelivr serves as is).
SCRIPT_INTEGRITY = "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"
STYLE_INTEGRITY = "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Distillery API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css" integrity="{STYLE_INTEGRITY}"
      crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js" integrity="{SCRIPT_INTEGRITY}"
        crossorigin="anonymous"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = 'SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'

HEADERS = {
    "Content-Security-Policy": f"default-src 'none'; script-src 'self' "
    f"{SWAGGER_UI}/swagger-ui-bundle.js; style-src {SWAGGER_UI}/swagger-ui.css 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/docs")
async def docs() -> Response:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/docs/init.js")
async def docs_init() -> Response:
    return Response(INIT, media_type="text/javascript; charset=utf-8", headers=HEADERS)
