"""Prometheus metrics. Labels never carry personal data."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

WEBHOOKS = Counter("kcc_webhooks_total", "Twilio webhooks answered", ["route", "outcome"])
FALLBACKS = Counter("kcc_fallbacks_total", "Webhooks answered with the apology", ["route", "error"])
WEBHOOK_SECONDS = Histogram(
    "kcc_webhook_seconds",
    "Time to answer a Twilio webhook",
    ["route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
