"""Recording rules: aggregates of the raw series, then ratios and quantiles, then the timeout SLO's ratios per
burn-rate window (what the alerts and dashboards read)."""

from __future__ import annotations

from typing import List, Tuple

from .config import burn_rate_alert
from .promql import (ATTEMPTS, BACKOFF, CAUSE, FAILED, GAP, JOB_MODEL, JOB_MODEL_STREAM, KIND, OPS, PREFILL,
                     RATELIMIT_SHARE, RETRIES, TIMED_OUT, TIMEOUTS, TOKENS, TTFT, UTIL, bucket_rates, both_rate, by,
                     latest_tokens, quantile_of, ratio_or_zero, raw_rate, recorded, seconds, share_above)

# recorded bucket rates: short name -> (source histogram, extra labels kept)
HISTOGRAMS = {
    "operation_duration_seconds": (OPS, ""),
    "attempt_duration_seconds": (ATTEMPTS, ""),
    "time_to_first_chunk_seconds": (TTFT, ""),
    "prefill_duration_seconds": (PREFILL, ""),
    "stream_max_gap_seconds": (GAP, ""),
    "timeout_utilization": (UTIL, KIND),
}


def rule_group(name: str, rules: List[Tuple[str, str]]) -> dict:
    """Returns a rule group recording each (name, expression) of `rules`."""
    return {"name": name, "rules": [{"record": record, "expr": expr} for record, expr in rules]}


def recording_groups() -> List[dict]:
    """Returns every recording rule group: aggregates of the raw series, ratios and quantiles, then the SLO's."""
    level1 = [
        ("claude:requests:rate5m", f"sum by ({JOB_MODEL_STREAM}) ({both_rate(OPS, '_count')})"),
        ("claude:errors:rate5m", f"sum by ({JOB_MODEL_STREAM}, error_type) ({both_rate(OPS, '_count', FAILED)})"),
        ("claude:timeouts:rate5m", f"sum by ({JOB_MODEL_STREAM}) ({both_rate(OPS, '_count', TIMED_OUT)})"),
        ("claude:attempts:rate5m", f"sum by ({JOB_MODEL_STREAM}) ({raw_rate(ATTEMPTS + '_count')})"),
        ("claude:attempt_timeouts:rate5m",
         f"sum by ({JOB_MODEL_STREAM}, anthropic_timeout_phase) ({raw_rate(TIMEOUTS)})"),
        ("claude:retries:rate5m", f"sum by ({JOB_MODEL_STREAM}, anthropic_retry_reason) ({raw_rate(RETRIES)})"),
        ("claude:retry_backoff_seconds:rate5m",
         f"sum by ({JOB_MODEL_STREAM}, anthropic_retry_reason) ({raw_rate(BACKOFF + '_sum')})"),
        ("claude:tokens:rate5m",
         f"sum by ({JOB_MODEL_STREAM}, gen_ai_token_type) ({raw_rate(TOKENS + '_sum')} or {latest_tokens()})"),
    ]
    for short, (metric, extra) in HISTOGRAMS.items():
        level1.append((f"claude:{short}_bucket:rate5m",
                       f"sum by ({by(JOB_MODEL_STREAM, extra)}, le) ({bucket_rates(metric)})"))
    level1.append(("claude:ratelimit_remaining:ratio", RATELIMIT_SHARE))
    calls = f"sum by ({JOB_MODEL}) (claude:requests:rate5m)"

    def util_buckets(matcher: str) -> str:
        """Returns the recorded timeout-utilization bucket rates matching `matcher`."""
        return recorded("claude:timeout_utilization_bucket:rate5m", matcher)

    level2 = [
        ("claude:timeout_ratio:rate5m", ratio_or_zero(f"sum by ({JOB_MODEL}) (claude:timeouts:rate5m)", calls)),
        ("claude:timeout_ratio:rate1d", ratio_or_zero(
            f"sum by ({JOB_MODEL}) (sum_over_time(claude:timeouts:rate5m[1d]))",
            f"sum by ({JOB_MODEL}) (sum_over_time(claude:requests:rate5m[1d]))")),
        ("claude:error_ratio:rate5m",
         f"sum by ({JOB_MODEL}, error_type) (claude:errors:rate5m{{error_type!~\"timeout|cancelled\"}}) "
         f"/ on ({JOB_MODEL}) group_left {calls}"),
        ("claude:retries_per_request:ratio_rate5m",
         ratio_or_zero(f"sum by ({JOB_MODEL}) (claude:retries:rate5m)", calls)),
    ]
    for bound, name in (("0.8", "80"), ("0.9", "90"), ("0.95", "95")):
        level2.append((f"claude:timeout_utilization_over_{name}:ratio_rate5m",
                       share_above(bound, util_buckets, by(JOB_MODEL_STREAM, KIND), JOB_MODEL_STREAM)))
    for q in (0.5, 0.95, 0.99):
        level2.append((f"claude:operation_duration_seconds:p{int(q * 100)}_5m",
                       quantile_of(q, "claude:operation_duration_seconds_bucket:rate5m", JOB_MODEL)))
    for short in ("time_to_first_chunk_seconds", "prefill_duration_seconds", "stream_max_gap_seconds"):
        for q in (0.95, 0.99):
            level2.append((f"claude:{short}:p{int(q * 100)}_5m",
                           quantile_of(q, f"claude:{short}_bucket:rate5m", JOB_MODEL)))
    level2.append(("claude:timeout_utilization:p99_5m",
                   quantile_of(0.99, "claude:timeout_utilization_bucket:rate5m", by(JOB_MODEL, KIND))))
    return [rule_group("claude-otel.rules", level1), rule_group("claude-otel.ratios", level2)] + slo_groups()


