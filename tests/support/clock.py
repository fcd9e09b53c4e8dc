"""The open Tuesday: a moment when the contact centre is open, for the tests that need it open.

The real clock may fall in the evening, a weekend or a holiday; the app in-process gets a
`FixedClock` at this moment, `kcc serve` gets it as KCC_NOW and `kcc call` as `--at`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
TUESDAY_MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM)  # Tuesday 1 December 2026
OPEN_TUESDAY = TUESDAY_MORNING.isoformat()  # "2026-12-01T10:00:00+01:00"
