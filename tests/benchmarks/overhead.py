"""Overhead of claude-otel against the bare SDK, the SDK's own span and other Anthropic instrumentations.

    .venv/bin/python tests/benchmarks/overhead.py --setup     # once: .venvs/bench with the other instrumentations
    .venv/bin/python tests/benchmarks/overhead.py             # the table and the pass/fail lines
    .venv/bin/python tests/benchmarks/overhead.py --quick --only bare,claude-otel

Every configuration runs in its own fresh process against an in-process transport (httpx2.MockTransport,
canned Messages API bodies: no network noise), with the same OpenTelemetry SDK providers: a
BatchSpanProcessor into memory, flushed inside the timed region, and an InMemoryMetricReader collected
inside the timed region.  CPU time (process_time) per batch; medians of batches with min-max spread.
Per-event cost is the slope between streams of 1000 and of 10 events, so per-call work cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH_VENV = ROOT / ".venvs" / "bench"
CONFIGS = {
    "bare": "the SDK alone, its own tracing off",
    "sdk-span": "the SDK's own call span (anthropic >= 1.14)",
    "claude-otel": "claude-otel: operation span + attempt span + all default metrics, SDK tracing off",
    "claude-otel+sdk": "claude-otel enriching the SDK's own span",
    "openllmetry": "opentelemetry-instrumentation-anthropic (OpenLLMetry)",
    "openinference": "openinference-instrumentation-anthropic",
}
MESSAGE = {"id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "Hello there"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 12, "output_tokens": 3}}


# -- the child: one configuration in a fresh process ---------------------------------------------------------------

def sse_body(events: int) -> bytes:
    def ev(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    start = dict(MESSAGE, content=[], stop_reason=None, usage={"input_tokens": 12, "output_tokens": 1})
    parts = [ev("message_start", {"type": "message_start", "message": start}),
             ev("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})]
    delta = ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": "tok "}})
    parts += [delta] * events
    parts += [ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
              ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                       "stop_sequence": None},
                                   "usage": {"output_tokens": events}}),
              ev("message_stop", {"type": "message_stop"})]
    return "".join(parts).encode()


def child(config: str, quick: bool, memory: bool = True) -> dict:
    if config in ("bare", "claude-otel", "openllmetry", "openinference"):
        os.environ["ANTHROPIC_OPEN_TELEMETRY"] = "false"
    import anthropic
    import anthropic._base_client as base
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    hx = getattr(base, "httpx2", None) or base.httpx
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=200_000,
                                                          schedule_delay_millis=60_000))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)

    if config.startswith("claude-otel"):
        from claude_otel import ClaudeInstrumentor

        ClaudeInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif config == "openllmetry":
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    elif config == "openinference":
        from openinference.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)

    bodies = {10: sse_body(10), 1000: sse_body(1000)}
    message = json.dumps(MESSAGE).encode()

    def handler(request):
        body = json.loads(request.content)
        if body.get("stream"):
            return hx.Response(200, content=bodies[body["max_tokens"]],
                               headers={"content-type": "text/event-stream", "request-id": "req_bench"})
        return hx.Response(200, content=message, headers={"content-type": "application/json",
                                                          "request-id": "req_bench"})

    client = anthropic.Anthropic(api_key="k", base_url="http://bench.local",
                                 http_client=hx.Client(transport=hx.MockTransport(handler)))

    async def ahandler(request):
        return handler(request)

    aclient = anthropic.AsyncAnthropic(api_key="k", base_url="http://bench.local",
                                       http_client=hx.AsyncClient(transport=hx.MockTransport(ahandler)))
    msgs = [{"role": "user", "content": "Hello"}]

    def call():
        client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs)

    def stream(n):
        for _ in client.messages.create(model="claude-sonnet-4-5", max_tokens=n, messages=msgs, stream=True):
            pass

    import asyncio

    loop = asyncio.new_event_loop()

    async def acalls(k):
        for _ in range(k):
            await aclient.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=msgs)

    async def astreams(k, n):
        for _ in range(k):
            async for _ in await aclient.messages.create(model="claude-sonnet-4-5", max_tokens=n, messages=msgs,
                                                         stream=True):
                pass

    def flush():
        tracer_provider.force_flush()
        reader.get_metrics_data()

    def measure(fn, per_batch: int, batches: int) -> list:
        fn(max(per_batch // 10, 1))  # warm-up
        flush()
        exporter.clear()
        out = []
        for _ in range(batches):
            start = time.process_time_ns()
            fn(per_batch)
            flush()
            out.append((time.process_time_ns() - start) / per_batch / 1000.0)
        return out

    batches = 3 if quick else 5
    n_calls = 100 if quick else 400
    n_streams = 4 if quick else 12
    result = {"config": config, "anthropic": anthropic.__version__}
    result["call_us"] = measure(lambda k: [call() for _ in range(k)], n_calls, batches)
    spans_per_call = len(exporter.get_finished_spans()) / (n_calls * batches)
    result["acall_us"] = measure(lambda k: loop.run_until_complete(acalls(k)), n_calls, batches)
    long_ = measure(lambda k: [stream(1000) for _ in range(k)], n_streams, batches)
    short = measure(lambda k: [stream(10) for _ in range(k)], n_streams * 4, batches)
    result["event_us"] = [(a - b) / 990.0 for a, b in zip(long_, short)]
    along = measure(lambda k: loop.run_until_complete(astreams(k, 1000)), n_streams, batches)
    ashort = measure(lambda k: loop.run_until_complete(astreams(k, 10)), n_streams * 4, batches)
    result["aevent_us"] = [(a - b) / 990.0 for a, b in zip(along, ashort)]
    result["spans_per_call"] = spans_per_call
    data = reader.get_metrics_data()
    records = series = 0
    for rm in (data.resource_metrics if data else []):
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    series += 1
                    records += getattr(p, "count", 0)
    result["metric_series"] = series
    # memory: RSS growth over 20,000 calls after warm-up (spans flushed and cleared as they go)
    total = 2000 if quick else 20_000
    if not memory:
        result["rss_growth_kib"], result["calls_for_memory"] = None, 0
        return result

    def rss_kib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

    for _ in range(2000):
        call()
    flush()
    exporter.clear()
    before = rss_kib()
    for i in range(total):
        call()
        if i % 2000 == 1999:
            flush()
            exporter.clear()
    flush()
    exporter.clear()
    result["rss_growth_kib"] = rss_kib() - before
    result["calls_for_memory"] = total
    return result


def startup(python: str, config: str, runs: int) -> list:
    code = {"bare": "import anthropic",
            "claude-otel": "import anthropic, claude_otel; claude_otel.ClaudeInstrumentor().instrument()"}[config]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, env=dict(os.environ, ANTHROPIC_OPEN_TELEMETRY="false"))
        times.append((time.perf_counter() - start) * 1000)
    return times


# -- the parent: run, compare, report ------------------------------------------------------------------------------

def setup() -> int:
    if not (BENCH_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    req = Path(__file__).with_name("requirements.txt")
    return subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", "-e", str(ROOT), "-r", str(req)]).returncode


def med(values: list) -> float:
    return statistics.median(values)


def spread(values: list) -> str:
    return f"{min(values):.1f}–{max(values):.1f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setup", action="store_true", help="create .venvs/bench with the other instrumentations")
    parser.add_argument("--python", help="interpreter for the configurations (default .venvs/bench if present)")
    parser.add_argument("--only", help="comma-separated configurations")
    parser.add_argument("--quick", action="store_true", help="few batches: a smoke run, not a measurement")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rounds", type=int, default=3,
                        help="run every configuration this many times, interleaved, in fresh processes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.quick, memory=not args.no_memory)))
        return 0
    if args.setup:
        code = setup()
        if code:
            return code
    python = args.python or (str(BENCH_VENV / "bin" / "python") if (BENCH_VENV / "bin" / "python").exists()
                             else sys.executable)
    wanted = args.only.split(",") if args.only else list(CONFIGS)
    results = {}
    skipped = set()
    rounds = 1 if args.quick else max(args.rounds, 1)
    # Interleaved rounds: a noisy neighbour slows every configuration alike instead of one of them.
    for round_no in range(rounds):
        for config in wanted:
            if config in skipped:
                continue
            extra = (["--quick"] if args.quick else []) + (["--no-memory"] if round_no else [])
            proc = subprocess.run([python, __file__, "--child", config] + extra, capture_output=True, text=True,
                                  cwd=ROOT)
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
                print(f"{config}: skipped ({last})")
                skipped.add(config)
                continue
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            if config not in results:
                results[config] = got
            else:
                for key in ("call_us", "acall_us", "event_us", "aevent_us"):
                    results[config][key] += got[key]
    if "bare" not in results:
        print("the bare configuration failed; nothing to compare")
        return 1
    runs = 3 if args.quick else 10
    start_bare = startup(python, "bare", runs)
    start_ours = startup(python, "claude-otel", runs) if "claude-otel" in results else None
    report(results, start_bare, start_ours, python, args.quick)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "startup_bare_ms": start_bare,
                                               "startup_claude_otel_ms": start_ours}, indent=2))
    return 0


def report(results: dict, start_bare, start_ours, python: str, quick: bool) -> None:
    bare = results["bare"]
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; Python {platform.python_version()}; "
          f"anthropic {bare['anthropic']}; {'QUICK smoke run' if quick else 'full run'}")
    print("\n| configuration | µs/call above bare (spread) | async µs/call | µs/event above bare | async µs/event "
          "| spans/call | metric series | RSS growth KiB / calls |")
    print("|---|---|---|---|---|---|---|---|")
    over = {}
    for name, r in results.items():
        call = med(r["call_us"]) - med(bare["call_us"])
        acall = med(r["acall_us"]) - med(bare["acall_us"])
        event = med(r["event_us"]) - med(bare["event_us"])
        aevent = med(r["aevent_us"]) - med(bare["aevent_us"])
        over[name] = {"call": call, "event": event, "acall": acall, "aevent": aevent, "rss": r["rss_growth_kib"]}
        shown = "(baseline)" if name == "bare" else f"{call:+.1f}"
        print(f"| {name} | {shown} (abs {med(r['call_us']):.1f}, {spread(r['call_us'])}) | {acall:+.1f} | "
              f"{event:+.2f} | {aevent:+.2f} | {r['spans_per_call']:.2f} | {r['metric_series']} | "
              f"{r['rss_growth_kib']} / {r['calls_for_memory']} |")
    print()
    third = {k: v for k, v in over.items() if k in ("openllmetry", "openinference")}
    lines = []
    ours = over.get("claude-otel")
    if ours is not None and "sdk-span" in over:
        lines.append(("per call: claude-otel <= 1.0 x the SDK's own span",
                      ours["call"] <= over["sdk-span"]["call"], f"{ours['call']:.1f} vs {over['sdk-span']['call']:.1f} µs"))
    if ours is not None and third:
        cheapest = min(third.items(), key=lambda kv: kv[1]["call"])
        lines.append((f"per call: claude-otel <= 0.5 x the cheapest third party ({cheapest[0]})",
                      ours["call"] <= 0.5 * cheapest[1]["call"], f"{ours['call']:.1f} vs {cheapest[1]['call']:.1f} µs"))
    if "claude-otel+sdk" in over and "sdk-span" in over:
        added = over["claude-otel+sdk"]["call"] - over["sdk-span"]["call"]
        lines.append(("per call: what claude-otel adds to the SDK's span <= what the span costs",
                      added <= over["sdk-span"]["call"], f"{added:.1f} vs {over['sdk-span']['call']:.1f} µs"))
    if ours is not None:
        lines.append(("per streamed event: <= 1 µs above bare", ours["event"] <= 1.0, f"{ours['event']:.2f} µs"))
        lines.append(("memory: <= 1 MiB growth over the calls", ours["rss"] <= 1024, f"{ours['rss']} KiB"))
    if start_ours is not None:
        added = med(start_ours) - med(start_bare)
        lines.append(("startup: import + instrument() <= 50 ms", added <= 50, f"{added:.1f} ms "
                      f"(bare import {med(start_bare):.0f} ms)"))
    for text, ok, figure in lines:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {figure}")
    if quick:
        print("(quick run: too few batches for the pass/fail lines to mean much)")


if __name__ == "__main__":
    sys.exit(main())
