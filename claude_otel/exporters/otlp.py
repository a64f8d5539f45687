"""OTLP export of spans and metrics, configured by the standard OTEL_EXPORTER_OTLP_* variables.

Exports run on the SDK's background threads with bounded queues and short
timeouts, so a collector that is down, slow or refusing never blocks a call;
what cannot be exported is counted (claude_otel.exporter.dropped).
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, Optional

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .dropped import DropCounter

logger = logging.getLogger("claude_otel")

PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_TIMEOUT = "5"


class OTLPSettingError(ValueError):
    """An OTLP setting that cannot be used; the message names the variable and the value."""


def enabled(env: Mapping[str, str], explicit: Optional[bool]) -> bool:
    """Returns whether OTLP export is on: explicitly, or because an OTLP endpoint variable is set."""
    if explicit is not None:
        return explicit
    return any(env.get(name) for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"))


def protocol(env: Mapping[str, str], signal: str) -> str:
    """Returns the OTLP protocol for a signal (traces, metrics); raises OTLPSettingError for an unknown one."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name)
        if value:
            value = value.strip().lower()
            if value not in PROTOCOLS:
                raise OTLPSettingError(f"{name}={env.get(name)!r} is not an OTLP protocol (use grpc or http/protobuf)")
            return value
    return "http/protobuf"


class CountingSpanExporter(SpanExporter):
    """Delegates to an exporter and counts the spans of failed exports as dropped."""

    def __init__(self, inner: SpanExporter, drops: DropCounter) -> None:
        self._inner = inner
        self._drops = drops

    def export(self, spans):
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            self._drops.add(len(spans), "traces", f"export failed: {exc}")
            return SpanExportResult.FAILURE
        if result != SpanExportResult.SUCCESS:
            self._drops.add(len(spans), "traces", "the OTLP endpoint did not accept them")
        return result

    def shutdown(self, *args, **kwargs):
        return self._inner.shutdown(*args, **kwargs)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    """Delegates to a metric exporter and counts the data points of failed exports as dropped."""

    def __init__(self, inner: MetricExporter, drops: DropCounter) -> None:
        super().__init__(preferred_temporality=inner._preferred_temporality,
                         preferred_aggregation=inner._preferred_aggregation)
        self._inner = inner
        self._drops = drops

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._drops.add(_points(metrics_data), "metrics", f"export failed: {exc}")
            return MetricExportResult.FAILURE
        if result != MetricExportResult.SUCCESS:
            self._drops.add(_points(metrics_data), "metrics", "the OTLP endpoint did not accept them")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _points(metrics_data) -> int:
    """Returns the number of data points in a MetricsData; 1 if it cannot tell."""
    try:
        return sum(len(m.data.data_points) for rm in metrics_data.resource_metrics
                   for sm in rm.scope_metrics for m in sm.metrics) or 1
    except Exception:
        return 1


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor that counts spans dropped because its bounded queue was full."""

    def __init__(self, exporter: SpanExporter, drops: DropCounter, **kwargs) -> None:
        super().__init__(exporter, **kwargs)
        self._drops = drops
        inner = getattr(self, "_batch_processor", None)
        self._queue = getattr(inner, "_queue", None)
        self._limit = getattr(inner, "_max_queue_size", None)

    def on_end(self, span) -> None:
        queue = self._queue
        if queue is not None and self._limit is not None and len(queue) >= self._limit:
            self._drops.add(1, "traces", "the export queue is full")
        super().on_end(span)


def _timeout_env() -> None:
    # The exporters' default of 10 s per export (with retries) holds the flush at exit; 5 s is plenty on a LAN.
    os.environ.setdefault("OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_TIMEOUT)


def span_processor(env: Mapping[str, str], drops: DropCounter) -> BatchSpanProcessor:
    """Returns a bounded, counting batch processor around the OTLP span exporter the environment asks for."""
    _timeout_env()
    if protocol(env, "traces") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return CountingBatchSpanProcessor(CountingSpanExporter(OTLPSpanExporter(), drops), drops)


def metric_reader(env: Mapping[str, str], drops: DropCounter) -> PeriodicExportingMetricReader:
    """Returns a periodic reader around the OTLP metric exporter (interval from OTEL_METRIC_EXPORT_INTERVAL)."""
    _timeout_env()
    if protocol(env, "metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return PeriodicExportingMetricReader(CountingMetricExporter(OTLPMetricExporter(), drops))
