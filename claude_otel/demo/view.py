"""What the demo prints: the live terminal view, plain periodic summaries, and the closing report.

Plain ANSI escapes only (cursor home, clear to end of line / screen, hide and
show the cursor), so any terminal and tmux show it without curses.  Every
figure comes from `summary.rows()` over the agent's own metrics.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Optional, TextIO

from .summary import rows, table, totals

HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
CLEAR_SCREEN, HIDE_CURSOR, SHOW_CURSOR = "\x1b[2J", "\x1b[?25l", "\x1b[?25h"
BOLD, DIM, RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"
TITLE = "claude-otel demo"
NOTE = ("timeouts = attempts that timed out; max util = the largest share of its timeout one attempt used "
        "(100% = timed out).\np50/p95 are estimated from the agent's histogram buckets (as histogram_quantile "
        "does).")


@dataclass
class Status:
    """What the view shows besides the table."""

    sim_url: str
    metrics_url: Optional[str]
    rate: float
    duration: float
    profile: str
    started: int = 0
    in_flight: int = 0
    elapsed: float = 0.0


def progress(elapsed: float, duration: float, width: int = 30) -> str:
    """Returns a progress bar with the elapsed time (or the elapsed time alone when running until Ctrl-C)."""
    if duration <= 0:
        return f"{elapsed:6.1f}s elapsed (runs until Ctrl-C)"
    done = min(max(elapsed / duration, 0.0), 1.0)
    filled = int(done * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {elapsed:5.1f}/{duration:g}s"


def figures(reader) -> str:
    """Returns the per-model table (with an all-models line) from a reader's snapshot."""
    if reader is None:
        return "(no metrics reader: the agent's metrics are not available)"
    found = rows(reader.snapshot())
    if not found:
        return table([]) + "\n(no calls finished yet)"
    return table(found + ([totals(found)] if len(found) > 1 else []))


def screen(status: Status, reader, color: bool = True) -> str:
    """Returns the live view's text."""
    bold, dim, reset = (BOLD, DIM, RESET) if color else ("", "", "")
    lines = [
        f"{bold}{TITLE}{reset} — Claude API calls through the real SDK to a local simulator (profile {status.profile})",
        progress(status.elapsed, status.duration),
        f"calls started {status.started}, in flight {status.in_flight}, {status.rate:g}/s   "
        f"simulator {status.sim_url}   /metrics {status.metrics_url or '(not served)'}",
        "",
        figures(reader),
        "",
        f"{dim}{NOTE}{reset}",
        f"{dim}Ctrl-C stops the demo.{reset}",
    ]
    return "\n".join(lines)


class LiveView:
    """Redraws the screen in place (cursor home, overwrite, clear the rest) about twice a second."""

    def __init__(self, out: TextIO = sys.stdout, interval: float = 0.5) -> None:
        self.out = out
        self.interval = interval
        self._last = 0.0
        self._started = False

    def update(self, status: Status, reader, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if not self._started:
            self.out.write(HIDE_CURSOR + CLEAR_SCREEN)
            self._started = True
        text = screen(status, reader).replace("\n", CLEAR_LINE + "\n")
        self.out.write(HOME + text + CLEAR_LINE + "\n" + CLEAR_BELOW)
        self.out.flush()

    def close(self) -> None:
        if self._started:
            self.out.write(SHOW_CURSOR)
            self.out.flush()


class PlainView:
    """Prints a plain summary every `interval` seconds: for logs, pipes and `--no-tty`."""

    def __init__(self, out: TextIO = sys.stdout, interval: float = 5.0) -> None:
        self.out = out
        self.interval = interval
        self._last = 0.0

    def update(self, status: Status, reader, force: bool = False) -> None:
        if not force and status.elapsed - self._last < self.interval:
            return
        self._last = status.elapsed
        self.out.write(f"\n[{status.elapsed:5.1f}s] calls started {status.started}, in flight {status.in_flight}\n")
        self.out.write(figures(reader) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


def repository_root() -> Optional[str]:
    """Returns the source checkout holding grafana/ when claude-otel runs from one (editable install), else None."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return root if os.path.isdir(os.path.join(root, "grafana", "dashboards")) else None


def closing(status: Status, reader, caught: dict, interrupted: bool) -> str:
    """Returns the final report: the table, the exceptions the app caught, and where to point Prometheus and Grafana."""
    url = status.metrics_url or "http://127.0.0.1:9464/metrics"
    target = url.split("//", 1)[1].split("/", 1)[0]
    root = repository_root()
    grafana = os.path.join(root, "grafana") if root else "grafana"
    handled = ", ".join(f"{name} {count}" for name, count in sorted(caught.items(), key=lambda kv: (-kv[1], kv[0])))
    handled = textwrap.fill("The demo app caught these exceptions, as an application would: " + (handled or "none")
                            + ".", 110)
    how = "stopped by Ctrl-C" if interrupted else "finished"
    return f"""
{TITLE} {how} after {status.elapsed:.1f} s: {status.started} calls started.
Final figures (from claude-otel's own metrics, the numbers /metrics serves):
{figures(reader)}

{NOTE}
{handled}

Point Prometheus at the metrics (prometheus.yml). /metrics was {url};
it is served while the demo runs (--duration 0 keeps it running until Ctrl-C):
  scrape_configs:
    - job_name: claude-otel-demo
      scrape_interval: 5s
      static_configs:
        - targets: ["{target}"]
  rule_files: ["{grafana}/rules/*.yml"]          # recording rules and alerts
Start Prometheus with --enable-feature=exemplar-storage to link histogram buckets to traces.

Import the dashboards into Grafana (Dashboards > New > Import):
  {grafana}/dashboards/claude-overview.json, claude-timeouts.json, claude-streaming.json
or provision {grafana}/provisioning as is; examples/stack/ runs all of it with docker compose.
Traces and metrics over OTLP: set OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://localhost:4318) and run again."""
