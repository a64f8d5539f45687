"""`claude-otel demo`: the simulator, a mixed instrumented workload, /metrics and a live view, in one command.

No API key and no network: the simulator serves the Messages API on 127.0.0.1,
`claude_otel.configure()` sets up the agent exactly as an application would
(Prometheus /metrics, and OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set), and the
workload calls the real SDK.  The table is read from the agent's own metrics.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import Optional

DEFAULT_METRICS_PORT = 9464


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the demo sub-command's flags."""
    from ..simulator.faults import PROFILES

    parser.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60; 0 = until Ctrl-C)")
    parser.add_argument("--rate", type=float, default=4.0, help="calls started per second (default 4)")
    parser.add_argument("--profile", default="mix", metavar="PROFILE",
                        help="mix (default: every kind of call and fault) or one simulator profile for every call: "
                             + ", ".join(sorted(PROFILES)))
    parser.add_argument("--time-scale", type=float, default=0.1,
                        help="with a simulator profile, multiply its durations (and the client timeout of 60 s) by "
                             "this (default 0.1: the 8 s slow prefill takes 0.8 s)")
    parser.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT,
                        help=f"/metrics port (default {DEFAULT_METRICS_PORT}; 0 = any free port)")
    parser.add_argument("--metrics-addr", default=os.environ.get("CLAUDE_OTEL_PROMETHEUS_ADDR", "127.0.0.1"),
                        help="/metrics bind address (default 127.0.0.1, or CLAUDE_OTEL_PROMETHEUS_ADDR; 0.0.0.0 for "
                             "a scraper on another host)")
    parser.add_argument("--sim-port", type=int, default=0, help="simulator port (default 0 = any free port)")
    parser.add_argument("--no-tty", action="store_true",
                        help="plain summaries every 5 s instead of the live view (automatic when stdout is not a "
                             "terminal)")


def run(args: argparse.Namespace) -> int:
    """Runs the demo; returns the exit code (0 at the end or after Ctrl-C, 2 when it cannot start)."""
    from ..simulator import Simulator
    from ..simulator.faults import PROFILES
    from .view import LiveView, PlainView, Status, closing
    from .workload import DEFAULT_TIMEOUT, Workload

    profile = args.profile
    if profile != "mix" and profile not in PROFILES:
        print(f"claude-otel demo: unknown --profile {profile!r}; use mix or one of {', '.join(sorted(PROFILES))}",
              file=sys.stderr)
        return 2
    scale = args.time_scale if args.time_scale > 0 else 1.0
    timeout = DEFAULT_TIMEOUT if profile == "mix" else max(60.0 * scale, 1.0)
    problem = _port_problem(args.sim_port)
    if problem is not None:
        print(f"claude-otel demo: cannot start the simulator on 127.0.0.1:{args.sim_port} ({problem}); "
              "try --sim-port 0", file=sys.stderr)
        return 2
    sim = Simulator("127.0.0.1", args.sim_port, "normal", scale).start()
    handle = None
    try:
        handle = _configure(args, profile, scale, PROFILES)
        workload = Workload(sim.base_url, args.rate, profile, timeout=timeout)
        status = Status(sim.base_url, handle.prometheus_url, args.rate, args.duration, profile)
        if handle.prometheus_url is None:
            print(f"claude-otel demo: /metrics is not served (port {args.metrics_port} busy?); the table still "
                  "works. Try --metrics-port 0.", file=sys.stderr)
        tty = sys.stdout.isatty() and not args.no_tty
        view = LiveView() if tty else PlainView()
        if not tty:
            print(f"{'claude-otel demo'}: simulator {sim.base_url}, /metrics {handle.prometheus_url}, profile "
                  f"{profile}, {args.rate:g} calls/s for "
                  f"{'ever (Ctrl-C stops)' if args.duration <= 0 else f'{args.duration:g} s'}", flush=True)
        interrupted = _drive(workload, view, status, handle.reader, args.duration, sim)
        print(closing(status, handle.reader, dict(workload.caught), interrupted), flush=True)
        return 0
    finally:
        if handle is not None:
            handle.shutdown(timeout=3)
        sim.stop()


def _configure(args, profile: str, scale: float, profiles):
    import claude_otel

    extra = {}
    proxy_idle = profiles[profile][0].proxy_idle_timeout if profile in profiles else None
    if proxy_idle:  # the agent then measures utilization against the simulated proxy's idle timeout
        extra["proxy_idle_timeout"] = proxy_idle * scale
    return claude_otel.configure(service_name="claude-otel-demo", prometheus_port=args.metrics_port,
                                 prometheus_addr=args.metrics_addr, **extra)


def _port_problem(port: int) -> Optional[str]:
    """Returns why 127.0.0.1:port cannot be listened on, or None (port 0 always can)."""
    if not port:
        return None
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _drive(workload, view, status, reader, duration: float, sim=None) -> bool:
    """Runs the workload while refreshing the view; returns whether Ctrl-C (or SIGTERM) stopped it."""
    interrupted = threading.Event()

    def stop(signum, frame):
        if interrupted.is_set():  # a second Ctrl-C: stop waiting for calls in flight
            raise KeyboardInterrupt
        interrupted.set()
        workload.stop()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, stop)
    runner = threading.Thread(target=workload.run, args=(duration,), name="claude-otel-demo", daemon=True)
    start = time.monotonic()
    runner.start()
    try:
        while runner.is_alive():
            runner.join(0.1)
            _refresh(status, workload, start)
            view.update(status, reader)
            if sim is not None and len(sim.requests) > 1000:  # the demo never reads them: keep memory flat
                sim.reset()
        _refresh(status, workload, start)
    except KeyboardInterrupt:
        _refresh(status, workload, start)
    finally:
        view.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return interrupted.is_set()


def _refresh(status, workload, start: float) -> None:
    status.elapsed = time.monotonic() - start
    status.started = workload.started
    status.in_flight = workload.in_flight


def main(argv: Optional[list] = None) -> int:
    """Runs `claude-otel demo` with these arguments (for `python -m claude_otel.demo`)."""
    parser = argparse.ArgumentParser(prog="claude-otel demo")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["add_arguments", "run", "main"]

