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

import importlib
import logging
import os
from typing import Callable, Dict, List, Mapping, Tuple

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ..guard import quietly
from ..settings import OTLP_DEFAULT_TIMEOUT, OTLP_SIGNALS, SettingError, otlp_protocol, otlp_timeout
from .dropped import DropCounter

logger = logging.getLogger(__name__)


def usable_signals(env: Mapping[str, str], wanted: Dict[str, bool]) -> Tuple[Dict[str, bool], List[str]]:
    """Returns (the wanted signals whose settings can be used, one message per distinct problem).

    An unknown protocol turns its signal off; an invalid timeout leaves the signal on with the default timeout.
    Both signals read the shared variables: a problem with one of those is said once.
    """
    usable = dict(wanted)
    said: Dict[str, str] = {}
    for signal in OTLP_SIGNALS:
        if not usable[signal]:
            continue
        try:
            otlp_protocol(env, signal)
        except SettingError as exc:
            usable[signal] = False
            said.setdefault(str(exc), f"{exc}; OTLP export is off")
        try:
            otlp_timeout(env, signal)
        except SettingError as exc:
            said.setdefault(str(exc), f"{exc}; using {OTLP_DEFAULT_TIMEOUT:g} s")
    return usable, list(said.values())


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
        quietly(self.inner.shutdown)(**kwargs)


class CountingSpanExporter(SpanExporter):
    """Delegates to an OTLP span exporter and counts the spans of failed exports as dropped."""

    def __init__(self, factory: Callable[[], SpanExporter], drops: DropCounter) -> None:
        self._exporter = _PerProcess(factory)
        self._drops = drops

    def export(self, spans):
        """Returns the export's result; a failed export's spans are counted as dropped."""
        return _counted(lambda: self._exporter.inner.export(spans), self._drops, "traces", lambda: len(spans),
                        SpanExportResult.SUCCESS, SpanExportResult.FAILURE)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        """Shuts the exporter down (this also cuts short any retry backoff in progress)."""
        self._exporter.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Returns whether this process's exporter flushed in time."""
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
        """Returns the export's result; a failed export's data points are counted as dropped."""
        return _counted(lambda: self._exporter.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
                        self._drops, "metrics", lambda: points(metrics_data),
                        MetricExportResult.SUCCESS, MetricExportResult.FAILURE)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Returns whether this process's exporter flushed in time."""
        return self._exporter.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        """Shuts the exporter down once."""
        self._exporter.close(timeout_millis=timeout_millis)

    def abort(self) -> None:
        """Shuts the exporter down so a retry backoff in progress ends now (used when a deadline passed)."""
        self._exporter.close()


def _counted(export: Callable[[], object], drops: DropCounter, signal: str, count: Callable[[], int],
             success: object, failure: object) -> object:
    """Returns export()'s result, or failure when it raised; counts `count()` items as dropped unless it succeeded."""
    try:
        result = export()
    except Exception as exc:
        drops.add(count(), signal, f"export failed: {type(exc).__name__}: {exc}")
        return failure
    if result == success:
        drops.succeeded(signal)
    else:
        drops.add(count(), signal, "the OTLP endpoint did not accept them")
    return result


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
        """Returns (the SDK's span queue, its maximum length); either None when this SDK keeps them elsewhere."""
        inner = self._inner
        queue = getattr(inner, "_queue", None)
        if queue is None:
            queue = getattr(inner, "queue", None)
        limit = getattr(inner, "_max_queue_size", None) or getattr(inner, "max_queue_size", None)
        return queue, limit

    def on_end(self, span) -> None:
        """Queues the span for export, counting the one a full queue pushes out."""
        self._count_if_full(span)
        super().on_end(span)

    @quietly
    def _count_if_full(self, span) -> None:
        """Counts one dropped span when a sampled span arrives at a full queue; never raises."""
        if span.context is not None and span.context.trace_flags.sampled:
            queue, limit = self._queue_state()
            if queue is not None and limit is not None and len(queue) >= limit:
                self._drops.add(1, "traces", "the export queue is full (OTEL_BSP_MAX_QUEUE_SIZE)")

    def unexported(self) -> int:
        """Returns how many spans are still queued (after a shutdown that timed out: spans lost)."""
        queue, _ = self._queue_state()
        return len(queue) if queue is not None else 0

    def abort(self) -> None:
        """Shuts the exporter down so a retry backoff in progress ends now (used when a deadline passed)."""
        exporter = getattr(self._inner, "_exporter", None) or getattr(self, "span_exporter", None)
        if exporter is not None:
            exporter.shutdown()


# The OTLP exporter class per (signal, protocol), imported only when used (gRPC is a heavy import).
_EXPORTER_CLASSES = {
    ("traces", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("traces", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("metrics", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("metrics", "http/protobuf"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
}


def _exporter_factory(env: Mapping[str, str], signal: str) -> Callable[[], object]:
    """Returns a function building the OTLP exporter of a signal as the environment asks (protocol, timeout)."""
    seconds = otlp_timeout(env, signal)
    kwargs = {"timeout": seconds} if seconds is not None else {}
    module, name = _EXPORTER_CLASSES[(signal, otlp_protocol(env, signal))]
    exporter_class = getattr(importlib.import_module(module), name)
    return lambda: exporter_class(**kwargs)


def span_processor(env: Mapping[str, str], drops: DropCounter) -> CountingBatchSpanProcessor:
    """Returns a bounded, counting batch processor around the OTLP span exporter the environment asks for.

    Queue size, batch size and delay come from OTEL_BSP_* (SDK defaults: 2048 spans, 512 per export, 5 s).
    """
    return CountingBatchSpanProcessor(CountingSpanExporter(_exporter_factory(env, "traces"), drops), drops)


def metric_reader(env: Mapping[str, str], drops: DropCounter) -> PeriodicExportingMetricReader:
    """Returns a periodic reader around the OTLP metric exporter (interval: OTEL_METRIC_EXPORT_INTERVAL, 60 s)."""
    return PeriodicExportingMetricReader(CountingMetricExporter(_exporter_factory(env, "metrics"), drops))
