"""A pytest plugin for the anthropic SDK's own test suite: claude-otel instruments every test.

Loaded with `-p sdk_suite_plugin` (tests/ on PYTHONPATH) by tests/sdk_suite.sh.  The agent records into
in-memory providers handed to instrument(), never the global ones, so the SDK's tests that install their own
global provider see exactly what they would see without the agent, apart from the agent's patches.  Every error
the agent logs (it catches its own errors and logs them on the "claude_otel" logger) is written, with the test
that caused it, to the file named by SDK_SUITE_AGENT_ERRORS, so the script can fail on any.
"""

from __future__ import annotations

import logging
import os

import pytest

_CURRENT = {"test": "<collection>"}


class _ErrorLog(logging.Handler):
    """Appends every agent error record, with the running test's id, to one file per worker."""

    def __init__(self, path: str) -> None:
        super().__init__(level=logging.DEBUG)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        """Writes one line per agent error (first line of its traceback's last frame kept); never raises."""
        try:
            if "instrumentation error" not in record.getMessage() and record.levelno < logging.ERROR:
                return
            detail = ""
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                detail = f" {type(exc).__name__}: {exc}"
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(f"{_CURRENT['test']}\t{record.getMessage()}{detail}\n")
        except Exception:
            pass


def pytest_configure(config) -> None:
    """Instruments the SDK into in-memory providers for the whole session (each worker its own)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from claude_otel import ClaudeInstrumentor

    target = os.environ.get("SDK_SUITE_AGENT_ERRORS")
    if target:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        logger = logging.getLogger("claude_otel")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_ErrorLog(f"{target}.{worker}"))
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = ClaudeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    config._claude_otel = (instrumentor, exporter, reader)


def pytest_unconfigure(config) -> None:
    """Uninstruments at the end of the session."""
    state = getattr(config, "_claude_otel", None)
    if state is not None:
        state[0].uninstrument()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Names the running test for the error log and drops the previous test's spans (memory stays flat)."""
    _CURRENT["test"] = item.nodeid
    state = getattr(item.config, "_claude_otel", None)
    if state is not None:
        state[1].clear()
    yield
    _CURRENT["test"] = "<between tests>"
