"""What the OpenTelemetry SDK's own operations cost, in instructions: the floor under any instrumentation's overhead.

    .venvs/bench/bin/python tests/benchmarks/sdk_costs.py          # needs valgrind; about two minutes

Every operation runs under callgrind twice, 1000 and 3000 times after a warm-up, in a fresh process with the same
providers as overhead.py (a TracerProvider with a BatchSpanProcessor into memory, a MeterProvider with an in-memory
reader; spans flushed and metrics collected at the end); the slope is the cost of one operation.  claude-otel's
per-call overhead is mostly these operations: see README's Overhead section for the sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-haiku-4-5", "server.address": "api.anthropic.com", "server.port": 443,
        "anthropic.request.stream": False}
OPERATIONS = {
    "span-0": "span start + end, no attribute",
    "span-6": "span start + end, the six metric attributes",
    "span-6-then-5": "span start with six attributes, five more set later, end",
    "span-11": "span start with eleven attributes, end",
    "event": "one span event with one attribute",
    "record-0": "Histogram.record, no attribute",
    "record-3": "Histogram.record, three attributes",
    "record-6": "Histogram.record, the six metric attributes, no exemplar",
    "record-6-exemplar": "Histogram.record, the six metric attributes, a sampled span's context (exemplar offered)",
    "record-8": "Histogram.record, eight attributes",
    "counter-6": "Counter.add, the six metric attributes",
}


def run(op: str, n: int) -> None:
    """Runs one operation n times after a warm-up, then flushes spans and collects metrics."""
    from opentelemetry import context, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=100_000,
                                                          schedule_delay_millis=60_000))
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("sdk_costs")
    tracer = tracer_provider.get_tracer("sdk_costs")
    histogram = meter.create_histogram("h", unit="s")
    counter = meter.create_counter("c")
    parent = tracer.start_span("parent")
    sampled = trace.set_span_in_context(parent)
    spanless = context.set_value("no_exemplar", True, context.Context())
    three = dict(list(BASE.items())[:3])
    eight = dict(BASE, **{"error.type": "timeout", "anthropic.failure.cause": "client_read_timeout"})
    eleven = dict(BASE, a=1, b=2.0, c="x", d=3, e=0.5)
    five = {"a": 1, "b": 2.0, "c": "x", "d": 3, "e": 0.5}
    steps = {
        "span-0": lambda: tracer.start_span("chat x", context=sampled).end(),
        "span-6": lambda: tracer.start_span("chat x", context=sampled, attributes=BASE).end(),
        "span-6-then-5": lambda: _then(tracer.start_span("chat x", context=sampled, attributes=BASE), five),
        "span-11": lambda: tracer.start_span("chat x", context=sampled, attributes=eleven).end(),
        "event": lambda: parent.add_event("anthropic.response.headers", {"http.response.status_code": 200}),
        "record-0": lambda: histogram.record(0.5, None, spanless),
        "record-3": lambda: histogram.record(0.5, three, spanless),
        "record-6": lambda: histogram.record(0.5, BASE, spanless),
        "record-6-exemplar": lambda: histogram.record(0.5, BASE, sampled),
        "record-8": lambda: histogram.record(0.5, eight, spanless),
        "counter-6": lambda: counter.add(1, BASE, spanless),
    }
    step = steps[op]
    for _ in range(50):
        step()
    for _ in range(n):
        step()
    tracer_provider.force_flush()
    reader.get_metrics_data()
    tracer_provider.shutdown()


def _then(span, values) -> None:
    span.set_attributes(values)
    span.end()


def count(op: str, n: int) -> int:
    """Returns the instructions callgrind counted for a run of n operations."""
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                           str(Path(__file__).resolve()), "--run", op, str(n)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONHASHSEED="0"))
    found = [line for line in proc.stderr.splitlines() if "Collected :" in line]
    if proc.returncode or not found:
        raise SystemExit(f"{op}: callgrind run failed:\n{proc.stderr[-2000:]}")
    return int(found[-1].split(":")[-1])


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--run":
        run(sys.argv[2], int(sys.argv[3]))
        return 0
    jobs = [(op, n) for op in OPERATIONS for n in (1000, 3000)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(zip(jobs, pool.map(lambda job: count(*job), jobs)))
    import opentelemetry.sdk.version as sdk_version

    print(f"opentelemetry-sdk {sdk_version.__version__}, Python {sys.version.split()[0]}: instructions per operation\n")
    print("| operation | kIr |")
    print("|---|---|")
    for op, meaning in OPERATIONS.items():
        print(f"| {meaning} | {(counted[(op, 3000)] - counted[(op, 1000)]) / 2000 / 1000:,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
