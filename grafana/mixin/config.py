"""What to tune: THRESHOLDS (alert levels, windows, the SLO), the links every alert carries, and the data source
uid of the Grafana-managed alerts. Everything the mixin generates is derived from this module."""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

# Where every alert's links point. runbook_base_url: where grafana/runbooks.md is rendered (each alert's
# runbook_url is it + "#" + the alert name in lower case); grafana_url: the Grafana holding these dashboards (each
# alert's dashboard_url is it + "/d/<uid>?var-job=...&var-model=..."). The defaults are this project's runbooks
# on GitHub and the Grafana of grafana/README.md's `docker run`: set both for your deployment (grafana/build.py's
# --runbook-base-url and --grafana-url, or CLAUDE_OTEL_RUNBOOK_BASE_URL and CLAUDE_OTEL_GRAFANA_URL) and regenerate.
CONFIG = {
    "runbook_base_url": "https://github.com/claude-otel/claude-otel/blob/main/grafana/runbooks.md",
    "grafana_url": "http://localhost:3000",
}
RUNBOOK_BASE = CONFIG["runbook_base_url"]
GRAFANA_URL = CONFIG["grafana_url"]

# The uid of the Prometheus data source the Grafana-managed alerts query (provisioning/datasources/prometheus.yml
# creates it). Grafana expands environment variables in this field, so "${PROMETHEUS_DS_UID}" works as well.
DATASOURCE_UID = "prometheus"

# name: (value, what it means). Ratios are fractions (0.05 = 5%), durations in seconds unless a window ("15m").
THRESHOLDS: Dict[str, Tuple[object, str]] = {
    "min_request_rate": (0.02, "calls/s of a job and model below which ratio and latency alerts stay silent "
                               "(0.02/s = 6 calls in 5 minutes): no page on one unlucky call"),
    "near_timeout_80_share": (0.10, "ClaudeRequestsNearTimeout: share of attempts that used more than 80% of "
                                    "their governing timeout"),
    "near_timeout_80_for": ("15m", "... for this long"),
    "near_timeout_90_share": (0.02, "ClaudeRequestsVeryNearTimeout: share of attempts that used more than 90% of "
                                    "their governing timeout"),
    "near_timeout_90_for": ("10m", "... for this long"),
    "slo_target": (0.99, "SLO: share of the calls of a job, model and stream (streamed or not) that do not end in "
                         "a timeout (APITimeoutError: read, connect, write or pool), over 30 days; the error budget "
                         "is 1 - this"),
    "slo_fast_burn": (14.4, "ClaudeTimeoutBudgetFastBurn (critical): error-budget burn rate (timeout ratio / "
                            "budget) over both windows below: 2% of a 30-day budget in 1 hour"),
    "slo_fast_long": ("1h", "... long window"),
    "slo_fast_short": ("5m", "... short window (the alert stops soon after the timeouts do)"),
    "slo_slow_burn": (6, "ClaudeTimeoutBudgetSlowBurn (critical): burn rate over both windows below: 5% of the "
                         "budget in 6 hours"),
    "slo_slow_long": ("6h", "... long window"),
    "slo_slow_short": ("30m", "... short window"),
    "slo_ticket_burn": (1, "ClaudeTimeoutBudgetTicket (warning): burn rate over both windows below: 10% of the "
                           "budget in 3 days"),
    "slo_ticket_long": ("3d", "... long window"),
    "slo_ticket_short": ("6h", "... short window"),
    "slo_burn_for": ("2m", "... for this long (all three burn-rate alerts)"),
    "error_ratio": (0.05, "ClaudeAPIErrors: share of calls that failed with one error type other than a timeout "
                          "or a cancellation (overloaded_error, rate_limit_error, api_error, 5xx, connection)"),
    "error_for": ("10m", "... for this long"),
    "retries_per_call": (0.5, "ClaudeRetryStorm: retries per call"),
    "retry_for": ("10m", "... for this long"),
    "ttft_p95_seconds": (30.0, "ClaudeSlowFirstToken: p95 time to first token (streams), seconds"),
    "prefill_p95_seconds": (20.0, "ClaudeSlowPrefill: p95 prefill (final attempt: body sent to first token), "
                                  "seconds"),
    "latency_for": ("15m", "... for this long (both latency alerts)"),
    "stream_gap_p99_seconds": (30.0, "ClaudeLongStreamGaps: p99 of the longest wait between chunks of a stream, "
                                     "seconds (half of nginx's default 60 s proxy_read_timeout)"),
    "stream_gap_for": ("15m", "... for this long"),
    "ratelimit_remaining_ratio": (0.10, "ClaudeRateLimitNearlyExhausted: remaining rate limit as a share of the "
                                        "highest remaining value seen in the last day (about the limit)"),
    "ratelimit_for": ("5m", "... for this long"),
    "absent_for": ("15m", "ClaudeTelemetryAbsent: a job that sent call metrics in the last day has sent none "
                          "for 5 minutes plus this long"),
    "dropped_for": ("15m", "ClaudeTelemetryDropped: claude-otel has been dropping telemetry for this long"),
    "client_timeout_seconds": (600, "dashboards only: default of the $timeout reference line (the SDK's default "
                                    "read timeout)"),
    "proxy_idle_seconds": (60, "dashboards only: default of the $proxy_idle reference line (nginx's default "
                               "proxy_read_timeout)"),
}


def threshold(name: str):
    """Returns the value of THRESHOLDS[name]."""
    return THRESHOLDS[name][0]


def budget() -> float:
    """Returns the error budget: the share of calls the SLO lets time out (0.01 at a 99% target)."""
    return round(1 - float(threshold("slo_target")), 10)


def burn_rate_alert(speed: str) -> Tuple[str, str, float]:
    """Returns (long window, short window, burn rate) of the "fast", "slow" or "ticket" burn-rate alert."""
    return threshold(f"slo_{speed}_long"), threshold(f"slo_{speed}_short"), float(threshold(f"slo_{speed}_burn"))


def burn_ratio(name: str) -> float:
    """Returns the timeout ratio a burn rate (THRESHOLDS name, e.g. "slo_fast_burn") stands for: rate x budget."""
    return round(float(threshold(name)) * budget(), 10)


def page_ratio() -> float:
    """Returns the timeout ratio at which ClaudeTimeoutBudgetFastBurn pages (its burn rate times the budget)."""
    return burn_ratio("slo_fast_burn")


def runbook_url(alert: str) -> str:
    """Returns the link to an alert's section of runbooks.md."""
    return f"{RUNBOOK_BASE}#{alert.lower()}"


def configure(runbook_base_url: Optional[str] = None, grafana_url: Optional[str] = None) -> None:
    """Points every generated link at these URLs (None: the environment's, else CONFIG's); returns nothing."""
    global RUNBOOK_BASE, GRAFANA_URL
    RUNBOOK_BASE = (runbook_base_url or os.environ.get("CLAUDE_OTEL_RUNBOOK_BASE_URL")
                    or CONFIG["runbook_base_url"]).rstrip("#")
    GRAFANA_URL = (grafana_url or os.environ.get("CLAUDE_OTEL_GRAFANA_URL") or CONFIG["grafana_url"]).rstrip("/")
