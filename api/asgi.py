"""Entry point for `uvicorn api.asgi:app` (what `kcc serve` runs)."""

from __future__ import annotations

from api.app import create_app
from api.logs import configure_logging
from api.settings import Settings

_settings = Settings()
configure_logging(_settings.log_level)
app = create_app(_settings)
