"""The pages the app serves itself: plain HTML, CSS and a little JavaScript, no build step.
Nothing comes from a CDN: Swagger UI for /docs is a copy in static/vendor/ (scripts/vendor)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
SWAGGER_UI = "/static/vendor/swagger-ui"
OPENAPI_URL = "/openapi.json"
router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> FileResponse:
    """What the service is, with links to the desk, the supervisor page and the API docs."""
    return FileResponse(STATIC / "home.html", media_type="text/html")


@router.get("/docs")
async def api_docs() -> FileResponse:
    """Swagger UI from the package's own copy, so it works without internet; started by
    static/docs.js (no inline script: the Content-Security-Policy allows none)."""
    return FileResponse(STATIC / "docs.html", media_type="text/html")


@router.get("/desk")
async def desk() -> FileResponse:
    return FileResponse(STATIC / "desk.html", media_type="text/html")


@router.get("/supervisor")
async def supervisor() -> FileResponse:
    return FileResponse(STATIC / "supervisor.html", media_type="text/html")


@router.get("/wallboard")
async def wallboard() -> FileResponse:
    """The room's screen (and anyone allowed the wallboard): signs in, then follows the
    wallboard's events."""
    return FileResponse(STATIC / "wallboard.html", media_type="text/html")


@router.get("/reports")
async def reports() -> FileResponse:
    """Supervisors' call reports: the page signs in as /supervisor does, the API checks the role."""
    return FileResponse(STATIC / "reports.html", media_type="text/html")
