"""Prometheus exposition of the agent's metrics, with exemplars and multi-process totals.

One source of truth: the OpenTelemetry SDK's own aggregation.  A pull
MetricReader (cumulative) collects it at scrape time and a prometheus_client
Collector turns it into metric families named by the OpenTelemetry-to-Prometheus
rules: dots become underscores, unit "s" adds `_seconds` (also an OpenMetrics
UNIT line), unit "1" and `{...}` annotations add nothing, counters get `_total`,
up-down counters and gauges keep the plain name, boolean attribute values are
"true"/"false".  Histogram buckets carry the trace id and span id of a recorded
request as an OpenMetrics exemplar (the SDK samples them when a sampled span is
current: OTEL_METRICS_EXEMPLAR_FILTER=trace_based, the default).  A
`target_info` metric carries the resource (minus service.instance.id).

The registry is a dedicated CollectorRegistry; `make_wsgi_app()` /
`make_asgi_app()` serve configure()'s (looked up at each scrape, so they can be
mounted before configure() runs).  Under several worker processes each one also
writes its snapshot to a shared directory, and whichever process is scraped
reports the totals of all (see `multiprocess.py`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import Dict, Iterable, List, Optional, Tuple

from opentelemetry.sdk.metrics import (
    Counter, Histogram, ObservableCounter, ObservableGauge, ObservableUpDownCounter, UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality, Gauge, MetricReader, Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from prometheus_client.core import (
    CollectorRegistry, CounterMetricFamily, Exemplar, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily,
)
from prometheus_client.samples import Sample

logger = logging.getLogger("claude_otel")

_CUMULATIVE = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent"}


def metric_name(name: str, unit: str) -> str:
    """Returns the Prometheus name of an OpenTelemetry metric (without _total / _bucket suffixes)."""
    base = _INVALID.sub("_", name)
    suffix = _UNITS.get(unit or "", "")
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    """Returns a Prometheus label name for an attribute key."""
    name = _INVALID.sub("_", key).replace(":", "_")
    return "_" + name if name[:1].isdigit() else name


def label_value(value: object) -> str:
    """Returns a label value: booleans as true/false, sequences joined, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(label_value(v) for v in value)
    return str(value)


# A snapshot is plain data (so worker processes can share it as JSON):
# {name: {"type": counter|gauge|histogram, "help": str, "agg": sum|last,
#          "samples": {labels_key: sample}}}
# where labels_key is a tuple of (label, value) pairs and a sample is
#   counter/gauge: {"value": float, "time": ns}
#   histogram:     {"bounds": [...], "counts": [...], "sum": float, "exemplars": {bucket_index: [trace, span, v, ns]}}


def snapshot(metrics_data) -> Dict[str, dict]:
    """Returns the plain-data snapshot of an OpenTelemetry MetricsData (cumulative)."""
    families: Dict[str, dict] = {}
    if metrics_data is None:
        return families
    for rm in metrics_data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = metric.data
                name = metric_name(metric.name, metric.unit)
                if isinstance(data, HistogramData):
                    kind, agg = "histogram", "sum"
                elif isinstance(data, Sum):
                    kind = "counter" if data.is_monotonic else "gauge"
                    agg = "sum"
                elif isinstance(data, Gauge):
                    kind, agg = "gauge", "last"
                else:
                    continue
                family = families.setdefault(name, {"type": kind, "help": metric.description or metric.name,
                                                    "agg": agg, "samples": {}})
                for point in data.data_points:
                    key = tuple(sorted((label_name(k), label_value(v)) for k, v in point.attributes.items()))
                    if kind == "histogram":
                        family["samples"][key] = {
                            "bounds": list(point.explicit_bounds), "counts": list(point.bucket_counts),
                            "sum": point.sum, "max": _finite(point.max), "exemplars": _exemplars(point),
                        }
                    else:
                        family["samples"][key] = {"value": point.value, "time": point.time_unix_nano}
    return families


def _finite(value) -> float:
    """Returns value, or 0.0 when the SDK reports none (None or an infinite placeholder)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _exemplars(point) -> Dict[int, list]:
    """Returns {bucket index: [trace_id, span_id, value, time_ns]} for a histogram point's sampled exemplars."""
    found: Dict[int, list] = {}
    bounds = point.explicit_bounds
    for exemplar in getattr(point, "exemplars", None) or ():
        if not exemplar.trace_id:
            continue
        index = len(bounds)
        for i, bound in enumerate(bounds):
            if exemplar.value <= bound:
                index = i
                break
        found[index] = [format(exemplar.trace_id, "032x"), format(exemplar.span_id, "016x"), exemplar.value,
                        exemplar.time_unix_nano]
    return found


