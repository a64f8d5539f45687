"""What a scrape collects: the agent's metrics as prometheus_client metric families, with exemplars.

One source of truth: the OpenTelemetry SDK's own aggregation.  `PrometheusReader`,
a pull MetricReader (cumulative), collects it at scrape time into a snapshot
(see `snapshots.py`), and `PrometheusCollector` turns that (merged with the other
workers' snapshots under several processes, see `..multiprocess`) into metric
families named as `naming.py` says.  Histogram buckets carry the trace id and
span id of a recorded request as an OpenMetrics exemplar (the SDK samples them
when a sampled span is current: OTEL_METRICS_EXEMPLAR_FILTER=trace_based, the
default).  A `target_info` metric carries the resource (minus
service.instance.id).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Dict, List, Optional

from opentelemetry.sdk.metrics import (
    Counter, Histogram, ObservableCounter, ObservableGauge, ObservableUpDownCounter, UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader
from prometheus_client.core import (
    CollectorRegistry, CounterMetricFamily, Exemplar, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily,
)
from prometheus_client.samples import Sample

from .naming import label_name, label_value, unit_of
from .snapshots import merge, snapshot

logger = logging.getLogger(__name__)

_CUMULATIVE = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


def families(snap: Dict[str, dict]):
    """Yields prometheus_client metric families for a snapshot (with OpenMetrics UNIT metadata).

    Each sample keeps its own label set: an attribute only some data points have (error.type) is absent from
    the others rather than exposed as an empty label.
    """
    for name in sorted(snap):
        family = snap[name]
        samples = family["samples"]
        if not samples:
            continue
        unit = unit_of(name)
        if family["type"] == "counter":
            out = CounterMetricFamily(name, family["help"], unit=unit)
            for key, sample in samples.items():
                out.samples.append(Sample(out.name + "_total", dict(key), sample["value"]))
        elif family["type"] == "gauge":
            out = GaugeMetricFamily(name, family["help"], unit=unit)
            for key, sample in samples.items():
                out.samples.append(Sample(name, dict(key), sample["value"]))
        else:
            out = HistogramMetricFamily(name, family["help"], unit=unit)
            for key, sample in samples.items():
                labels = dict(key)
                buckets = _buckets(sample)
                for bucket in buckets:
                    out.samples.append(Sample(name + "_bucket", dict(labels, le=bucket[0]), bucket[1], None,
                                              bucket[2] if len(bucket) > 2 else None))
                out.samples.append(Sample(name + "_count", labels, buckets[-1][1]))
                out.samples.append(Sample(name + "_sum", labels, sample["sum"]))
        yield out


def target_info(attributes) -> Optional[InfoMetricFamily]:
    """Returns the target_info metric of a resource (minus service.instance.id, which differs per worker)."""
    if not attributes:
        return None
    values = {label_name(k): label_value(v) for k, v in attributes.items() if k != "service.instance.id"}
    return InfoMetricFamily("target", "Target metadata", value=values)


def _buckets(sample: dict) -> List[tuple]:
    """Returns cumulative (le, count[, exemplar]) buckets for prometheus_client."""
    buckets = []
    running = 0
    bounds = list(sample["bounds"]) + [math.inf]
    for index, (bound, count) in enumerate(zip(bounds, sample["counts"])):
        running += count
        le = "+Inf" if math.isinf(bound) else _float(bound)
        ex = sample["exemplars"].get(index)
        if ex is not None:
            buckets.append((le, running, Exemplar({"trace_id": ex[0], "span_id": ex[1]}, ex[2], ex[3] / 1e9)))
        else:
            buckets.append((le, running))
    return buckets


def _float(bound: float) -> str:
    """Returns a bucket bound as Prometheus spells it ("0.5", "10.0")."""
    return repr(float(bound))


class PrometheusReader(MetricReader):
    """A pull MetricReader (cumulative) that prometheus_client scrapes through PrometheusCollector."""

    def __init__(self) -> None:
        super().__init__(preferred_temporality=_CUMULATIVE)
        self._latest = None
        self._lock = threading.Lock()
        # The SDK hands each exemplar to one collection only; keep the newest per bucket for every scrape.
        self._exemplars: Dict[tuple, Dict[int, list]] = {}
        # Last-value gauges: (value, when it last changed), so "most recent across workers" means most recently
        # changed, not most recently collected.
        self._gauges: Dict[tuple, tuple] = {}
        self.resource_attributes: dict = {}

    def _receive_metrics(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> None:
        """Keeps what collect() produced, for snapshot() to read."""
        self._latest = metrics_data

    def snapshot(self) -> Dict[str, dict]:
        """Returns a fresh snapshot of this process's metrics; never raises."""
        with self._lock:
            try:
                self._latest = None
                self.collect()
                latest = self._latest
                if latest is not None and latest.resource_metrics:
                    self.resource_attributes = dict(latest.resource_metrics[0].resource.attributes)
                snap = snapshot(latest)
                self._keep_exemplars(snap)
                self._keep_gauge_times(snap)
                return snap
            except Exception:
                logger.debug("claude-otel: metric collection failed", exc_info=True)
                return {}

    def _keep_gauge_times(self, snap: Dict[str, dict]) -> None:
        """Stamps each last-value gauge sample with when its value last changed (not when it was collected)."""
        for name, family in snap.items():
            if family["agg"] != "last":
                continue
            for key, sample in family["samples"].items():
                seen = self._gauges.get((name, key))
                if seen is None or seen[0] != sample["value"]:
                    seen = self._gauges[(name, key)] = (sample["value"], sample["time"])
                sample["time"] = seen[1]

    def after_fork(self) -> None:
        """Forgets the parent's exemplars and gauge times in a forked child (its metric state starts empty)."""
        self._lock = threading.Lock()
        self._exemplars = {}
        self._gauges = {}
        self._latest = None

    def _keep_exemplars(self, snap: Dict[str, dict]) -> None:
        """Merges this collection's exemplars into the kept ones and puts the kept ones into the snapshot."""
        for name, family in snap.items():
            if family["type"] != "histogram":
                continue
            for key, sample in family["samples"].items():
                kept = self._exemplars.setdefault((name, key), {})
                kept.update(sample["exemplars"])
                sample["exemplars"] = dict(kept)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        """Does nothing: a pull reader holds no thread or connection."""


class PrometheusCollector:
    """A prometheus_client collector over a PrometheusReader, merging other workers' snapshots when shared.

    To expose the agent's metrics on prometheus_client's default registry as well (an app that already serves
    `prometheus_client.REGISTRY`): `prometheus_client.REGISTRY.register(handle.collector)`.
    """

    def __init__(self, reader: PrometheusReader, shared=None, info: bool = True) -> None:
        self._reader = reader
        self._shared = shared
        self._info = info

    def describe(self):
        """Returns no names up front, so registering never triggers a collection (names vary with use)."""
        return []

    def collect(self):
        """Returns this process's metric families (merged with the other workers' when shared) and target_info."""
        own = self._reader.snapshot()
        if self._shared is not None:
            own = merge([own] + self._shared.others())
        found = list(families(own))
        if self._info:
            info = target_info(self._reader.resource_attributes)
            if info is not None:
                found.append(info)
        return found


def registry_for(reader: PrometheusReader, shared=None) -> CollectorRegistry:
    """Returns a dedicated CollectorRegistry exposing the reader's metrics (and, if shared, every worker's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(reader, shared))
    return registry


