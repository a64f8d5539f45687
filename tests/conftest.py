"""Shared fixtures: the local simulator, in-memory telemetry, readers for what the agent recorded, children that
are killed when a test ends, and per-marker timeouts."""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest

# Old top-level names (prometheus_server, otlp_receiver, ...) while callers move to tests.helpers.
sys.path.insert(0, os.path.dirname(__file__))

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from tests.helpers.procs import Children  # noqa: E402
from tests.helpers.sdk import sdk_httpx, sdk_version  # noqa: E402,F401  (old names: from conftest import ...)

# Timeouts (seconds) of marked tests; the default of every other test is pyproject's `timeout`.
MARKER_TIMEOUTS = {"soak": 1800, "matrix": 900, "slow": 600}


def pytest_collection_modifyitems(config, items):
    """Gives tests marked soak, matrix or slow their longer timeout unless they set one themselves."""
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        longest = max((t for name, t in MARKER_TIMEOUTS.items() if item.get_closest_marker(name)), default=None)
        if longest is not None:
            item.add_marker(pytest.mark.timeout(longest))


@pytest.fixture
def children():
    """Starts child processes for one test (children.popen) and kills any still running when it ends."""
    tracked = Children()
    try:
        yield tracked
    finally:
        tracked.kill_all()


@dataclass
class Point:
    name: str
    attrs: Dict[str, object]
    value: Optional[float] = None
    count: int = 0
    sum: float = 0.0
    bounds: tuple = ()
    counts: tuple = ()
    min: float = 0.0
    max: float = 0.0


@dataclass
class Recorded:
    """What the agent recorded, read back from in-memory exporters."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    points_cache: List[Point] = field(default_factory=list)

    def spans(self, name_prefix: str = ""):
        return [s for s in self.spans_exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def operation_spans(self):
        return [s for s in self.spans_exporter.get_finished_spans() if not s.name.startswith(("POST", "GET"))]

    def attempt_spans(self):
        return [s for s in self.spans_exporter.get_finished_spans() if s.name.startswith(("POST", "GET"))]

    def points(self, name: str, **match) -> List[Point]:
        found = []
        data = self.reader.get_metrics_data()
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    for p in metric.data.data_points:
                        attrs = dict(p.attributes)
                        if any(attrs.get(k.replace("__", ".")) != v for k, v in match.items()):
                            continue
                        if hasattr(p, "bucket_counts"):
                            found.append(Point(name, attrs, count=p.count, sum=p.sum,
                                               bounds=tuple(p.explicit_bounds), counts=tuple(p.bucket_counts),
                                               min=p.min, max=p.max))
                        else:
                            found.append(Point(name, attrs, value=p.value))
        return found

    def total(self, name: str, **match) -> float:
        """Returns the sum of counter values, or of histogram counts, over matching points."""
        return sum(p.value if p.value is not None else p.count for p in self.points(name, **match))

    def hist_sum(self, name: str, **match) -> float:
        return sum(p.sum for p in self.points(name, **match))

    def hist_max(self, name: str, **match) -> float:
        return max((p.max for p in self.points(name, **match)), default=0.0)

    def clear(self):
        self.spans_exporter.clear()


@pytest.fixture
def recorded(monkeypatch):
    """Instruments the SDK into in-memory exporters for one test and uninstruments it afterwards."""
    from claude_otel import ClaudeInstrumentor

    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = ClaudeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(exporter, reader, tracer_provider, meter_provider)
    finally:
        instrumentor.uninstrument()
        gc.collect()


@pytest.fixture(scope="session")
def simulator():
    """A local Anthropic API simulator shared by the session (faults are chosen per request by header)."""
    from claude_otel.simulator import Simulator

    sim = Simulator(host="127.0.0.1", port=0, profile="normal")
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim(simulator):
    simulator.reset()
    return simulator
