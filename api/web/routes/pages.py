"""The pages the app serves itself: plain HTML, CSS and a little JavaScript, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/desk")
async def desk() -> FileResponse:
    return FileResponse(STATIC / "desk.html", media_type="text/html")


@router.get("/supervisor")
async def supervisor() -> FileResponse:
    return FileResponse(STATIC / "supervisor.html", media_type="text/html")
