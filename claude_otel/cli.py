"""The `claude-otel` command: demo, simulate, doctor, drill, run, version (also `python -m claude_otel`)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

RUN_USAGE = "claude-otel run [--] program [args...]"
RUN_HELP = """Runs a program with claude-otel configured before its first line (zero code changes):
configure() reads OTEL_* (OTLP export) and CLAUDE_OTEL_* (e.g. CLAUDE_OTEL_PROMETHEUS_PORT=9464 for /metrics).
The program's exit code is returned.

  claude-otel run -- python app.py
  CLAUDE_OTEL_PROMETHEUS_PORT=9464 claude-otel run -- gunicorn app:app"""


def parser() -> argparse.ArgumentParser:
    """Returns the command-line parser with every sub-command."""
    from . import demo, doctor, drill
    from .simulator import cli as simulate

    top = argparse.ArgumentParser(
        prog="claude-otel",
        description="OpenTelemetry for the Anthropic SDK, built for timeouts: duration, time to first token, "
                    "prefill, retries, timeouts and timeout headroom per call and per HTTP attempt.",
        epilog="Start with `claude-otel demo` (no API key, no network needed).")
    top.add_argument("--version", action="store_true", help="print the version and exit")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    demo.add_arguments(sub.add_parser(
        "demo", help="simulator + instrumented workload + live view + /metrics, in one command",
        description="Starts the local API simulator, runs a mixed workload through the real SDK with claude-otel "
                    "configured, serves /metrics and shows a live table computed from the agent's own metrics."))
    simulate.add_arguments(sub.add_parser(
        "simulate", help="serve the local Anthropic API simulator with fault profiles",
        description="Serves a local Anthropic Messages API with fault profiles (retries, stalls, slow prefill, ...)."))
    doctor.add_arguments(sub.add_parser(
        "doctor", help="check the timeout set-up, the SDK, proxies and connectivity (exit 0/1/2)",
        description="The timeout troubleshooting checklist as checks: PASS/WARN/FAIL with the reason and the fix. "
                    "With --prometheus URL: advice per job and model from the live metrics of a Prometheus that "
                    "scrapes claude-otel. Exit code 0 when all pass, 1 with a warning, 2 with a failure."))
    drill.add_arguments(sub.add_parser(
        "drill", help="a timeout incident against the simulator, watched by Prometheus and Alertmanager "
                      "with the bundled rules: which alert fired when (exit 0/1/2/3)"))
    run = sub.add_parser("run", help="run a program with claude-otel configured: claude-otel run -- python app.py",
                         usage=RUN_USAGE, description=RUN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("program", nargs=argparse.REMAINDER, help="the program and its arguments")
    sub.add_parser("version", help="print the versions of claude-otel, the SDK and Python")
    return top


def version_text() -> str:
    """Returns 'claude-otel X (anthropic Y, Python Z)'."""
    import platform

    from .version import __version__

    try:
        import anthropic

        sdk = f"anthropic {anthropic.__version__}"
    except ImportError:
        sdk = "anthropic not installed"
    return f"claude-otel {__version__} ({sdk}, Python {platform.python_version()})"


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["run"]:
            return _run(argv[1:])
        args = parser().parse_args(argv)
        if args.version or args.command == "version":
            print(version_text())
            return 0
        if args.command is None:
            parser().print_usage(sys.stderr)
            sys.stderr.write("claude-otel: choose a command (claude-otel --help lists them; start with "
                             "claude-otel demo)\n")
            return 2
        if args.command == "demo":
            from . import demo

            return demo.run(args)
        if args.command == "simulate":
            from .simulator import cli as simulate

            return simulate.run(args)
        if args.command == "doctor":
            from . import doctor

            return doctor.run_cli(args)
        if args.command == "drill":
            from . import drill

            return drill.run(args)
        return 2  # pragma: no cover - argparse rejects unknown commands
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(rest: List[str]) -> int:
    """`claude-otel run`: the launcher takes everything after `run` (options included) as the program."""
    if rest in ([], ["--"]):
        sys.stderr.write(f"usage: {RUN_USAGE}\nclaude-otel run: no program given\n")
        return 2
    if rest[0] in ("-h", "--help"):
        print(f"usage: {RUN_USAGE}\n\n{RUN_HELP}")
        return 0
    from .launcher import run

    return run(rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
