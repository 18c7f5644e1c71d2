"""`/dashboard`: a page over the API that shows its figures (predictor fits, accuracy
matrices). The page itself needs no key and holds no data; it asks for one."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from app.dashboard.page import CSP, CSS, HTML, JS

router = APIRouter(tags=["dashboard"], include_in_schema=False)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@router.get("/dashboard")
async def dashboard() -> Response:
    """The dashboard page."""
    return Response(HTML, media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/dashboard/app.js")
async def dashboard_js() -> Response:
    return Response(JS, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@router.get("/dashboard/app.css")
async def dashboard_css() -> Response:
    return Response(CSS, media_type="text/css; charset=utf-8", headers=_HEADERS)
