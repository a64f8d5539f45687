"""Generates claude-otel's monitoring mixin: recording rules, alerts, Grafana-managed alerts, dashboards, the
promtool unit tests of every alert, and grafana/README.md.

    python grafana/build.py            # rewrite every generated file under grafana/
    python grafana/build.py --check    # exit 1 if a committed file differs from what this script generates

    python grafana/build.py --runbook-base-url https://git.example.com/ops/claude-otel/blob/main/grafana/runbooks.md \\
                            --grafana-url https://grafana.example.com   # links in every alert's annotations
    python grafana/build.py --time-scale 60 --out DIR   # rules with every window and `for` divided by 60 (the drill)

The generator is the package grafana/mixin/. Its THRESHOLDS table (grafana/mixin/config.py) is the one place to
tune alert levels, windows and the SLO: the Prometheus alerts, the Grafana-managed alerts, the dashboards'
threshold lines and the unit tests' inputs are all derived from it. CONFIG there holds the links every alert
carries (runbook base URL, Grafana URL); the flags above, or the CLAUDE_OTEL_RUNBOOK_BASE_URL and
CLAUDE_OTEL_GRAFANA_URL environment variables, override it. After an edit, run this script and commit its
output; tests/test_grafana.py checks the committed files equal what it generates.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from mixin.config import configure
from mixin.outputs import write_outputs
from mixin.timescale import scaled_rule_files


def main(argv: Sequence[str]) -> int:
    """Writes (or with --check compares) every generated file, or the time-scaled rules; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python grafana/build.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    parser.add_argument("--runbook-base-url", help="where runbooks.md is rendered (default: CONFIG or "
                                                   "$CLAUDE_OTEL_RUNBOOK_BASE_URL)")
    parser.add_argument("--grafana-url", help="your Grafana's URL (default: CONFIG or $CLAUDE_OTEL_GRAFANA_URL)")
    parser.add_argument("--time-scale", type=float, default=0.0,
                        help="write only the rules, windows divided by this, into --out (the drill's rules)")
    parser.add_argument("--out", help="directory for --time-scale's rule files")
    args = parser.parse_args(list(argv))
    configure(args.runbook_base_url, args.grafana_url)
    if args.time_scale:
        if not args.out:
            parser.error("--time-scale needs --out DIR")
        os.makedirs(args.out, exist_ok=True)
        for name, text in scaled_rule_files(args.time_scale).items():
            with open(os.path.join(args.out, name), "w") as f:
                f.write(text)
            print("wrote " + os.path.join(args.out, name))
        return 0
    stale = write_outputs(check=args.check)
    if args.check and stale:
        print("out of date (run python grafana/build.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
