"""Generates claude-otel's recording rules, alerts (Prometheus and Grafana-managed) and dashboards.

Thresholds and windows live in THRESHOLDS below — the one place to tune them.
Run `python grafana/build.py` after a change and commit the output; a test
checks the committed files equal what this script generates.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, List

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RUNBOOK_URL = os.environ.get(
    "CLAUDE_OTEL_RUNBOOK_BASE", "https://github.com/your-org/claude-otel/blob/main/grafana/runbooks.md")

# name: (value, meaning)
THRESHOLDS: Dict[str, tuple] = {
    "near_timeout_share": (0.05, "warn when more than this share of attempts used over 80% of their timeout"),
    "near_timeout_for": ("10m", "for this long"),
    "timeout_ratio": (0.05, "page when more than this share of calls time out ..."),
    "timeout_baseline_factor": (3, "... and the share is this many times its 1-day baseline"),
    "timeout_min_rate": (0.05, "... and there are at least this many calls per second (no paging on 1 call)"),
    "timeout_for": ("5m", "for this long"),
    "retry_ratio": (0.5, "warn when retries per call exceed this"),
    "retry_for": ("10m", "for this long"),
    "ttft_p95_seconds": (30.0, "warn when p95 time to first token exceeds this"),
    "prefill_p95_seconds": (20.0, "warn when p95 prefill exceeds this"),
    "latency_for": ("15m", "for this long"),
    "ratelimit_remaining_ratio": (0.1, "warn when remaining rate limit falls below this share of the day's peak"),
    "ratelimit_for": ("5m", "for this long"),
    "absent_for": ("15m", "warn when a service that sent data in the last day has sent none for this long"),
    "dropped_for": ("15m", "warn when claude-otel has been dropping telemetry for this long"),
}


def t(name: str):
    return THRESHOLDS[name][0]


SEL = 'job=~"$job", gen_ai_request_model=~"$model", anthropic_request_stream=~"$stream"'
BY = "job, gen_ai_request_model"


# -- recording rules ---------------------------------------------------------------------------------------------

def _ratio_or_zero(numerator: str, denominator: str) -> str:
    return f"({numerator} or ({denominator} * 0)) / {denominator}"


def recording_rules() -> List[dict]:
    count = "gen_ai_client_operation_duration_seconds_count"
    requests = f"sum by ({BY}) (rate({count}[5m]))"

    def q(quantile: float, metric: str) -> str:
        return f"histogram_quantile({quantile}, sum by ({BY}, le) (rate({metric}_bucket[5m])))"

    def over(bound: str) -> str:
        return (f"1 - (sum by ({BY}) (rate(anthropic_client_timeout_utilization_bucket{{le=\"{bound}\"}}[5m])) "
                f"/ sum by ({BY}) (rate(anthropic_client_timeout_utilization_count[5m])))")

    rules = [
        ("claude:requests:rate5m", requests),
        ("claude:errors:rate5m", f"sum by ({BY}, error_type) (rate({count}{{error_type!=\"\"}}[5m]))"),
        ("claude:timeouts:rate5m", f"sum by ({BY}) (rate({count}{{error_type=\"timeout\"}}[5m]))"),
        ("claude:timeout_ratio:rate5m", _ratio_or_zero(
            f"sum by ({BY}) (rate({count}{{error_type=\"timeout\"}}[5m]))", requests)),
        ("claude:timeout_ratio:rate1d", _ratio_or_zero(
            f"sum by ({BY}) (increase({count}{{error_type=\"timeout\"}}[1d]))",
            f"sum by ({BY}) (increase({count}[1d]))")),
        ("claude:timeout_utilization_over_80:ratio_rate5m", over("0.8")),
        ("claude:timeout_utilization_over_95:ratio_rate5m", over("0.95")),
        ("claude:timeout_utilization:p99_5m", q(0.99, "anthropic_client_timeout_utilization")),
        ("claude:operation_duration_seconds:p95_5m", q(0.95, "gen_ai_client_operation_duration_seconds")),
        ("claude:operation_duration_seconds:p99_5m", q(0.99, "gen_ai_client_operation_duration_seconds")),
        ("claude:time_to_first_chunk_seconds:p95_5m", q(0.95, "gen_ai_client_operation_time_to_first_chunk_seconds")),
        ("claude:prefill_seconds:p95_5m", q(0.95, "anthropic_client_prefill_duration_seconds")),
        ("claude:stream_max_gap_seconds:p99_5m", q(0.99, "anthropic_client_stream_max_gap_seconds")),
        ("claude:retries:rate5m", f"sum by ({BY}, anthropic_retry_reason) (rate(anthropic_client_retries_total[5m]))"),
        ("claude:retries_per_request:ratio_rate5m", _ratio_or_zero(
            f"sum by ({BY}) (rate(anthropic_client_retries_total[5m]))", requests)),
        ("claude:retry_backoff_seconds:rate5m",
         f"sum by ({BY}) (rate(anthropic_client_retry_backoff_seconds_sum[5m]))"),
        ("claude:ratelimit_remaining:ratio",
         "min by (job, anthropic_ratelimit_kind) (anthropic_ratelimit_remaining) / "
         "max by (job, anthropic_ratelimit_kind) (max_over_time(anthropic_ratelimit_remaining[1d]))"),
    ]
    return [{"record": name, "expr": expr} for name, expr in rules]


# -- alerts ------------------------------------------------------------------------------------------------------

ALERTS = [
    {
        "alert": "ClaudeRequestsNearTimeout",
        "query": "claude:timeout_utilization_over_80:ratio_rate5m",
        "condition": f"> {t('near_timeout_share')}",
        "for": t("near_timeout_for"),
        "severity": "warning",
        "summary": "Claude calls of {{ $labels.job }} to {{ $labels.gen_ai_request_model }} are nearing their timeout",
        "description": "{{ $value | humanizePercentage }} of HTTP attempts used more than 80% of their governing "
                       "timeout over the last 5 minutes (threshold " + f"{t('near_timeout_share'):.0%}" + "). "
                       "Timeouts follow when this reaches 100%.",
        "anchor": "claude-requests-near-timeout",
    },
    {
        "alert": "ClaudeTimeoutSpike",
        "query": "claude:timeout_ratio:rate5m",
        "condition": (f"> {t('timeout_ratio')} and claude:timeout_ratio:rate5m > {t('timeout_baseline_factor')} * "
                      f"claude:timeout_ratio:rate1d and claude:requests:rate5m > {t('timeout_min_rate')}"),
        "for": t("timeout_for"),
        "severity": "critical",
        "summary": "Claude calls of {{ $labels.job }} to {{ $labels.gen_ai_request_model }} are timing out",
        "description": "{{ $value | humanizePercentage }} of calls ended in a timeout over the last 5 minutes, "
                       f"above {t('timeout_ratio'):.0%} and {t('timeout_baseline_factor')}x the 1-day baseline.",
        "anchor": "claude-timeout-spike",
    },
    {
        "alert": "ClaudeRetryStorm",
        "query": "claude:retries_per_request:ratio_rate5m",
        "condition": f"> {t('retry_ratio')}",
        "for": t("retry_for"),
        "severity": "warning",
        "summary": "Claude calls of {{ $labels.job }} to {{ $labels.gen_ai_request_model }} are retrying heavily",
        "description": "{{ $value | humanize }} retries per call over the last 5 minutes (threshold "
                       f"{t('retry_ratio')}). Each retry multiplies load and latency.",
        "anchor": "claude-retry-storm",
    },
    {
        "alert": "ClaudeSlowFirstToken",
        "query": "claude:time_to_first_chunk_seconds:p95_5m",
        "condition": f"> {t('ttft_p95_seconds')}",
        "for": t("latency_for"),
        "severity": "warning",
        "summary": "Time to first token of {{ $labels.job }} on {{ $labels.gen_ai_request_model }} has degraded",
        "description": "p95 time to first token is {{ $value | humanizeDuration }} (threshold "
                       f"{t('ttft_p95_seconds'):g} s), including retries and backoff.",
        "anchor": "claude-slow-first-token",
    },
    {
        "alert": "ClaudeSlowPrefill",
        "query": "claude:prefill_seconds:p95_5m",
        "condition": f"> {t('prefill_p95_seconds')}",
        "for": t("latency_for"),
        "severity": "warning",
        "summary": "Prefill of {{ $labels.job }} on {{ $labels.gen_ai_request_model }} has degraded",
        "description": "p95 prefill (request sent to first token of the final attempt) is "
                       "{{ $value | humanizeDuration }} (threshold " f"{t('prefill_p95_seconds'):g} s).",
        "anchor": "claude-slow-prefill",
    },
    {
        "alert": "ClaudeRateLimitNearlyExhausted",
        "query": "claude:ratelimit_remaining:ratio",
        "condition": f"< {t('ratelimit_remaining_ratio')}",
        "for": t("ratelimit_for"),
        "severity": "warning",
        "summary": "{{ $labels.job }} has nearly exhausted its {{ $labels.anthropic_ratelimit_kind }} rate limit",
        "description": "Only {{ $value | humanizePercentage }} of the day's peak {{ $labels.anthropic_ratelimit_kind }}"
                       " rate limit remains (threshold " f"{t('ratelimit_remaining_ratio'):.0%}" "); 429s follow.",
        "anchor": "claude-rate-limit-nearly-exhausted",
    },
    {
        "alert": "ClaudeTelemetryAbsent",
        "query": "count by (job) (max_over_time(gen_ai_client_operation_duration_seconds_count[1d]))",
        "condition": "unless count by (job) (max_over_time(gen_ai_client_operation_duration_seconds_count[15m]))",
        "for": t("absent_for"),
        "severity": "warning",
        "summary": "No Claude telemetry from {{ $labels.job }}",
        "description": "{{ $labels.job }} sent Claude call metrics in the last day but none for "
                       f"{t('absent_for')}: the service, its agent or the scrape is down.",
        "anchor": "claude-telemetry-absent",
    },
    {
        "alert": "ClaudeTelemetryDropped",
        "query": "sum by (job, signal) (rate(claude_otel_exporter_dropped_total[5m]))",
        "condition": "> 0",
        "for": t("dropped_for"),
        "severity": "warning",
        "summary": "claude-otel in {{ $labels.job }} is dropping {{ $labels.signal }}",
        "description": "{{ $value | humanize }} items/s could not be exported (collector down, slow or refusing). "
                       "API calls are unaffected; dashboards fed by OTLP are incomplete.",
        "anchor": "claude-telemetry-dropped",
    },
]


def alert_rules() -> List[dict]:
    rules = []
    for a in ALERTS:
        rules.append({
            "alert": a["alert"],
            "expr": f"{a['query']} {a['condition']}",
            "for": a["for"],
            "labels": {"severity": a["severity"]},
            "annotations": {"summary": a["summary"], "description": a["description"],
                            "runbook_url": f"{RUNBOOK_URL}#{a['anchor']}"},
        })
    return rules


def grafana_alerting() -> dict:
    """Returns the same alerts as Grafana-managed alert rules (provisioning apiVersion 1)."""
    rules = []
    for a in ALERTS:
        rules.append({
            "uid": "claude-" + a["alert"].lower()[6:][:30],
            "title": a["alert"],
            "condition": "C",
            "data": [
                {"refId": "A", "relativeTimeRange": {"from": 600, "to": 0}, "datasourceUid": "prometheus",
                 "model": {"refId": "A", "expr": f"{a['query']} {a['condition']}", "instant": True,
                           "intervalMs": 60000, "maxDataPoints": 43200}},
                {"refId": "B", "datasourceUid": "__expr__",
                 "model": {"refId": "B", "type": "reduce", "expression": "A", "reducer": "last",
                           "settings": {"mode": "dropNN"}}},
                {"refId": "C", "datasourceUid": "__expr__",
                 "model": {"refId": "C", "type": "threshold", "expression": "B",
                           "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}},
            ],
            "noDataState": "OK",
            "execErrState": "Error",
            "for": a["for"],
            "labels": {"severity": a["severity"]},
            "annotations": {"summary": a["summary"], "description": a["description"],
                            "runbook_url": f"{RUNBOOK_URL}#{a['anchor']}"},
        })
    return {"apiVersion": 1, "groups": [{"orgId": 1, "name": "claude-otel", "folder": "claude-otel",
                                         "interval": "1m", "rules": rules}]}


# -- dashboards --------------------------------------------------------------------------------------------------

class Dash:
    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: List[dict] = []
        self.y = 0
        self.x = 0

    def row(self, title: str) -> None:
        self._next_line()
        self.panels.append({"type": "row", "title": title, "id": len(self.panels) + 1, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _next_line(self) -> None:
        if self.x:
            self.x = 0
            self.y += 8

    def panel(self, title: str, description: str, targets: List[tuple], unit: str, kind: str = "timeseries",
              width: int = 12, thresholds: List[tuple] = (), exemplars: bool = False, stack: bool = False) -> None:
        if self.x + width > 24:
            self._next_line()
        steps = [{"color": "green", "value": None}] + [{"color": c, "value": v} for v, c in thresholds]
        panel = {
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "exemplar": exemplars,
                         "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                        for i, (expr, legend) in enumerate(targets)],
        }
        if kind == "timeseries":
            custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                      "thresholdsStyle": {"mode": "dashed" if thresholds else "off"}}
            if stack:
                custom["stacking"] = {"mode": "normal", "group": "A"}
            panel["fieldConfig"]["defaults"]["custom"] = custom
        if kind == "heatmap":
            panel["targets"][0]["format"] = "heatmap"
            panel["options"] = {"calculate": False, "yAxis": {"unit": unit}, "color": {"scheme": "Oranges"},
                                "cellGap": 1, "exemplars": {"color": "rgba(255,0,255,0.7)"}}
        if kind == "stat":
            panel["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area"}
        self.panels.append(panel)
        self.x += width

    def model(self) -> dict:
        variables = [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source",
             "current": {}, "hide": 0},
        ]
        for name, label, desc in (("job", "job", "Service"), ("model", "gen_ai_request_model", "Model"),
                                  ("stream", "anthropic_request_stream", "Streaming")):
            variables.append({
                "name": name, "label": desc, "type": "query",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": f"label_values(gen_ai_client_operation_duration_seconds_count, {label})",
                          "refId": f"{name}-var"},
                "definition": f"label_values(gen_ai_client_operation_duration_seconds_count, {label})",
                "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2, "sort": 1,
                "current": {"text": "All", "value": "$__all"}, "hide": 0,
            })
        links = [{"title": "Claude dashboards", "type": "dashboards", "tags": ["claude-otel"], "asDropdown": True,
                  "includeVars": True, "keepTime": True},
                 {"title": "Runbooks", "type": "link", "url": RUNBOOK_URL, "targetBlank": True}]
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["claude-otel"],
            "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1, "refresh": "30s",
            "time": {"from": "now-3h", "to": "now"}, "timezone": "", "links": links,
            "templating": {"list": variables}, "annotations": {"list": []}, "panels": self.panels,
        }


def _q(quantile: float, metric: str, by: str = "gen_ai_request_model") -> str:
    return (f"histogram_quantile({quantile}, sum by ({by}, le) "
            f"(rate({metric}_bucket{{{SEL}}}[$__rate_interval])))")


def overview() -> dict:
    d = Dash("claude-overview", "Claude API — overview",
             "Are Claude calls healthy? Traffic, errors, timeouts, latency, tokens and rate limits per service and "
             "model, from claude-otel.")
    count = "gen_ai_client_operation_duration_seconds_count"
    d.row("Traffic and errors")
    d.panel("Request rate", "Calls per second by model. A drop to zero with errors rising means calls are failing "
            "before they complete.", [(f"sum by (gen_ai_request_model) (rate({count}{{{SEL}}}[$__rate_interval]))",
                                       "{{gen_ai_request_model}}")], "reqps", stack=True)
    d.panel("Error rate by error.type", "Failed calls per second by error type: timeout (client timeout), "
            "overloaded_error/rate_limit_error (the API), connection_error (network/proxy). See the runbooks.",
            [(f"sum by (error_type) (rate({count}{{{SEL}, error_type!=\"\"}}[$__rate_interval]))", "{{error_type}}")],
            "reqps", stack=True)
    d.panel("Timeout ratio", "Share of calls that ended in a client timeout. Above "
            f"{t('timeout_ratio'):.0%} pages (ClaudeTimeoutSpike).",
            [(f"sum by (gen_ai_request_model) (rate({count}{{{SEL}, error_type=\"timeout\"}}[$__rate_interval])) / "
              f"sum by (gen_ai_request_model) (rate({count}{{{SEL}}}[$__rate_interval]))", "{{gen_ai_request_model}}")],
            "percentunit", thresholds=[(t("timeout_ratio"), "red")], width=8)
    d.panel("In-flight calls", "Calls in progress. Growing without traffic growing means calls are hanging — "
            "check the timeouts dashboard.", [(f"sum by (job) (anthropic_client_active_requests{{{SEL}}})",
                                                "{{job}}")], "short", width=8)
    d.panel("Rate limit remaining", "Remaining API rate limit from response headers. Near zero means 429s next.",
            [('min by (anthropic_ratelimit_kind) (anthropic_ratelimit_remaining{job=~"$job"})',
              "{{anthropic_ratelimit_kind}}")], "short", width=8)
    d.row("Latency and tokens")
    for quantile in (0.5, 0.95, 0.99):
        d.panel(f"p{int(quantile * 100)} call duration", "Whole-call duration including retries, backoff and "
                "stream reading, by model. Compare with the applied timeout on the timeouts dashboard.",
                [(_q(quantile, "gen_ai_client_operation_duration_seconds"), "{{gen_ai_request_model}}")], "s",
                width=8, exemplars=True)
    d.panel("Tokens per second", "Input, output and cache tokens per second. A jump in input tokens explains "
            "longer prefill.", [(f"sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum{{{SEL}}}"
                                 "[$__rate_interval]))", "{{gen_ai_token_type}}")], "short", width=24, stack=True)
    return d.model()


def timeouts() -> dict:
    d = Dash("claude-timeouts", "Claude API — timeouts and headroom",
             "How close are Claude calls to their timeouts, which timeout, and why: prefill, long non-streamed "
             "generations, stream gaps against proxy idle timeouts, retries.")
    util = "anthropic_client_timeout_utilization"
    d.row("Headroom")
    d.panel("Timeout utilization (heatmap)", "Per attempt: the largest share of its governing timeout it used "
            "(connect, read, or a declared proxy idle timeout). Mass near 1.0 means timeouts are imminent.",
            [(f"sum by (le) (rate({util}_bucket{{{SEL}}}[$__rate_interval]))", "{{le}}")], "percentunit",
            kind="heatmap", exemplars=True)
    for bound, name in (("0.8", "80%"), ("0.95", "95%")):
        d.panel(f"Share of attempts above {name} of their timeout", "Attempts that came within "
                f"{100 - int(float(bound) * 100)}% of timing out. Warning at "
                f"{t('near_timeout_share'):.0%} (ClaudeRequestsNearTimeout).",
                [(f"1 - (sum by (gen_ai_request_model) (rate({util}_bucket{{{SEL}, le=\"{bound}\"}}[$__rate_interval]))"
                  f" / sum by (gen_ai_request_model) (rate({util}_count{{{SEL}}}[$__rate_interval])))",
                  "{{gen_ai_request_model}}")], "percentunit", width=6,
                thresholds=[(t("near_timeout_share"), "orange")])
    d.panel("p99 utilization by governing timeout", "Which timeout is closest: read (SDK read timeout), connect, "
            "or proxy_idle (CLAUDE_OTEL_PROXY_IDLE_TIMEOUT). 1.0 = timed out.",
            [(_q(0.99, util, "anthropic_timeout_kind"), "{{anthropic_timeout_kind}}")], "percentunit", width=12,
            thresholds=[(0.8, "orange"), (1.0, "red")], exemplars=True)
    d.panel("Timeouts by phase", "Attempts that timed out per second: connect (network/DNS), read (no bytes "
            "within the read timeout: prefill, non-streamed generation, stalls), write, pool (client saturated).",
            [(f"sum by (anthropic_timeout_phase) (rate(anthropic_client_timeouts_total{{{SEL}}}[$__rate_interval]))",
              "{{anthropic_timeout_phase}}")], "reqps", width=12, stack=True)
    d.row("Where the time goes")
    d.panel("p99 call duration vs attempt duration", "Call duration includes retries and backoff; a gap between "
            "the two lines is time lost to retries.",
            [(_q(0.99, "gen_ai_client_operation_duration_seconds", "job"), "call {{job}}"),
             (_q(0.99, "anthropic_client_attempt_duration_seconds", "job"), "attempt {{job}}")], "s", width=8,
            exemplars=True)
    d.panel("Prefill p95 by model", "Request sent to first token (streams): queueing + prefill. Huge prompts "
            f"show here first. Warning at {t('prefill_p95_seconds'):g} s.",
            [(_q(0.95, "anthropic_client_prefill_duration_seconds"), "{{gen_ai_request_model}}")], "s", width=8,
            thresholds=[(t("prefill_p95_seconds"), "orange")], exemplars=True)
    d.panel("TTFT p95 by model", "Call start to first token, including retries and backoff. Warning at "
            f"{t('ttft_p95_seconds'):g} s.", [(_q(0.95, "gen_ai_client_operation_time_to_first_chunk_seconds"),
                                               "{{gen_ai_request_model}}")], "s", width=8,
            thresholds=[(t("ttft_p95_seconds"), "orange")], exemplars=True)
    d.panel("Longest stream gap p99", "The longest silence inside a stream after the first token. A proxy idle "
            "timeout (nginx proxy_read_timeout) below this kills streams.",
            [(_q(0.99, "anthropic_client_stream_max_gap_seconds"), "{{gen_ai_request_model}}")], "s", width=8,
            exemplars=True)
    d.panel("Retries by reason", "Retries per second by reason: 429 (rate limit), 529 (overloaded), 5xx, timeout, "
            "connection_error.", [(f"sum by (anthropic_retry_reason) (rate(anthropic_client_retries_total{{{SEL}}}"
                                   "[$__rate_interval]))", "{{anthropic_retry_reason}}")], "reqps", width=8,
            stack=True)
    d.panel("Time lost to backoff", "Seconds per second spent waiting before retries (retry-after honoured). "
            "0.5 means half a call's worth of waiting every second.",
            [(f"sum by (gen_ai_request_model) (rate(anthropic_client_retry_backoff_seconds_sum{{{SEL}}}"
              "[$__rate_interval]))", "{{gen_ai_request_model}}")], "s", width=8)
    return d.model()


def streaming() -> dict:
    d = Dash("claude-streaming", "Claude API — streaming latency",
             "Time to first token, prefill, time per output chunk and stream gaps, by model.")
    d.row("First token")
    for quantile in (0.5, 0.95):
        d.panel(f"TTFT p{int(quantile * 100)}", "Call start to first content delta, incl. retries and backoff.",
                [(_q(quantile, "gen_ai_client_operation_time_to_first_chunk_seconds"), "{{gen_ai_request_model}}")],
                "s", width=6, exemplars=True, thresholds=[(t("ttft_p95_seconds"), "orange")])
        d.panel(f"Prefill p{int(quantile * 100)}", "Final attempt's request sent to first content delta.",
                [(_q(quantile, "anthropic_client_prefill_duration_seconds"), "{{gen_ai_request_model}}")], "s",
                width=6, exemplars=True, thresholds=[(t("prefill_p95_seconds"), "orange")])
    d.row("Generation")
    d.panel("Time per output chunk p50 / p95", "Gap between content deltas after the first (opt-in metric: "
            "CLAUDE_OTEL_CHUNK_METRICS=true). Rising values mean slower generation.",
            [(_q(0.5, "gen_ai_client_operation_time_per_output_chunk_seconds"), "p50 {{gen_ai_request_model}}"),
             (_q(0.95, "gen_ai_client_operation_time_per_output_chunk_seconds"), "p95 {{gen_ai_request_model}}")],
            "s", width=12)
    d.panel("Longest stream gap p50 / p99", "The longest wait for the next event after the first token, per "
            "stream. Compare with proxy idle timeouts.",
            [(_q(0.5, "anthropic_client_stream_max_gap_seconds"), "p50 {{gen_ai_request_model}}"),
             (_q(0.99, "anthropic_client_stream_max_gap_seconds"), "p99 {{gen_ai_request_model}}")], "s", width=12,
            exemplars=True)
    d.panel("Output tokens per streamed call (avg)", "Average output tokens per streamed call by model; long "
            "outputs belong in streams.", [
                (f"sum by (gen_ai_request_model) (rate(gen_ai_client_token_usage_sum{{{SEL}, gen_ai_token_type=\"output\"}}"
                 f"[$__rate_interval])) / sum by (gen_ai_request_model) (rate(gen_ai_client_token_usage_count{{{SEL}, "
                 "gen_ai_token_type=\"output\"}[$__rate_interval]))", "{{gen_ai_request_model}}")], "short", width=24)
    return d.model()


DASHBOARDS = {"claude-overview.json": overview, "claude-timeouts.json": timeouts, "claude-streaming.json": streaming}


def outputs() -> Dict[str, str]:
    """Returns {relative path: file text} for everything this script generates."""
    header = "# Generated by grafana/build.py from its THRESHOLDS table; edit there, then run it.\n"
    files = {
        "rules/claude-otel.rules.yml": header + yaml.safe_dump(
            {"groups": [{"name": "claude-otel.rules", "interval": "30s", "rules": recording_rules()}]},
            sort_keys=False, width=1000),
        "rules/claude-otel.alerts.yml": header + yaml.safe_dump(
            {"groups": [{"name": "claude-otel.alerts", "rules": alert_rules()}]}, sort_keys=False, width=1000),
        "provisioning/alerting/claude-otel-alerts.yml": header + yaml.safe_dump(
            grafana_alerting(), sort_keys=False, width=1000),
    }
    for name, build in DASHBOARDS.items():
        files[f"dashboards/{name}"] = json.dumps(build(), indent=2) + "\n"
    return files


def main() -> int:
    for path, text in outputs().items():
        full = os.path.join(HERE, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
        print("wrote", os.path.relpath(full))
    return 0




# -- promtool unit tests -----------------------------------------------------------------------------------------

def _case(alert: str, series: List[tuple], eval_time: str, value: str = None, labels: dict = None) -> dict:
    """Returns one promtool test: the series, and the alert expected firing (value given) or silent (None)."""
    spec = next(a for a in ALERTS if a["alert"] == alert)
    expected = []
    if value is not None:
        def render(text: str) -> str:
            for token in ("{{ $value | humanizePercentage }}", "{{ $value | humanize }}",
                          "{{ $value | humanizeDuration }}"):
                text = text.replace(token, value)
            for key, label in labels.items():
                text = text.replace("{{ $labels.%s }}" % key, label)
            return text

        expected.append({
            "exp_labels": dict(labels, severity=spec["severity"]),
            "exp_annotations": {"summary": render(spec["summary"]), "description": render(spec["description"]),
                                "runbook_url": f"{RUNBOOK_URL}#{spec['anchor']}"},
        })
    return {"interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": eval_time, "alertname": alert, "exp_alerts": expected}]}


def _hist(metric: str, bucket_values: Dict[str, str], labels: str) -> List[tuple]:
    return [(f'{metric}_bucket{{{labels},le="{le}"}}', v) for le, v in bucket_values.items()]


API = 'job="api",gen_ai_request_model="claude-x"'
WHO = {"job": "api", "gen_ai_request_model": "claude-x"}


def unit_tests() -> dict:
    util = "anthropic_client_timeout_utilization"
    count = "gen_ai_client_operation_duration_seconds_count"
    slow = {"10.24": "0x30", "20.48": "0x30", "40.96": "0+60x30", "+Inf": "0+60x30"}
    fast = {"10.24": "0+60x30", "20.48": "0+60x30", "40.96": "0+60x30", "+Inf": "0+60x30"}
    tests = [
        _case("ClaudeRequestsNearTimeout", [(f'{util}_bucket{{{API},le="0.8"}}', "0+80x30"),
                                            (f"{util}_count{{{API}}}", "0+100x30")], "25m", "20%", WHO),
        _case("ClaudeRequestsNearTimeout", [(f'{util}_bucket{{{API},le="0.8"}}', "0+99x30"),
                                            (f"{util}_count{{{API}}}", "0+100x30")], "25m"),
        _case("ClaudeTimeoutSpike", [(f"{count}{{{API}}}", "0+60x1500"),
                                     (f'{count}{{{API},error_type="timeout"}}', "0x1440 0+30x60")],
              "1450m", "33.33%", WHO),
        _case("ClaudeTimeoutSpike", [(f"{count}{{{API}}}", "0+54x1500"),
                                     (f'{count}{{{API},error_type="timeout"}}', "0+6x1500")], "1450m"),
        _case("ClaudeRetryStorm", [(f"{count}{{{API}}}", "0+60x30"),
                                   (f'anthropic_client_retries_total{{{API},anthropic_retry_reason="529"}}',
                                    "0+60x30")], "25m", "1", WHO),
        _case("ClaudeRetryStorm", [(f"{count}{{{API}}}", "0+60x30"),
                                   (f'anthropic_client_retries_total{{{API},anthropic_retry_reason="529"}}',
                                    "0+6x30")], "25m"),
        _case("ClaudeSlowFirstToken", _hist("gen_ai_client_operation_time_to_first_chunk_seconds", slow, API),
              "25m", "39.94s", WHO),
        _case("ClaudeSlowFirstToken", _hist("gen_ai_client_operation_time_to_first_chunk_seconds", fast, API), "25m"),
        _case("ClaudeSlowPrefill", _hist("anthropic_client_prefill_duration_seconds", slow, API),
              "25m", "39.94s", WHO),
        _case("ClaudeSlowPrefill", _hist("anthropic_client_prefill_duration_seconds", fast, API), "25m"),
        _case("ClaudeRateLimitNearlyExhausted",
              [(f'anthropic_ratelimit_remaining{{{API},anthropic_ratelimit_kind="requests"}}', "1000x60 50x30")],
              "80m", "5%", {"job": "api", "anthropic_ratelimit_kind": "requests"}),
        _case("ClaudeRateLimitNearlyExhausted",
              [(f'anthropic_ratelimit_remaining{{{API},anthropic_ratelimit_kind="requests"}}', "1000x60 500x30")],
              "80m"),
        _case("ClaudeTelemetryAbsent", [(f"{count}{{{API}}}", "1+1x60 _x60")], "110m", "", {"job": "api"}),
        _case("ClaudeTelemetryAbsent", [(f"{count}{{{API}}}", "1+1x120")], "110m"),
        _case("ClaudeTelemetryDropped",
              [('claude_otel_exporter_dropped_total{job="api",signal="traces"}', "0+10x40")], "30m", "166.7m",
              {"job": "api", "signal": "traces"}),
        _case("ClaudeTelemetryDropped",
              [('claude_otel_exporter_dropped_total{job="api",signal="traces"}', "5x40")], "30m"),
    ]
    recorded = {
        "interval": "1m",
        "input_series": [{"series": f"{count}{{{API}}}", "values": "0+90x30"},
                         {"series": f'{count}{{{API},error_type="timeout"}}', "values": "0+10x30"},
                         {"series": f'{util}_bucket{{{API},le="0.8"}}', "values": "0+50x30"},
                         {"series": f'{util}_bucket{{{API},le="0.95"}}', "values": "0+75x30"},
                         {"series": f"{util}_count{{{API}}}", "values": "0+100x30"}],
        "promql_expr_test": [
            {"expr": "claude:requests:rate5m", "eval_time": "20m",
             "exp_samples": [{"labels": f"claude:requests:rate5m{{{API}}}", "value": 100 / 60}]},
            {"expr": "claude:timeout_ratio:rate5m", "eval_time": "20m",
             "exp_samples": [{"labels": f"claude:timeout_ratio:rate5m{{{API}}}", "value": 0.1}]},
            {"expr": "claude:timeout_utilization_over_80:ratio_rate5m", "eval_time": "20m",
             "exp_samples": [{"labels": f"claude:timeout_utilization_over_80:ratio_rate5m{{{API}}}", "value": 0.5}]},
            {"expr": "claude:timeout_utilization_over_95:ratio_rate5m", "eval_time": "20m",
             "exp_samples": [{"labels": f"claude:timeout_utilization_over_95:ratio_rate5m{{{API}}}", "value": 0.25}]},
        ],
    }
    return {"rule_files": ["../rules/claude-otel.rules.yml", "../rules/claude-otel.alerts.yml"],
            "evaluation_interval": "1m", "tests": tests + [recorded]}


_outputs = outputs


def outputs() -> Dict[str, str]:  # noqa: F811 - extends the first definition with the unit tests
    files = _outputs()
    files["tests/claude-otel.test.yml"] = (
        "# Generated by grafana/build.py: inputs and expected values are written there, per alert.\n"
        + yaml.safe_dump(unit_tests(), sort_keys=False, width=1000))
    return files


if __name__ == "__main__":
    sys.exit(main())
