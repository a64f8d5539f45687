"""The `claude-otel` command: demo, simulate, doctor, run, version."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def parser() -> argparse.ArgumentParser:
    """Returns the command-line parser with every sub-command."""
    from . import demo, doctor
    from .simulator import cli as simulate

    top = argparse.ArgumentParser(prog="claude-otel", description="OpenTelemetry for the Anthropic SDK, built for "
                                                                  "timeouts.")
    sub = top.add_subparsers(dest="command", required=True)
    demo.add_arguments(sub.add_parser("demo", help="simulator + instrumented workload + live view + /metrics"))
    simulate.add_arguments(sub.add_parser("simulate", help="serve the local Anthropic API simulator"))
    doctor.add_arguments(sub.add_parser("doctor", help="check the timeout set-up and connectivity"))
    run = sub.add_parser("run", help="run a program with claude-otel configured: claude-otel run -- python app.py")
    run.add_argument("program", nargs=argparse.REMAINDER)
    sub.add_parser("version", help="print the version")
    return top


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        from .launcher import run

        return run(argv[1:])
    args = parser().parse_args(argv)
    if args.command == "demo":
        from . import demo

        return demo.run(args)
    if args.command == "simulate":
        from .simulator import cli as simulate

        return simulate.run(args)
    if args.command == "doctor":
        from . import doctor

        return doctor.run_cli(args)
    from .version import __version__

    print(f"claude-otel {__version__}")
    return 0
