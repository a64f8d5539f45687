"""An application instrumented with claude_otel.configure(), driven by tests in a subprocess.

Environment: ANTHROPIC_BASE_URL (the simulator), APP_CALLS (plain calls), APP_RETRY_CALLS (calls that
hit two 529s first), APP_STREAMS (streamed calls), APP_WAIT (keep serving /metrics until stdin closes),
APP_CONFIGURE=0 (when started by a launcher that configures before the app starts), APP_FORK=N (after the
calls, fork a child that makes N calls of its own and shuts down; the parent waits for it),
APP_DROPS_WAIT=S (wait up to S seconds for a drop to be counted), APP_EXIT (exit code).
Prints JSON lines: latencies, trace ids, the /metrics URL, how long shutdown took, and for APP_FORK the
child's figures on a line of its own.
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
    import claude_otel._configuration as configuration

    handle = configuration._handle

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


def plain():
    client.messages.create(model="claude-x", max_tokens=16, messages=messages)


for _ in range(int(os.environ.get("APP_CALLS", "3"))):
    timed(plain)
for _ in range(int(os.environ.get("APP_RETRY_CALLS", "1"))):
    timed(lambda: client.messages.create(model="claude-x", max_tokens=16, messages=messages, extra_headers={
        "x-sim-fail-attempts": "2", "x-sim-fail-status": "529", "x-sim-retry-after-ms": "20"}))
for _ in range(int(os.environ.get("APP_STREAMS", "1"))):
    timed(lambda: [e for e in client.messages.create(model="claude-x", max_tokens=16, messages=messages,
                                                     stream=True)])


def instance_id():
    return dict(handle.tracer_provider.resource.attributes).get("service.instance.id")


result = {
    "latencies": latencies,
    "trace_ids": sorted({format(s.context.trace_id, "032x") for s in seen.get_finished_spans()}),
    "prometheus_url": handle.prometheus_url if handle else None,
    "problems": handle.problems if handle else None,
    "instance_id": instance_id() if handle else None,
    "pid": os.getpid(),
}
if os.environ.get("APP_FORK"):
    handle.force_flush(5)  # the parent's exporters have connected before the fork
    pid = os.fork()
    if pid == 0:
        for _ in range(int(os.environ["APP_FORK"])):
            plain()
        child = {"child": True, "pid": os.getpid(), "instance_id": instance_id(),
                 "own_snapshot_count": sum(
                     sum(s["counts"]) for s in handle.reader.snapshot().get(
                         "gen_ai_client_operation_duration_seconds", {"samples": {}})["samples"].values())
                 if handle.reader is not None else None}
        handle.shutdown(timeout=5)
        print(json.dumps(child), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
    if handle.registry is not None:  # what /metrics reports now: this process plus the child's shared snapshot
        from prometheus_client import generate_latest

        result["merged_count"] = sum(
            float(line.rsplit(" ", 1)[1]) for line in generate_latest(handle.registry).decode().splitlines()
            if line.startswith("gen_ai_client_operation_duration_seconds_count"))
if os.environ.get("APP_WAIT") == "1":
    print(json.dumps(result), flush=True)
    sys.stdin.read()
    result = {}
if os.environ.get("APP_DROPS_WAIT"):
    deadline = time.monotonic() + float(os.environ["APP_DROPS_WAIT"])
    while time.monotonic() < deadline and handle.drops.total == 0:
        time.sleep(0.1)
    result["dropped"] = handle.drops.total
if handle is not None and os.environ.get("APP_SHUTDOWN", "1") == "1":
    start = time.perf_counter()
    handle.shutdown(timeout=float(os.environ.get("APP_SHUTDOWN_TIMEOUT", "5")))
    result["shutdown_seconds"] = time.perf_counter() - start
result["exiting_at"] = time.time()
print(json.dumps(result), flush=True)
sys.exit(int(os.environ.get("APP_EXIT", "0")))
