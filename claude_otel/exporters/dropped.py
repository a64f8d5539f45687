"""Counting telemetry the agent had to drop, with one warning instead of a log flood.

A collector that is down makes the OpenTelemetry exporters log every failed
attempt ("Transient error ... retrying", "Failed to export ...", "Queue full,
dropping Span").  `quiet_exporter_logs()` swallows those records (keeping the
last one) and `DropCounter` emits ONE warning when dropping starts, quoting
that last record, then at most one every five minutes.  Everything dropped is
counted in `claude_otel.exporter.dropped` (Prometheus:
`claude_otel_exporter_dropped_total{signal="traces"|"metrics"}`).  An operator
who wants every exporter line sets the `opentelemetry.exporter` logger to DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Optional

from .. import semconv
from ..guard import quietly

logger = logging.getLogger(__name__)

WARN_EVERY = 300.0


class ExporterLogs(logging.Filter):
    """Swallows the OpenTelemetry exporters' per-failure warnings and errors, remembering the last one.

    Records pass unchanged when their logger is enabled for DEBUG (the operator asked for everything).
    """

    def __init__(self) -> None:
        super().__init__()
        self.last: Optional[str] = None
        self.swallowed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Returns whether to emit the record."""
        if record.levelno < logging.WARNING or logging.getLogger(record.name).isEnabledFor(logging.DEBUG):
            return True
        try:
            self.last = record.getMessage()[:300]
        except Exception:
            self.last = str(record.msg)[:300]
        self.swallowed += 1
        return False


# Where OpenTelemetry 1.27-1.45 logs each failed export attempt or queue drop of the exporters configure() builds.
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
)

EXPORTER_LOGS = ExporterLogs()


def quiet_exporter_logs() -> ExporterLogs:
    """Installs the shared ExporterLogs filter on the exporters' loggers (idempotent); returns it."""
    for name in EXPORTER_LOGGERS:
        log = logging.getLogger(name)
        if EXPORTER_LOGS not in log.filters:
            log.addFilter(EXPORTER_LOGS)
    return EXPORTER_LOGS


class DropCounter:
    """Counts dropped spans and metric points into claude_otel.exporter.dropped; warns at most every 5 minutes."""

    def __init__(self, meter=None, warn_every: float = WARN_EVERY, exporter_logs: Optional[ExporterLogs] = None):
        self._counter = None
        self._lock = threading.Lock()
        self._warn_every = warn_every
        self._last_warning: Optional[float] = None
        self._since_warning = 0
        self._failing: Dict[str, bool] = {}
        self._exporter_logs = exporter_logs
        self.by_signal: Dict[str, int] = {}
        if meter is not None:
            self.bind(meter)

    @property
    def total(self) -> int:
        """Returns the number of items this process dropped (all signals)."""
        return sum(self.by_signal.values())

    def bind(self, meter) -> None:
        """Creates the self-metric on meter (kept out of the hot path: only drops touch it)."""
        self._counter = meter.create_counter(
            semconv.EXPORTER_DROPPED, unit="{item}",
            description="Spans and metric points claude-otel could not export (collector down, slow or refusing; "
                        "queue full).")

    @quietly
    def add(self, count: int, signal: str, reason: str) -> None:
        """Counts `count` dropped items of a signal (traces, metrics); warns once per interval; never raises."""
        if count <= 0:
            return
        with self._lock:
            self.by_signal[signal] = self.by_signal.get(signal, 0) + count
            self._failing[signal] = True
            self._since_warning += count
            now = time.monotonic()
            warn = self._last_warning is None or now - self._last_warning >= self._warn_every
            first = self._last_warning is None
            if warn:
                self._last_warning = now
                since, self._since_warning = self._since_warning, 0
        if self._counter is not None:
            self._counter.add(count, {"signal": signal})
        if warn:
            said = self._exporter_logs.last if self._exporter_logs is not None else None
            logger.warning(
                "claude-otel: %s %d %s (%s%s); the application is unaffected. Dropped items are counted in "
                "claude_otel_exporter_dropped_total; this warning repeats at most every %d s.",
                "dropping telemetry:" if first else "still dropping telemetry:", since,
                "spans" if signal == "traces" else "metric points", reason,
                f"; the exporter said: {said}" if said else "", int(self._warn_every))

    def succeeded(self, signal: str) -> None:
        """Notes a successful export; logs once (INFO) when a signal that was failing recovers."""
        if self._failing.get(signal):
            self._failing[signal] = False
            logger.info("claude-otel: %s export works again", signal)

    def failing(self, signal: str) -> bool:
        """Returns whether the last export of a signal failed (its collector is down, slow or refusing)."""
        return bool(self._failing.get(signal))

    def after_fork(self) -> None:
        """Starts a forked child's own count (its metric state starts empty too)."""
        self._lock = threading.Lock()
        self.by_signal = {}
        self._since_warning = 0
        self._failing = {}
