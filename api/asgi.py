"""Entry point for `uvicorn api.asgi:app` (what `kcc serve` runs)."""

from __future__ import annotations

import gc

from api.logs import configure_logging
from api.settings import Settings
from api.web.app import create_app

_settings = Settings()
configure_logging(_settings.log_level, access_log=_settings.access_log)
app = create_app(_settings)
# What start-up made (modules, the flows, the app) lives as long as the process: keep it out of
# the collector's full passes, which otherwise held up every request in flight for up to 0.1 s.
gc.collect()  # what start-up left as garbage goes now, not frozen for the process' life
gc.freeze()
