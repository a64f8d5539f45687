"""Generates claude-otel's monitoring mixin: recording rules, alerts, Grafana-managed alerts, dashboards, and
the promtool unit tests of every alert.

    python grafana/build.py            # rewrite every generated file under grafana/
    python grafana/build.py --check    # exit 1 if a committed file differs from what this script generates

    python grafana/build.py --runbook-base-url https://git.example.com/ops/claude-otel/blob/main/grafana/runbooks.md \
                            --grafana-url https://grafana.example.com   # links in every alert's annotations
    python grafana/build.py --time-scale 60 --out DIR   # rules with every window and `for` divided by 60 (the drill)

THRESHOLDS below is the one place to tune alert levels, windows and the SLO: the Prometheus alerts, the
Grafana-managed alerts, the dashboards' threshold lines and the unit tests' inputs are all derived from it.
CONFIG holds the links every alert carries (runbook base URL, Grafana URL); the flags above, or the
CLAUDE_OTEL_RUNBOOK_BASE_URL and CLAUDE_OTEL_GRAFANA_URL environment variables, override it. After an edit, run
this script and commit its output; tests/test_grafana.py checks the committed files equal what it generates.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

# -- what to tune ------------------------------------------------------------------------------------------------

# Where every alert's links point. runbook_base_url: where grafana/runbooks.md is rendered (each alert's
# runbook_url is it + "#" + the alert name in lower case); grafana_url: the Grafana holding these dashboards (each
# alert's dashboard_url is it + "/d/<uid>?var-job=...&var-model=..."). The defaults are this project's runbooks
# on GitHub and the Grafana of grafana/README.md's `docker run`: set both for your deployment (flags or
# environment variables, see the module docstring) and regenerate.
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


def t(name: str):
    """Returns the value of THRESHOLDS[name]."""
    return THRESHOLDS[name][0]


def budget() -> float:
    """Returns the error budget: the share of calls the SLO lets time out (0.01 at a 99% target)."""
    return round(1 - float(t("slo_target")), 10)


def burn_ratio(name: str) -> float:
    """Returns the timeout ratio a burn rate (THRESHOLDS name, e.g. "slo_fast_burn") stands for: rate x budget."""
    return round(float(t(name)) * budget(), 10)


def page_ratio() -> float:
    """Returns the timeout ratio at which ClaudeTimeoutBudgetFastBurn pages (its burn rate times the budget)."""
    return burn_ratio("slo_fast_burn")


# -- PromQL building blocks --------------------------------------------------------------------------------------

JM = "job, gen_ai_request_model"  # what the alerts group by: the service and the model
B = "job, gen_ai_request_model, anthropic_request_stream"  # what recording rules keep (dashboards filter on it)
FAILED = 'error_type!=""'
TIMED_OUT = 'error_type="timeout"'
API_ERROR = 'error_type!~"|timeout|cancelled"'  # failures other than our timeouts and cancellations
KIND = "anthropic_timeout_kind"

def _load_semconv():
    """Returns claude_otel/semconv.py of this checkout, loaded by path: it imports nothing, so this script runs
    from a checkout with any Python that has PyYAML, installed package or not."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "claude_otel", "semconv.py")
    spec = importlib.util.spec_from_file_location("_claude_otel_semconv", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


semconv = _load_semconv()


def prom(name: str, unit: str = "", counter: bool = False) -> str:
    """Returns the Prometheus name of an OpenTelemetry instrument, as the OpenTelemetry-to-Prometheus rules (and
    claude-otel's exporter) write it: dots to underscores, unit "s" adds _seconds, counters add _total."""
    return name.replace(".", "_") + ("_seconds" if unit == "s" else "") + ("_total" if counter else "")


# The default name set (claude-otel's public contract) ...
OPS = prom(semconv.OPERATION_DURATION, "s")
ATTEMPTS = prom(semconv.ATTEMPT_DURATION, "s")
UTIL = prom(semconv.TIMEOUT_UTILIZATION)
TTFT = prom(semconv.TIME_TO_FIRST_CHUNK, "s")
PREFILL = prom(semconv.PREFILL_DURATION, "s")
GAP = prom(semconv.STREAM_MAX_GAP, "s")
CHUNK = prom(semconv.TIME_PER_OUTPUT_CHUNK, "s")
TOKENS = prom(semconv.TOKEN_USAGE)
RETRIES = prom(semconv.RETRIES, counter=True)
BACKOFF = prom(semconv.RETRY_BACKOFF, "s")
TIMEOUTS = prom(semconv.TIMEOUTS, counter=True)
ACTIVE = prom(semconv.ACTIVE_REQUESTS)
RATELIMIT = prom(semconv.RATELIMIT_REMAINING)
DROPPED = prom(semconv.EXPORTER_DROPPED, counter=True)
# ... and the latest GenAI conventions (OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental), which the
# official OpenTelemetry GenAI instrumentations emit too. Every rule and panel over a gen_ai.* metric reads both.
L_OPS = prom(semconv.INFERENCE_DURATION, "s")
L_TTFT = prom(semconv.INFERENCE_TIME_TO_FIRST_CHUNK, "s")
L_CHUNK = prom(semconv.INFERENCE_TIME_PER_OUTPUT_CHUNK, "s")
L_INPUT = prom(semconv.USAGE_INPUT_COUNTER, counter=True)
L_OUTPUT = prom(semconv.USAGE_OUTPUT_COUNTER, counter=True)
L_CACHE_READ = prom(semconv.USAGE_CACHE_READ_COUNTER, counter=True)
L_CACHE_WRITE = prom(semconv.USAGE_CACHE_WRITE_COUNTER, counter=True)
L_OUTPUT_PER_CALL = prom(semconv.OPERATION_OUTPUT_TOKENS)
STREAM = prom(semconv.REQUEST_STREAM)  # the label recorded series and dashboards use for both name sets
L_STREAM = prom(semconv.GEN_AI_REQUEST_STREAM)

DURATION_BUCKETS = list(semconv.DURATION_BUCKETS)
SPEC_DURATION_BUCKETS = list(semconv.SPEC_DURATION_BUCKETS)
UTIL_BUCKETS = list(semconv.UTILIZATION_BUCKETS)

# recorded bucket rates: short name -> (source histogram, extra labels kept)
HISTOGRAMS = {
    "operation_duration_seconds": (OPS, ""),
    "attempt_duration_seconds": (ATTEMPTS, ""),
    "time_to_first_chunk_seconds": (TTFT, ""),
    "prefill_duration_seconds": (PREFILL, ""),
    "stream_max_gap_seconds": (GAP, ""),
    "timeout_utilization": (UTIL, KIND),
}


def by(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def ratio_or_zero(numerator: str, denominator: str) -> str:
    """numerator / denominator, with 0 where the numerator has no series (no timeouts yet is a ratio of 0)."""
    return f"({numerator} or {denominator} * 0) / {denominator}"


def quantile_of(q: float, buckets: str, group: str) -> str:
    return f"histogram_quantile({q}, sum by ({group}, le) ({buckets}))"


def share_above(bound: str, buckets: Callable[[str], str], group: str, total_group: str) -> str:
    """Share of observations above `bound` (a non-integer bucket bound such as "0.8"), per `group`, out of all
    observations per `total_group` (a subset of `group`). `buckets(matcher)` returns a bucket-rate selector."""
    everything, below = buckets('le="+Inf"'), buckets(f'le="{bound}"')
    return (f"(sum by ({group}) ({everything}) - sum by ({group}) ({below}))"
            f" / on ({total_group}) group_left sum by ({total_group}) ({everything})")


def raw_rate(metric: str, matchers: str = "", window: str = "5m") -> str:
    return f"rate({metric}{{{matchers}}}[{window}])" if matchers else f"rate({metric}[{window}])"


def recorded(name: str, matchers: str = "") -> str:
    return f"{name}{{{matchers}}}" if matchers else name


# -- both name sets ----------------------------------------------------------------------------------------------
# A fleet may emit today's gen_ai.* names, the latest conventions' (claude-otel opted in, or the official
# OpenTelemetry GenAI instrumentation), or both (a migration). Per series, `a or b` keeps every series of both:
# claude-otel's default series carry anthropic_request_stream, latest ones gen_ai_request_stream (or neither), so
# their label sets never collide, and the sum over them adds the fleet's halves.

LATEST_OF = {OPS: L_OPS, TTFT: L_TTFT}  # default duration histogram -> its latest counterpart (same bounds + 3)


def as_default_stream(expr: str) -> str:
    """Returns expr with the latest set's gen_ai_request_stream copied into anthropic_request_stream, the label
    recorded series and dashboards group and filter by (absent stays absent)."""
    return f'label_replace({expr}, "{STREAM}", "$1", "{L_STREAM}", "(.+)")'


def latest_matchers(matchers: str) -> str:
    """Returns matchers for a latest-set series: its stream label is gen_ai_request_stream."""
    return matchers.replace(STREAM + "=", L_STREAM + "=").replace(STREAM + "!", L_STREAM + "!")


def both_rate(default: str, suffix: str = "", matchers: str = "", window: str = "5m") -> str:
    """Returns the per-series rates of a gen_ai.* histogram's `suffix` series (_count, _sum) in either name set."""
    latest = LATEST_OF[default]
    return (f"{raw_rate(default + suffix, matchers, window)} or "
            f"{as_default_stream(raw_rate(latest + suffix, latest_matchers(matchers), window))}")


def both_buckets(default: str, matchers: str = "", window: str = "5m") -> str:
    """Returns the per-series bucket rates of a gen_ai.* duration histogram in either name set, on the default
    set's bounds: the latest set's spec buckets stop at 81.92 s, so its +Inf count stands in for the default's
    163.84, 327.68 and 655.36 s buckets (cumulative counts stay monotonic; exact below 81.92 s)."""
    latest = LATEST_OF[default]
    lm = latest_matchers(matchers)
    inf = by(lm, 'le="+Inf"')
    parts = [raw_rate(default + "_bucket", matchers, window),
             as_default_stream(raw_rate(latest + "_bucket", lm, window))]
    for bound in DURATION_BUCKETS:
        if bound not in SPEC_DURATION_BUCKETS:
            parts.append(as_default_stream(
                f'label_replace({raw_rate(latest + "_bucket", inf, window)}, "le", "{bound:g}", "le", ".*")'))
    return " or ".join(parts)


def latest_tokens(window: str = "5m") -> str:
    """Returns the latest set's usage counters as per-series rates by today's gen_ai_token_type: input without
    cached tokens (the latest input count includes them), output, cache_read, and cache_write as cache_creation."""
    def typed(expr: str, kind: str) -> str:
        return as_default_stream(f'label_replace({expr}, "gen_ai_token_type", "{kind}", "", "")')

    inputs = raw_rate(L_INPUT, window=window)
    zero = f"{inputs} * 0"  # an instrumentation without cache counters has no cached tokens
    uncached = (f"{inputs} - ({raw_rate(L_CACHE_READ, window=window)} or {zero}) - "
                f"({raw_rate(L_CACHE_WRITE, window=window)} or {zero})")
    return " or ".join([typed(uncached, "input"), typed(raw_rate(L_OUTPUT, window=window), "output"),
                        typed(raw_rate(L_CACHE_READ, window=window), "cache_read"),
                        typed(raw_rate(L_CACHE_WRITE, window=window), "cache_creation")])


# -- recording rules ---------------------------------------------------------------------------------------------

def recording_groups() -> List[dict]:
    """Two groups: aggregates of the raw series (drop instance and the rest), then ratios and quantiles of those."""
    level1 = [
        ("claude:requests:rate5m", f"sum by ({B}) ({both_rate(OPS, '_count')})"),
        ("claude:errors:rate5m", f"sum by ({B}, error_type) ({both_rate(OPS, '_count', FAILED)})"),
        ("claude:timeouts:rate5m", f"sum by ({B}) ({both_rate(OPS, '_count', TIMED_OUT)})"),
        ("claude:attempts:rate5m", f"sum by ({B}) ({raw_rate(ATTEMPTS + '_count')})"),
        ("claude:attempt_timeouts:rate5m", f"sum by ({B}, anthropic_timeout_phase) ({raw_rate(TIMEOUTS)})"),
        ("claude:retries:rate5m", f"sum by ({B}, anthropic_retry_reason) ({raw_rate(RETRIES)})"),
        ("claude:retry_backoff_seconds:rate5m",
         f"sum by ({B}, anthropic_retry_reason) ({raw_rate(BACKOFF + '_sum')})"),
        ("claude:tokens:rate5m",
         f"sum by ({B}, gen_ai_token_type) ({raw_rate(TOKENS + '_sum')} or {latest_tokens()})"),
    ]
    for short, (metric, extra) in HISTOGRAMS.items():
        buckets = both_buckets(metric) if metric in LATEST_OF else raw_rate(metric + '_bucket')
        level1.append((f"claude:{short}_bucket:rate5m", f"sum by ({by(B, extra)}, le) ({buckets})"))
    level1.append(("claude:ratelimit_remaining:ratio",
                   f"min by ({JM}, anthropic_ratelimit_kind) ({RATELIMIT}) / max by ({JM}, anthropic_ratelimit_kind) "
                   f"(max_over_time({RATELIMIT}[1d]))"))

    def req(group: str = JM) -> str:
        return f"sum by ({group}) (claude:requests:rate5m)"

    def util_buckets(matcher: str) -> str:
        return recorded("claude:timeout_utilization_bucket:rate5m", matcher)

    level2 = [
        ("claude:timeout_ratio:rate5m", ratio_or_zero(f"sum by ({JM}) (claude:timeouts:rate5m)", req())),
        ("claude:timeout_ratio:rate1d", ratio_or_zero(
            f"sum by ({JM}) (sum_over_time(claude:timeouts:rate5m[1d]))",
            f"sum by ({JM}) (sum_over_time(claude:requests:rate5m[1d]))")),
        ("claude:error_ratio:rate5m",
         f"sum by ({JM}, error_type) (claude:errors:rate5m{{error_type!~\"timeout|cancelled\"}}) "
         f"/ on ({JM}) group_left {req()}"),
        ("claude:retries_per_request:ratio_rate5m", ratio_or_zero(f"sum by ({JM}) (claude:retries:rate5m)", req())),
    ]
    for bound, name in (("0.8", "80"), ("0.9", "90"), ("0.95", "95")):
        level2.append((f"claude:timeout_utilization_over_{name}:ratio_rate5m",
                       share_above(bound, util_buckets, by(B, KIND), B)))
    for q in (0.5, 0.95, 0.99):
        level2.append((f"claude:operation_duration_seconds:p{int(q * 100)}_5m",
                       quantile_of(q, "claude:operation_duration_seconds_bucket:rate5m", JM)))
    for short in ("time_to_first_chunk_seconds", "prefill_duration_seconds", "stream_max_gap_seconds"):
        for q in (0.95, 0.99):
            level2.append((f"claude:{short}:p{int(q * 100)}_5m",
                           quantile_of(q, f"claude:{short}_bucket:rate5m", JM)))
    level2.append(("claude:timeout_utilization:p99_5m",
                   quantile_of(0.99, "claude:timeout_utilization_bucket:rate5m", by(JM, KIND))))
    return [
        {"name": "claude-otel.rules", "rules": [{"record": n, "expr": e} for n, e in level1]},
        {"name": "claude-otel.ratios", "rules": [{"record": n, "expr": e} for n, e in level2]},
    ] + slo_groups()


# -- SLO: calls that do not time out -----------------------------------------------------------------------------

CAUSE = "anthropic_failure_cause"
# Calls per second by outcome: error_type "" (success) or the failure's, and its cause. The SLO ratios take both
# numerator and denominator from this one rule, so they always sum the same evaluations' samples (a rule of
# another group runs at another moment, and a 5-minute window would then hold one sample more on one side).
CALLS = "claude:calls_by_outcome:rate5m"
CAUSE_WINDOW = "1h"  # the window the annotations' dominant cause is taken over


def slo_windows() -> List[str]:
    """Returns the burn-rate alerts' windows, shortest first ("5m", "30m", "1h", "6h", "3d")."""
    found = {t(f"slo_{speed}_{length}") for speed in ("fast", "slow", "ticket") for length in ("long", "short")}
    return sorted(found, key=seconds)


def slo_ratio(window: str) -> str:
    """Returns the name of the recorded timeout ratio over `window`."""
    return f"claude:slo_timeout_ratio:rate{window}"


def slo_groups() -> List[dict]:
    """Failed calls by cause, then the timeout ratio per burn-rate window and the causes' shares.

    Ratios over long windows sum the 5-minute rates recorded every evaluation (numerator and denominator alike),
    so a 3-day ratio costs one sample per evaluation, not 3 days of raw points."""
    level1 = [(CALLS, f"sum by ({B}, error_type, {CAUSE}) ({both_rate(OPS, '_count')})")]
    level2 = []
    for window in slo_windows():
        if window == "5m":
            bad, total = f'sum by ({B}) ({CALLS}{{{TIMED_OUT}}})', f"sum by ({B}) ({CALLS})"
        else:
            bad = f'sum by ({B}) (sum_over_time({CALLS}{{{TIMED_OUT}}}[{window}]))'
            total = f"sum by ({B}) (sum_over_time({CALLS}[{window}]))"
        level2.append((slo_ratio(window), ratio_or_zero(bad, total)))
    timed_out = f'sum_over_time({CALLS}{{{TIMED_OUT}}}[{CAUSE_WINDOW}])'
    failed = f"sum_over_time({CALLS}{{{FAILED}}}[{CAUSE_WINDOW}])"
    level2.append((f"claude:timeout_cause:share_rate{CAUSE_WINDOW}",
                   f"sum by ({B}, {CAUSE}) ({timed_out}) / on ({B}) group_left sum by ({B}) ({timed_out})"))
    level2.append((f"claude:failure_cause:share_rate{CAUSE_WINDOW}",
                   f"sum by ({B}, {CAUSE}) ({failed}) / on ({JM}) group_left sum by ({JM}) ({failed})"))
    return [
        {"name": "claude-otel.slo.rules", "rules": [{"record": n, "expr": e} for n, e in level1]},
        {"name": "claude-otel.slo.ratios", "rules": [{"record": n, "expr": e} for n, e in level2]},
    ]


# -- alerts ------------------------------------------------------------------------------------------------------

@dataclass
class Alert:
    """One alert, written twice: `expr` over recording rules (Prometheus) and `raw` over the raw series (Grafana).

    Both are the measured value, already filtered by the alert's other conditions; the alert fires where
    value `op` threshold. `fmt` is how the description shows the value (a Prometheus template function)."""

    name: str
    severity: str
    expr: str
    raw: str
    op: str  # ">" or "<"; None: the expression itself is the condition (it returns 1 where the alert fires)
    threshold: Optional[str]
    for_: str
    summary: str
    description: str
    fmt: str
    panel: Tuple[str, str]  # (dashboard uid, panel title) the alert is drawn on
    scope: str = "JM"  # the labels it fires by: "B" (job, model, stream), "JM" (job, model) or "job"
    threshold_text: str = ""  # the threshold as the annotations state it (default: from THRESHOLDS and fmt)

    @property
    def anchor(self) -> str:
        """Returns the alert's section anchor in runbooks.md."""
        return self.name.lower()

    @property
    def runbook_url(self) -> str:
        """Returns the alert's runbook link (RUNBOOK_BASE#anchor)."""
        return f"{RUNBOOK_BASE}#{self.anchor}"



def gate(group: str, source: str) -> str:
    """`and on(group) traffic > min_request_rate`: no alert on a handful of calls."""
    return f"and on ({group}) sum by ({group}) ({source}) > {t('min_request_rate'):g}"


REQ_RAW = f"({both_rate(OPS, '_count')})"  # calls of either name set


def _raw_share(bound: str) -> str:
    def buckets(matcher: str) -> str:
        return raw_rate(UTIL + "_bucket", matcher)
    return share_above(bound, buckets, by(B, KIND), B)


def _raw_quantile(q: float, metric: str) -> str:
    buckets = both_buckets(metric) if metric in LATEST_OF else raw_rate(metric + '_bucket')
    return f"histogram_quantile({q}, sum by ({JM}, le) ({buckets}))"


WHO = "{{ $labels.job }}/{{ $labels.gen_ai_request_model }}"
STREAMED = "stream={{ $labels.anthropic_request_stream }}"


def slo_burn_alerts() -> List[Alert]:
    """The multiwindow, multi-burn-rate alerts on the timeout SLO (Google SRE workbook, chapter 5, option 6)."""
    found = []
    for speed, name, severity in (("fast", "ClaudeTimeoutBudgetFastBurn", "critical"),
                                  ("slow", "ClaudeTimeoutBudgetSlowBurn", "critical"),
                                  ("ticket", "ClaudeTimeoutBudgetTicket", "warning")):
        long, short, burn = t(f"slo_{speed}_long"), t(f"slo_{speed}_short"), float(t(f"slo_{speed}_burn"))

        def raw_ratio(window: str) -> str:
            return ratio_or_zero(f"sum by ({B}) ({both_rate(OPS, '_count', TIMED_OUT, window)})",
                                 f"sum by ({B}) ({both_rate(OPS, '_count', window=window)})")

        hours = 30 * 24 / burn
        found.append(Alert(
            name=name, severity=severity,
            expr=(f"{slo_ratio(long)} / {budget():g}\nand on ({B}) {slo_ratio(short)} / {budget():g} > {burn:g}\n"
                  f"{gate(B, 'claude:requests:rate5m')}"),
            raw=f"{raw_ratio(long)} / {budget():g}\nand on ({B}) {raw_ratio(short)} / {budget():g} > {burn:g}\n"
                f"{gate(B, REQ_RAW)}",
            op=">", threshold=f"slo_{speed}_burn", for_=t("slo_burn_for"),
            summary=f"Claude calls of {WHO} ({STREAMED}) are burning their timeout error budget "
                    f"{burn:g}x too fast",
            description="Calls of " + WHO + " (" + STREAMED + ") that timed out over the last " + long + " burn "
                        "the error budget at {{ $value | humanize }}x (threshold " + f"{burn:g}x over both {long} "
                        f"and {short}; SLO {float(t('slo_target')) * 100:.4g}% of calls without a timeout, budget "
                        f"{budget() * 100:.4g}%). At {burn:g}x a 30-day budget lasts "
                        + (f"{hours:.0f} hours." if hours < 100 else f"{hours / 24:.0f} days."),
            fmt="humanize", panel=("claude-overview", "Timeout ratio by service and model"), scope="B",
            threshold_text=f"{burn:g}x the error budget over {long} and {short} (a timeout ratio above "
                           f"{burn * budget() * 100:.4g}% with a {float(t('slo_target')) * 100:.4g}% SLO)"))
    return found


def alerts() -> List[Alert]:
    near = []
    for pct, share, for_, name, severity in (
            (80, "near_timeout_80_share", "near_timeout_80_for", "ClaudeRequestsNearTimeout", "warning"),
            (90, "near_timeout_90_share", "near_timeout_90_for", "ClaudeRequestsVeryNearTimeout", "warning")):
        near.append(Alert(
            name=name, severity=severity,
            expr=f"claude:timeout_utilization_over_{pct}:ratio_rate5m\n{gate(B, 'claude:attempts:rate5m')}",
            raw=f"{_raw_share(str(pct / 100))}\n{gate(B, raw_rate(ATTEMPTS + '_count'))}",
            op=">", threshold=share, for_=t(for_),
            summary=f"Claude calls of {WHO} ({STREAMED}) are close to their "
                    "{{ $labels.anthropic_timeout_kind }} timeout",
            description="{{ $value | humanizePercentage }} of HTTP attempts of " + WHO + " (" + STREAMED + ") used "
                        f"more than {pct}% of their {{{{ $labels.anthropic_timeout_kind }}}} timeout over the last "
                        f"5 minutes (threshold {t(share):.0%}). Attempts that reach 100% fail with "
                        "'Request timed out'.",
            fmt="humanizePercentage", panel=("claude-timeouts", f"Share of attempts above {pct}% of their timeout"),
            scope="B"))

    return near + slo_burn_alerts() + [
        Alert(
            name="ClaudeAPIErrors", severity="warning",
            expr=f"claude:error_ratio:rate5m\n{gate(JM, 'claude:requests:rate5m')}",
            raw=(f"sum by ({JM}, error_type) ({both_rate(OPS, '_count', API_ERROR)}) "
                 f"/ on ({JM}) group_left sum by ({JM}) ({REQ_RAW})\n{gate(JM, REQ_RAW)}"),
            op=">", threshold="error_ratio", for_=t("error_for"),
            summary=f"Claude calls of {WHO} fail with {{{{ $labels.error_type }}}}",
            description="{{ $value | humanizePercentage }} of calls of " + WHO + " failed with "
                        "{{ $labels.error_type }} (after retries) over the last 5 minutes (threshold "
                        f"{t('error_ratio'):.0%}).",
            fmt="humanizePercentage", panel=("claude-overview", "Errors by error type")),
        Alert(
            name="ClaudeRetryStorm", severity="warning",
            expr=f"claude:retries_per_request:ratio_rate5m\n{gate(JM, 'claude:requests:rate5m')}",
            raw=f"sum by ({JM}) ({raw_rate(RETRIES)}) / sum by ({JM}) ({REQ_RAW})\n{gate(JM, REQ_RAW)}",
            op=">", threshold="retries_per_call", for_=t("retry_for"),
            summary=f"Claude calls of {WHO} are retrying heavily",
            description="{{ $value | humanize }} retries per call for " + WHO + " over the last 5 minutes "
                        f"(threshold {t('retries_per_call'):g}). Every retry adds a full attempt plus backoff to "
                        "the call's duration.",
            fmt="humanize", panel=("claude-timeouts", "Retries per call")),
        Alert(
            name="ClaudeSlowFirstToken", severity="warning",
            expr=f"claude:time_to_first_chunk_seconds:p95_5m\n{gate(JM, 'claude:requests:rate5m')}",
            raw=f"{_raw_quantile(0.95, TTFT)}\n{gate(JM, REQ_RAW)}",
            op=">", threshold="ttft_p95_seconds", for_=t("latency_for"),
            summary=f"Time to first token of {WHO} has degraded",
            description="p95 time to first token of " + WHO + " is {{ $value | humanizeDuration }} over the last "
                        f"5 minutes (threshold {t('ttft_p95_seconds'):g}s), retries and backoff included.",
            fmt="humanizeDuration", panel=("claude-timeouts", "Time to first token p95 / p99 by model")),
        Alert(
            name="ClaudeSlowPrefill", severity="warning",
            expr=f"claude:prefill_duration_seconds:p95_5m\n{gate(JM, 'claude:requests:rate5m')}",
            raw=f"{_raw_quantile(0.95, PREFILL)}\n{gate(JM, REQ_RAW)}",
            op=">", threshold="prefill_p95_seconds", for_=t("latency_for"),
            summary=f"Prefill of {WHO} has degraded",
            description="p95 prefill (request sent to first token, final attempt) of " + WHO + " is "
                        "{{ $value | humanizeDuration }} over the last 5 minutes (threshold "
                        f"{t('prefill_p95_seconds'):g}s).",
            fmt="humanizeDuration", panel=("claude-timeouts", "Prefill p95 / p99 by model")),
        Alert(
            name="ClaudeLongStreamGaps", severity="warning",
            expr=f"claude:stream_max_gap_seconds:p99_5m\n{gate(JM, 'claude:requests:rate5m')}",
            raw=f"{_raw_quantile(0.99, GAP)}\n{gate(JM, REQ_RAW)}",
            op=">", threshold="stream_gap_p99_seconds", for_=t("stream_gap_for"),
            summary=f"Streams of {WHO} go silent for long stretches",
            description="p99 of the longest wait between chunks of a stream of " + WHO + " is "
                        "{{ $value | humanizeDuration }} (threshold " f"{t('stream_gap_p99_seconds'):g}s). "
                        "A proxy idle timeout shorter than this cuts streams.",
            fmt="humanizeDuration", panel=("claude-timeouts", "Longest stream gap p99 vs proxy idle timeout")),
        Alert(
            name="ClaudeRateLimitNearlyExhausted", severity="warning",
            expr="claude:ratelimit_remaining:ratio",
            raw=(f"min by ({JM}, anthropic_ratelimit_kind) ({RATELIMIT}) / max by ({JM}, anthropic_ratelimit_kind) "
                 f"(max_over_time({RATELIMIT}[1d]))"),
            op="<", threshold="ratelimit_remaining_ratio", for_=t("ratelimit_for"),
            summary="{{ $labels.job }} has nearly exhausted its {{ $labels.anthropic_ratelimit_kind }} rate limit "
                    "for {{ $labels.gen_ai_request_model }}",
            description="Only {{ $value | humanizePercentage }} of the day's highest remaining "
                        "{{ $labels.anthropic_ratelimit_kind }} rate limit is left for " + WHO + " (threshold "
                        f"{t('ratelimit_remaining_ratio'):.0%}). 429 rate_limit_error responses and retries follow.",
            fmt="humanizePercentage", panel=("claude-overview", "Rate limit remaining (share of the day's peak)")),
        Alert(
            name="ClaudeTelemetryAbsent", severity="warning",
            expr=("group by (job) (max_over_time(claude:requests:rate5m[1d]))\n"
                  "unless on (job) group by (job) (claude:requests:rate5m)"),
            raw=(f"group by (job) (max_over_time({OPS}_count[1d]) or max_over_time({L_OPS}_count[1d]))\n"
                 f"unless on (job) group by (job) ({OPS}_count or {L_OPS}_count)"),
            op=None, threshold=None, for_=t("absent_for"),
            summary="No Claude call metrics from {{ $labels.job }}",
            description="{{ $labels.job }} sent Claude call metrics in the last day but none for more than "
                        f"{t('absent_for')}: the service, its claude-otel agent or the scrape is down.",
            fmt="", panel=("claude-overview", "Call rate by service and model"), scope="job"),
        Alert(
            name="ClaudeTelemetryDropped", severity="warning",
            expr=f"sum by (job, signal) ({raw_rate(DROPPED)})",
            raw=f"sum by (job, signal) ({raw_rate(DROPPED)})",
            op=">", threshold=None, for_=t("dropped_for"),
            summary="claude-otel in {{ $labels.job }} is dropping {{ $labels.signal }}",
            description="claude-otel in {{ $labels.job }} dropped {{ $value | humanize }} {{ $labels.signal }} "
                        "items per second over the last 5 minutes: its exporter or collector is down, slow or "
                        "refusing. Claude calls are unaffected; these dashboards are incomplete.",
            fmt="humanize", panel=("claude-overview", "Telemetry dropped by claude-otel"), scope="job"),
    ]


def _threshold_value(a: Alert) -> float:
    return 0.0 if a.threshold is None else float(t(a.threshold))


def prometheus_expr(a: Alert) -> str:
    if a.op is None:
        return a.expr
    head, sep, gates = a.expr.partition("\n")
    return f"{head} {a.op} {_threshold_value(a):g}" + (f"\n{gates}" if sep else "")


# -- annotations: what a page says ---------------------------------------------------------------------------------
# Every alert carries the same keys, so a receiver (and the on-call engineer) finds them in one place: service,
# model, stream, timeout_kind, cause, threshold, dashboard_url, runbook_url, next to summary and description.
# timeout_kind and cause are read at notification time by a query in the template (the alert's own labels do not
# hold them, and putting a changing cause in the labels would restart the alert whenever the cause changes).

ANNOTATION_KEYS = ("summary", "description", "service", "model", "stream", "timeout_kind", "cause", "threshold",
                   "dashboard_url", "runbook_url")
NO_TIMEOUT = "none: no attempt timed out in the last 5 minutes"


def _matchers(a: Alert) -> Tuple[str, str]:
    """Returns (PromQL matcher format, the template's printf arguments) selecting the alert's job, model, stream."""
    fmt = "job=%q, gen_ai_request_model=%q"
    args = "$labels.job $labels.gen_ai_request_model"
    if a.scope == "B":
        fmt += ", anthropic_request_stream=%q"
        args += " $labels.anthropic_request_stream"
    return fmt, args


def kind_template(a: Alert) -> str:
    """Returns the timeout_kind annotation: the alert's own label, else the phase of most timed-out attempts."""
    if a.scope == "job":
        return "n/a (not about calls)"
    if KIND in a.expr:
        return "{{ $labels.anthropic_timeout_kind }}"
    fmt, args = _matchers(a)
    query = (f"topk(1, sum by (anthropic_timeout_phase) (claude:attempt_timeouts:rate5m{{{fmt}}}) > 0)")
    return ('{{ with query (printf "' + query.replace('"', '\\"') + '" ' + args + ') }}'
            '{{ . | first | label "anthropic_timeout_phase" }}{{ else }}' + NO_TIMEOUT + '{{ end }}')


def cause_template(a: Alert) -> str:
    """Returns the cause annotation: the dominant anthropic.failure.cause and its share, read when it fires."""
    if a.scope == "job":
        return "n/a (not about calls)"
    fmt, args = _matchers(a)
    if a.name.startswith("ClaudeTimeoutBudget"):
        rule, of, stream = f"claude:timeout_cause:share_rate{CAUSE_WINDOW}", "timed-out", ""
    else:  # every failed call of the job and model, the stream it happened on included
        fmt, args = "job=%q, gen_ai_request_model=%q", "$labels.job $labels.gen_ai_request_model"
        rule, of, stream = f"claude:failure_cause:share_rate{CAUSE_WINDOW}", "failed", \
            ", stream={{ .Labels.anthropic_request_stream }}"
    query = f"topk(1, {rule}{{{fmt}}} > 0)"
    return ('{{ with query (printf "' + query.replace('"', '\\"') + '" ' + args + ') }}{{ with first . }}'
            '{{ or .Labels.anthropic_failure_cause "unrecorded" }} ({{ .Value | humanizePercentage }} of the '
            f'{of} calls in the last {CAUSE_WINDOW}{stream}){{{{ end }}}}{{{{ else }}}}none: no call {of.split("-")[-1]} '
            f'in the last {CAUSE_WINDOW}{{{{ end }}}}')


def threshold_template(a: Alert) -> str:
    """Returns the threshold annotation (plain text)."""
    if a.threshold_text:
        return a.threshold_text
    if a.threshold is None:
        return f"{'any rate above 0' if a.op else 'the condition itself'}, for {a.for_}"
    v = _threshold_value(a)
    shown = {"humanizePercentage": f"{v * 100:g}%", "humanizeDuration": f"{v:g} s"}.get(a.fmt, f"{v:g}")
    return f"{'above' if a.op == '>' else 'below'} {shown} ({a.threshold}) for {a.for_}"


def dashboard_url(a: Alert) -> str:
    """Returns the dashboard_url annotation: the alert's dashboard, filtered to its job (and model, stream)."""
    uid = a.panel[0]
    url = f"{GRAFANA_URL}/d/{uid}?var-job={{{{ $labels.job | urlquery }}}}"
    if a.scope != "job":
        url += "&var-model={{ $labels.gen_ai_request_model | urlquery }}"
    if a.scope == "B":
        url += "&var-stream={{ $labels.anthropic_request_stream }}"
    return url


def annotations(a: Alert) -> Dict[str, str]:
    """Returns the alert's Prometheus annotations (templates), in ANNOTATION_KEYS order."""
    found = {
        "summary": a.summary,
        "description": a.description,
        "service": "{{ $labels.job }}",
        "model": "n/a (every model of the job)" if a.scope == "job" else "{{ $labels.gen_ai_request_model }}",
        "stream": {"B": "{{ $labels.anthropic_request_stream }}", "JM": "any (the alert is per job and model)",
                   "job": "n/a"}[a.scope],
        "timeout_kind": kind_template(a),
        "cause": cause_template(a),
        "threshold": threshold_template(a),
        "dashboard_url": dashboard_url(a),
        "runbook_url": a.runbook_url,
    }
    assert tuple(found) == ANNOTATION_KEYS
    return found


GRAFANA_NO_QUERY = "open dashboard_url (Grafana-managed alerts cannot query in templates)"


def grafana_annotations(a: Alert) -> Dict[str, str]:
    """Returns the Grafana-managed twin's annotations: the same keys, $values.B.Value for $value, and no queries."""
    found = {}
    for key, text in annotations(a).items():
        if "query (" in text:
            text = GRAFANA_NO_QUERY
        found[key] = text.replace("$value |", "$values.B.Value |")
    return found


def alert_rules() -> List[dict]:
    return [{
        "alert": a.name,
        "expr": prometheus_expr(a),
        "for": a.for_,
        "labels": {"severity": a.severity},
        "annotations": annotations(a),
    } for a in alerts()]


def grafana_alerting(panel_ids: Dict[Tuple[str, str], int]) -> dict:
    """The same alerts as Grafana-managed rules (file provisioning, apiVersion 1).

    Query A is the alert's value over the raw series (so these work without the recording rules), B reduces it
    to its last value, C is the threshold. Grafana does not expand environment variables in annotations, so the
    {{ $labels.x }} and {{ $values.B.Value }} templates are safe there."""
    rules = []
    for a in alerts():
        evaluator = {"type": "lt" if a.op == "<" else "gt", "params": [_threshold_value(a)]}
        dashboard, title = a.panel
        rules.append({
            "uid": ("claude-" + a.anchor.removeprefix("claude"))[:40],
            "title": a.name,
            "condition": "C",
            "data": [
                {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": DATASOURCE_UID,
                 "model": {"refId": "A", "expr": a.raw, "instant": True, "range": False, "editorMode": "code",
                           "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                           "legendFormat": "__auto"}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                           "settings": {"mode": "dropNN"}, "datasource": {"type": "__expr__", "uid": "__expr__"}}},
                {"refId": "C", "datasourceUid": "__expr__",
                 "model": {"refId": "C", "type": "threshold", "expression": "B", "conditions": [{"evaluator": evaluator}],
                           "datasource": {"type": "__expr__", "uid": "__expr__"}}},
            ],
            "dashboardUid": dashboard,
            "panelId": panel_ids[(dashboard, title)],
            "noDataState": "OK",
            "execErrState": "Error",
            "for": a.for_,
            "labels": {"severity": a.severity},
            "annotations": grafana_annotations(a),
            "isPaused": False,
        })
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": "claude-otel", "folder": "claude-otel",
                                         "interval": "1m", "rules": rules}]}


# -- dashboards --------------------------------------------------------------------------------------------------

SEL = 'job=~"$job", gen_ai_request_model=~"$model", anthropic_request_stream=~"$stream"'
DS = {"type": "prometheus", "uid": "${datasource}"}
DASHBOARD_TITLES = {
    "claude-overview": "Claude API / Overview",
    "claude-timeouts": "Claude API / Timeouts and headroom",
    "claude-streaming": "Claude API / Streaming",
}
GREEN, ORANGE, RED = "green", "orange", "red"
LE_INF = 'le="+Inf"'
OUTPUT = 'gen_ai_token_type="output"'


def le_is(bound: float) -> str:
    """A bucket bound matcher; only for non-integer bounds (1.0 is "1.0" or "1" depending on the exporter)."""
    assert bound != int(bound)
    return f'le="{bound:g}"'


@dataclass
class Target:
    expr: str
    legend: str = ""
    exemplar: bool = False  # raw histogram queries: a slow point links to the trace that made it


def sel(extra: str = "") -> str:
    return "{" + SEL + (", " + extra if extra else "") + "}"


def rec(name: str, extra: str = "") -> str:
    """A recording rule's series, filtered by the dashboard variables."""
    return name + sel(extra)


def raw_q(q: float, metric: str, group: str = "gen_ai_request_model", extra: str = "") -> str:
    """A quantile straight from the raw histogram (so exemplars work), over Grafana's rate interval; a gen_ai.*
    duration histogram is read in both name sets."""
    if metric in LATEST_OF:
        buckets = both_buckets(metric, sel(extra)[1:-1], "$__rate_interval")
        return f"histogram_quantile({q}, sum by ({by(group, 'le')}) ({buckets}))"
    return f"histogram_quantile({q}, sum by ({by(group, 'le')}) (rate({metric}_bucket{sel(extra)}[$__rate_interval])))"


def latest_q(q: float, metric: str, group: str = "gen_ai_request_model") -> str:
    """A quantile of a latest-set histogram whose bounds differ from the default set's (so not summable)."""
    return (f"histogram_quantile({q}, sum by ({by(group, 'le')}) "
            f"(rate({metric}_bucket{{{latest_matchers(SEL)}}}[$__rate_interval])))")


# What only claude-otel records: its own instruments, its own attributes and values (anthropic_request_stream,
# error_type="timeout", failure causes) and the recorded series built from them. A panel reading any of these
# says so; the others need only gen_ai.* metrics, so services instrumented by the official OpenTelemetry GenAI
# instrumentation light them up too.
OWN_SIGNALS = re.compile(r"anthropic_client_|anthropic_ratelimit|claude_otel_|anthropic_request_stream=\\?\"|"
                         r"claude:(attempt|retr|timeout|prefill|stream_max_gap|ratelimit|failure|slo)")
OWN_NOTE = " Needs claude-otel's own metrics (anthropic.*): empty for services instrumented otherwise."


def needs_own_signals(exprs: Sequence[str]) -> bool:
    """Returns whether any of a panel's queries reads a signal only claude-otel records."""
    return any(OWN_SIGNALS.search(e) for e in exprs if not e.startswith("vector("))


def runbook(alert: str) -> dict:
    return {"title": f"Runbook: {alert}", "url": f"{RUNBOOK_BASE}#{alert.lower()}", "targetBlank": True}


def dashboard_link(uid: str) -> dict:
    return {"title": DASHBOARD_TITLES[uid], "url": f"/d/{uid}?${{__url_time_range}}&${{__all_variables}}"}


class Dash:
    def __init__(self, uid: str, description: str) -> None:
        self.uid, self.title, self.description = uid, DASHBOARD_TITLES[uid], description
        self.panels: List[dict] = []
        self.x = self.y = 0
        self.line_height = 0

    def _place(self, width: int, height: int) -> dict:
        if self.x + width > 24:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.line_height = max(self.line_height, height)
        return pos

    def _newline(self) -> None:
        if self.x:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": len(self.panels) + 1, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def text(self, title: str, content: str, height: int = 5) -> None:
        self._newline()
        self.panels.append({"type": "text", "title": title, "id": len(self.panels) + 1,
                            "description": "How to read these dashboards during an incident.",
                            "gridPos": self._place(24, height),
                            "options": {"mode": "markdown", "content": content.strip(),
                                        "code": {"language": "plaintext", "showLineNumbers": False,
                                                 "showMiniMap": False}}})
        self._newline()

    def panel(self, title: str, description: str, targets: Sequence[Target], unit: str, kind: str = "timeseries",
              width: int = 12, height: int = 8, thresholds: Sequence[Tuple[float, str]] = (),
              links: Sequence[dict] = (), stack: bool = False, max_: Optional[float] = None) -> None:
        steps = [{"color": GREEN, "value": None}] + [{"color": c, "value": v} for v, c in thresholds]
        defaults: dict = {"unit": unit, "min": 0, "thresholds": {"mode": "absolute", "steps": steps}}
        if max_ is not None:
            defaults["max"] = max_
        if needs_own_signals([target.expr for target in targets]):
            description += OWN_NOTE
        panel = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": DS, "gridPos": self._place(width, height), "links": list(links),
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "targets": [],
        }
        for i, target in enumerate(targets):
            query = {"refId": chr(65 + i), "datasource": DS, "expr": target.expr, "legendFormat": target.legend,
                     "range": True, "instant": False, "editorMode": "code"}
            if target.exemplar:
                query["exemplar"] = True
            panel["targets"].append(query)
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                  "spanNulls": False, "axisSoftMin": 0,
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                                  "thresholdsStyle": {"mode": "dashed" if thresholds else "off"}}
            panel["options"] = {"legend": {"displayMode": "table", "placement": "right" if width >= 12 else "bottom",
                                           "showLegend": True,
                                           "calcs": ["lastNotNull", "max"]},
                                "tooltip": {"mode": "multi", "sort": "desc"}}
        elif kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "background", "graphMode": "area", "justifyMode": "auto",
                                "textMode": "auto", "orientation": "auto", "wideLayout": True,
                                "showPercentChange": False}
            for query in panel["targets"]:
                query["range"], query["instant"] = False, True
        elif kind == "heatmap":
            for query in panel["targets"]:
                query["format"] = "heatmap"
            defaults.pop("min")
            defaults["custom"] = {"scaleDistribution": {"type": "linear"},
                                  "hideFrom": {"legend": False, "tooltip": False, "viz": False}}
            panel["options"] = {"calculate": False, "cellGap": 1,
                                "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential",
                                          "exponent": 0.5, "fill": "dark-orange", "reverse": False, "steps": 64},
                                "yAxis": {"unit": unit, "axisPlacement": "left", "reverse": False},
                                "rowsFrame": {"layout": "auto"}, "cellValues": {"unit": "reqps"},
                                "filterValues": {"le": 1e-9}, "showValue": "never",
                                "tooltip": {"mode": "single", "yHistogram": True, "showColorScale": False},
                                "legend": {"show": True}, "exemplars": {"color": "rgba(255,0,255,0.7)"}}
        self.panels.append(panel)

    def model(self) -> dict:
        variables = [{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                      "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}]
        # Services of either name set; the stream label from the recorded calls, where both sets share one name.
        calls = f'__name__=~"{OPS}_count|{L_OPS}_count"'
        for name, label, source, matcher in (("job", "job", calls, ""),
                                             ("model", "gen_ai_request_model", calls, 'job=~"$job"'),
                                             ("stream", STREAM, "", 'job=~"$job"')):
            text = {"job": "Service (job)", "model": "Model", "stream": "Streamed"}[name]
            if source:
                query = f"label_values({{{by(source, matcher)}}}, {label})"
            else:
                query = f"label_values(claude:requests:rate5m{{{matcher}}}, {label})"
            variables.append({
                "name": name, "label": text, "type": "query", "datasource": DS,
                "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "definition": query, "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2,
                "sort": 1, "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0,
                "regex": "", "options": []})
        for name, text, default in (("timeout", "Client read timeout (s)", t("client_timeout_seconds")),
                                    ("proxy_idle", "Proxy idle timeout (s)", t("proxy_idle_seconds"))):
            variables.append({"name": name, "label": text, "type": "textbox", "query": str(default), "hide": 0,
                              "current": {"text": str(default), "value": str(default)},
                              "options": [{"selected": True, "text": str(default), "value": str(default)}],
                              "description": "Reference line only: the timeout your clients or proxies apply."})
        links = [{"title": DASHBOARD_TITLES[uid], "type": "link", "icon": "dashboard", "url": f"/d/{uid}",
                  "includeVars": True, "keepTime": True, "targetBlank": False, "asDropdown": False, "tags": [],
                  "tooltip": ""}
                 for uid in DASHBOARD_TITLES if uid != self.uid]
        links.append({"title": "Runbooks", "type": "link", "icon": "doc", "url": RUNBOOK_BASE, "targetBlank": True,
                      "includeVars": False, "keepTime": False, "asDropdown": False, "tags": [],
                      "tooltip": "What each alert means and what to do"})
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["claude-otel"],
            "schemaVersion": 41, "version": 1, "editable": True, "graphTooltip": 1, "refresh": "1m",
            "time": {"from": "now-3h", "to": "now"}, "timezone": "browser", "fiscalYearStartMonth": 0,
            "liveNow": False, "weekStart": "", "links": links,
            "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m"]},
            "templating": {"list": variables},
            "annotations": {"list": [{
                "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts",
                "type": "dashboard"}]},
            "panels": self.panels,
        }


