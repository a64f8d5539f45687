"""`claude-otel doctor`: the timeout troubleshooting checklist as checks with verdicts and fixes."""

from __future__ import annotations

import argparse
import json
from typing import List, Optional

from .checks import FAIL, PASS, WARN, Result, all_checks

EXIT = {PASS: 0, WARN: 1, FAIL: 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the doctor sub-command's flags."""
    parser.add_argument("--base-url", help="API base URL (default ANTHROPIC_BASE_URL or https://api.anthropic.com)")
    parser.add_argument("--timeout", type=float, help="the client timeout your app sets, in seconds; with a tiny "
                                                      "value (e.g. 0.001) also makes a forced-timeout probe call")
    parser.add_argument("--max-tokens", type=int, help="the largest max_tokens your app sends non-streamed")
    parser.add_argument("--model", help="the model, for model-specific non-streaming limits")
    parser.add_argument("--offline", action="store_true", help="skip the DNS and connect checks")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(client=None, base_url: Optional[str] = None, timeout: Optional[float] = None,
        max_tokens: Optional[int] = None, model: Optional[str] = None, network: bool = True) -> List[Result]:
    """Returns the check results for an app's client (or settings); the Python API of the doctor."""
    force = timeout if timeout is not None and timeout < 0.1 else None
    return all_checks(base_url, None if force else timeout, client, max_tokens, model, force, network)


def exit_code(results: List[Result]) -> int:
    """Returns 0 when all pass, 1 with a warning, 2 with a failure."""
    return max((EXIT[r.status] for r in results), default=0)


def render(results: List[Result]) -> str:
    """Returns the human-readable report."""
    lines = []
    for r in results:
        lines.append(f"{r.status:4}  {r.name:15} {r.reason}")
        if r.fix and r.status != PASS:
            lines.append(f"      {'':15} fix: {r.fix}")
    worst = {0: "all checks passed", 1: "warnings", 2: "failures"}[exit_code(results)]
    lines.append(f"\n{len(results)} checks: {worst}")
    return "\n".join(lines)


def run_cli(args: argparse.Namespace) -> int:
    """Runs the doctor from the command line; returns 0/1/2 for pass/warn/fail."""
    results = run(base_url=args.base_url, timeout=args.timeout, max_tokens=args.max_tokens, model=args.model,
                  network=not args.offline)
    if args.json:
        print(json.dumps({"results": [r.as_dict() for r in results], "exit_code": exit_code(results)}, indent=2))
    else:
        print(render(results))
    return exit_code(results)


__all__ = ["run", "exit_code", "render", "Result", "PASS", "WARN", "FAIL"]
