"""A collector that is down, slow or refusing: calls are not slowed, nothing is raised into the app, drops are
counted, ONE warning is logged, and shutdown (explicit or at exit) returns within its bound."""

from __future__ import annotations

import logging
import statistics
import time

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from claude_otel.exporters import otlp
from claude_otel.exporters.dropped import EXPORTER_LOGS, DropCounter, quiet_exporter_logs
from claude_otel.exporters.prometheus import PrometheusReader
from claude_otel._configuration import Handle
from tests.helpers.app import run_app
from tests.helpers.otlp import GrpcReceiver, HttpReceiver
from tests.helpers.ports import closed_endpoint

WORKLOAD = dict(APP_CALLS=40, APP_RETRY_CALLS=0, APP_STREAMS=10, OTEL_BSP_SCHEDULE_DELAY=50,
                OTEL_METRIC_EXPORT_INTERVAL=500)


def test_calls_are_not_slowed_and_exit_is_bounded(sim):
    receiver = GrpcReceiver()
    try:
        lines, _ = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                           **WORKLOAD)
        up = lines[-1]
    finally:
        receiver.stop()

    lines, down_stderr = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=closed_endpoint(),
                                 OTEL_EXPORTER_OTLP_PROTOCOL="grpc", APP_DROPS_WAIT=20, **WORKLOAD)
    down = lines[-1]
    down_exit = time.time() - down["exiting_at"]

    slow_receiver = HttpReceiver()
    slow_receiver.received.mode = "slow"  # accepts, then hangs 30 s
    try:
        # No explicit shutdown: the bounded flush registered at exit must end the process.
        lines, slow_stderr = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=slow_receiver.endpoint,
                                     OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", APP_SHUTDOWN=0, **WORKLOAD)
        slow = lines[-1]
        slow_exit = time.time() - slow["exiting_at"]
        assert slow_receiver.received.requests >= 1
    finally:
        slow_receiver.stop()

    base = statistics.median(up["latencies"])
    ratio_down = statistics.median(down["latencies"]) / base
    ratio_slow = statistics.median(slow["latencies"]) / base
    print(f"\nmedian call latency: collector up {base * 1000:.1f} ms, down x{ratio_down:.2f}, slow x{ratio_slow:.2f}; "
          f"shutdown with the collector down {down['shutdown_seconds']:.2f} s; exit after it {down_exit:.2f} s; "
          f"exit with a hanging collector and no shutdown() {slow_exit:.2f} s")
    assert ratio_down < 1.5 or statistics.median(down["latencies"]) - base < 0.02
    assert ratio_slow < 1.5 or statistics.median(slow["latencies"]) - base < 0.02
    assert down["dropped"] > 0
    assert down["shutdown_seconds"] < 5.5 and down_exit < 3
    assert slow_exit < 5 + 3  # the exit flush's 5 s bound plus interpreter exit
    # One line from claude-otel (quoting the exporter's last error), none of the exporters' own lines.
    lines = [line for line in down_stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("claude-otel: dropping telemetry: "), down_stderr[-3000:]
    assert "the exporter said: " in lines[0]
    assert [line for line in slow_stderr.splitlines() if line.strip() and not line.startswith("claude-otel: ")] == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_one_warning_and_counted_drops_in_process(protocol, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", closed_endpoint())
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": protocol, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    quiet_exporter_logs()
    reader = PrometheusReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    drops = DropCounter(meter_provider.get_meter("claude_otel"), exporter_logs=EXPORTER_LOGS)
    processor = otlp.span_processor(env, drops)
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(processor)
    tracer = tracer_provider.get_tracer("t")
    with caplog.at_level(logging.DEBUG, logger="claude_otel"):
        with caplog.at_level(logging.INFO):
            started = time.perf_counter()
            for batch in range(3):
                for _ in range(20):
                    tracer.start_span("call").end()
                processor.force_flush()
            ended = time.perf_counter() - started
    assert drops.by_signal == {"traces": 60}
    snap = reader.snapshot()
    assert snap["claude_otel_exporter_dropped"]["samples"][(("signal", "traces"),)]["value"] == 60
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "claude-otel: dropping telemetry: 20 spans" in message and "the exporter said:" in message
    assert ended < 3 * 1.5 + 1  # each flush gives up after the 1 s export timeout

    handle = Handle(tracer_provider, meter_provider, drops=drops, _owned_tracer=True, _owned_meter=True,
                    _processors=[processor])
    for _ in range(30):
        tracer.start_span("late").end()
    started = time.perf_counter()
    handle.shutdown(timeout=1.0)
    assert time.perf_counter() - started < 1.5
    assert drops.total == 90  # the late spans: failed export, or still queued at the deadline


def test_slow_collector_shutdown_is_cut_at_its_deadline(monkeypatch):
    receiver = HttpReceiver()
    receiver.received.mode = "slow"
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        drops = DropCounter()
        processor = otlp.span_processor({}, drops)  # default 5 s export timeout
        tracer_provider = TracerProvider(shutdown_on_exit=False)
        tracer_provider.add_span_processor(processor)
        for _ in range(10):
            tracer_provider.get_tracer("t").start_span("call").end()
        handle = Handle(tracer_provider, None, drops=drops, _owned_tracer=True, _processors=[processor])
        started = time.perf_counter()
        handle.shutdown(timeout=2.0)
        took = time.perf_counter() - started
        assert took < 2.5, took
        assert receiver.received.wait_for(lambda: receiver.received.requests >= 1, timeout=5)
    finally:
        receiver.stop()
