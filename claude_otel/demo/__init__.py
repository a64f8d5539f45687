"""`claude-otel demo`: the simulator, a mixed instrumented workload, /metrics and a live view, in one command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from .summary import rows, table

ANSI_HOME = "\x1b[H\x1b[2J"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the demo sub-command's flags."""
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (0 = until Ctrl-C)")
    parser.add_argument("--rate", type=float, default=4.0, help="calls started per second")
    parser.add_argument("--profile", default="mix",
                        help="mix (default) or one scenario: " + ", ".join(_scenario_names()))
    parser.add_argument("--metrics-port", type=int, default=9464, help="/metrics port (0 = any free port)")
    parser.add_argument("--metrics-addr", default=os.environ.get("CLAUDE_OTEL_PROMETHEUS_ADDR", "127.0.0.1"),
                        help="/metrics bind address (default 127.0.0.1, or CLAUDE_OTEL_PROMETHEUS_ADDR)")
    parser.add_argument("--sim-port", type=int, default=0, help="simulator port (0 = any free port)")
    parser.add_argument("--no-tty", action="store_true", help="plain periodic summaries instead of the live view")


def _scenario_names():
    from .workload import SCENARIOS

    return [s.name for s in SCENARIOS]


def run(args: argparse.Namespace) -> int:
    """Runs the demo; returns the exit code."""
    import claude_otel
    from ..simulator import Simulator
    from .workload import Workload

    os.environ.setdefault("OTEL_SERVICE_NAME", "claude-otel-demo")
    sim = Simulator(port=args.sim_port).start()
    handle = claude_otel.configure("claude-otel-demo", prometheus_port=args.metrics_port,
                                   prometheus_addr=args.metrics_addr)
    if handle.reader is None or handle.prometheus_url is None:
        print("claude-otel demo: /metrics could not be served (see the message above); try --metrics-port 0",
              file=sys.stderr)
    workload = Workload(sim.base_url, args.rate, args.profile)
    tty = sys.stdout.isatty() and not args.no_tty
    stop = threading.Event()

    def interrupted(signum, frame):
        workload.stop()
        stop.set()

    previous = signal.signal(signal.SIGINT, interrupted)
    runner = threading.Thread(target=workload.run, args=(args.duration,), daemon=True)
    start = time.monotonic()
    print(f"claude-otel demo: simulator {sim.base_url}, metrics {handle.prometheus_url}, "
          f"{args.rate:g} calls/s for {'ever' if args.duration <= 0 else f'{args.duration:g} s'}")
    runner.start()
    last_plain = 0.0
    try:
        while runner.is_alive():
            runner.join(0.5)
            elapsed = time.monotonic() - start
            if tty:
                print(ANSI_HOME + _screen(handle, sim, workload, elapsed, args.duration), flush=True)
            elif elapsed - last_plain >= 5:
                last_plain = elapsed
                print(f"\n[{elapsed:5.1f}s] {workload.started} calls started", flush=True)
                print(table(rows(handle.reader.snapshot())) if handle.reader else "", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    print("\nFinal figures (from claude-otel's own metrics):")
    print(table(rows(handle.reader.snapshot())) if handle.reader else "(no metrics reader)")
    _advice(handle)
    handle.shutdown(timeout=3)
    sim.stop()
    return 0


def _bar(elapsed: float, duration: float, width: int = 30) -> str:
    if duration <= 0:
        return f"{elapsed:6.1f}s (Ctrl-C to stop)"
    done = min(elapsed / duration, 1.0)
    return "[" + "#" * int(done * width) + "." * (width - int(done * width)) + f"] {elapsed:5.1f}/{duration:g}s"


def _screen(handle, sim, workload, elapsed: float, duration: float) -> str:
    lines = [
        "claude-otel demo — Claude API calls through the real SDK to a local simulator",
        _bar(elapsed, duration),
        f"calls started {workload.started}   simulator {sim.base_url}   /metrics {handle.prometheus_url}",
        "",
        table(rows(handle.reader.snapshot())) if handle.reader else "(no metrics reader)",
        "",
        "max util = the largest share of its timeout one attempt used (100% = timed out). Ctrl-C stops.",
    ]
    return "\n".join(lines)


def _advice(handle) -> None:
    url = handle.prometheus_url or "http://127.0.0.1:9464/metrics"
    target = url.split("//", 1)[1].split("/", 1)[0]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    print(f"""
Point Prometheus at the metrics (prometheus.yml):
  scrape_configs:
    - job_name: claude-otel-demo
      scrape_interval: 5s
      static_configs: [{{targets: ["{target}"]}}]
  rule_files: ["{os.path.join(root, 'grafana', 'rules', '*.yml')}"]

Import the dashboards into Grafana: {os.path.join(root, 'grafana', 'dashboards')}/*.json
  (claude-overview, claude-timeouts, claude-streaming; or provision grafana/provisioning as is).
OTLP: set OTEL_EXPORTER_OTLP_ENDPOINT to also send spans and metrics to a collector.""")