TRIAGE = f"""
**Are Claude calls timing out?** *Timeout ratio* (pages above {page_ratio():.1%} over 1 h and 5 m) and *Errors by error
type* below. **Which service and model?** The by-service panels. **How close are the rest?** *Attempts above 80%
of their timeout*, then [Timeouts and headroom](/d/claude-timeouts): which timeout is closest (read, connect,
proxy_idle) and why (prefill, non-streamed long generations, stream gaps). **Us or them?** `timeout`,
`connection_error` and near-timeout attempts are usually ours (timeouts, proxies, prompt size);
`overloaded_error` / 529 and `rate_limit_error` / 429 are the API's. **What to do:** each alert links its section
of the [runbooks]({RUNBOOK_BASE}).
"""


def overview() -> Dash:
    d = Dash("claude-overview", "Are Claude API calls healthy? Traffic, errors, timeouts, latency, tokens and rate "
                                "limits per service (job) and model, from claude-otel. Needs the recording rules "
                                "in grafana/rules loaded in Prometheus.")
    d.text("Start here", TRIAGE)
    requests, timeouts = rec("claude:requests:rate5m"), rec("claude:timeouts:rate5m")
    util = "claude:timeout_utilization_bucket:rate5m"
    d.panel("Calls per second", "Claude SDK calls per second (all selected services and models). A drop to zero "
            "while services run means calls hang or the agent stopped reporting (ClaudeTelemetryAbsent).",
            [Target(f"sum({requests})")], "reqps", kind="stat", width=4, height=4,
            links=[runbook("ClaudeTelemetryAbsent")])
    d.panel("Timeout ratio", "Share of calls that ended in 'Request timed out' over 5 minutes. Above "
            f"{page_ratio():.1%} over both 1 hour and 5 minutes pages (ClaudeTimeoutBudgetFastBurn: "
            f"{t('slo_fast_burn'):g}x the error budget of a {float(t('slo_target')):.1%} SLO). Open the "
            "Timeouts and headroom dashboard.",
            [Target(f"(sum({timeouts}) or vector(0)) / sum({requests})")], "percentunit", kind="stat", width=4,
            height=4, thresholds=[(page_ratio(), RED)],
            links=[runbook("ClaudeTimeoutBudgetFastBurn"), dashboard_link("claude-timeouts")])
    d.panel("Error ratio", "Share of calls that failed, any error type, over 5 minutes. Above "
            f"{t('error_ratio'):.0%} for one non-timeout error type warns: ClaudeAPIErrors. See Errors by error type.",
            [Target(f"(sum({rec('claude:errors:rate5m')}) or vector(0)) / sum({requests})")], "percentunit",
            kind="stat", width=4, height=4, thresholds=[(t("error_ratio"), RED)], links=[runbook("ClaudeAPIErrors")])
    d.panel("Attempts above 80% of their timeout", "Share of HTTP attempts that used more than 80% of their "
            "governing timeout (connect, read or proxy idle). Above "
            f"{t('near_timeout_80_share'):.0%} warns (ClaudeRequestsNearTimeout): timeouts are next. Raise the "
            "timeout, stream, or fix the proxy; see the runbook.",
            [Target(f"(sum({rec(util, LE_INF)}) - sum({rec(util, le_is(0.8))})) / "
                    f"sum({rec(util, LE_INF)})")], "percentunit", kind="stat", width=4, height=4,
            thresholds=[(t("near_timeout_80_share"), ORANGE)],
            links=[runbook("ClaudeRequestsNearTimeout"), dashboard_link("claude-timeouts")])
    d.panel("Retries per call", "SDK retries per call over 5 minutes. Above "
            f"{t('retries_per_call'):g} warns (ClaudeRetryStorm): see Retries by reason on the timeouts dashboard.",
            [Target(f"(sum({rec('claude:retries:rate5m')}) or vector(0)) / sum({requests})")], "short",
            kind="stat", width=4, height=4, thresholds=[(t("retries_per_call"), ORANGE)],
            links=[runbook("ClaudeRetryStorm")])
    d.panel("p99 call duration", "Whole-call p99 (retries, backoff and stream reading included). Orange at 80% "
            f"and red at 100% of the SDK's default {t('client_timeout_seconds')} s timeout: a non-streamed call "
            "that long is about to time out.",
            [Target(f"histogram_quantile(0.99, sum by (le) ({rec('claude:operation_duration_seconds_bucket:rate5m')}))")],
            "s", kind="stat", width=4, height=4,
            thresholds=[(0.8 * t("client_timeout_seconds"), ORANGE), (t("client_timeout_seconds"), RED)])

    d.row("Traffic and errors")
    d.panel("Call rate by service and model", "Calls per second per service (job) and model. A service whose "
            "line disappears stopped sending telemetry (ClaudeTelemetryAbsent) or stopped calling Claude.",
            [Target(f"sum by (job, gen_ai_request_model) ({requests})", "{{job}} {{gen_ai_request_model}}")],
            "reqps", stack=True, links=[runbook("ClaudeTelemetryAbsent")])
    d.panel("Errors by error type", "Failed calls per second by error.type. timeout = our client timeout "
            "expired; connection_error = network, DNS or proxy; overloaded_error (529) and rate_limit_error (429) "
            "= the API pushing back; cancelled = the caller gave up. Warns at "
            f"{t('error_ratio'):.0%} of calls for one non-timeout type (ClaudeAPIErrors).",
            [Target(f"sum by (error_type) ({rec('claude:errors:rate5m')})", "{{error_type}}")], "reqps",
            stack=True, links=[runbook("ClaudeAPIErrors"), runbook("ClaudeTimeoutBudgetFastBurn")])
    d.panel("Timeout ratio by service and model", "Share of calls ending in a timeout, per service and model. "
            f"Lines at the burn-rate levels: {page_ratio():.1%} pages over 1 hour and 5 minutes (fast burn), "
            f"{burn_ratio('slo_slow_burn'):.0%} over 6 hours and 30 minutes (slow burn), "
            f"{burn_ratio('slo_ticket_burn'):.0%} over 3 days and 6 hours opens a ticket. Open Timeouts and "
            "headroom to see which timeout and why.",
            [Target(f"(sum by (job, gen_ai_request_model) ({timeouts}) or sum by (job, gen_ai_request_model) "
                    f"({requests}) * 0) / sum by (job, gen_ai_request_model) ({requests})",
                    "{{job}} {{gen_ai_request_model}}")], "percentunit", width=8,
            thresholds=[(burn_ratio("slo_ticket_burn"), ORANGE), (burn_ratio("slo_slow_burn"), RED),
                        (page_ratio(), RED)],
            links=[runbook("ClaudeTimeoutBudgetFastBurn"), dashboard_link("claude-timeouts")])
    d.panel("In-flight calls", "Calls in progress per service. Growing while the call rate is flat means calls "
            "hang until their timeout: check Timeouts and headroom.",
            [Target(f"sum by (job) ({ACTIVE}{sel()})", "{{job}}")], "short", width=8)
    d.panel("Telemetry dropped by claude-otel", "Spans and metric points the agent could not export, per second. "
            "Non-zero for "
            f"{t('dropped_for')} warns (ClaudeTelemetryDropped): the collector is down or slow; these dashboards "
            "undercount. Claude calls are not affected.",
            [Target('sum by (job, signal) (rate(claude_otel_exporter_dropped_total{job=~"$job"}[$__rate_interval]))',
                    "{{job}} {{signal}}")], "short", width=8, thresholds=[(1e-9, ORANGE)],
            links=[runbook("ClaudeTelemetryDropped")])

    d.row("Latency")
    for q in (0.5, 0.95, 0.99):
        d.panel(f"p{int(q * 100)} call duration by model", "Whole-call duration (retries, backoff and stream "
                "reading included) from the raw histogram; points link to traces (exemplars). Orange/red at 80%/100% "
                f"of the default {t('client_timeout_seconds')} s timeout: non-streamed calls near it time out.",
                [Target(raw_q(q, OPS), "{{gen_ai_request_model}}", exemplar=True)], "s", width=8,
                thresholds=[(0.8 * t("client_timeout_seconds"), ORANGE), (t("client_timeout_seconds"), RED)])

    d.row("Tokens and rate limits")
    d.panel("Tokens per second by type", "Input, output and cache tokens per second. A jump in input tokens "
            "explains longer prefill; cache_read rising means prompt caching works.",
            [Target(f"sum by (gen_ai_token_type) ({rec('claude:tokens:rate5m')})", "{{gen_ai_token_type}}")],
            "suffix: tokens/s", width=8, stack=True)
    d.panel("Rate limit remaining", "Remaining requests and tokens in the current rate-limit window, from the "
            "API's response headers (lowest across the selected services). Near zero: 429s and retries follow.",
            [Target(f'min by (gen_ai_request_model, anthropic_ratelimit_kind) ({RATELIMIT}'
                    '{job=~"$job", gen_ai_request_model=~"$model"})',
                    "{{gen_ai_request_model}} {{anthropic_ratelimit_kind}}")], "short", width=8)
    d.panel("Rate limit remaining (share of the day's peak)", "Remaining rate limit as a share of the highest "
            "remaining value in the last day (about the limit). Below "
            f"{t('ratelimit_remaining_ratio'):.0%} warns (ClaudeRateLimitNearlyExhausted): slow down, spread load or "
            "ask for a higher tier.",
            [Target('min by (job, gen_ai_request_model, anthropic_ratelimit_kind) (claude:ratelimit_remaining:ratio'
                    '{job=~"$job", gen_ai_request_model=~"$model"})',
                    "{{job}} {{gen_ai_request_model}} {{anthropic_ratelimit_kind}}")], "percentunit", width=8,
            max_=1, thresholds=[(0, RED), (t("ratelimit_remaining_ratio"), GREEN)],
            links=[runbook("ClaudeRateLimitNearlyExhausted")])
    return d


