"""The promtool unit tests (grafana/tests/claude-otel.test.yml): exact values of the recording rules, and for
every alert an input that fires it, with its annotations rendered as Prometheus renders them, and one that does not."""

from __future__ import annotations

import math
import urllib.parse
from typing import Dict, List, Optional, Tuple

from .alerts import NO_TIMEOUT, Alert, alerts, annotations, threshold_value
from .config import budget, burn_rate_alert
from .promql import (ATTEMPTS, CAUSE, DURATION_BUCKETS, GAP, KIND, OPS, PREFILL, RATELIMIT, RETRIES, TIMEOUTS, TTFT,
                     UTIL, minutes)
from .recording import CAUSE_WINDOW

# Inputs are derived from THRESHOLDS (fire at about twice the threshold, stay silent at half of it), so the tests
# keep passing after a threshold is tuned; the expected annotations are rendered here the way Prometheus renders
# them, so any change of wording or formatting shows up.


def go_g(v: float) -> str:
    """Returns v formatted as Go's %.4g (two-digit exponents)."""
    text = "%.4g" % v
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{exponent[0]}{int(exponent[1:]):02d}"
    return text


def small_prefix(v: float) -> Tuple[float, str]:
    """Returns (v scaled into [1, 1000), its SI prefix) for 0 < |v| < 1, as Prometheus' humanize functions do."""
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return v, prefix


def humanize(v: float) -> str:
    """Returns v as Prometheus' template function humanize writes it."""
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix, v = p, v / 1000
        return go_g(v) + prefix
    v, prefix = small_prefix(v)
    return go_g(v) + prefix


def humanize_percentage(v: float) -> str:
    """Returns v as Prometheus' humanizePercentage writes it."""
    return go_g(v * 100) + "%"


def humanize_duration(v: float) -> str:
    """Returns v (seconds) as Prometheus' humanizeDuration writes it."""
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
    v, prefix = small_prefix(v)
    return f"{go_g(v)}{prefix}s"


FORMATTERS = {"humanize": humanize, "humanizePercentage": humanize_percentage, "humanizeDuration": humanize_duration}

TEST_LABELS = {"job": "api", "gen_ai_request_model": "claude-x", "anthropic_request_stream": "false"}
SERIES_LABELS = ('job="api", instance="api-0:9464", gen_ai_operation_name="chat", gen_ai_provider_name="anthropic", '
                 'gen_ai_request_model="claude-x", anthropic_request_stream="false", '
                 'server_address="api.anthropic.com", server_port="443"')


def series(metric: str, values: str, extra: str = "") -> dict:
    """Returns a promtool input series of `metric` with the test's labels (and `extra`)."""
    return {"series": f"{metric}{{{SERIES_LABELS}{', ' + extra if extra else ''}}}", "values": values}


def ramp(per_minute: float, steps: int) -> str:
    """Returns promtool's notation of a counter growing by `per_minute` for `steps` minutes."""
    return f"0+{per_minute:g}x{steps}"


def histogram_series(metric: str, lo: float, hi: float, per_minute: int, steps: int) -> List[dict]:
    """Returns a histogram's input series with every observation in the bucket (lo, hi]."""
    # so quantile q interpolates to lo + q * (hi - lo)
    out = []
    for bound in DURATION_BUCKETS + [math.inf]:
        le = "+Inf" if bound == math.inf else str(bound)
        out.append(series(metric + "_bucket", ramp(per_minute if bound >= hi else 0, steps), f'le="{le}"'))
    out.append(series(metric + "_count", ramp(per_minute, steps)))
    return out


def slow_bucket(level: float) -> Tuple[float, float]:
    """Returns the first duration bucket lying wholly above `level`."""
    i = next(i for i, b in enumerate(DURATION_BUCKETS) if b >= level)
    return DURATION_BUCKETS[i], DURATION_BUCKETS[i + 1]


def fast_bucket(level: float) -> Tuple[float, float]:
    """Returns the last duration bucket lying wholly below half of `level`."""
    i = max(i for i, b in enumerate(DURATION_BUCKETS) if b <= level / 2)
    return DURATION_BUCKETS[i - 1], DURATION_BUCKETS[i]


def rendered_cause(alert: Alert, cause: Optional[Tuple[str, float, str]]) -> str:
    """Returns the cause annotation as Prometheus renders it for (cause, share, stream), or for no failure."""
    timeouts = alert.name.startswith("ClaudeTimeoutBudget")
    of = "timed-out" if timeouts else "failed"
    if cause is None:
        return f"none: no call {of.split('-')[-1]} in the last {CAUSE_WINDOW}"
    name, share, stream = cause
    return (f"{name} ({humanize_percentage(share)} of the {of} calls in the last {CAUSE_WINDOW}"
            f"{'' if timeouts else ', stream=' + stream})")


def alert_case(alert: Alert, firing: Optional[Tuple[float, Dict[str, str]]], inputs: List[dict],
               eval_minutes: int, kind: Optional[str] = None, cause: Optional[Tuple[str, float, str]] = None) -> dict:
    """Returns one promtool alert test; `kind` and `cause` are what its inputs make the annotation queries find."""
    expected = []
    if firing is not None:
        value, labels = firing
        found = {"timeout_kind": kind or NO_TIMEOUT, "cause": rendered_cause(alert, cause)}

        def render(key: str, text: str) -> str:
            """Returns annotation `key` as Prometheus renders its template `text` for this input."""
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
    """Returns the alert's promtool tests: an input that must fire it and one that must not."""
    name, th = alert.name, threshold_value(alert)
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
    """Returns a burn-rate alert's tests: it fires at twice its burn rate, stays silent at half of it, and after."""
    # 3/4 of the timeouts are read timeouts, 1/4 pool timeouts. "After": once the timeouts have stopped for its
    # short window (the long one still high) it is silent again, the multiwindow rule's point.
    _, short, burn = burn_rate_alert(alert.threshold.split("_")[1])
    at = minutes(short) + minutes(alert.for_) + 10
    later = at + minutes(short) + 6  # the short window (and the 5-minute rates it sums) clean again
    steps = later + 5
    labels = dict(TEST_LABELS)

    def timeouts(ratio: float, until: int) -> Tuple[List[dict], float, float]:
        """Returns (input series timing out `ratio` of 600 calls a minute until `until`, the ratio, read's share)."""
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
    """Returns the test of the recording rules' exact values on one known input (what dashboards and alerts read)."""
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
        """Returns a promql_expr_test: `expr` is `value` at 20 minutes, with `labels`."""
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
    """Returns grafana/tests/claude-otel.test.yml: the recording rules' test, then every alert's."""
    tests = [case for alert in alerts() for case in alert_cases(alert)]
    return {"rule_files": ["../rules/claude-otel.rules.yml", "../rules/claude-otel.alerts.yml"],
            "evaluation_interval": "1m", "tests": [recording_rule_tests()] + tests}


