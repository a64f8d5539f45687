"""PromQL building blocks: the Prometheus names of claude-otel's metrics (from claude_otel.semconv), the label
sets rules group by, and expression helpers, including reading both gen_ai.* name sets at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

try:
    from claude_otel import semconv
except ImportError:  # `python grafana/build.py` from a checkout where claude-otel is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from claude_otel import semconv

JOB_MODEL = "job, gen_ai_request_model"  # what the alerts group by: the service and the model
# what recording rules keep (dashboards filter on it)
JOB_MODEL_STREAM = "job, gen_ai_request_model, anthropic_request_stream"
FAILED = 'error_type!=""'
TIMED_OUT = 'error_type="timeout"'
API_ERROR = 'error_type!~"|timeout|cancelled"'  # failures other than our timeouts and cancellations
KIND = "anthropic_timeout_kind"
CAUSE = "anthropic_failure_cause"


# As the OpenTelemetry-to-Prometheus rules (and claude-otel's exporter) write names: dots to underscores, unit "s"
# adds _seconds, counters add _total.
def prom(name: str, unit: str = "", counter: bool = False) -> str:
    """Returns the Prometheus name of an OpenTelemetry instrument."""
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

# remaining rate limit as a share of the highest remaining value of the last day (about the limit)
RATELIMIT_SHARE = (f"min by ({JOB_MODEL}, anthropic_ratelimit_kind) ({RATELIMIT}) / max by ({JOB_MODEL}, "
                   f"anthropic_ratelimit_kind) (max_over_time({RATELIMIT}[1d]))")


def by(*parts: str) -> str:
    """Returns the non-empty label lists (or matchers) joined by commas."""
    return ", ".join(p for p in parts if p)


def ratio_or_zero(numerator: str, denominator: str) -> str:
    """Returns numerator / denominator, 0 where the numerator has no series (no timeouts yet is a ratio of 0)."""
    return f"({numerator} or {denominator} * 0) / {denominator}"


def quantile_of(q: float, buckets: str, group: str) -> str:
    """Returns the q-quantile, per `group`, of the bucket rates `buckets`."""
    return f"histogram_quantile({q}, sum by ({group}, le) ({buckets}))"


def share_above(bound: str, buckets: Callable[[str], str], group: str, total_group: str) -> str:
    """Returns the share of observations above `bound` per `group`, out of all observations per `total_group`."""
    # `bound` is a non-integer bucket bound ("0.8"): exporters write integer ones as "1" or "1.0".
    # `total_group` is a subset of `group`; `buckets(matcher)` returns a bucket-rate selector.
    everything, below = buckets('le="+Inf"'), buckets(f'le="{bound}"')
    return (f"(sum by ({group}) ({everything}) - sum by ({group}) ({below}))"
            f" / on ({total_group}) group_left sum by ({total_group}) ({everything})")


def raw_rate(metric: str, matchers: str = "", window: str = "5m") -> str:
    """Returns rate(metric{matchers}[window])."""
    return f"rate({metric}{{{matchers}}}[{window}])" if matchers else f"rate({metric}[{window}])"


def recorded(name: str, matchers: str = "") -> str:
    """Returns a recorded series' selector, with `matchers` if any."""
    return f"{name}{{{matchers}}}" if matchers else name


# -- both name sets ----------------------------------------------------------------------------------------------
# A fleet may emit today's gen_ai.* names, the latest conventions' (claude-otel opted in, or the official
# OpenTelemetry GenAI instrumentation), or both (a migration). Per series, `a or b` keeps every series of both:
# claude-otel's default series carry anthropic_request_stream, latest ones gen_ai_request_stream (or neither), so
# their label sets never collide, and the sum over them adds the fleet's halves.

LATEST_OF = {OPS: L_OPS, TTFT: L_TTFT}  # default duration histogram -> its latest counterpart (same bounds + 3)


def as_default_stream(expr: str) -> str:
    """Returns expr with the latest set's gen_ai_request_stream copied into anthropic_request_stream."""
    # anthropic_request_stream is what recorded series and dashboards group and filter by; absent stays absent.
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
    """Returns the per-series bucket rates of a gen_ai.* duration histogram in either name set."""
    # The latest set's spec buckets stop at 81.92 s, so its +Inf count stands in for the default's 163.84, 327.68
    # and 655.36 s buckets: cumulative counts stay monotonic, and quantiles exact below 81.92 s.
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


def bucket_rates(metric: str, matchers: str = "", window: str = "5m") -> str:
    """Returns the per-series bucket rates of a histogram, a gen_ai.* duration histogram in either name set."""
    if metric in LATEST_OF:
        return both_buckets(metric, matchers, window)
    return raw_rate(metric + "_bucket", matchers, window)


def latest_tokens(window: str = "5m") -> str:
    """Returns the latest set's usage counters as per-series rates by today's gen_ai_token_type."""
    # input without cached tokens (the latest input count includes them), output, cache_read, and cache_write as
    # cache_creation
    def typed(expr: str, kind: str) -> str:
        """Returns expr labelled gen_ai_token_type=kind, its stream label renamed."""
        return as_default_stream(f'label_replace({expr}, "gen_ai_token_type", "{kind}", "", "")')

    inputs = raw_rate(L_INPUT, window=window)
    zero = f"{inputs} * 0"  # an instrumentation without cache counters has no cached tokens
    uncached = (f"{inputs} - ({raw_rate(L_CACHE_READ, window=window)} or {zero}) - "
                f"({raw_rate(L_CACHE_WRITE, window=window)} or {zero})")
    return " or ".join([typed(uncached, "input"), typed(raw_rate(L_OUTPUT, window=window), "output"),
                        typed(raw_rate(L_CACHE_READ, window=window), "cache_read"),
                        typed(raw_rate(L_CACHE_WRITE, window=window), "cache_creation")])



UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(window: str) -> int:
    """Returns the seconds of a Prometheus duration with one unit ("90s", "5m", "6h", "3d")."""
    return int(window[:-1]) * UNIT_SECONDS[window[-1]]


def minutes(window: str) -> int:
    """Returns the whole minutes of a Prometheus duration."""
    return seconds(window) // 60