def merge(snapshots: Iterable[Dict[str, dict]]) -> Dict[str, dict]:
    """Returns one snapshot summing counters and histograms, summing or taking the newest gauge values."""
    merged: Dict[str, dict] = {}
    for snap in snapshots:
        for name, family in snap.items():
            target = merged.setdefault(name, {"type": family["type"], "help": family["help"], "agg": family["agg"],
                                              "samples": {}})
            for key, sample in family["samples"].items():
                key = tuple(tuple(pair) for pair in key)
                have = target["samples"].get(key)
                if have is None:
                    target["samples"][key] = _copy(sample)
                elif family["type"] == "histogram":
                    if have["bounds"] == sample["bounds"]:
                        have["counts"] = [a + b for a, b in zip(have["counts"], sample["counts"])]
                        have["sum"] += sample["sum"]
                        have["max"] = max(have.get("max") or 0.0, sample.get("max") or 0.0)
                        for index, ex in sample["exemplars"].items():
                            index = int(index)
                            if index not in have["exemplars"] or ex[3] > have["exemplars"][index][3]:
                                have["exemplars"][index] = list(ex)
                elif family["agg"] == "last":
                    if sample["time"] > have["time"]:
                        target["samples"][key] = _copy(sample)
                else:
                    have["value"] += sample["value"]
    return merged


def _copy(sample: dict) -> dict:
    copied = dict(sample)
    if "counts" in sample:
        copied["counts"] = list(sample["counts"])
        copied["exemplars"] = {int(k): list(v) for k, v in sample["exemplars"].items()}
    return copied


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
        unit = _unit_of(name)
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


def _unit_of(name: str) -> str:
    """Returns the OpenMetrics unit a Prometheus name ends with ("seconds", ...), or ""."""
    for unit in _UNITS.values():
        if name.endswith("_" + unit):
            return unit
    return ""


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
        pass


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


class Server:
    """The /metrics HTTP server (prometheus_client's), on a daemon thread."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str) -> None:
        from prometheus_client import start_http_server

        result = start_http_server(port, addr=addr, registry=registry)
        self._server = result[0] if isinstance(result, tuple) else None
        self.port = self._server.server_address[1] if self._server is not None else port
        host = addr if addr not in ("0.0.0.0", "", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stops serving; never raises."""
        try:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
        except Exception:
            pass

    def forget(self) -> None:
        """In a forked child: closes its copy of the listening socket (the parent keeps serving); never raises."""
        server, self._server = self._server, None
        try:
            if server is not None:
                server.socket.close()
        except Exception:
            pass


class _Configured:
    """What make_wsgi_app()/make_asgi_app() serve by default: configure()'s registry, looked up at each scrape.

    So the app may be mounted before configure() runs (module import order does not matter); until then it
    serves an empty exposition and logs one warning.
    """

    def __init__(self) -> None:
        self.registry: Optional[CollectorRegistry] = None
        self._warned = False

    def describe(self):
        return []

    def collect(self):
        registry = self.registry
        if registry is None:
            if not self._warned:
                self._warned = True
                logger.warning("claude-otel: /metrics is mounted but claude_otel.configure(prometheus=True) has not "
                               "run (or CLAUDE_OTEL_MULTIPROC_DIR / CLAUDE_OTEL_PROMETHEUS_PORT is unset); it serves "
                               "nothing yet")
            return []
        return list(registry.collect())


_CONFIGURED = _Configured()
_DEFAULT_REGISTRY = CollectorRegistry(auto_describe=False)
_DEFAULT_REGISTRY.register(_CONFIGURED)


def make_wsgi_app(registry: Optional[CollectorRegistry] = None):
    """Returns a WSGI app serving configure()'s metrics (or the registry given) in Prometheus or OpenMetrics."""
    from prometheus_client import make_wsgi_app as _make

    return _make(registry or _DEFAULT_REGISTRY)


def make_asgi_app(registry: Optional[CollectorRegistry] = None):
    """Returns an ASGI app serving configure()'s metrics (or the registry given) in Prometheus or OpenMetrics."""
    from prometheus_client import make_asgi_app as _make

    return _make(registry or _DEFAULT_REGISTRY)


def set_default_registry(registry: Optional[CollectorRegistry]) -> None:
    """Makes registry the one make_wsgi_app()/make_asgi_app() serve by default (configure() calls this)."""
    _CONFIGURED.registry = registry


def exposition_name(name: str, unit: str, kind: str) -> Tuple[str, ...]:
    """Returns the series names one OpenTelemetry metric produces in the exposition (documentation and tests)."""
    base = metric_name(name, unit)
    if kind == "counter":
        return (base + "_total",)
    if kind == "histogram":
        return (base + "_bucket", base + "_sum", base + "_count")
    return (base,)
