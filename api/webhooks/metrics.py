"""Prometheus metrics. Labels never carry personal data.

The process's own (webhooks answered, fallbacks, answer times) are registered once; the live
figures of the contact centre are read from Redis at scrape time (routing/live_figures.py) and
rendered by a collector made for that one scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from routing.live_figures import LiveFigures

WEBHOOKS = Counter("kcc_webhooks_total", "Twilio webhooks answered", ["route", "outcome"])
FALLBACKS = Counter("kcc_fallbacks_total", "Webhooks answered with the apology", ["route", "error"])
WEBHOOK_SECONDS = Histogram(
    "kcc_webhook_seconds",
    "Time to answer a Twilio webhook",
    ["route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class LiveFigureCollector(Collector):
    """The contact centre as it stands, from figures read once for this scrape."""

    def __init__(self, figures: LiveFigures) -> None:
        self._figures = figures

    def collect(self) -> Iterator[Metric]:
        figures = self._figures
        yield GaugeMetricFamily(
            "kcc_calls_in_menu", "Calls in the menu (no adviser line yet)", figures.calls_in_menu
        )
        yield _per_product(
            GaugeMetricFamily(
                "kcc_calls_waiting", "Callers waiting on the line", labels=["product"]
            ),
            figures.waiting,
        )
        yield _per_product(
            GaugeMetricFamily(
                "kcc_oldest_wait_seconds",
                "How long the longest-waiting caller has waited",
                labels=["product"],
            ),
            figures.oldest_wait_seconds,
        )
        advisers = GaugeMetricFamily("kcc_advisers", "Advisers per state", labels=["state"])
        for state, count in figures.advisers.items():
            advisers.add_metric([state.value], count)
        yield advisers
        for name, help_text, counts in (
            ("kcc_calls_offered", "Calls that joined an adviser line", figures.offered),
            ("kcc_calls_answered", "Calls put through to an adviser", figures.answered),
            ("kcc_calls_abandoned", "Calls that left the line unanswered", figures.abandoned),
        ):
            yield _per_product(CounterMetricFamily(name, help_text, labels=["product"]), counts)


def _per_product(
    family: GaugeMetricFamily | CounterMetricFamily, values: dict[str, int] | dict[str, float]
) -> Metric:
    for product, value in sorted(values.items()):
        family.add_metric([product], value)
    return family
