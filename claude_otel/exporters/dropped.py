"""Counting telemetry the agent had to drop, with one warning instead of a log flood."""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from .. import semconv

logger = logging.getLogger("claude_otel")

WARN_EVERY = 300.0


class DropCounter:
    """Counts dropped spans and metric points into claude_otel.exporter.dropped and warns at most every 5 minutes."""

    def __init__(self, meter=None) -> None:
        self._counter = None
        self._lock = threading.Lock()
        self._last_warning: Optional[float] = None
        self.total = 0
        if meter is not None:
            self.bind(meter)

    def bind(self, meter) -> None:
        """Creates the self-metric on meter (kept out of the hot path: only drops touch it)."""
        self._counter = meter.create_counter(
            semconv.EXPORTER_DROPPED, unit="{item}",
            description="Spans and metric points claude-otel could not export (collector down, slow or refusing; "
                        "queue full).")

    def add(self, count: int, signal: str, reason: str) -> None:
        """Counts `count` dropped items of a signal (traces, metrics); warns once per interval; never raises."""
        if count <= 0:
            return
        try:
            with self._lock:
                self.total += count
                now = time.monotonic()
                warn = self._last_warning is None or now - self._last_warning >= WARN_EVERY
                if warn:
                    self._last_warning = now
            if self._counter is not None:
                self._counter.add(count, {"signal": signal})
            if warn:
                logger.warning(
                    "claude-otel: dropping %s (%s); the application is unaffected. Dropped items are counted in "
                    "claude_otel_exporter_dropped_total; this warning repeats at most every %d s.",
                    signal, reason, int(WARN_EVERY))
        except Exception:
            pass


class RateLimitFilter(logging.Filter):
    """Lets one record per logger through per interval, so a down collector cannot flood the app's logs."""

    def __init__(self, interval: float = WARN_EVERY) -> None:
        super().__init__()
        self._interval = interval
        self._last: Optional[float] = None

    def filter(self, record: logging.LogRecord) -> bool:
        """Returns whether to emit the record."""
        now = time.monotonic()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True


_NOISY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)


def quiet_exporter_logs() -> None:
    """Rate-limits the OpenTelemetry exporters' own per-failure log lines (idempotent)."""
    for name in _NOISY_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in log.filters):
            log.addFilter(RateLimitFilter())
