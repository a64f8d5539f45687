"""Recording rules: aggregates of the raw series, then ratios and quantiles, then the timeout SLO's ratios per
burn-rate window (what the alerts and dashboards read)."""

from __future__ import annotations

from typing import List

from .config import threshold
from .promql import (ATTEMPTS, BACKOFF, CAUSE, FAILED, GAP, JM, KIND, LATEST_OF, OPS, PREFILL, RATELIMIT, RETRIES,
                     TIMED_OUT, TIMEOUTS, TOKENS, TTFT, UTIL, B, both_buckets, both_rate, by, latest_tokens,
                     quantile_of, ratio_or_zero, raw_rate, recorded, seconds, share_above)

# recorded bucket rates: short name -> (source histogram, extra labels kept)
HISTOGRAMS = {
    "operation_duration_seconds": (OPS, ""),
    "attempt_duration_seconds": (ATTEMPTS, ""),
    "time_to_first_chunk_seconds": (TTFT, ""),
    "prefill_duration_seconds": (PREFILL, ""),
    "stream_max_gap_seconds": (GAP, ""),
    "timeout_utilization": (UTIL, KIND),
}


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

# Calls per second by outcome: error_type "" (success) or the failure's, and its cause. The SLO ratios take both
# numerator and denominator from this one rule, so they always sum the same evaluations' samples (a rule of
# another group runs at another moment, and a 5-minute window would then hold one sample more on one side).
CALLS = "claude:calls_by_outcome:rate5m"
CAUSE_WINDOW = "1h"  # the window the annotations' dominant cause is taken over


def slo_windows() -> List[str]:
    """Returns the burn-rate alerts' windows, shortest first ("5m", "30m", "1h", "6h", "3d")."""
    found = {threshold(f"slo_{speed}_{length}") for speed in ("fast", "slow", "ticket") for length in ("long", "short")}
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