# -- SLO: calls that do not time out -----------------------------------------------------------------------------

# Calls per second by outcome: error_type "" (success) or the failure's, and its cause. The SLO ratios take both
# numerator and denominator from this one rule, so they always sum the same evaluations' samples (a rule of
# another group runs at another moment, and a 5-minute window would then hold one sample more on one side).
CALLS = "claude:calls_by_outcome:rate5m"
CAUSE_WINDOW = "1h"  # the window the annotations' dominant cause is taken over


def slo_windows() -> List[str]:
    """Returns the burn-rate alerts' windows, shortest first ("5m", "30m", "1h", "6h", "3d")."""
    found = {window for speed in ("fast", "slow", "ticket") for window in burn_rate_alert(speed)[:2]}
    return sorted(found, key=seconds)


def slo_ratio(window: str) -> str:
    """Returns the name of the recorded timeout ratio over `window`."""
    return f"claude:slo_timeout_ratio:rate{window}"


def slo_groups() -> List[dict]:
    """Returns the SLO's groups: calls by outcome, then the timeout ratio per burn-rate window and causes' shares."""
    # Ratios over long windows sum the 5-minute rates recorded every evaluation (numerator and denominator alike),
    # so a 3-day ratio costs one sample per evaluation, not 3 days of raw points.
    level1 = [(CALLS, f"sum by ({JOB_MODEL_STREAM}, error_type, {CAUSE}) ({both_rate(OPS, '_count')})")]
    level2 = []
    for window in slo_windows():
        bad, total = f"{CALLS}{{{TIMED_OUT}}}", CALLS
        if window != "5m":  # the recorded rate already covers 5 minutes
            bad, total = f"sum_over_time({bad}[{window}])", f"sum_over_time({total}[{window}])"
        level2.append((slo_ratio(window), ratio_or_zero(f"sum by ({JOB_MODEL_STREAM}) ({bad})",
                                                        f"sum by ({JOB_MODEL_STREAM}) ({total})")))
    for name, matcher, total_group in (("timeout", TIMED_OUT, JOB_MODEL_STREAM), ("failure", FAILED, JOB_MODEL)):
        failures = f"sum_over_time({CALLS}{{{matcher}}}[{CAUSE_WINDOW}])"
        level2.append((f"claude:{name}_cause:share_rate{CAUSE_WINDOW}",
                       f"sum by ({JOB_MODEL_STREAM}, {CAUSE}) ({failures}) / on ({total_group}) group_left "
                       f"sum by ({total_group}) ({failures})"))
    return [rule_group("claude-otel.slo.rules", level1), rule_group("claude-otel.slo.ratios", level2)]

