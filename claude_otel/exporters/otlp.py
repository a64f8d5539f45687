"""OTLP export of spans and metrics, configured by the standard OTEL_EXPORTER_OTLP_* variables.

Exports run on the SDK's background threads with bounded queues and short
timeouts, so a collector that is down, slow or refusing never blocks a call;
what cannot be exported is counted (claude_otel.exporter.dropped).

Forked workers (gunicorn --preload): the SDK restarts the batch processor's and
the periodic reader's threads in the child; the exporters here also build a
fresh exporter (gRPC channel, HTTP session) on the child's first export instead
of sharing the parent's connection.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Callable, Dict, Mapping, Optional

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from .dropped import DropCounter

logger = logging.getLogger("claude_otel")

SIGNALS = ("traces", "metrics")
PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "http/protobuf"
# The exporters' own default is 10 s per export (retries included), which also holds the flush at exit.
DEFAULT_TIMEOUT = 5.0


class OTLPSettingError(ValueError):
    """An OTLP setting that cannot be used; the message names the variable and the value."""


def signals(env: Mapping[str, str], explicit: Optional[bool] = None) -> Dict[str, bool]:
    """Returns which signals go to OTLP: all with explicit=True, none with False, else per endpoint variable.

    A signal is on when OTEL_EXPORTER_OTLP_ENDPOINT or its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is set, or
    when OTEL_<SIGNAL>_EXPORTER names "otlp" (then the SDK's default endpoint, localhost); it is off when
    OTEL_<SIGNAL>_EXPORTER is set without "otlp" in it (e.g. "none").
    """
    if explicit is not None:
        return {s: bool(explicit) for s in SIGNALS}
    on = {}
    for signal in SIGNALS:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        chosen = env.get(f"OTEL_{signal.upper()}_EXPORTER")
        if chosen is not None and chosen.strip():
            on[signal] = "otlp" in [part.strip().lower() for part in chosen.split(",")]
        else:
            on[signal] = bool(endpoint and endpoint.strip())
    return on


def enabled(env: Mapping[str, str], explicit: Optional[bool] = None) -> bool:
    """Returns whether OTLP export is on for any signal."""
    return any(signals(env, explicit).values())


def protocol(env: Mapping[str, str], signal: str) -> str:
    """Returns the OTLP protocol for a signal (traces, metrics); raises OTLPSettingError for an unknown one."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = env.get(name)
        if raw is not None and raw.strip():
            value = raw.strip().lower()
            if value not in PROTOCOLS:
                raise OTLPSettingError(f"{name}={raw!r} is not an OTLP protocol (use grpc or http/protobuf)")
            return value
    return DEFAULT_PROTOCOL


def timeout(env: Mapping[str, str], signal: str) -> Optional[float]:
    """Returns the export timeout to pass to the exporter: None when a variable sets it, else DEFAULT_TIMEOUT.

    Raises OTLPSettingError when OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT is not a positive number (the Python
    exporters read it as seconds).
    """
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        raw = env.get(name)
        if raw is not None and raw.strip():
            try:
                value = float(raw)
            except ValueError:
                raise OTLPSettingError(f"{name}={raw!r} is not a number of seconds") from None
            if not math.isfinite(value) or value <= 0:
                raise OTLPSettingError(f"{name}={raw!r} must be a positive number of seconds")
            return None
    return DEFAULT_TIMEOUT


class _PerProcess:
    """Holds an exporter built by a factory, rebuilt on first use in a forked child.

    A child must not share the parent's gRPC channel or HTTP keep-alive connection: two processes writing
    to one socket corrupt each other's requests, and gRPC channels do not survive fork.
    """

    def __init__(self, factory: Callable[[], object]) -> None:
        self._factory = factory
        self._inner = factory()
        self._pid = os.getpid()
        self.closed = False

    @property
    def inner(self):
        """Returns this process's exporter."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._inner = self._factory()
            self.closed = False
        return self._inner

    def close(self, **kwargs) -> None:
        """Shuts the exporter down once; never raises."""
        if self.closed:
            return
        self.closed = True
        try:
            self.inner.shutdown(**kwargs)
        except Exception:
            logger.debug("claude-otel: exporter shutdown failed", exc_info=True)


class CountingSpanExporter(SpanExporter):
    """Delegates to an OTLP span exporter and counts the spans of failed exports as dropped."""

    def __init__(self, factory: Callable[[], SpanExporter], drops: DropCounter) -> None:
        self._exporter = _PerProcess(factory)
        self._drops = drops

    def export(self, spans):
        try:
            result = self._exporter.inner.export(spans)
        except Exception as exc:
            self._drops.add(len(spans), "traces", f"export failed: {type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        if result == SpanExportResult.SUCCESS:
            self._drops.succeeded("traces")
        else:
            self._drops.add(len(spans), "traces", "the OTLP endpoint did not accept them")
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        """Shuts the exporter down (this also cuts short any retry backoff in progress)."""
        self._exporter.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.inner.force_flush(timeout_millis)


class CountingMetricExporter(MetricExporter):
    """Delegates to an OTLP metric exporter and counts the data points of failed exports as dropped."""

    def __init__(self, factory: Callable[[], MetricExporter], drops: DropCounter) -> None:
        self._exporter = _PerProcess(factory)
        first = self._exporter.inner
        super().__init__(preferred_temporality=first._preferred_temporality,
                         preferred_aggregation=first._preferred_aggregation)
        self._drops = drops

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs):
        try:
            result = self._exporter.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._drops.add(points(metrics_data), "metrics", f"export failed: {type(exc).__name__}: {exc}")
            return MetricExportResult.FAILURE
        if result == MetricExportResult.SUCCESS:
            self._drops.succeeded("metrics")
        else:
            self._drops.add(points(metrics_data), "metrics", "the OTLP endpoint did not accept them")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._exporter.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        self._exporter.close(timeout_millis=timeout_millis)

    def abort(self) -> None:
        """Shuts the exporter down so a retry backoff in progress ends now (used when a deadline passed)."""
        self._exporter.close()


def points(metrics_data) -> int:
    """Returns the number of data points in a MetricsData; 1 if it cannot tell."""
    try:
        return sum(len(m.data.data_points) for rm in metrics_data.resource_metrics
                   for sm in rm.scope_metrics for m in sm.metrics) or 1
    except Exception:
        return 1


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor that counts the spans its bounded queue drops.

    The SDK's queue is a deque with a maximum length: when it is full, appending a span silently pushes out
    the oldest one (and logs "Queue full"), so a span that arrives at a full queue means one span dropped.
    """

    def __init__(self, exporter: SpanExporter, drops: DropCounter, **kwargs) -> None:
        super().__init__(exporter, **kwargs)
        self._drops = drops
        self._inner = getattr(self, "_batch_processor", self)  # OpenTelemetry before 1.33 kept the queue here

    def _queue_state(self):
        inner = self._inner
        queue = getattr(inner, "_queue", None)
        if queue is None:
            queue = getattr(inner, "queue", None)
        limit = getattr(inner, "_max_queue_size", None) or getattr(inner, "max_queue_size", None)
        return queue, limit

    def on_end(self, span) -> None:
        try:
            if span.context is not None and span.context.trace_flags.sampled:
                queue, limit = self._queue_state()
                if queue is not None and limit is not None and len(queue) >= limit:
                    self._drops.add(1, "traces", "the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE)")
        except Exception:
            pass
        super().on_end(span)

    def unexported(self) -> int:
        """Returns how many spans are still queued (after a shutdown that timed out: spans lost)."""
        queue, _ = self._queue_state()
        return len(queue) if queue is not None else 0

    def abort(self) -> None:
        """Shuts the exporter down so a retry backoff in progress ends now (used when a deadline passed)."""
        exporter = getattr(self._inner, "_exporter", None) or getattr(self, "span_exporter", None)
        if exporter is not None:
            exporter.shutdown()


def _span_exporter_factory(env: Mapping[str, str]) -> Callable[[], SpanExporter]:
    seconds = timeout(env, "traces")
    kwargs = {"timeout": seconds} if seconds is not None else {}
    if protocol(env, "traces") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return lambda: OTLPSpanExporter(**kwargs)


def _metric_exporter_factory(env: Mapping[str, str]) -> Callable[[], MetricExporter]:
    seconds = timeout(env, "metrics")
    kwargs = {"timeout": seconds} if seconds is not None else {}
    if protocol(env, "metrics") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return lambda: OTLPMetricExporter(**kwargs)


def span_processor(env: Mapping[str, str], drops: DropCounter) -> CountingBatchSpanProcessor:
    """Returns a bounded, counting batch processor around the OTLP span exporter the environment asks for.

    Queue size, batch size and delay come from OTEL_BSP_* (SDK defaults: 2048 spans, 512 per export, 5 s).
    """
    return CountingBatchSpanProcessor(CountingSpanExporter(_span_exporter_factory(env), drops), drops)


def metric_reader(env: Mapping[str, str], drops: DropCounter) -> PeriodicExportingMetricReader:
    """Returns a periodic reader around the OTLP metric exporter (interval: OTEL_METRIC_EXPORT_INTERVAL, 60 s)."""
    return PeriodicExportingMetricReader(CountingMetricExporter(_metric_exporter_factory(env), drops))
