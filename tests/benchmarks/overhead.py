"""Overhead of claude-otel against the bare SDK, the SDK's own span and other Anthropic instrumentations.

    .venv/bin/python tests/benchmarks/overhead.py --setup      # once: .venvs/bench with the other instrumentations
    .venv/bin/python tests/benchmarks/overhead.py              # the tables and the PASS/FAIL lines (~5 minutes)
    .venv/bin/python tests/benchmarks/overhead.py --quick --only bare,claude-otel     # a smoke run

How it measures:

* Every configuration runs in its own fresh process, against an in-process transport (`httpx2.MockTransport`,
  canned Messages API bodies: one JSON message, SSE streams of 1000 and of 10 content_block_delta events), so
  there is no network noise.  Every process sets up the same OpenTelemetry SDK providers: a TracerProvider with
  a BatchSpanProcessor into an InMemorySpanExporter and a MeterProvider with an InMemoryMetricReader.  At the
  end of every timed batch the spans are flushed (`force_flush()`) and the metrics collected INSIDE the timed
  region, so an instrumentation that defers or drops work cannot flatter its figures.
* The configurations' processes stay alive side by side and take turns slice by slice, in a rotating order:
  in round r, workload w, every configuration runs a slice (20 calls, or one stream) in turn, ten times (four
  for streams), then flushes; its batch is the sum of its slices and of its flush.  So every configuration's
  batch spans the same stretch of time, and a noisy neighbour's bursts fall on all of them alike.  An overhead
  is the difference to the bare SDK's batch of the same round; the figure is the median of those paired
  differences over the rounds, with their interquartile range.
* CPU time (`time.process_time_ns`, every thread of the process, so the span processor's export thread too);
  wall time alongside.  Per streamed event: the slope between 1000-event and 10-event streams, so the
  call's own cost cancels out (the plain "1000-event stream / 1000" figure, which includes it, is in --json).
* What each configuration recorded is counted in an untimed pass afterwards (spans, span attributes and events,
  synchronous metric records per call and per stream), so nobody wins by recording less; so are the bytes a
  stream holds on to per event while it is read (tracemalloc), RSS and live-object growth over 20,000 calls
  after a warm-up, and — in fresh interpreters — what `import claude_otel` + `instrument()` add to startup.

Tests never time anything: tests/test_benchmark_smoke.py only checks that a --quick run works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = ROOT / ".venvs" / "bench"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
MODEL = "claude-haiku-4-5"  # not in the SDK's deprecated-model table: no DeprecationWarning per call
PREFIX = "@@"  # the child's protocol lines; anything else a library prints is ignored

CONFIGS = {
    "bare": "the SDK alone, its own tracing off (ANTHROPIC_OPEN_TELEMETRY=false)",
    "sdk-span": "the SDK's own call span (anthropic >= 1.14, global TracerProvider set)",
    "claude-otel": "claude-otel: operation span + attempt span + all default metrics, SDK tracing off",
    "claude-otel+sdk": "claude-otel enriching the SDK's own span (SDK tracing on)",
    "claude-otel-retries": "claude-otel with CLAUDE_OTEL_ATTEMPT_SPANS=retries (attempt spans only for retried calls)",
    "openllmetry": "opentelemetry-instrumentation-anthropic (OpenLLMetry), SDK tracing off",
    "openinference": "openinference-instrumentation-anthropic, SDK tracing off",
    "openlit": "OpenLIT's Anthropic instrumentation, SDK tracing off (installed by --setup without its deps)",
}
SDK_TRACING = {"sdk-span", "claude-otel+sdk"}
THIRD_PARTY = ("openllmetry", "openinference", "openlit")
WORKLOADS = ("call", "acall", "stream1000", "stream10", "astream1000", "astream10")

MESSAGE = {"id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
           "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 12, "output_tokens": 3}}


# ---------------------------------------------------------------------------------------------------------------
# The child: one configuration in a fresh process, driven over stdin/stdout.
# ---------------------------------------------------------------------------------------------------------------

def sse_body(events: int) -> bytes:
    """Returns a Messages API event stream with `events` content_block_delta events."""
    def ev(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    start = dict(MESSAGE, content=[], stop_reason=None, usage={"input_tokens": 12, "output_tokens": 1})
    parts = [ev("message_start", {"type": "message_start", "message": start}),
             ev("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})]
    parts += [ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                         "delta": {"type": "text_delta", "text": "tok "}})] * events
    parts += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ev("message_delta", {"type": "message_delta",
                                   "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                   "usage": {"output_tokens": events}}),
              ev("message_stop", {"type": "message_stop"})]
    return "".join(parts).encode()


class Child:
    """One configuration: the providers, the instrumentation, a sync and an async client, the workloads."""

    def __init__(self, config: str) -> None:
        if config not in SDK_TRACING:
            os.environ["ANTHROPIC_OPEN_TELEMETRY"] = "false"
        if config == "claude-otel-retries":
            os.environ["CLAUDE_OTEL_ATTEMPT_SPANS"] = "retries"
        import warnings

        warnings.simplefilter("ignore")
        import asyncio

        import anthropic
        import anthropic._base_client as base
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.config = config
        self.anthropic_version = anthropic.__version__
        if config in SDK_TRACING and not _has_sdk_tracing():
            raise RuntimeError(f"anthropic {anthropic.__version__} has no tracing of its own (needs >= 1.14)")
        hx = getattr(base, "httpx2", None) or base.httpx
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(self.exporter, max_queue_size=100_000, schedule_delay_millis=60_000))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        self._instrument(config)

        bodies = {1000: sse_body(1000), 10: sse_body(10)}
        message = json.dumps(MESSAGE).encode()
        json_headers = {"content-type": "application/json", "request-id": "req_bench"}
        sse_headers = {"content-type": "text/event-stream", "request-id": "req_bench"}

        def handler(request):
            body = json.loads(request.content)
            if body.get("stream"):
                return hx.Response(200, content=bodies[body["max_tokens"]], headers=sse_headers)
            return hx.Response(200, content=message, headers=json_headers)

        async def ahandler(request):
            return handler(request)

        self.client = anthropic.Anthropic(api_key="bench", base_url="http://bench.local",
                                          http_client=hx.Client(transport=hx.MockTransport(handler)))
        self.aclient = anthropic.AsyncAnthropic(api_key="bench", base_url="http://bench.local",
                                                http_client=hx.AsyncClient(transport=hx.MockTransport(ahandler)))
        self.loop = asyncio.new_event_loop()
        messages = [{"role": "user", "content": "Hello"}]
        client, aclient, loop = self.client, self.aclient, self.loop

        def calls(k):
            for _ in range(k):
                client.messages.create(model=MODEL, max_tokens=64, messages=messages)

        def streams(k, n):
            for _ in range(k):
                for _ in client.messages.create(model=MODEL, max_tokens=n, messages=messages, stream=True):
                    pass

        async def acalls(k):
            for _ in range(k):
                await aclient.messages.create(model=MODEL, max_tokens=64, messages=messages)

        async def astreams(k, n):
            for _ in range(k):
                async for _ in await aclient.messages.create(model=MODEL, max_tokens=n, messages=messages,
                                                             stream=True):
                    pass

        self.workloads = {
            "call": calls,
            "acall": lambda k: loop.run_until_complete(acalls(k)),
            "stream1000": lambda k: streams(k, 1000),
            "stream10": lambda k: streams(k, 10),
            "astream1000": lambda k: loop.run_until_complete(astreams(k, 1000)),
            "astream10": lambda k: loop.run_until_complete(astreams(k, 10)),
        }
        self._messages = messages
        self.batch = [0, 0, 0]  # CPU ns, wall ns, iterations of the batch under way

    def _instrument(self, config: str) -> None:
        tp, mp = self.tracer_provider, self.meter_provider
        if config.startswith("claude-otel"):
            from claude_otel import ClaudeInstrumentor

            ClaudeInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        elif config == "openllmetry":
            from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

            AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        elif config == "openinference":
            from openinference.instrumentation.anthropic import AnthropicInstrumentor

            AnthropicInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)
        elif config == "openlit":
            import openlit
            from openlit._instrumentors import MODULE_NAME_MAP
            from opentelemetry import metrics, trace

            # openlit.init() takes no providers: it reuses global SDK ones (adding no exporter of its own).
            trace.set_tracer_provider(tp)
            metrics.set_meter_provider(mp)
            openlit.init(disabled_instrumentors=[name for name in MODULE_NAME_MAP if name != "anthropic"],
                         collect_gpu_stats=False, collect_system_metrics=False)

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        self.reader.get_metrics_data()

    def run(self, workload: str, n: int) -> dict:
        """Times n iterations of a workload, the span flush and the metric collection included."""
        self.slice(workload, n)
        return self.end_batch()

    def slice(self, workload: str, n: int) -> None:
        """Times n iterations of a workload as one slice of the batch under way."""
        fn = self.workloads[workload]
        cpu, wall = time.process_time_ns(), time.perf_counter_ns()
        fn(n)
        self.batch[0] += time.process_time_ns() - cpu
        self.batch[1] += time.perf_counter_ns() - wall
        self.batch[2] += n

    def end_batch(self) -> dict:
        """Times the span flush and the metric collection, adds them to the batch's slices; returns per iteration."""
        cpu, wall = time.process_time_ns(), time.perf_counter_ns()
        self.flush()
        cpu, wall = self.batch[0] + time.process_time_ns() - cpu, self.batch[1] + time.perf_counter_ns() - wall
        n = self.batch[2]
        self.batch = [0, 0, 0]
        self.exporter.clear()
        return {"cpu_us": cpu / n / 1000.0, "wall_us": wall / n / 1000.0}

    # -- untimed: what was recorded, memory -------------------------------------------------------------------

    def census(self) -> dict:
        """Counts the spans, span attributes and events, and synchronous metric records of calls and streams."""
        from opentelemetry.sdk.metrics._internal import measurement_consumer as mc

        consumer = mc.SynchronousMeasurementConsumer
        original = consumer.consume_measurement
        count = [0]

        def counting(self_, measurement):
            count[0] += 1
            return original(self_, measurement)

        consumer.consume_measurement = counting
        try:
            out = {}
            for name, workload, n in (("call", "call", 20), ("acall", "acall", 20), ("stream1000", "stream1000", 3),
                                      ("stream10", "stream10", 3), ("astream1000", "astream1000", 3)):
                self.flush()
                self.exporter.clear()
                count[0] = 0
                self.workloads[workload](n)
                self.flush()
                spans = self.exporter.get_finished_spans()
                out[name] = {
                    "spans": len(spans) / n,
                    "span_attributes": sum(len(s.attributes or {}) for s in spans) / n,
                    "span_events": sum(len(s.events) for s in spans) / n,
                    "metric_records": count[0] / n,
                }
                self.exporter.clear()
        finally:
            consumer.consume_measurement = original
        series = 0
        data = self.reader.get_metrics_data()
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    series += len(metric.data.data_points)
        out["metric_series"] = series
        out["stream_bytes_held_per_event"] = self._held_per_event()
        return out

    def _held_per_event(self) -> float:
        """Bytes that stay allocated per event while a 1000-event stream is read (events 100 to 900)."""
        import tracemalloc

        tracemalloc.start()
        try:
            marks = {}
            stream = self.client.messages.create(model=MODEL, max_tokens=1000, messages=self._messages, stream=True)
            for i, _ in enumerate(stream):
                if i in (100, 900):
                    marks[i] = tracemalloc.get_traced_memory()[0]
            return (marks[900] - marks[100]) / 800.0
        finally:
            tracemalloc.stop()

    def memory(self, calls: int) -> dict:
        """RSS and live-object growth over `calls` calls after a warm-up (spans exported and dropped as they go)."""
        import gc

        def settle():
            self.flush()
            self.exporter.clear()
            gc.collect()

        def rss_kib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

        work = self.workloads["call"]
        step = 1000  # the same step in warm-up and measurement, so the span queue's high-water mark is reached
        for _ in range(3):
            work(step)
            settle()
        rss, objects = rss_kib(), len(gc.get_objects())
        done = 0
        while done < calls:
            work(min(step, calls - done))
            done += step
            self.flush()
            self.exporter.clear()
        settle()
        live_ops = None
        if self.config.startswith("claude-otel"):
            from claude_otel.operation import Attempt, Operation

            live_ops = sum(1 for o in gc.get_objects() if type(o) in (Operation, Attempt))
        return {"calls": calls, "rss_growth_kib": rss_kib() - rss,
                "objects_growth": len(gc.get_objects()) - objects, "live_operations": live_ops}


