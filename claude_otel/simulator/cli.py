"""`claude-otel simulate`: serve the simulator on the command line."""

from __future__ import annotations

import argparse
from dataclasses import fields

from .faults import PROFILES, Fault
from .server import Simulator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the simulate sub-command's flags to parser."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port to bind (default 8089; 0 = any free port)")
    parser.add_argument("--profile", default="normal", choices=sorted(PROFILES),
                        help="fault profile for requests that name none")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every profile duration by this")
    parser.add_argument("--proxy-idle-timeout", type=float, default=None,
                        help="close connections idle longer than this many seconds, like a load balancer")
    parser.add_argument("--list-profiles", action="store_true", help="print the profiles and exit")


def run(args: argparse.Namespace) -> int:
    """Serves until Ctrl-C; returns the exit code."""
    if args.list_profiles:
        for name in sorted(PROFILES):
            print(f"{name:20} {PROFILES[name][1]}")
        print("\nPer request: header x-sim-profile: NAME, or model sim-NAME; override any field with x-sim-FIELD:")
        print("  " + ", ".join(f.name.replace("_", "-") for f in fields(Fault)))
        return 0
    sim = Simulator(args.host, args.port, args.profile, args.time_scale, args.proxy_idle_timeout)
    sim.start()
    print(f"claude-otel simulator on {sim.base_url} (profile {args.profile}); Ctrl-C stops it")
    print(f"  export ANTHROPIC_BASE_URL={sim.base_url} ANTHROPIC_API_KEY=sk-ant-simulated")
    try:
        while sim._thread is not None and sim._thread.is_alive():
            sim._thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    print("simulator stopped")
    return 0