def timeouts() -> Dash:
    d = Dash("claude-timeouts", "How close are Claude calls to their timeouts, which timeout (connect, read, proxy "
                                "idle), and why: prefill on huge prompts, long non-streamed generations, stream gaps "
                                "against proxy idle timeouts, retries and backoff.")
    util = "claude:timeout_utilization_bucket:rate5m"
    d.row("Headroom")
    d.panel("Timeout utilization per attempt", "Each HTTP attempt's largest share of its governing timeout (1.0 = "
            "timed out). Mass moving toward the top means timeouts are coming; click a cell's exemplar for a trace.",
            [Target(f"sum by (le) (rate({UTIL}_bucket{sel()}[$__rate_interval]))", "{{le}}", exemplar=True)],
            "percentunit", kind="heatmap", width=12, height=9)
    d.panel("Headroom: p99 timeout utilization by model", "p99 of the largest share of its timeout an attempt used, "
            "per model and governing timeout (read, connect, proxy_idle). This is the honest headroom: 0.5 = the "
            "slowest 1% used half their timeout; 1.0 = they time out. Orange at 0.8, red at 0.9.",
            [Target(f"max by (gen_ai_request_model, {KIND}) ({raw_q(0.99, UTIL, by('gen_ai_request_model', KIND))})",
                    "{{gen_ai_request_model}} {{anthropic_timeout_kind}}", exemplar=True)], "percentunit",
            width=12, height=9, max_=1, thresholds=[(0.8, ORANGE), (0.9, RED)],
            links=[runbook("ClaudeRequestsNearTimeout")])
    for pct, alert, share in ((80, "ClaudeRequestsNearTimeout", "near_timeout_80_share"),
                              (90, "ClaudeRequestsVeryNearTimeout", "near_timeout_90_share"),
                              (95, "ClaudeRequestsVeryNearTimeout", "near_timeout_90_share")):
        level = f"{alert} warns above {t(share):.0%}." if pct != 95 else (
            f"No alert of its own; ClaudeRequestsVeryNearTimeout (above 90%) warns at {t(share):.0%}.")
        d.panel(f"Share of attempts above {pct}% of their timeout", f"Share of attempts per model and timeout kind "
                f"that came within {100 - pct}% of timing out. {level} proxy_idle: align the proxy's idle timeout; "
                "read: stream or raise the timeout; connect: check DNS and the network.",
                [Target(f"(sum by (gen_ai_request_model, {KIND}) ({rec(util, LE_INF)}) - sum by "
                        f"(gen_ai_request_model, {KIND}) ({rec(util, le_is(pct / 100))})) / on "
                        f"(gen_ai_request_model) group_left sum by (gen_ai_request_model) ({rec(util, LE_INF)})",
                        "{{gen_ai_request_model}} {{anthropic_timeout_kind}}")], "percentunit", width=8,
                thresholds=[(t(share), ORANGE)], links=[runbook(alert)])

    d.row("Timeouts")
    d.panel("Timed-out attempts by phase", "HTTP attempts that timed out per second: connect (network, DNS, "
            "proxy), read (no byte within the read timeout: prefill, non-streamed generation, stall), write, pool "
            "(client connection pool exhausted). Retried attempts count here too.",
            [Target(f"sum by (anthropic_timeout_phase) ({rec('claude:attempt_timeouts:rate5m')})",
                    "{{anthropic_timeout_phase}}")], "reqps", width=8, stack=True,
            links=[runbook("ClaudeTimeoutBudgetFastBurn")])
    d.panel("Calls that timed out by service and model", "Calls that failed with 'Request timed out' after all "
            "retries, per second. Compare with Timed-out attempts: the difference was saved by retries.",
            [Target(f"sum by (job, gen_ai_request_model) ({rec('claude:timeouts:rate5m')})",
                    "{{job}} {{gen_ai_request_model}}")], "reqps", width=8, links=[runbook("ClaudeTimeoutBudgetFastBurn")])
    d.panel("p99 attempt duration vs client timeout", "p99 duration of one HTTP attempt per model, against the "
            "$timeout s client timeout (dashboard variable). A non-streamed attempt must finish within the read "
            "timeout; a line reaching the timeout line means those calls time out. Streams only need their gaps "
            "below it.",
            [Target(raw_q(0.99, ATTEMPTS), "{{gen_ai_request_model}}", exemplar=True),
             Target("vector($timeout)", "client timeout")], "s", width=8,
            thresholds=[(0.8 * t("client_timeout_seconds"), ORANGE), (t("client_timeout_seconds"), RED)])

    d.row("Why: prefill, first token, stream gaps")
    d.panel("Prefill p95 / p99 by model", "Final attempt's request sent to first content token (streams): "
            "queueing plus prefill; huge prompts show here first. ClaudeSlowPrefill warns when p95 exceeds "
            f"{t('prefill_p95_seconds'):g} s: shorten prompts or use prompt caching.",
            [Target(raw_q(0.95, PREFILL), "p95 {{gen_ai_request_model}}", exemplar=True),
             Target(raw_q(0.99, PREFILL), "p99 {{gen_ai_request_model}}", exemplar=True)], "s", width=8,
            thresholds=[(t("prefill_p95_seconds"), ORANGE)], links=[runbook("ClaudeSlowPrefill")])
    d.panel("Time to first token p95 / p99 by model", "Call start to first content token (streams), retries and "
            "backoff included. Much higher than prefill = time lost to retries. ClaudeSlowFirstToken warns when p95 "
            f"exceeds {t('ttft_p95_seconds'):g} s.",
            [Target(raw_q(0.95, TTFT), "p95 {{gen_ai_request_model}}", exemplar=True),
             Target(raw_q(0.99, TTFT), "p99 {{gen_ai_request_model}}", exemplar=True)], "s", width=8,
            thresholds=[(t("ttft_p95_seconds"), ORANGE)], links=[runbook("ClaudeSlowFirstToken")])
    d.panel("Longest stream gap p99 vs proxy idle timeout", "p99 of each stream's longest silence after the first "
            "token, against the $proxy_idle s proxy idle timeout (dashboard variable). A proxy (nginx "
            "proxy_read_timeout) cuts streams whose gap reaches it. ClaudeLongStreamGaps warns above "
            f"{t('stream_gap_p99_seconds'):g} s.",
            [Target(raw_q(0.99, GAP), "{{gen_ai_request_model}}", exemplar=True),
             Target("vector($proxy_idle)", "proxy idle timeout")], "s", width=8,
            thresholds=[(t("stream_gap_p99_seconds"), ORANGE)], links=[runbook("ClaudeLongStreamGaps")])

    d.row("Retries")
    d.panel("Retries by reason", "SDK retries per second by reason: 429 (rate limit), 529 (overloaded), 5xx, "
            "timeout, connection_error. 429/529 are the API pushing back; timeout/connection_error are usually "
            "ours.", [Target(f"sum by (anthropic_retry_reason) ({rec('claude:retries:rate5m')})",
                             "{{anthropic_retry_reason}}")], "reqps", width=8, stack=True,
            links=[runbook("ClaudeRetryStorm")])
    d.panel("Retries per call", "Retries per call per service and model. ClaudeRetryStorm warns above "
            f"{t('retries_per_call'):g}: each retry adds an attempt and a backoff to the call.",
            [Target(f"(sum by (job, gen_ai_request_model) ({rec('claude:retries:rate5m')}) or sum by (job, "
                    f"gen_ai_request_model) ({rec('claude:requests:rate5m')}) * 0) / sum by (job, "
                    f"gen_ai_request_model) ({rec('claude:requests:rate5m')})", "{{job}} {{gen_ai_request_model}}")],
            "short", width=8, thresholds=[(t("retries_per_call"), ORANGE)], links=[runbook("ClaudeRetryStorm")])
    d.panel("Time lost to backoff", "Seconds spent waiting before retries, per second of wall time, by reason "
            "(retry-after honoured). 2 = on average two calls are sleeping at any moment.",
            [Target(f"sum by (anthropic_retry_reason) ({rec('claude:retry_backoff_seconds:rate5m')})",
                    "{{anthropic_retry_reason}}")], "s", width=8, stack=True, links=[runbook("ClaudeRetryStorm")])
    return d