def _has_sdk_tracing() -> bool:
    try:
        import anthropic._tracing  # noqa: F401
    except ImportError:
        return False
    return True


def count_main(config: str, workload: str, n: int) -> int:
    """Runs n iterations of a workload after a warm-up, for an instruction count under callgrind."""
    child = Child(config)
    child.run(workload, 2 if "stream" in workload else 20)  # the same warm-up in both runs of a slope
    child.run(workload, n)
    child.tracer_provider.shutdown()
    return 0


def child_main(config: str) -> int:
    def send(payload) -> None:
        sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
        sys.stdout.flush()

    try:
        child = Child(config)
        for workload in WORKLOADS:  # warm-up: imports, caches, first-call paths
            child.run(workload, 2 if "1000" in workload else 20)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which skips the configuration
        send({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"ready": True, "anthropic": child.anthropic_version})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "run":
            send(child.run(command["workload"], command["n"]))
        elif op == "slice":
            child.slice(command["workload"], command["n"])
            send({})
        elif op == "end":
            send(child.end_batch())
        elif op == "census":
            send(child.census())
        elif op == "memory":
            send(child.memory(command["calls"]))
        elif op == "quit":
            break
    return 0


# ---------------------------------------------------------------------------------------------------------------
# The parent: start the configurations, take turns, compare, report.
# ---------------------------------------------------------------------------------------------------------------

