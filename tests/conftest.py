"""Shared fixtures: the local simulator, in-memory telemetry, readers for what the agent recorded, children that
are killed when a test ends, and per-marker timeouts."""

from __future__ import annotations

import gc

import pytest

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers.procs import Children
from tests.helpers.recorded import Recorded

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
