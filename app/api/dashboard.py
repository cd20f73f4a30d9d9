"""The dashboard: its page at `/` and its assets at /dashboard/<name>, from app/dashboard/.

Served with no API key (the files hold no data): the page itself asks for a key when /v1
answers 401 and sends it there. The assets are the package's own files (no CDN, no build
step), read once, each with a strong ETag; the headers keep the page to its own origin.
"""

import hashlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from app.api_error import ApiError

router = APIRouter(include_in_schema=False)

# The page, its style and its ES modules (dashboard.js imports the others).
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    **{
        f"{module}.js": "text/javascript; charset=utf-8"
        for module in ("dashboard", "api", "dom", "charts", "job", "list", "submit")
    },
}
# Scripts, styles and requests to this origin only; artifacts are saved through blob: URLs.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@cache
def asset(name: str) -> tuple[bytes, str]:
    """(the file's bytes, its ETag)"""
    body = resources.files("app").joinpath("dashboard", name).read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _serve(request: Request, name: str) -> Response:
    body, etag = asset(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache", **SECURITY_HEADERS}
    if etag in request.headers.get("If-None-Match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=MEDIA_TYPES[name], headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/dashboard/{name}")
async def dashboard_asset(name: str, request: Request) -> Response:
    if name not in MEDIA_TYPES or name == "index.html":
        raise ApiError(404, "not_found", f"no dashboard file {name!r}", "name")
    return _serve(request, name)