class Runner:
    """A child process for one configuration."""

    def __init__(self, python: str, config: str) -> None:
        self.config = config
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([python, str(Path(__file__).resolve()), "--child", config], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX):])
        self.stderr.seek(0)
        tail = self.stderr.read().strip().splitlines()
        raise RuntimeError(tail[-1] if tail else f"exited with {self.proc.wait()}")

    def ask(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self.stderr.close()


def measure(python: str, wanted: list, quick: bool, rounds: int, memory_calls: int) -> tuple:
    """Returns (results, skipped): per configuration, per workload, the batches' CPU and wall figures."""
    # A batch is `slices` slices of `size` iterations; the configurations take turns slice by slice, so every
    # configuration's batch spans the same stretch of time (and of a noisy neighbour's bursts).
    sizes = {"call": 30, "acall": 30, "stream1000": 1, "stream10": 4, "astream1000": 1, "astream10": 4} if quick \
        else {"call": 20, "acall": 20, "stream1000": 1, "stream10": 4, "astream1000": 1, "astream10": 4}
    slices = {"call": 1, "acall": 1, "stream1000": 1, "stream10": 1, "astream1000": 1, "astream10": 1} if quick \
        else {"call": 10, "acall": 10, "stream1000": 4, "stream10": 4, "astream1000": 4, "astream10": 4}
    runners, skipped, meta = {}, {}, {}
    for config in wanted:  # start one at a time: start-up work would otherwise overlap
        runner = Runner(python, config)
        try:
            meta[config] = runner.receive()
            if "error" in meta[config]:
                raise RuntimeError(meta[config]["error"])
            runners[config] = runner
        except Exception as exc:  # noqa: BLE001
            skipped[config] = str(exc)
            runner.close()
    results = {c: {w: {"cpu_us": [], "wall_us": []} for w in WORKLOADS} for c in runners}
    order = list(runners)
    try:
        for round_no in range(rounds):
            for workload in WORKLOADS:
                shift = (round_no * len(WORKLOADS) + WORKLOADS.index(workload)) % len(order)
                turn = order[shift:] + order[:shift]
                for _ in range(slices[workload]):
                    for config in turn:
                        runners[config].ask(op="slice", workload=workload, n=sizes[workload])
                for config in turn:
                    got = runners[config].ask(op="end")
                    for key in ("cpu_us", "wall_us"):
                        results[config][workload][key].append(got[key])
            print(f"  round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
        for config, runner in runners.items():
            results[config]["census"] = runner.ask(op="census")
            results[config]["memory"] = runner.ask(op="memory", calls=memory_calls)
            results[config]["anthropic"] = meta[config].get("anthropic")
    finally:
        for runner in runners.values():
            runner.close()
    return results, skipped


# (workload, iterations) pairs whose difference gives one figure: per call, per async call, per streamed event
# (streams of 1000 against streams of 10 events, so the call's own cost cancels).
INSTRUCTION_RUNS = {"call": (("call", 50), ("call", 250), 200),
                    "acall": (("acall", 50), ("acall", 250), 200),
                    "event": (("stream10", 4), ("stream1000", 4), 4 * 990)}


def instructions(python: str, configs: list) -> dict:
    """Instructions per call and per streamed event under callgrind: exact and repeatable, whatever the neighbours.

    The slope between two runs that differ only in the number of iterations, so start-up and warm-up cancel;
    two valgrind processes at a time (instruction counts do not depend on contention).
    """
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    if shutil.which("valgrind") is None:
        print("--instructions: valgrind is not installed (apt-get install valgrind); skipped", file=sys.stderr)
        return {}

    def count(job):
        config, workload, n = job
        proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python,
                               str(Path(__file__).resolve()), "--count", config, workload, str(n)],
                              capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONHASHSEED="0"))
        found = [line for line in proc.stderr.splitlines() if "Collected :" in line]
        return int(found[-1].split(":")[-1]) if proc.returncode == 0 and found else None

    jobs = [(c,) + run for c in configs for lo, hi, _ in INSTRUCTION_RUNS.values() for run in (lo, hi)]
    print(f"--instructions: {len(jobs)} runs under callgrind, two at a time (a minute or more each)",
          file=sys.stderr, flush=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        counted = dict(zip(jobs, pool.map(count, jobs)))
    out = {}
    for config in configs:
        row = {}
        for figure, (lo, hi, per) in INSTRUCTION_RUNS.items():
            a, b = counted[(config,) + lo], counted[(config,) + hi]
            row[figure] = None if a is None or b is None else (b - a) / per
        out[config] = row
    return out


def report_instructions(counts: dict) -> None:
    bare = counts.get("bare")
    if not bare or None in bare.values():
        return
    print("\nInstructions (callgrind, exact and repeatable): above the bare SDK, thousands (kIr) per call and "
          "instructions (Ir) per streamed event\n")
    print("| configuration | kIr per call | kIr per async call | Ir per streamed event | bare absolute |")
    print("|---|---|---|---|---|")
    for config, row in counts.items():
        if config == "bare":
            print(f"| bare | (baseline) | | | {row['call'] / 1000:,.0f} kIr/call, {row['acall'] / 1000:,.0f} kIr/async "
                  f"call, {row['event']:,.0f} Ir/event |")
            continue
        cells = []
        for workload, scale in (("call", 1000), ("acall", 1000), ("event", 1)):
            value, base = row.get(workload), bare.get(workload)
            cells.append("failed" if value is None or base is None else f"{(value - base) / scale:+,.0f}")
        print(f"| {config} | {' | '.join(cells)} | |")


def instruction_checks(counts: dict, bare_event_us: float = None) -> list:
    """The per-call and per-event targets, judged on instruction counts instead of CPU time.

    Per streamed event, instructions become µs at the bare stream's own rate (its CPU µs per event over its
    instructions per event), which the CPU-time slope measures well even where a 1 µs difference drowns.
    """
    def over(config, workload):
        row, bare = counts.get(config), counts.get("bare")
        if not row or not bare or row.get(workload) is None or bare.get(workload) is None:
            return None
        return row[workload] - bare[workload]

    lines = []
    ours, sdk = over("claude-otel", "call"), over("sdk-span", "call")
    if ours is not None and sdk:
        lines.append((ours <= sdk, f"per call (instructions): claude-otel ≤ 1.0 × the SDK's own span: "
                                   f"{ours / 1000:+,.0f} vs {sdk / 1000:+,.0f} kIr ({ratio(ours, sdk)})"))
    third = {c: over(c, "call") for c in THIRD_PARTY if over(c, "call") is not None}
    if ours is not None and third:
        cheapest = min(third, key=third.get)
        lines.append((ours <= 0.5 * third[cheapest], f"per call (instructions): claude-otel ≤ 0.5 × the cheapest "
                                                     f"third party ({cheapest}): {ours / 1000:+,.0f} vs "
                                                     f"{third[cheapest] / 1000:+,.0f} kIr ({ratio(ours, third[cheapest])})"))
    event, base = over("claude-otel", "event"), (counts.get("bare") or {}).get("event")
    if event is not None and base and bare_event_us:
        us = event * bare_event_us / base
        lines.append((us <= 1.0, f"per streamed event (instructions): claude-otel ≤ 1 µs above bare: {event:+,.0f} Ir "
                                 f"≈ {us:+.2f} µs at the bare stream's {bare_event_us / base * 1000:.3f} ns/Ir"))
    both = over("claude-otel+sdk", "call")
    if both is not None and sdk:
        lines.append((both - sdk <= 0.5 * sdk, f"per call (instructions): what claude-otel adds to the SDK's span ≤ 0.5 × "
                                               f"what the span costs: {(both - sdk) / 1000:+,.0f} vs "
                                               f"{sdk / 1000:+,.0f} kIr ({ratio(both - sdk, sdk)})"))
    lean = over("claude-otel-retries", "call")
    if lean is not None and sdk:
        lines.append((lean <= sdk, f"per call (instructions): claude-otel with attempt spans on retries only ≤ 1.0 × "
                                   f"the SDK's own span: {lean / 1000:+,.0f} vs {sdk / 1000:+,.0f} kIr "
                                   f"({ratio(lean, sdk)})"))
    return lines


STARTUP_BARE = "import anthropic"
STARTUP_AGENT = ("import json, time, anthropic\n"
                 "wall, cpu = time.perf_counter(), time.process_time()\n"
                 "import claude_otel\n"
                 "claude_otel.ClaudeInstrumentor().instrument()\n"
                 "print(json.dumps([(time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000]))")


def startup(python: str, runs: int) -> dict:
    """What `import claude_otel` + `instrument()` add to a process that imports anthropic, in fresh interpreters.

    `added_ms`: timed inside each interpreter around just those two steps; `process_ms`: whole processes,
    `python -c "import anthropic"` against the same plus claude-otel, interleaved.
    """
    # Bytecode cached as an installed application has it (this machine may set PYTHONDONTWRITEBYTECODE): a
    # cache of its own, filled by one untimed run, so nothing is written into the source tree.
    env = dict(os.environ, ANTHROPIC_OPEN_TELEMETRY="false",
               PYTHONPYCACHEPREFIX=str(Path(tempfile.gettempdir()) / "claude-otel-bench-pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([python, "-c", STARTUP_AGENT], check=True, env=env, cwd=ROOT, capture_output=True)
    added, added_cpu, bare, agent = [], [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", STARTUP_BARE], check=True, env=env, cwd=ROOT)
        bare.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        out = subprocess.run([python, "-c", STARTUP_AGENT], check=True, env=env, cwd=ROOT, capture_output=True,
                             text=True).stdout
        agent.append((time.perf_counter() - start) * 1000)
        wall, cpu = json.loads(out.strip().splitlines()[-1])
        added.append(wall)
        added_cpu.append(cpu)
    return {"added_ms": added, "added_cpu_ms": added_cpu, "process_bare_ms": bare, "process_agent_ms": agent}


# -- statistics ---------------------------------------------------------------------------------------------------

def quartiles(values: list) -> tuple:
    """Returns (q1, median, q3) of a non-empty list."""
    s = sorted(values)
    if len(s) < 4:
        return s[0], statistics.median(s), s[-1]
    q = statistics.quantiles(s, n=4, method="inclusive")
    return q[0], q[1], q[2]


def paired(results: dict, config: str, fn) -> list:
    """Per round: fn(config's batches) - fn(bare's batches) of the same round."""
    ours, bare = results[config], results["bare"]
    rounds = len(ours["call"]["cpu_us"])
    return [fn(ours, i) - fn(bare, i) for i in range(rounds)]


def per_call(workload: str, key: str = "cpu_us"):
    return lambda r, i: r[workload][key][i]


def per_event(prefix: str):
    """The per-event slope between 1000-event and 10-event streams of one round."""
    return lambda r, i: (r[prefix + "1000"]["cpu_us"][i] - r[prefix + "10"]["cpu_us"][i]) / 990.0


def per_event_plain(prefix: str):
    return lambda r, i: r[prefix + "1000"]["cpu_us"][i] / 1000.0


def summarize(results: dict) -> dict:
    """Returns per configuration: (q1, median, q3) of every overhead above bare, and the absolute figures."""
    out = {}
    for config in results:
        s = {
            "call": quartiles(paired(results, config, per_call("call"))),
            "call_wall": quartiles(paired(results, config, per_call("call", "wall_us"))),
            "acall": quartiles(paired(results, config, per_call("acall"))),
            "event": quartiles(paired(results, config, per_event("stream"))),
            "aevent": quartiles(paired(results, config, per_event("astream"))),
            "event_plain": quartiles(paired(results, config, per_event_plain("stream"))),
            "aevent_plain": quartiles(paired(results, config, per_event_plain("astream"))),
            "abs_call": quartiles(results[config]["call"]["cpu_us"]),
            "abs_acall": quartiles(results[config]["acall"]["cpu_us"]),
            "abs_event": quartiles([per_event("stream")(results[config], i)
                                    for i in range(len(results[config]["call"]["cpu_us"]))]),
        }
        out[config] = s
    return out


# -- the report ---------------------------------------------------------------------------------------------------

def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def fmt(q: tuple, digits: int = 0, sign: bool = True) -> str:
    lo, mid, hi = q
    s = "+" if sign else ""
    return f"{mid:{s}.{digits}f} [{lo:.{digits}f}…{hi:.{digits}f}]"


def ratio(a: float, b: float) -> str:
    return f"×{a / b:.2f}" if b > 0 else "n/a"


def report(results: dict, skipped: dict, start: dict, args, python: str) -> list:
    """Prints the tables and the PASS/FAIL lines; returns the lines as (ok, text) pairs."""
    summary = summarize(results)
    anthropic_version = results["bare"].get("anthropic")
    rounds = len(results["bare"]["call"]["cpu_us"])
    print(f"\nmachine: {machine()}; anthropic {anthropic_version}; interpreter {python}")
    print(f"{'QUICK smoke run: too few batches for the figures to mean much' if args.quick else 'full run'}; "
          f"{rounds} interleaved rounds; figures are medians of per-round paired differences to bare, "
          f"[interquartile range]; CPU time unless marked wall")
    for config, reason in skipped.items():
        print(f"skipped {config}: {reason}")

    print("\nTime: overhead above the bare SDK (µs of CPU)\n")
    print("| configuration | per call | per call (wall) | per async call | per streamed event | "
          "per async streamed event | bare absolute |")
    print("|---|---|---|---|---|---|---|")
    for config, s in summary.items():
        if config == "bare":
            print(f"| bare | (baseline) | | | | | {s['abs_call'][1]:.0f} µs/call, {s['abs_acall'][1]:.0f} µs/async call, "
                  f"{s['abs_event'][1]:.1f} µs/event |")
            continue
        print(f"| {config} | {fmt(s['call'])} | {fmt(s['call_wall'])} | {fmt(s['acall'])} | {fmt(s['event'], 2)} | "
              f"{fmt(s['aevent'], 2)} | |")

    print("\nWhat each configuration recorded (untimed pass) and memory\n")
    print("| configuration | spans/call | span attrs/call | span events/call | metric records/call | "
          "metric records per 1000-event stream (per 10-event) | bytes held per streamed event | metric series | "
          "RSS growth over calls | objects retained per 1000 calls |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for config in summary:
        c, m = results[config]["census"], results[config]["memory"]
        print(f"| {config} | {c['call']['spans']:.1f} | {c['call']['span_attributes']:.1f} | "
              f"{c['call']['span_events']:.1f} | {c['call']['metric_records']:.1f} | "
              f"{c['stream1000']['metric_records']:.0f} ({c['stream10']['metric_records']:.0f}) | "
              f"{c['stream_bytes_held_per_event']:.1f} | {c['metric_series']} | "
              f"{m['rss_growth_kib']} KiB / {m['calls']:,} | {m['objects_growth'] / m['calls'] * 1000:.1f} |")

    ours = summary.get("claude-otel")
    others = [c for c in summary if c not in ("bare", "claude-otel")]
    if ours is not None and others:
        print("\nclaude-otel's overhead as a ratio of the others' (below 1: claude-otel costs less)\n")
        print("| against | per call | per async call | per streamed event |")
        print("|---|---|---|---|")
        for other in others:
            o = summary[other]
            print(f"| {other} | {ratio(ours['call'][1], o['call'][1])} | {ratio(ours['acall'][1], o['acall'][1])} | "
                  f"{ratio(ours['event'][1], o['event'][1])} |")

    if start:
        q = quartiles(start["added_ms"])
        pb, pa = statistics.median(start["process_bare_ms"]), statistics.median(start["process_agent_ms"])
        print(f"\nstartup: import claude_otel + instrument() add {q[1]:.1f} ms [{q[0]:.1f}…{q[2]:.1f}] "
              f"(CPU {statistics.median(start['added_cpu_ms']):.1f} ms) after `import anthropic`, median of "
              f"{len(start['added_ms'])} fresh interpreters; whole processes {pa:.0f} ms vs {pb:.0f} ms bare "
              f"({pa - pb:+.0f} ms, noisier)")

    lines = []

    def check(ok: bool, text: str) -> None:
        lines.append((ok, text))

    if ours is not None:
        if "sdk-span" in summary:
            sdk = summary["sdk-span"]["call"][1]
            check(ours["call"][1] <= sdk, f"per call: claude-otel ≤ 1.0 × the SDK's own span: "
                                          f"{ours['call'][1]:+.0f} vs {sdk:+.0f} µs ({ratio(ours['call'][1], sdk)})")
            asdk = summary["sdk-span"]["acall"][1]
            check(ours["acall"][1] <= asdk, f"per async call: claude-otel ≤ 1.0 × the SDK's own span: "
                                            f"{ours['acall'][1]:+.0f} vs {asdk:+.0f} µs "
                                            f"({ratio(ours['acall'][1], asdk)})")
        if "sdk-span" in summary and "claude-otel-retries" in summary:
            lean, sdk = summary["claude-otel-retries"]["call"][1], summary["sdk-span"]["call"][1]
            check(lean <= sdk, f"per call: claude-otel with attempt spans on retries only ≤ 1.0 × the SDK's own span: "
                               f"{lean:+.0f} vs {sdk:+.0f} µs ({ratio(lean, sdk)})")
        third = {c: summary[c]["call"][1] for c in THIRD_PARTY if c in summary}
        if third:
            cheapest = min(third, key=third.get)
            check(ours["call"][1] <= 0.5 * third[cheapest],
                  f"per call: claude-otel ≤ 0.5 × the cheapest third party ({cheapest}): {ours['call'][1]:+.0f} vs "
                  f"{third[cheapest]:+.0f} µs ({ratio(ours['call'][1], third[cheapest])})")
        for key, label in (("event", "per streamed event"), ("aevent", "per async streamed event")):
            check(ours[key][1] <= 1.0, f"{label}: claude-otel ≤ 1 µs above bare: {ours[key][1]:+.2f} µs "
                                       f"[{ours[key][0]:.2f}…{ours[key][2]:.2f}]")
        c = results["claude-otel"]["census"]
        held_bare = results["bare"]["census"]["stream_bytes_held_per_event"]
        held = c["stream_bytes_held_per_event"] - held_bare
        check(held < 1.0, f"streams: no per-event allocation that outlives the event: {held:+.2f} bytes held per event "
                          f"above bare while a stream is read")
        per_event_records = (c["stream1000"]["metric_records"] - c["stream10"]["metric_records"]) / 990
        check(per_event_records == 0, f"streams: no per-event metric record: {c['stream1000']['metric_records']:.0f} "
                                      f"records per 1000-event stream, {c['stream10']['metric_records']:.0f} per "
                                      f"10-event stream")
        m = results["claude-otel"]["memory"]
        check(m["rss_growth_kib"] <= 1024, f"memory: ≤ 1 MiB RSS growth over {m['calls']:,} calls after warm-up: "
                                           f"{m['rss_growth_kib']} KiB")
        check(m["live_operations"] == 0 and m["objects_growth"] < m["calls"] / 100,
              f"memory: nothing retained per finished call: {m['live_operations']} live operations/attempts, "
              f"{m['objects_growth']:+d} gc-tracked objects over {m['calls']:,} calls")
    if "claude-otel+sdk" in summary and "sdk-span" in summary:
        added = summary["claude-otel+sdk"]["call"][1] - summary["sdk-span"]["call"][1]
        span = summary["sdk-span"]["call"][1]
        check(added <= 0.5 * span, f"per call: what claude-otel adds to the SDK's span ≤ 0.5 × what the span costs: "
                                   f"{added:+.0f} vs {span:+.0f} µs ({ratio(added, span)})")
    if start:
        added = statistics.median(start["added_ms"])
        check(added <= 50, f"startup: import claude_otel + instrument() add ≤ 50 ms: {added:.1f} ms")
    print()
    for ok, text in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    if args.quick:
        print("(quick run: a smoke test of the script; its figures and PASS/FAIL lines are not a measurement)")
    return lines


# -- setup and main ---------------------------------------------------------------------------------------------

OPENLIT = "openlit==1.45.0"


def setup() -> int:
    """Creates .venvs/bench: claude-otel (editable) and the pinned third-party instrumentations."""
    python = BENCH_VENV / "bin" / "python"
    if not python.exists():
        BENCH_VENV.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    code = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS),
                           "-e", str(ROOT)]).returncode
    if code == 0:  # its declared anthropic < 1.0 would replace the SDK under test: see requirements.txt
        code = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", OPENLIT]).returncode
    if code == 0:
        print(f"benchmark venv ready: {BENCH_VENV}")
    return code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", action="store_true", help="create .venvs/bench with the other instrumentations")
    parser.add_argument("--python", help="interpreter for the configurations (default: .venvs/bench's if present, "
                                         "else this one)")
    parser.add_argument("--only", help="comma-separated configurations (bare is always added): " + ",".join(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="a smoke run: few small batches, not a measurement")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15; 3 with --quick)")
    parser.add_argument("--memory-calls", type=int, default=20_000, help="calls for the RSS growth (2000 with --quick)")
    parser.add_argument("--startup-runs", type=int, default=10, help="fresh interpreters for startup (3 with --quick)")
    parser.add_argument("--json", help="also write every figure here")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions under callgrind (needs valgrind; adds ~15 minutes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--count", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    if args.count:
        return count_main(args.count[0], args.count[1], int(args.count[2]))
    if args.setup:
        code = setup()
        if code:
            return code
    bench_python = BENCH_VENV / "bin" / "python"
    python = args.python or (str(bench_python) if bench_python.exists() else sys.executable)
    wanted = [c.strip() for c in args.only.split(",")] if args.only else list(CONFIGS)
    unknown = [c for c in wanted if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    wanted = ["bare"] + [c for c in wanted if c != "bare"]
    rounds = 3 if args.quick else max(args.rounds, 3)
    memory_calls = 2000 if args.quick else args.memory_calls
    print(f"running {', '.join(wanted)} with {python} ({rounds} rounds)", file=sys.stderr, flush=True)
    results, skipped = measure(python, wanted, args.quick, rounds, memory_calls)
    if "bare" not in results:
        print(f"the bare configuration failed ({skipped.get('bare')}); nothing to compare")
        return 1
    start = {}
    if "claude-otel" in results or "claude-otel+sdk" in results:
        start = startup(python, 3 if args.quick else args.startup_runs)
    lines = report(results, skipped, start, args, python)
    counts = {}
    if args.instructions:
        counts = instructions(python, list(results))
        report_instructions(counts)
        bare_event = summarize(results).get("bare", {}).get("abs_event")
        extra = instruction_checks(counts, bare_event[1] if bare_event else None)
        for ok, text in extra:
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
        lines += extra
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "python": python, "quick": args.quick, "results": results, "skipped": skipped,
            "summary": summarize(results), "startup": start, "instructions": counts,
            "checks": [{"pass": ok, "text": text} for ok, text in lines]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
