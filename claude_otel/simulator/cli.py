"""`claude-otel simulate`: serve the simulator on the command line until Ctrl-C."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from typing import Dict

from .faults import DURATIONS, FIELD_HELP, PROFILES, Fault, FaultError, parse_value
from .server import Simulator

# Every Fault field gets a flag; the proxy idle timeout is the server-wide --proxy-idle-timeout instead.
FAULT_FLAGS = tuple(f.name for f in dataclasses.fields(Fault) if f.name != "proxy_idle_timeout")


def profiles_table() -> str:
    """Returns the profiles, one a line: name, description, and the fault values at time scale 1."""
    lines = []
    for name, (fault, description) in PROFILES.items():
        values = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fault.changed().items())
        lines.append(f"  {name:19} {description}\n  {'':19} ({values})")
    return "\n".join(lines)


def _flag_type(name: str):
    """Returns an argparse type that parses a value for Fault field `name`."""
    def parse(raw: str):
        try:
            return parse_value(name, raw)
        except FaultError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None
    parse.__name__ = name
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the simulate sub-command's flags (and a profiles table in its --help) to parser."""
    parser.description = ("Serve a local Anthropic Messages API with injectable faults. Point the SDK at it with "
                          "ANTHROPIC_BASE_URL. Each request may pick a profile with the header x-sim-profile: NAME "
                          "(or the model sim-NAME) and override any fault field with x-sim-FIELD headers "
                          "(e.g. x-sim-prefill-delay: 2.5), in absolute seconds.")
    parser.epilog = "profiles:\n" + profiles_table()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8089, help="port to bind (default 8089; 0 = any free port)")
    parser.add_argument("--profile", default="normal", choices=list(PROFILES), metavar="NAME",
                        help="fault profile for requests that name none (default normal; see below)")
    parser.add_argument("--time-scale", type=float, default=1.0, metavar="F",
                        help="multiply every profile duration by F, e.g. 0.1 to rehearse ten times faster")
    parser.add_argument("--proxy-idle-timeout", type=float, default=None, metavar="S",
                        help="cut connections idle for S seconds, like a load balancer (nginx proxy_read_timeout)")
    parser.add_argument("--list-profiles", action="store_true", help="print the profiles and exit")
    group = parser.add_argument_group(
        "fault overrides", "set one field of the default profile's fault (absolute seconds, not scaled); "
                           "'none' clears an optional one")
    for name in FAULT_FLAGS:
        metavar = "S" if name in DURATIONS else "MODE" if name == "malformed" else "TYPE" if name == "error_type" \
            else "MS" if name == "retry_after_ms" else "N"
        group.add_argument("--" + name.replace("_", "-"), dest="fault_" + name, type=_flag_type(name),
                           default=argparse.SUPPRESS, metavar=metavar, help=FIELD_HELP[name])


def run(args: argparse.Namespace) -> int:
    """Serves until Ctrl-C (SIGINT) or SIGTERM; returns the exit code: 0 for such a requested stop, 1 when it
    cannot listen (130 comes from the caller when a second Ctrl-C interrupts the shutdown itself)."""
    if getattr(args, "list_profiles", False):
        print("profiles (x-sim-profile: NAME, model sim-NAME, or --profile NAME):")
        print(profiles_table())
        print("\nfault fields (x-sim-FIELD headers or --FIELD flags): "
              + ", ".join(f.name.replace("_", "-") for f in dataclasses.fields(Fault)))
        return 0
    overrides: Dict[str, object] = {name: getattr(args, "fault_" + name) for name in FAULT_FLAGS
                                    if hasattr(args, "fault_" + name)}
    profile = getattr(args, "profile", "normal")
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a shell without job control (a script's `claude-otel simulate &`, CI runners) starts
        # background jobs with SIGINT ignored, Python then keeps it ignored, and `kill -INT` would do nothing.
        # Installed before the listening line, so a client that reacts to that line can already stop it.
        previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            sim = Simulator(getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8089), profile,
                            getattr(args, "time_scale", 1.0), getattr(args, "proxy_idle_timeout", None), overrides,
                            max_requests=1000)
            sim.start()
        except (OSError, ValueError) as exc:
            print(f"claude-otel simulate: cannot serve: {exc}", file=sys.stderr)
            return 1
        try:
            changed = ", ".join(f"{k}={v}" for k, v in overrides.items())
            print(f"claude-otel simulator listening on {sim.base_url} (profile {profile}, time scale "
                  f"{sim.time_scale:g}{', ' + changed if changed else ''})", flush=True)
            print(f"  export ANTHROPIC_BASE_URL={sim.base_url}", flush=True)
            print("  per request: header x-sim-profile: NAME (or model sim-NAME), x-sim-FIELD: VALUE; "
                  "--list-profiles lists them. Ctrl-C stops.", flush=True)
            sim.serve_forever()
        except KeyboardInterrupt:  # before serve_forever took over; it handles the ones that come later
            pass
        finally:
            sim.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(f"claude-otel simulator stopped after {sim.requests_total} requests", flush=True)
    return 0


def _interrupt(signum, frame) -> None:
    """Raises the KeyboardInterrupt that stops serve_forever, for SIGINT and SIGTERM alike."""
    raise KeyboardInterrupt
