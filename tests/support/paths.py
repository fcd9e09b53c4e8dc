"""Where the project's own files are, for the tests that read them."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "flows" / "kcc.yaml"  # the flow the project ships: KCC_FLOW's default
