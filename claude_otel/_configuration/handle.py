"""The handle configure() returns: what it set up, how to flush and stop it within a deadline, and what a forked
child must renew."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import List, Optional

from ..exporters.dropped import DropCounter
from ..exporters.prometheus import Server
from ..fork import renew_instance_id, reset_metric_state
from ..guard import Background, quietly, run_with_deadline

logger = logging.getLogger(__name__)


class Problems(list):
    """The messages configure() lists in `handle.problems`; each is logged as a warning when said."""

    def say(self, message: str) -> str:
        """Returns message after logging it as a warning and listing it."""
        logger.warning("claude-otel: %s", message)
        self.append(message)
        return message


@dataclass
class Handle:
    """What configure() set up; shutdown() flushes and stops it within a bounded time.

    `registry` is the dedicated prometheus_client CollectorRegistry (None without Prometheus); `collector`
    the collector in it, which can also be registered elsewhere: `prometheus_client.REGISTRY.register(
    handle.collector)`.  `reader.snapshot()` returns this process's metrics as plain data.
    """

    tracer_provider: object
    meter_provider: object
    prometheus_url: Optional[str] = None
    registry: object = None
    collector: object = None
    reader: object = None
    problems: List[str] = field(default_factory=list)
    drops: Optional[DropCounter] = None
    _owned_tracer: bool = False
    _owned_meter: bool = False
    _instrumented: bool = False
    _server: Optional[Server] = None
    _shared: object = None
    _processors: list = field(default_factory=list)
    _metric_exporters: list = field(default_factory=list)
    _instance_id: object = None
    _done: bool = False

    def _owned(self) -> list:
        """Returns the providers configure() built (the application's own are not the agent's to flush or stop)."""
        return [provider for owned, provider in ((self._owned_tracer, self.tracer_provider),
                                                 (self._owned_meter, self.meter_provider)) if owned]

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Returns whether what is pending was exported within about `timeout` seconds; never raises."""
        done = []

        def flush():
            """Flushes the agent's own providers, then notes that it finished."""
            for provider in self._owned():
                provider.force_flush(int(timeout * 1000))
            done.append(True)

        return run_with_deadline(flush, timeout, "claude-otel-flush") and bool(done)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flushes pending telemetry and stops exporters, returning within about `timeout` seconds; never raises.

        If the collector does not take the last batch in time, the exporters are told to stop (cutting any retry
        backoff short) and the spans still queued are counted as dropped.
        """
        if self._done:
            return
        self._done = True
        deadline = time.monotonic() + max(timeout, 0.1)
        if self._instrumented:
            from ..instrumentor import ClaudeInstrumentor

            quietly(ClaudeInstrumentor().uninstrument)()
        if self._shared is not None:
            self._shared.stop()
        if self.drops is not None:
            # A collector that failed the last export is very likely still down: do not spend the budget on it.
            for signal, exporters in (("traces", self._processors), ("metrics", self._metric_exporters)):
                if self.drops.failing(signal):
                    self._abort(exporters)
        stopping = [Background(quietly(provider.shutdown), "claude-otel-shutdown") for provider in self._owned()]
        # Most of the budget for an orderly flush; then stop exporters mid-retry and give them the rest.
        soft = deadline - min(1.0, timeout * 0.25)
        if not all([job.wait(soft - time.monotonic()) for job in stopping]):
            self._abort(self._processors + self._metric_exporters)
            for job in stopping:
                job.wait(deadline - time.monotonic())
        lost = sum(p.unexported() for p in self._processors)
        if lost and self.drops is not None:
            self.drops.add(lost, "traces", "not exported before shutdown's deadline")
        if self._server is not None:
            self._server.close()

    @staticmethod
    def _abort(exporters: list) -> None:
        """Stops each exporter now, cutting a retry backoff short; never raises."""
        for exporter in exporters:
            quietly(exporter.abort)()

    def _after_fork(self) -> None:
        """In a forked child: a fresh service.instance.id and metric state; let go of the parent's /metrics port."""
        if self._done:
            return
        if self._owned_meter:
            reset_metric_state(self.meter_provider)
        if self.reader is not None:
            self.reader.after_fork()
        if self.drops is not None:
            self.drops.after_fork()
        renewed = None
        for provider in self._owned():
            renewed = renew_instance_id(provider, self._instance_id) or renewed
        self._instance_id = renewed or self._instance_id
        if self._server is not None:
            self._server.forget()  # the parent keeps serving /metrics; the child must not hold its socket