def streaming() -> Dash:
    d = Dash("claude-streaming", "Streamed Claude calls: time to first token, prefill, time per output chunk and "
                                 "the longest gap between chunks, by model.")
    d.row("First token")
    d.panel("Time to first token by model", "Call start to first content delta, p50/p95/p99, retries and backoff "
            f"included. ClaudeSlowFirstToken warns when p95 exceeds {t('ttft_p95_seconds'):g} s.",
            [Target(raw_q(q, TTFT), f"p{int(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True)
             for q in (0.5, 0.95, 0.99)], "s", thresholds=[(t("ttft_p95_seconds"), ORANGE)],
            links=[runbook("ClaudeSlowFirstToken")])
    d.panel("Prefill by model", "Final attempt's request sent to first content delta, p50/p95/p99: queueing plus "
            f"prompt processing. ClaudeSlowPrefill warns when p95 exceeds {t('prefill_p95_seconds'):g} s: shorten "
            "prompts or cache their prefix.",
            [Target(raw_q(q, PREFILL), f"p{int(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True)
             for q in (0.5, 0.95, 0.99)], "s", thresholds=[(t("prefill_p95_seconds"), ORANGE)],
            links=[runbook("ClaudeSlowPrefill")])
    d.row("Generation")
    d.panel("Time per output chunk by model", "Gap between content deltas after the first, p50/p95 (opt-in "
            "metric; empty unless enabled). Rising values mean slower generation, not a client problem.",
            [Target(raw_q(q, CHUNK), f"p{int(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True)
             for q in (0.5, 0.95)] +
            # the latest set's spec buckets differ from the default's chunk buckets: its own lines, not a sum
            [Target(latest_q(q, L_CHUNK), f"p{int(q * 100)} {{{{gen_ai_request_model}}}} (latest names)",
                    exemplar=True) for q in (0.5, 0.95)], "s", width=8)
    d.panel("Longest stream gap by model", "Each stream's longest wait for the next event after the first token, "
            "p50/p99, against the $proxy_idle s proxy idle timeout. Reaching it cuts streams; ClaudeLongStreamGaps "
            f"warns when p99 exceeds {t('stream_gap_p99_seconds'):g} s.",
            [Target(raw_q(q, GAP), f"p{int(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True)
             for q in (0.5, 0.99)] + [Target("vector($proxy_idle)", "proxy idle timeout")], "s", width=8,
            thresholds=[(t("stream_gap_p99_seconds"), ORANGE)], links=[runbook("ClaudeLongStreamGaps")])
    d.panel("Longest stream gap distribution", "Streams per second by their longest gap. Cells near the proxy "
            "idle timeout are streams about to be cut; exemplars link to their traces.",
            [Target(f"sum by (le) (rate({GAP}_bucket{sel()}[$__rate_interval]))", "{{le}}", exemplar=True)],
            "s", kind="heatmap", width=8)
    d.row("Streaming share and output size")
    d.panel("Share of calls streamed by model", "Streamed calls as a share of all calls. Long generations should "
            "stream: a non-streamed call must deliver its whole answer within the read timeout, and the SDK refuses "
            "non-streamed calls whose max_tokens implies more than 10 minutes.",
            [Target("sum by (gen_ai_request_model) (claude:requests:rate5m{job=~\"$job\", "
                    "gen_ai_request_model=~\"$model\", anthropic_request_stream=\"true\"}) / sum by "
                    "(gen_ai_request_model) (claude:requests:rate5m{job=~\"$job\", gen_ai_request_model=~\"$model\"})",
                    "{{gen_ai_request_model}}")], "percentunit", max_=1)
    d.panel("Output tokens per call by model and mode", "Average output tokens per call, streamed or not. Large "
            "non-streamed outputs are the ones that run into the read timeout.",
            [Target(f"{output_per_call('_sum')} / {output_per_call('_count')}",
                    "{{gen_ai_request_model}} stream={{anthropic_request_stream}}")],
            "suffix: tokens")
    return d


def output_per_call(suffix: str) -> str:
    """Output-token histogram rates (_sum or _count) of both name sets, by model and stream."""
    latest = as_default_stream(f"rate({L_OUTPUT_PER_CALL}{suffix}{{{latest_matchers(SEL)}}}[$__rate_interval])")
    return (f"sum by (gen_ai_request_model, {STREAM}) (rate({TOKENS}{suffix}{sel(OUTPUT)}[$__rate_interval]) "
            f"or {latest})")


DASHBOARDS: Dict[str, Callable[[], Dash]] = {
    "claude-overview.json": overview, "claude-timeouts.json": timeouts, "claude-streaming.json": streaming}


# -- promtool unit tests -----------------------------------------------------------------------------------------
# Inputs are derived from THRESHOLDS (fire at about twice the threshold, stay silent at half of it), so the tests
# keep passing after a threshold is tuned; the expected annotations are rendered here the way Prometheus renders
# them, so any change of wording or formatting shows up.

def go_g(v: float) -> str:
    """Go's %.4g."""
    text = "%.4g" % v
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{exponent[0]}{int(exponent[1:]):02d}"
    return text


def humanize(v: float) -> str:
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return go_g(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return go_g(v) + prefix


def humanize_percentage(v: float) -> str:
    return go_g(v * 100) + "%"


def humanize_duration(v: float) -> str:
    if math.isnan(v) or math.isinf(v):
        return go_g(v)
    if v == 0:
        return "0s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        d = int(v)
        days, hours, minutes, seconds = d // 86400, (d // 3600) % 24, (d // 60) % 60, d % 60
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{go_g(v)}{prefix}s"


FORMATTERS = {"humanize": humanize, "humanizePercentage": humanize_percentage, "humanizeDuration": humanize_duration}


UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(window: str) -> int:
    """Returns the seconds of a Prometheus duration with one unit ("90s", "5m", "6h", "3d")."""
    return int(window[:-1]) * UNIT_SECONDS[window[-1]]


def minutes(window: str) -> int:
    """Returns the whole minutes of a Prometheus duration."""
    return seconds(window) // 60


TEST_LABELS = {"job": "api", "gen_ai_request_model": "claude-x", "anthropic_request_stream": "false"}
SERIES_LABELS = ('job="api", instance="api-0:9464", gen_ai_operation_name="chat", gen_ai_provider_name="anthropic", '
                 'gen_ai_request_model="claude-x", anthropic_request_stream="false", '
                 'server_address="api.anthropic.com", server_port="443"')


def series(metric: str, values: str, extra: str = "") -> dict:
    return {"series": f"{metric}{{{SERIES_LABELS}{', ' + extra if extra else ''}}}", "values": values}


def ramp(per_minute: float, steps: int) -> str:
    return f"0+{per_minute:g}x{steps}"


def histogram_series(metric: str, lo: float, hi: float, per_minute: int, steps: int) -> List[dict]:
    """Every observation in the bucket (lo, hi]: quantile q interpolates to lo + q * (hi - lo)."""
    out = []
    for bound in DURATION_BUCKETS + [math.inf]:
        le = "+Inf" if bound == math.inf else str(bound)
        out.append(series(metric + "_bucket", ramp(per_minute if bound >= hi else 0, steps), f'le="{le}"'))
    out.append(series(metric + "_count", ramp(per_minute, steps)))
    return out


def slow_bucket(threshold: float) -> Tuple[float, float]:
    """The first duration bucket lying wholly above the threshold."""
    i = next(i for i, b in enumerate(DURATION_BUCKETS) if b >= threshold)
    return DURATION_BUCKETS[i], DURATION_BUCKETS[i + 1]


def fast_bucket(threshold: float) -> Tuple[float, float]:
    """The last duration bucket lying wholly below half the threshold."""
    i = max(i for i, b in enumerate(DURATION_BUCKETS) if b <= threshold / 2)
    return DURATION_BUCKETS[i - 1], DURATION_BUCKETS[i]


def rendered_cause(alert: Alert, cause: Optional[Tuple[str, float, str]]) -> str:
    """Returns the cause annotation as Prometheus renders it for (cause, share, stream), or for no failure."""
    timeouts = alert.name.startswith("ClaudeTimeoutBudget")
    of = "timed-out" if timeouts else "failed"
    if cause is None:
        return f"none: no call {'timed-out'.split('-')[-1] if timeouts else 'failed'} in the last {CAUSE_WINDOW}"
    name, share, stream = cause
    return (f"{name} ({humanize_percentage(share)} of the {of} calls in the last {CAUSE_WINDOW}"
            f"{'' if timeouts else ', stream=' + stream})")


def alert_case(alert: Alert, firing: Optional[Tuple[float, Dict[str, str]]], inputs: List[dict],
               eval_minutes: int, kind: Optional[str] = None, cause: Optional[Tuple[str, float, str]] = None) -> dict:
    """One promtool alert test; `kind` and `cause` are what the inputs make the annotation queries find."""
    expected = []
    if firing is not None:
        value, labels = firing
        found = {"timeout_kind": kind or NO_TIMEOUT, "cause": rendered_cause(alert, cause)}

        def render(key: str, text: str) -> str:
            if "query (" in text:
                return found[key]
            if alert.fmt:
                text = text.replace("{{ $value | %s }}" % alert.fmt, FORMATTERS[alert.fmt](value))
            for name, label in labels.items():
                text = text.replace("{{ $labels.%s }}" % name, label)
                text = text.replace("{{ $labels.%s | urlquery }}" % name, urllib.parse.quote_plus(label))
            assert "{{" not in text, text
            return text

        expected.append({"exp_labels": dict(labels, severity=alert.severity),
                         "exp_annotations": {k: render(k, v) for k, v in annotations(alert).items()}})
    return {"name": f"{alert.name} {'fires' if firing else 'stays silent'}", "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [{"eval_time": f"{eval_minutes}m", "alertname": alert.name, "exp_alerts": expected}]}


def alert_cases(alert: Alert) -> List[dict]:
    """One input that must fire the alert and one that must not."""
    name, th = alert.name, _threshold_value(alert)
    wait = minutes(alert.for_) + 10
    steps = wait + 10
    requests = series(OPS + "_count", ramp(60, steps))
    cases = []
    if name in ("ClaudeRequestsNearTimeout", "ClaudeRequestsVeryNearTimeout"):
        bound = "0.8" if name == "ClaudeRequestsNearTimeout" else "0.9"
        for share in (min(0.5, 2 * th), th / 2):
            inputs = [series(ATTEMPTS + "_count", ramp(1000, steps)),
                      series(UTIL + "_count", ramp(1000, steps), f'{KIND}="read"'),
                      series(UTIL + "_bucket", ramp(1000, steps), f'{KIND}="read", le="+Inf"'),
                      series(UTIL + "_bucket", ramp(1000 * (1 - share), steps), f'{KIND}="read", le="{bound}"')]
            fires = share > th
            cases.append(alert_case(alert, (share, dict(TEST_LABELS, **{KIND: "read"})) if fires else None,
                                    inputs, wait))
    elif name.startswith("ClaudeTimeoutBudget"):
        cases.extend(burn_cases(alert))
    elif name == "ClaudeAPIErrors":
        for ratio in (min(0.5, 2 * th), th / 2):
            inputs = [requests, series(OPS + "_count", ramp(60 * ratio / (1 - ratio), steps),
                                       f'error_type="overloaded_error", {CAUSE}="api_error"')]
            labels = {"job": "api", "gen_ai_request_model": "claude-x", "error_type": "overloaded_error"}
            cases.append(alert_case(alert, (ratio, labels) if ratio > th else None, inputs, wait,
                                    cause=("api_error", 1.0, "false")))
    elif name == "ClaudeRetryStorm":
        for per_call in (2 * th, th / 2):
            inputs = [requests, series(RETRIES, ramp(60 * per_call, steps), 'anthropic_retry_reason="529"')]
            labels = {"job": "api", "gen_ai_request_model": "claude-x"}
            cases.append(alert_case(alert, (per_call, labels) if per_call > th else None, inputs, wait))
    elif name in ("ClaudeSlowFirstToken", "ClaudeSlowPrefill", "ClaudeLongStreamGaps"):
        metric, q = {"ClaudeSlowFirstToken": (TTFT, 0.95), "ClaudeSlowPrefill": (PREFILL, 0.95),
                     "ClaudeLongStreamGaps": (GAP, 0.99)}[name]
        for lo, hi in (slow_bucket(th), fast_bucket(th)):
            value = lo + q * (hi - lo)
            inputs = [requests] + histogram_series(metric, lo, hi, 60, steps)
            labels = {"job": "api", "gen_ai_request_model": "claude-x"}
            cases.append(alert_case(alert, (value, labels) if value > th else None, inputs, wait))
    elif name == "ClaudeRateLimitNearlyExhausted":
        peak = 400000
        for share in (th / 2, min(1.0, 3 * th)):
            inputs = [series(RATELIMIT, f"{peak}x60 {peak * share:g}x{wait}", 'anthropic_ratelimit_kind="tokens"')]
            labels = {"job": "api", "gen_ai_request_model": "claude-x", "anthropic_ratelimit_kind": "tokens"}
            cases.append(alert_case(alert, (share, labels) if share < th else None, inputs, 60 + wait))
    elif name == "ClaudeTelemetryAbsent":
        at = 60 + 5 + wait
        cases.append(alert_case(alert, (1.0, {"job": "api"}), [series(OPS + "_count", f"1+1x60 _x{at - 55}")], at))
        cases.append(alert_case(alert, None, [series(OPS + "_count", f"1+1x{at + 5}")], at))
    elif name == "ClaudeTelemetryDropped":
        labels = {"job": "api", "signal": "traces"}
        cases.append(alert_case(alert, (0.1, labels), [
            {"series": 'claude_otel_exporter_dropped_total{job="api", instance="api-0:9464", signal="traces"}',
             "values": ramp(6, steps)}], wait))
        cases.append(alert_case(alert, None, [
            {"series": 'claude_otel_exporter_dropped_total{job="api", instance="api-0:9464", signal="traces"}',
             "values": f"5x{steps}"}], wait))
    else:
        raise AssertionError(f"no unit test inputs for {name}: add them to alert_cases()")
    return cases


def burn_cases(alert: Alert) -> List[dict]:
    """A burn-rate alert fires at twice its burn rate (3/4 of the timeouts read timeouts, 1/4 pool timeouts) and
    stays silent at half of it, and once the timeouts have stopped for its short window (the long one still
    high): the multiwindow rule's point."""
    speed = alert.threshold.split("_")[1]
    short, burn = t(f"slo_{speed}_short"), float(t(f"slo_{speed}_burn"))
    at = minutes(short) + minutes(alert.for_) + 10
    later = at + minutes(short) + 6  # the short window (and the 5-minute rates it sums) clean again
    steps = later + 5
    labels = dict(TEST_LABELS)

    def timeouts(ratio: float, until: int) -> Tuple[List[dict], float, float]:
        # whole numbers of calls per minute: a counter that stops must stay exactly where its ramp ended
        per_minute = round(600 * ratio / (1 - ratio))
        read = round(0.75 * per_minute)
        pool = per_minute - read
        rows = []
        for cause, phase, n in (("client_read_timeout", "read", read), ("pool_timeout", "pool", pool)):
            history = f"{ramp(n, until)} {n * until}x{steps - until}" if until < steps else ramp(n, steps)
            rows.append(series(OPS + "_count", history, f'error_type="timeout", {CAUSE}="{cause}"'))
            rows.append(series(TIMEOUTS, history, f'anthropic_timeout_phase="{phase}", {CAUSE}="{cause}"'))
        return rows, per_minute / (600 + per_minute), read / per_minute

    requests = series(OPS + "_count", ramp(600, steps))
    fire, ratio, share = timeouts(min(0.5, 2 * burn * budget()), steps)
    cases = [alert_case(alert, (ratio / budget(), labels), [requests] + fire, at, kind="read",
                        cause=("client_read_timeout", share, "false"))]
    quiet, _, _ = timeouts(burn * budget() / 2, steps)
    cases.append(alert_case(alert, None, [requests] + quiet, at))
    # the long window still over the threshold, the short one clean: the timeouts stopped when it fired
    stopped, _, _ = timeouts(min(0.5, 4 * burn * budget()), at)
    cases.append(alert_case(alert, None, [requests] + stopped, later))
    return cases


def recording_rule_tests() -> dict:
    """Exact values of the recording rules on one known input (what the dashboards and alerts read)."""
    labels_b = '{anthropic_request_stream="false", gen_ai_request_model="claude-x", job="api"}'
    labels_jm = '{gen_ai_request_model="claude-x", job="api"}'
    util = [series(UTIL + "_bucket", ramp(n, 30), f'{KIND}="read", le="{le}"')
            for le, n in (("0.8", 480), ("0.9", 720), ("0.95", 780), ("+Inf", 960))]
    # per-minute counts chosen so every expected value is exact in binary floating point
    inputs = [series(OPS + "_count", ramp(90, 30)),
              series(OPS + "_count", ramp(30, 30), 'error_type="timeout"'),
              series(ATTEMPTS + "_count", ramp(120, 30)),
              series(RETRIES, ramp(30, 30), 'anthropic_retry_reason="429"'),
              series(RATELIMIT, "1000x10 250x20", 'anthropic_ratelimit_kind="requests"'),
              ] + util + histogram_series(TTFT, 1.28, 2.56, 100, 30)

    def expect(expr: str, value: float, labels: str) -> dict:
        return {"expr": expr, "eval_time": "20m",
                "exp_samples": [{"labels": (expr + labels) if ":" in expr and "{" not in expr else labels,
                                 "value": value}]}

    with_kind = labels_b[:-1] + f', {KIND}="read"}}'
    return {
        "name": "recording rules",
        "interval": "1m",
        "input_series": inputs,
        "promql_expr_test": [
            expect("claude:requests:rate5m", 2.0, labels_b),
            expect("claude:timeouts:rate5m", 0.5, labels_b),
            expect("claude:attempts:rate5m", 2.0, labels_b),
            expect("claude:timeout_ratio:rate5m", 0.25, labels_jm),
            expect("claude:timeout_ratio:rate1d", 0.25, labels_jm),
            expect("claude:retries_per_request:ratio_rate5m", 0.25, labels_jm),
            expect("claude:timeout_utilization_over_80:ratio_rate5m", 0.5, with_kind),
            expect("claude:timeout_utilization_over_90:ratio_rate5m", 0.25, with_kind),
            expect("claude:timeout_utilization_over_95:ratio_rate5m", 0.1875, with_kind),
            expect("claude:time_to_first_chunk_seconds:p95_5m", 1.28 + 0.95 * 1.28, labels_jm),
            expect("claude:ratelimit_remaining:ratio", 0.25,
                   '{anthropic_ratelimit_kind="requests", gen_ai_request_model="claude-x", job="api"}'),
        ],
    }


def unit_tests() -> dict:
    tests = [case for alert in alerts() for case in alert_cases(alert)]
    return {"rule_files": ["../rules/claude-otel.rules.yml", "../rules/claude-otel.alerts.yml"],
            "evaluation_interval": "1m", "tests": [recording_rule_tests()] + tests}


# -- README ------------------------------------------------------------------------------------------------------

README = """\
# claude-otel monitoring mixin: Grafana dashboards, Prometheus rules, alerts, runbooks

Everything an on-call engineer needs to answer, at 3 a.m. and in seconds: **are Claude calls timing out, for
which service and model, how close are the other calls to their timeouts, is it us** (prefill on huge prompts,
non-streamed long generations, a proxy idle timeout) **or them** (overload, rate limits), **and what to do**.
Styled like the kubernetes-mixin: dashboards, recording rules, alerts and runbooks side by side, generated from
one script. The incident class: `anthropic.APIConnectionError: Request timed out`.

```
grafana/
  build.py                                  generator: THRESHOLDS, RUNBOOK_BASE, DATASOURCE_UID at the top
  dashboards/claude-overview.json           Claude API / Overview
  dashboards/claude-timeouts.json           Claude API / Timeouts and headroom
  dashboards/claude-streaming.json          Claude API / Streaming
  rules/claude-otel.rules.yml               recording rules (claude:...), two groups
  rules/claude-otel.alerts.yml              Prometheus alerts (read the recording rules)
  provisioning/alerting/claude-otel-alerts.yml   the same alerts, Grafana-managed (raw series, no rules needed)
  provisioning/datasources/prometheus.yml   Prometheus (uid "prometheus") + Tempo for exemplars
  provisioning/dashboards/claude-otel.yml   file provider for the dashboards
  runbooks.md                               one section per alert
  tests/claude-otel.test.yml                promtool unit tests: every alert fires once and stays silent once
```

Everything except runbooks.md and provisioning/datasources and provisioning/dashboards is generated: edit
`build.py`, run `python grafana/build.py`, commit the output (`python grafana/build.py --check` fails when
a generated file is stale; so does `tests/test_grafana.py`).

## Metrics

The dashboards read only the metrics claude-otel exports (Prometheus names; every series has
`gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`, `server_address`, `server_port`,
`anthropic_request_stream` and, on failures, `error_type`, plus the scrape's `job` and `instance`; `job` is the
service) and the recording rules below. The Grafana variable `$job` selects services, `$model` models, `$stream`
streamed or not; `$timeout` and `$proxy_idle` are reference lines only (type your client's and proxy's values).

## Install

### Prometheus rules (Prometheus, Mimir, Thanos, Cortex)

The dashboards' ratio panels and the Prometheus alerts read the recording rules, so load both files:

```yaml
# prometheus.yml
rule_files:
  - /etc/prometheus/claude-otel/claude-otel.rules.yml
  - /etc/prometheus/claude-otel/claude-otel.alerts.yml
```

then `promtool check rules grafana/rules/*.yml` and reload Prometheus (`kill -HUP`, or
`curl -X POST :9090/-/reload` with `--web.enable-lifecycle`). Alerts go to your Alertmanager, routed on the
`severity` label (`critical` pages, `warning` tickets).

- **Grafana Mimir / Cortex ruler:** `mimirtool rules load grafana/rules/claude-otel.rules.yml
  grafana/rules/claude-otel.alerts.yml --address=<mimir> --id=<tenant>` (both files are in the standard
  Prometheus format; `mimirtool rules check` validates them).
- **Thanos Ruler:** pass `--rule-file=/etc/thanos/claude-otel/*.yml` to `thanos rule`, with `--query` pointing at
  your Thanos Query.
- **Prometheus Operator:** wrap each file's `groups:` in a `PrometheusRule` object (`spec.groups`).
- The rule groups set no `interval`: they run at your global `evaluation_interval` (1m is typical).

### Dashboards in the Grafana UI

Dashboards › New › Import › upload each `dashboards/*.json`, pick your Prometheus data source for
`datasource`. The dashboards link to each other (top right) and to the runbooks; keep their uids
(`claude-overview`, `claude-timeouts`, `claude-streaming`) so the links work.

### Provisioning (Grafana container, Kubernetes)

`grafana/` drops into a Grafana 11 container as is:

```sh
docker run -p 3000:3000 \\
  -v $PWD/grafana/provisioning/datasources:/etc/grafana/provisioning/datasources \\
  -v $PWD/grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards \\
  -v $PWD/grafana/provisioning/alerting:/etc/grafana/provisioning/alerting \\
  -v $PWD/grafana/dashboards:/var/lib/grafana/dashboards/claude-otel \\
  grafana/grafana:11.6.0
```

- `provisioning/datasources/prometheus.yml` creates the Prometheus data source (uid `prometheus`, URL
  `http://prometheus:9090`) with exemplars linking `trace_id` to a Tempo data source (uid `tempo`,
  `http://tempo:3200`). Change the URLs to yours; to use Jaeger, change the second data source's `type` to
  `jaeger` and keep its uid. If you already have a Prometheus data source, drop this file and set
  `DATASOURCE_UID` in build.py to its uid (Grafana also expands environment variables there, e.g.
  `${PROMETHEUS_DS_UID}`), then regenerate.
- `provisioning/dashboards/claude-otel.yml` is a file provider that loads every JSON file in
  `/var/lib/grafana/dashboards/claude-otel` into the folder "claude-otel": mount `grafana/dashboards` there
  (Kubernetes: a ConfigMap volume at that path, or the Grafana Helm chart's `dashboardProviders` +
  `dashboardsConfigMaps`).
- `provisioning/alerting/claude-otel-alerts.yml` holds the same alerts as **Grafana-managed** rules (folder
  "claude-otel", group "claude-otel", every 1m). Use either these or the Prometheus alerts, not both, or you
  are notified twice. The Grafana-managed rules query the raw series (query A is the alert's value, B reduces it
  to its last value, C is the threshold), so they work without the recording rules; each is attached to its
  dashboard panel. Their annotations use Grafana's `{{ $values.B.Value }}`; Grafana does not expand environment
  variables in annotations, so the templates arrive intact. Route them with a notification policy on
  `severity`.

### Runbook and dashboard links

Every alert's `runbook_url` is `<runbook base URL>#<alert name in lower case>` and its `dashboard_url` is
`<Grafana URL>/d/<uid>?var-job=...&var-model=...` (and `&var-stream=...`). The defaults are `CONFIG` at the top
of `build.py` (now `{runbook_base}` and `{grafana_url}`). Point them at your copy of `runbooks.md` and your
Grafana, then regenerate:

```sh
python grafana/build.py --runbook-base-url https://git.example.com/ops/claude-otel/blob/main/grafana/runbooks.md \\
                        --grafana-url https://grafana.example.com
```

(or set `CLAUDE_OTEL_RUNBOOK_BASE_URL` and `CLAUDE_OTEL_GRAFANA_URL`; pass the same to `--check`, or change
`CONFIG` so the committed files and `--check` agree).

## Alerts

| Alert | Severity | Fires when | For |
| --- | --- | --- | --- |
{alert_table}

Ratio and latency alerts stay silent below `min_request_rate` ({min_rate} calls/s for the job and model) so a
handful of calls cannot page.

### The timeout SLO and its burn-rate alerts

The SLO: {slo_target} of the calls of each job, model and stream (streamed or not) do not end in a timeout
(`error_type="timeout"`: the SDK's `APITimeoutError`, whatever the phase, pool timeouts included), over 30 days.
The error budget is the rest ({budget}). Three multiwindow, multi-burn-rate alerts watch it, as in the Google SRE
workbook (chapter "Alerting on SLOs"): each fires when the budget burns faster than its rate over both a long and
a short window; the short window makes it stop soon after the timeouts do.

| Alert | Severity | Burn rate | Windows | Timeout ratio | Budget spent |
| --- | --- | --- | --- | --- | --- |
{burn_table}

The ratios are recorded per window (`claude:slo_timeout_ratio:rate<window>`), summed from
`claude:calls_by_outcome:rate5m` (numerator and denominator from the same rule, so always over the same samples).
Tune `slo_target`, the burn rates and windows in THRESHOLDS.

Proxy idle cuts (`anthropic.failure.cause` `proxy_idle_cut`) surface as `connection_error`, not timeouts, and
count against ClaudeAPIErrors, not the SLO: they are fixed at the proxy, and the page names the client timeout it
is about.

**ClaudeTimeoutSpike was removed.** It paged when the timeout ratio passed 5% *and* 3x its 1-day average. The
relative condition is what made it wrong: a service that times out from its first day never reaches 3x its own
average, so it never paged, and a quiet service's first few timeouts did. Everything it caught that matters, the
burn-rate alerts catch: a burst above 14.4% pages within minutes (fast burn), a sustained 6% within the hour (slow
burn), and a ratio above 1% for days opens a ticket. The bursts it alone caught (5-6% for a few minutes) spend
well under 1% of a month's budget: not worth a page.

### What every alert says

Every Prometheus alert has the same annotations: `summary`, `description`, `service` (the job), `model`,
`stream` (streamed or not; "any" for alerts per job and model), `timeout_kind` (the alert's
`anthropic_timeout_kind`, else the phase of most timed-out attempts in the last 5 minutes), `cause` (the dominant
`anthropic.failure.cause` of the last hour and its share: among timed-out calls for the burn-rate alerts, among
all failed calls otherwise), `threshold`, `dashboard_url` and `runbook_url`. `timeout_kind` and `cause` are
queried when the alert fires (`query` in the annotation template, reading
`claude:timeout_cause:share_rate1h`, `claude:failure_cause:share_rate1h` and `claude:attempt_timeouts:rate5m`), so
a changing cause does not restart the alert. Grafana-managed twins carry the same keys, but Grafana templates
cannot query: their `timeout_kind` and `cause` point at the dashboard.

`examples/alertmanager/alertmanager.yml` routes these alerts: `critical` pages, `warning` tickets, grouped by job
and model, and a page inhibits the warnings of the same job and model.

### Time-scaled rules (for a fire drill)

`python grafana/build.py --time-scale 60 --out DIR` writes the recording rules and alerts with every window and
`for` divided by 60 (a 1 h burn window lasts 60 s, a 15 m `for` 15 s; thresholds unchanged), so a local Prometheus
scraping every second plays an incident in minutes. A `claude-otel drill` command driving the simulator through
such an incident is planned, not yet written. Every alert has a promtool unit test that fires it and one that keeps it silent
(`grafana/tests/`), and `tests/test_grafana.py` checks on a realistic workload that each fires exactly where
expected, and that its Grafana-managed twin agrees.

## Thresholds and windows

All in the `THRESHOLDS` table at the top of `build.py`; the alerts, the Grafana-managed alerts, the dashboards'
threshold lines and the unit tests' inputs follow it.

| Name | Value | Meaning |
| --- | --- | --- |
{threshold_table}

## Dashboards and what each panel answers

Ratio panels read the recording rules (the same numbers the alerts evaluate); latency panels read the raw
histograms over `$__rate_interval` with exemplars on, so a slow point opens its trace. Threshold lines sit at the
alert levels.

{panel_lists}

## Recording rules

| Rule | What it is |
| --- | --- |
{rule_table}

Group `claude-otel.rules` aggregates the raw series (dropping `instance` and the other labels) by `job`,
`gen_ai_request_model` and `anthropic_request_stream`; group `claude-otel.ratios` computes ratios and quantiles
by `job` and `gen_ai_request_model` from those. Timeout-utilization shares compare bucket `le="0.8"`, `"0.9"`,
`"0.95"` with `le="+Inf"`: never an integer bound, which exporters write as `1` or `1.0`.

## Tests

`.venv/bin/python -m pytest tests/test_grafana.py -q` (about 50 s): the generated files are up to date;
`promtool check rules` and `promtool test rules`; every alert has a firing and a silent unit test; every PromQL
expression (rules, Grafana-managed alerts, dashboards, variables) parses with `promql-parser` and uses only the
metric contract and the recording rules; dashboards are complete (units, descriptions, thresholds at the alert
levels, exemplars, links) and round-trip through `grafana-foundation-sdk`'s Grafana 11.6 models; the runbooks
name real panels. Then a real Prometheus (`tests/prometheus_harness.py`) is given a synthetic 90-minute workload
by backfilling OpenMetrics text (`promtool tsdb create-blocks-from openmetrics`, then the recording rules with
`promtool tsdb create-blocks-from rules`), and every dashboard, recording-rule and alert expression must return
data, every alert fire exactly for the job and model the workload breaks, and values match the workload; finally
`claude-otel demo` is scraped live with the rules loaded and every query must return data again.
"""


def readme(models: Dict[str, dict]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    fires_when = {
        "ClaudeRequestsNearTimeout": f"more than {t('near_timeout_80_share'):.0%} of a job's attempts to a model "
                                     "(per streamed/not and timeout kind: read, connect, proxy_idle) used over 80% "
                                     "of their timeout",
        "ClaudeRequestsVeryNearTimeout": f"more than {t('near_timeout_90_share'):.0%} of them used over 90%",
        **{a.name: f"the timeout ratio of a job, model and stream burns the error budget of the "
                   f"{float(t('slo_target')):.1%} SLO faster than {a.threshold_text.split(' (')[0]}"
           for a in slo_burn_alerts()},
        "ClaudeAPIErrors": f"more than {t('error_ratio'):.0%} of calls fail with one non-timeout error type "
                           "(overloaded_error, rate_limit_error, 5xx, connection_error...)",
        "ClaudeRetryStorm": f"more than {t('retries_per_call'):g} retries per call",
        "ClaudeSlowFirstToken": f"p95 time to first token above {t('ttft_p95_seconds'):g} s",
        "ClaudeSlowPrefill": f"p95 prefill above {t('prefill_p95_seconds'):g} s",
        "ClaudeLongStreamGaps": f"p99 longest gap inside streams above {t('stream_gap_p99_seconds'):g} s",
        "ClaudeRateLimitNearlyExhausted": f"remaining requests/tokens below {t('ratelimit_remaining_ratio'):.0%} "
                                          "of the day's peak",
        "ClaudeTelemetryAbsent": "a job that sent call metrics in the last day sends none",
        "ClaudeTelemetryDropped": "claude-otel drops telemetry",
    }
    alert_rows = []
    for a in alerts():
        condition = fires_when[a.name]
        alert_rows.append(f"| [{a.name}](runbooks.md#{a.anchor}) | {a.severity} | {cell(condition)} | {a.for_} |")
    threshold_rows = [f"| `{name}` | {value} | {cell(meaning)} |" for name, (value, meaning) in THRESHOLDS.items()]
    lists = []
    for model in models.values():
        lists.append(f"### {model['title']} (`/d/{model['uid']}`)\n\n{model['description']}\n")
        for p in model["panels"]:
            if p["type"] == "row":
                lists.append(f"\n*{p['title']}*\n")
            elif p["type"] == "text":
                lists.append(f"- **{p['title']}** (text): a triage guide linking the other dashboards and the runbooks.")
            else:
                lists.append(f"- **{p['title']}** ({p['fieldConfig']['defaults']['unit']}): {p['description']}")
        lists.append("")
    meanings = {
        "claude:requests:rate5m": "calls per second", "claude:errors:rate5m": "failed calls per second by error_type",
        "claude:timeouts:rate5m": "calls that ended in a timeout, per second",
        "claude:attempts:rate5m": "HTTP attempts per second",
        "claude:attempt_timeouts:rate5m": "timed-out attempts per second by phase",
        "claude:retries:rate5m": "retries per second by reason",
        "claude:retry_backoff_seconds:rate5m": "seconds of backoff per second by reason",
        "claude:tokens:rate5m": "tokens per second by type",
        "claude:ratelimit_remaining:ratio": "remaining rate limit / highest remaining value of the last day",
        "claude:timeout_ratio:rate5m": "share of calls that timed out, by job and model",
        "claude:timeout_ratio:rate1d": "the same over the last day, traffic-weighted",
        CALLS: "calls per second by outcome (error_type, empty on success) and anthropic_failure_cause, stream kept",
        **{slo_ratio(w): f"share of calls that timed out over {w}, by job, model and stream (the burn-rate "
                         "alerts divide it by the error budget)" for w in slo_windows()},
        f"claude:timeout_cause:share_rate{CAUSE_WINDOW}": "share of each anthropic_failure_cause among the timed-out "
                                                          f"calls of a job, model and stream over {CAUSE_WINDOW} "
                                                          "(the burn-rate alerts' cause annotation)",
        f"claude:failure_cause:share_rate{CAUSE_WINDOW}": "share of each anthropic_failure_cause (and stream) among "
                                                          f"the failed calls of a job and model over {CAUSE_WINDOW} "
                                                          "(the other alerts' cause annotation)",
        "claude:error_ratio:rate5m": "share of calls failing, per error type other than timeout and cancelled",
        "claude:retries_per_request:ratio_rate5m": "retries per call",
    }
    rule_rows = []
    for group in recording_groups():
        for r in group["rules"]:
            name = r["record"]
            meaning = meanings.get(name)
            if meaning is None and name.endswith("_bucket:rate5m"):
                meaning = "bucket rates of the histogram, for quantiles and shares"
            elif meaning is None and ":timeout_utilization_over_" in name:
                pct = name.split("_over_")[1].split(":")[0]
                meaning = (f"share of attempts that used more than {pct}% of their timeout, by stream and "
                           "timeout kind")
            elif meaning is None:
                meaning = f"{name.rsplit(':', 1)[1].split('_')[0]} of the histogram, by job and model"
            rule_rows.append(f"| `{name}` | {meaning} |")
    text = README
    burn_rows = []
    for a in slo_burn_alerts():
        speed = a.threshold.split("_")[1]
        burn, long, short = float(t(f"slo_{speed}_burn")), t(f"slo_{speed}_long"), t(f"slo_{speed}_short")
        spent = burn * seconds(long) / (30 * 86400)
        burn_rows.append(f"| {a.name} | {a.severity} | {burn:g}x | {long} and {short} | above "
                         f"{burn * budget():.2%} | {spent:.0%} of 30 days' budget in {long} |")
    for key, value in (("runbook_base", RUNBOOK_BASE), ("grafana_url", GRAFANA_URL),
                       ("slo_target", f"{float(t('slo_target')):.2%}"), ("budget", f"{budget():.2%}"),
                       ("burn_table", "\n".join(burn_rows)), ("alert_table", "\n".join(alert_rows)),
                       ("min_rate", f"{t('min_request_rate'):g}"), ("threshold_table", "\n".join(threshold_rows)),
                       ("panel_lists", "\n".join(lists).rstrip()), ("rule_table", "\n".join(rule_rows))):
        text = text.replace("{" + key + "}", value)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


# -- output ------------------------------------------------------------------------------------------------------

HEADER = "# Generated by grafana/build.py (thresholds: its THRESHOLDS table). Edit there, then run it.\n"


def dump_yaml(data: dict) -> str:
    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return yaml.dump(data, Dumper=Dumper, sort_keys=False, width=100000, allow_unicode=True)


def panel_ids(models: Dict[str, dict]) -> Dict[Tuple[str, str], int]:
    return {(m["uid"], p["title"]): p["id"] for m in models.values() for p in m["panels"]}


def outputs() -> Dict[str, str]:
    """Returns {path relative to grafana/: text} for everything this script generates."""
    models = {name: build().model() for name, build in DASHBOARDS.items()}
    files = {
        "rules/claude-otel.rules.yml": HEADER + dump_yaml({"groups": recording_groups()}),
        "rules/claude-otel.alerts.yml": HEADER + dump_yaml(
            {"groups": [{"name": "claude-otel.alerts", "rules": alert_rules()}]}),
        "provisioning/alerting/claude-otel-alerts.yml": HEADER + dump_yaml(grafana_alerting(panel_ids(models))),
        "tests/claude-otel.test.yml": HEADER + dump_yaml(unit_tests()),
    }
    for name, model in models.items():
        files[f"dashboards/{name}"] = json.dumps(model, indent=2, ensure_ascii=False) + "\n"
    files["README.md"] = readme(models)
    return files


HERE = os.path.dirname(os.path.abspath(__file__))


# -- time-scaled rules (claude-otel drill) -------------------------------------------------------------------------

DURATION = re.compile(r"\[(\d+)([smhdw])\]")


def scaled_duration(window: str, factor: float) -> str:
    """Returns a Prometheus duration divided by factor, in whole seconds (at least 1s): "15m" / 60 -> "15s"."""
    return f"{max(1, round(seconds(window) / factor))}s"


def time_scaled(groups: List[dict], factor: float) -> List[dict]:
    """Returns rule groups with every range window ([5m]), `for` and duration in a template divided by factor.

    The drill runs an incident in minutes: its Prometheus loads the rules generated from the same THRESHOLDS
    with windows scaled (a 1 h burn-rate window of 60 s at factor 60). Thresholds and ratios are unchanged;
    rule names and annotation text still say "5m", "1h"."""
    def scale(text: str) -> str:
        return DURATION.sub(lambda m: "[" + scaled_duration(m.group(1) + m.group(2), factor) + "]", text)

    out = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            rule = dict(rule, expr=scale(rule["expr"]))
            if "for" in rule:
                rule["for"] = scaled_duration(rule["for"], factor)
            if "annotations" in rule:
                rule["annotations"] = {k: scale(v) for k, v in rule["annotations"].items()}
            rules.append(rule)
        out.append(dict(group, rules=rules))
    return out


def scaled_rule_files(factor: float) -> Dict[str, str]:
    """Returns {file name: text} of the recording rules and alerts with windows divided by factor."""
    note = f"# Time-scaled for claude-otel drill: every window and `for` divided by {factor:g}.\n"
    return {
        "claude-otel.rules.yml": HEADER + note + dump_yaml({"groups": time_scaled(recording_groups(), factor)}),
        "claude-otel.alerts.yml": HEADER + note + dump_yaml(
            {"groups": time_scaled([{"name": "claude-otel.alerts", "rules": alert_rules()}], factor)}),
    }


def configure(runbook_base_url: Optional[str] = None, grafana_url: Optional[str] = None) -> None:
    """Points every generated link at these URLs (None: keep CONFIG's, or the environment's)."""
    global RUNBOOK_BASE, GRAFANA_URL, TRIAGE
    before = RUNBOOK_BASE
    RUNBOOK_BASE = (runbook_base_url or os.environ.get("CLAUDE_OTEL_RUNBOOK_BASE_URL")
                    or CONFIG["runbook_base_url"]).rstrip("#")
    TRIAGE = TRIAGE.replace(f"]({before})", f"]({RUNBOOK_BASE})")  # written at import time
    GRAFANA_URL = (grafana_url or os.environ.get("CLAUDE_OTEL_GRAFANA_URL") or CONFIG["grafana_url"]).rstrip("/")


def main(argv: Sequence[str]) -> int:
    """Writes (or with --check compares) every generated file; returns the exit code."""
    import argparse

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
    stale = []
    for path, text in outputs().items():
        full = os.path.join(HERE, path)
        current = open(full).read() if os.path.exists(full) else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
            print("wrote grafana/" + path)
    if args.check and stale:
        print("out of date (run python grafana/build.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
