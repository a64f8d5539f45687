"""`claude-otel doctor`: the timeout troubleshooting checklist as checks with verdicts and fixes.

From the command line:

    claude-otel doctor [--base-url URL] [--timeout S] [--max-tokens N] [--model M] [--offline] [--json]
    claude-otel doctor --prometheus URL [--window 1h] [--timeout S] [--proxy-idle-timeout S] [--json]

or from the application, with the client it really uses:

    from claude_otel import doctor
    results = doctor.run(client=my_client, max_tokens=32000)
    print(doctor.render(results)); sys.exit(doctor.exit_code(results))

Checks, in order: sdk, timeout, streaming, proxy, dns, connect, forced-timeout
(only with a tiny --timeout such as 0.001), claude-otel.  Exit code 0 when all
pass, 1 with a warning, 2 with a failure.  Network checks contact only the base
URL's host; the forced-timeout probe sends one request there with a dummy API key.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .checks import FAIL, PASS, SKIP, WARN, Result, all_checks
from .report import exit_code, render, to_json

FORCE_BELOW = 0.1  # a --timeout below this is a forced-timeout probe, not the app's timeout


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the doctor sub-command's flags."""
    parser.add_argument("--base-url", help="API base URL (default: ANTHROPIC_BASE_URL, else https://api.anthropic.com)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="the timeout your app gives the client; a value below 0.1 (e.g. 0.001) instead makes a "
                             "forced-timeout probe: one real SDK call with that timeout and a dummy API key, which must "
                             "fail with APITimeoutError")
    parser.add_argument("--max-tokens", type=int, metavar="N", help="the largest max_tokens your app sends non-streamed")
    parser.add_argument("--model", help="the model of those requests (some have lower non-streaming limits)")
    parser.add_argument("--offline", action="store_true", help="skip the checks that use the network")
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of text")
    live = parser.add_argument_group("live data (--prometheus)")
    live.add_argument("--prometheus", metavar="URL",
                      help="instead of the checklist, read a Prometheus that scrapes claude-otel and report per job "
                           "and model: p99 wait for a byte vs the read and proxy idle timeouts, prefill trend, "
                           "non-streamed calls that should stream, retries per call, and the change to make")
    live.add_argument("--window", default="1h", metavar="DURATION",
                      help="with --prometheus: the window to look at (e.g. 15m, 1h; default 1h); the prefill trend "
                           "compares it with the window before")
    live.add_argument("--proxy-idle-timeout", type=float, metavar="SECONDS",
                      help="with --prometheus: the idle timeout of a proxy in front of the API (default: "
                           "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT)")


def run(client=None, *, base_url: Optional[str] = None, timeout: Optional[float] = None,
        max_tokens: Optional[int] = None, model: Optional[str] = None, network: bool = True,
        force_timeout: Optional[float] = None, env=None) -> List[Result]:
    """Returns the check results for an application's client object (or, without one, for the client the SDK
    would build from the environment).  A `timeout` below 0.1 s is taken as `force_timeout` (the probe)."""
    if timeout is not None and timeout < FORCE_BELOW and force_timeout is None:
        force_timeout, timeout = timeout, None
    return all_checks(client, base_url, timeout, max_tokens, model, force_timeout, network, env)


def run_cli(args: argparse.Namespace) -> int:
    """Runs the doctor from the command line; returns 0/1/2 for pass/warn/fail."""
    from ..version import __version__

    if args.timeout is not None and args.timeout <= 0:
        print("claude-otel doctor: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    if getattr(args, "prometheus", None):
        return _run_live(args)
    results = run(base_url=args.base_url, timeout=args.timeout, max_tokens=args.max_tokens, model=args.model,
                  network=not args.offline)
    sdk = next((r.data.get("version") for r in results if r.name == "sdk"), None)
    base_url = next((r.data.get("base_url") for r in results if r.name == "timeout"), None)
    if args.json:
        print(to_json(results, claude_otel=__version__, anthropic=sdk, base_url=base_url))
    else:
        header = f"claude-otel doctor {__version__} — anthropic {sdk or 'not installed'}, base URL {base_url}"
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render(results, color=color, header=header))
    return exit_code(results)


def _run_live(args: argparse.Namespace) -> int:
    """`doctor --prometheus URL`: the live-data report; returns 0/1/2 like the checklist."""
    from ..version import __version__
    from .live import live_checks, parse_window

    try:
        window = parse_window(args.window)
    except ValueError as exc:
        print(f"claude-otel doctor: --window: {exc}", file=sys.stderr)
        return 2
    proxy = args.proxy_idle_timeout
    if proxy is None:
        raw = os.environ.get("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", "").strip()
        try:
            proxy = float(raw) if raw else None
        except ValueError:
            proxy = None
    if proxy is not None and proxy <= 0:
        proxy = None
    results = live_checks(args.prometheus, window, args.timeout, proxy)
    if args.json:
        print(to_json(results, claude_otel=__version__, prometheus=args.prometheus, window_seconds=window,
                      proxy_idle_timeout=proxy))
    else:
        header = f"claude-otel doctor {__version__} — live data from {args.prometheus}, window {args.window}"
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render(results, color=color, header=header))
    return exit_code(results)


__all__ = ["run", "run_cli", "add_arguments", "exit_code", "render", "to_json", "Result", "PASS", "WARN", "FAIL",
           "SKIP"]
