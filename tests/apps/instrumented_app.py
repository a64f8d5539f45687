"""An application instrumented with claude_otel.configure(), driven by tests in a subprocess.

Environment: ANTHROPIC_BASE_URL (the simulator), APP_CALLS (plain calls), APP_RETRY_CALLS (calls that
hit two 529s first), APP_STREAMS (streamed calls), APP_WAIT (keep serving /metrics until stdin closes),
APP_CONFIGURE=0 (when started by `claude-otel run`, which configures before the app starts).
Prints one JSON line: latencies, trace ids, the /metrics URL and how long shutdown took.
"""

import json
import os
import sys
import time

import anthropic

if os.environ.get("APP_CONFIGURE", "1") == "1":
    import claude_otel

    handle = claude_otel.configure(service_name=os.environ.get("APP_SERVICE", "test-app"))
else:
    import claude_otel.setup as setup

    handle = setup._handle

from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

seen = InMemorySpanExporter()
if handle is not None and hasattr(handle.tracer_provider, "add_span_processor"):
    handle.tracer_provider.add_span_processor(SimpleSpanProcessor(seen))

client = anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="sk-ant-app-SECRET", max_retries=2)
messages = [{"role": "user", "content": "hello"}]
latencies = []


def timed(fn):
    start = time.perf_counter()
    fn()
    latencies.append(time.perf_counter() - start)


for _ in range(int(os.environ.get("APP_CALLS", "3"))):
    timed(lambda: client.messages.create(model="claude-x", max_tokens=16, messages=messages))
for _ in range(int(os.environ.get("APP_RETRY_CALLS", "1"))):
    timed(lambda: client.messages.create(model="claude-x", max_tokens=16, messages=messages, extra_headers={
        "x-sim-fail-attempts": "2", "x-sim-fail-status": "529", "x-sim-retry-after-ms": "20"}))
for _ in range(int(os.environ.get("APP_STREAMS", "1"))):
    timed(lambda: [e for e in client.messages.create(model="claude-x", max_tokens=16, messages=messages,
                                                     stream=True)])

result = {
    "latencies": latencies,
    "trace_ids": sorted({format(s.context.trace_id, "032x") for s in seen.get_finished_spans()}),
    "prometheus_url": handle.prometheus_url if handle else None,
    "problems": handle.problems if handle else None,
}
if os.environ.get("APP_WAIT") == "1":
    print(json.dumps(result), flush=True)
    sys.stdin.read()
    result = {}
if os.environ.get("APP_DROPS_WAIT"):
    deadline = time.monotonic() + float(os.environ["APP_DROPS_WAIT"])
    while time.monotonic() < deadline and handle.drops.total == 0:
        time.sleep(0.2)
    result["dropped"] = handle.drops.total
if handle is not None:
    start = time.perf_counter()
    handle.shutdown(timeout=float(os.environ.get("APP_SHUTDOWN_TIMEOUT", "5")))
    result["shutdown_seconds"] = time.perf_counter() - start
if result:
    print(json.dumps(result), flush=True)
