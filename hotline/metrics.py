"""Prometheus metrics for ``/metrics``, read from the parts' own counters at scrape time.

The FastAGI factory, the AMI client and the tracker each keep plain counters; this
module turns them into Prometheus families when scraped, so the hot paths never touch
prometheus_client. Only the DB write latency is a real histogram, observed by the writer.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

Reading = Callable[[], "float | Mapping[tuple[str, ...] | str, float]"]


class _ScrapeTimeCollector:
    """One metric family whose value(s) come from a function called at scrape time."""

    def __init__(self, kind: str, name: str, doc: str, labels: tuple[str, ...], read: Reading):
        self.kind, self.name, self.doc, self.labels, self.read = kind, name, doc, labels, read

    def describe(self) -> Iterable:
        return []  # values appear lazily; nothing to pre-register

    def collect(self) -> Iterable:
        family_type = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        name = self.name[:-len("_total")] if self.kind == "counter" and self.name.endswith("_total") else self.name
        family = family_type(name, self.doc, labels=list(self.labels))
        try:
            value = self.read()
        except Exception:  # a broken reading must not break the whole scrape
            return []
        if self.labels:
            for key, amount in dict(value).items():
                key = (key,) if isinstance(key, str) else tuple(key)
                family.add_metric([str(k) for k in key], float(amount))
        else:
            family.add_metric([], float(value))
        return [family]


class HotlineMetrics:
    """The service's registry; parts register readings, the HTTP listener renders them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.db_write_seconds = Histogram(
            "hotline_db_write_seconds", "Time to write one record batch to the database",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)

    def gauge(self, name: str, doc: str, read: Reading, labels: tuple[str, ...] = ()) -> None:
        self.registry.register(_ScrapeTimeCollector("gauge", name, doc, labels, read))

    def counter(self, name: str, doc: str, read: Reading, labels: tuple[str, ...] = ()) -> None:
        self.registry.register(_ScrapeTimeCollector("counter", name, doc, labels, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)
