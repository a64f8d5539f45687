"""The alerts, each written twice (over recording rules for Prometheus, over raw series for Grafana-managed
alerting), their annotations, and the two rule files they are rendered into."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import config
from .config import DATASOURCE_UID, budget, burn_rate_alert, threshold
from .promql import (API_ERROR, ATTEMPTS, DROPPED, GAP, JOB_MODEL, JOB_MODEL_STREAM, KIND, L_OPS, OPS, PREFILL,
                     RATELIMIT_SHARE, RETRIES, TIMED_OUT, TTFT, UTIL, bucket_rates, both_rate, by, quantile_of,
                     ratio_or_zero, raw_rate, share_above)
from .recording import CAUSE_WINDOW, slo_ratio


@dataclass
class Alert:
    """One alert, written twice: `expr` over recording rules (Prometheus) and `raw` over the raw series (Grafana)."""

    # Both expressions are the measured value, already filtered by the alert's other conditions; the alert fires
    # where value `op` threshold. `fmt` is how the description shows the value (a Prometheus template function).

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
    scope: str = "job_model"  # the labels it fires by: "job_model_stream", "job_model" or "job"
    threshold_text: str = ""  # the threshold as the annotations state it (default: from THRESHOLDS and fmt)

    @property
    def anchor(self) -> str:
        """Returns the alert's section anchor in runbooks.md."""
        return self.name.lower()

    @property
    def runbook_url(self) -> str:
        """Returns the alert's runbook link (the runbook base URL#anchor)."""
        return config.runbook_url(self.name)


def gate(group: str, source: str) -> str:
    """Returns `and on (group) calls > min_request_rate`, the clause that keeps a handful of calls from alerting."""
    return f"and on ({group}) sum by ({group}) ({source}) > {threshold('min_request_rate'):g}"


RAW_CALLS = f"({both_rate(OPS, '_count')})"  # calls of either name set


def raw_share_above(bound: str) -> str:
    """Returns the share of attempts above `bound` of their timeout, from the raw utilization histogram."""
    return share_above(bound, lambda matcher: raw_rate(UTIL + "_bucket", matcher), by(JOB_MODEL_STREAM, KIND),
                       JOB_MODEL_STREAM)


def raw_quantile(q: float, metric: str) -> str:
    """Returns the q-quantile per job and model of a raw histogram (a gen_ai.* one in either name set)."""
    return quantile_of(q, bucket_rates(metric), JOB_MODEL)


WHO = "{{ $labels.job }}/{{ $labels.gen_ai_request_model }}"
STREAMED = "stream={{ $labels.anthropic_request_stream }}"


def slo_burn_alerts() -> List[Alert]:
    """Returns the multiwindow, multi-burn-rate alerts on the timeout SLO (Google SRE workbook, ch. 5, option 6)."""
    found = []
    slo = float(threshold("slo_target")) * 100
    for speed, name, severity in (("fast", "ClaudeTimeoutBudgetFastBurn", "critical"),
                                  ("slow", "ClaudeTimeoutBudgetSlowBurn", "critical"),
                                  ("ticket", "ClaudeTimeoutBudgetTicket", "warning")):
        long, short, burn = burn_rate_alert(speed)

        def raw_ratio(window: str) -> str:
            """Returns the timeout ratio over `window` from the raw series."""
            return ratio_or_zero(f"sum by ({JOB_MODEL_STREAM}) ({both_rate(OPS, '_count', TIMED_OUT, window)})",
                                 f"sum by ({JOB_MODEL_STREAM}) ({both_rate(OPS, '_count', window=window)})")

        hours = 30 * 24 / burn
        found.append(Alert(
            name=name, severity=severity,
            expr=(f"{slo_ratio(long)} / {budget():g}\n"
                  f"and on ({JOB_MODEL_STREAM}) {slo_ratio(short)} / {budget():g} > {burn:g}\n"
                  f"{gate(JOB_MODEL_STREAM, 'claude:requests:rate5m')}"),
            raw=(f"{raw_ratio(long)} / {budget():g}\n"
                 f"and on ({JOB_MODEL_STREAM}) {raw_ratio(short)} / {budget():g} > {burn:g}\n"
                 f"{gate(JOB_MODEL_STREAM, RAW_CALLS)}"),
            op=">", threshold=f"slo_{speed}_burn", for_=threshold("slo_burn_for"),
            summary=f"Claude calls of {WHO} ({STREAMED}) are burning their timeout error budget "
                    f"{burn:g}x too fast",
            description="Calls of " + WHO + " (" + STREAMED + ") that timed out over the last " + long + " burn "
                        "the error budget at {{ $value | humanize }}x (threshold " + f"{burn:g}x over both {long} "
                        f"and {short}; SLO {slo:.4g}% of calls without a timeout, budget "
                        f"{budget() * 100:.4g}%). At {burn:g}x a 30-day budget lasts "
                        + (f"{hours:.0f} hours." if hours < 100 else f"{hours / 24:.0f} days."),
            fmt="humanize", panel=("claude-overview", "Timeout ratio by service and model"),
            scope="job_model_stream",
            threshold_text=f"{burn:g}x the error budget over {long} and {short} (a timeout ratio above "
                           f"{burn * budget() * 100:.4g}% with a {slo:.4g}% SLO)"))
    return found


def alerts() -> List[Alert]:
    """Returns every alert, in the order of the rule files and the README."""
    near = []
    for pct, share, for_, name, severity in (
            (80, "near_timeout_80_share", "near_timeout_80_for", "ClaudeRequestsNearTimeout", "warning"),
            (90, "near_timeout_90_share", "near_timeout_90_for", "ClaudeRequestsVeryNearTimeout", "warning")):
        near.append(Alert(
            name=name, severity=severity,
            expr=(f"claude:timeout_utilization_over_{pct}:ratio_rate5m\n"
                  f"{gate(JOB_MODEL_STREAM, 'claude:attempts:rate5m')}"),
            raw=f"{raw_share_above(str(pct / 100))}\n{gate(JOB_MODEL_STREAM, raw_rate(ATTEMPTS + '_count'))}",
            op=">", threshold=share, for_=threshold(for_),
            summary=f"Claude calls of {WHO} ({STREAMED}) are close to their "
                    "{{ $labels.anthropic_timeout_kind }} timeout",
            description="{{ $value | humanizePercentage }} of HTTP attempts of " + WHO + " (" + STREAMED + ") used "
                        f"more than {pct}% of their {{{{ $labels.anthropic_timeout_kind }}}} timeout over the last "
                        f"5 minutes (threshold {threshold(share):.0%}). Attempts that reach 100% fail with "
                        "'Request timed out'.",
            fmt="humanizePercentage", panel=("claude-timeouts", f"Share of attempts above {pct}% of their timeout"),
            scope="job_model_stream"))

    return near + slo_burn_alerts() + [
        Alert(
            name="ClaudeAPIErrors", severity="warning",
            expr=f"claude:error_ratio:rate5m\n{gate(JOB_MODEL, 'claude:requests:rate5m')}",
            raw=(f"sum by ({JOB_MODEL}, error_type) ({both_rate(OPS, '_count', API_ERROR)}) "
                 f"/ on ({JOB_MODEL}) group_left sum by ({JOB_MODEL}) ({RAW_CALLS})\n{gate(JOB_MODEL, RAW_CALLS)}"),
            op=">", threshold="error_ratio", for_=threshold("error_for"),
            summary=f"Claude calls of {WHO} fail with {{{{ $labels.error_type }}}}",
            description="{{ $value | humanizePercentage }} of calls of " + WHO + " failed with "
                        "{{ $labels.error_type }} (after retries) over the last 5 minutes (threshold "
                        f"{threshold('error_ratio'):.0%}).",
            fmt="humanizePercentage", panel=("claude-overview", "Errors by error type")),
        Alert(
            name="ClaudeRetryStorm", severity="warning",
            expr=f"claude:retries_per_request:ratio_rate5m\n{gate(JOB_MODEL, 'claude:requests:rate5m')}",
            raw=(f"sum by ({JOB_MODEL}) ({raw_rate(RETRIES)}) / sum by ({JOB_MODEL}) ({RAW_CALLS})\n"
                 f"{gate(JOB_MODEL, RAW_CALLS)}"),
            op=">", threshold="retries_per_call", for_=threshold("retry_for"),
            summary=f"Claude calls of {WHO} are retrying heavily",
            description="{{ $value | humanize }} retries per call for " + WHO + " over the last 5 minutes "
                        f"(threshold {threshold('retries_per_call'):g}). Every retry adds a full attempt plus "
                        "backoff to the call's duration.",
            fmt="humanize", panel=("claude-timeouts", "Retries per call")),
        Alert(
            name="ClaudeSlowFirstToken", severity="warning",
            expr=f"claude:time_to_first_chunk_seconds:p95_5m\n{gate(JOB_MODEL, 'claude:requests:rate5m')}",
            raw=f"{raw_quantile(0.95, TTFT)}\n{gate(JOB_MODEL, RAW_CALLS)}",
            op=">", threshold="ttft_p95_seconds", for_=threshold("latency_for"),
            summary=f"Time to first token of {WHO} has degraded",
            description="p95 time to first token of " + WHO + " is {{ $value | humanizeDuration }} over the last "
                        f"5 minutes (threshold {threshold('ttft_p95_seconds'):g}s), retries and backoff included.",
            fmt="humanizeDuration", panel=("claude-timeouts", "Time to first token p95 / p99 by model")),
        Alert(
            name="ClaudeSlowPrefill", severity="warning",
            expr=f"claude:prefill_duration_seconds:p95_5m\n{gate(JOB_MODEL, 'claude:requests:rate5m')}",
            raw=f"{raw_quantile(0.95, PREFILL)}\n{gate(JOB_MODEL, RAW_CALLS)}",
            op=">", threshold="prefill_p95_seconds", for_=threshold("latency_for"),
            summary=f"Prefill of {WHO} has degraded",
            description="p95 prefill (request sent to first token, final attempt) of " + WHO + " is "
                        "{{ $value | humanizeDuration }} over the last 5 minutes (threshold "
                        f"{threshold('prefill_p95_seconds'):g}s).",
            fmt="humanizeDuration", panel=("claude-timeouts", "Prefill p95 / p99 by model")),
        Alert(
            name="ClaudeLongStreamGaps", severity="warning",
            expr=f"claude:stream_max_gap_seconds:p99_5m\n{gate(JOB_MODEL, 'claude:requests:rate5m')}",
            raw=f"{raw_quantile(0.99, GAP)}\n{gate(JOB_MODEL, RAW_CALLS)}",
            op=">", threshold="stream_gap_p99_seconds", for_=threshold("stream_gap_for"),
            summary=f"Streams of {WHO} go silent for long stretches",
            description="p99 of the longest wait between chunks of a stream of " + WHO + " is "
                        "{{ $value | humanizeDuration }} (threshold " f"{threshold('stream_gap_p99_seconds'):g}s). "
                        "A proxy idle timeout shorter than this cuts streams.",
            fmt="humanizeDuration", panel=("claude-timeouts", "Longest stream gap p99 vs proxy idle timeout")),
        Alert(
            name="ClaudeRateLimitNearlyExhausted", severity="warning",
            expr="claude:ratelimit_remaining:ratio",
            raw=RATELIMIT_SHARE,
            op="<", threshold="ratelimit_remaining_ratio", for_=threshold("ratelimit_for"),
            summary="{{ $labels.job }} has nearly exhausted its {{ $labels.anthropic_ratelimit_kind }} rate limit "
                    "for {{ $labels.gen_ai_request_model }}",
            description="Only {{ $value | humanizePercentage }} of the day's highest remaining "
                        "{{ $labels.anthropic_ratelimit_kind }} rate limit is left for " + WHO + " (threshold "
                        f"{threshold('ratelimit_remaining_ratio'):.0%}). 429 rate_limit_error responses and retries "
                        "follow.",
            fmt="humanizePercentage", panel=("claude-overview", "Rate limit remaining (share of the day's peak)")),
        Alert(
            name="ClaudeTelemetryAbsent", severity="warning",
            expr=("group by (job) (max_over_time(claude:requests:rate5m[1d]))\n"
                  "unless on (job) group by (job) (claude:requests:rate5m)"),
            raw=(f"group by (job) (max_over_time({OPS}_count[1d]) or max_over_time({L_OPS}_count[1d]))\n"
                 f"unless on (job) group by (job) ({OPS}_count or {L_OPS}_count)"),
            op=None, threshold=None, for_=threshold("absent_for"),
            summary="No Claude call metrics from {{ $labels.job }}",
            description="{{ $labels.job }} sent Claude call metrics in the last day but none for more than "
                        f"{threshold('absent_for')}: the service, its claude-otel agent or the scrape is down.",
            fmt="", panel=("claude-overview", "Call rate by service and model"), scope="job"),
        Alert(
            name="ClaudeTelemetryDropped", severity="warning",
            expr=f"sum by (job, signal) ({raw_rate(DROPPED)})",
            raw=f"sum by (job, signal) ({raw_rate(DROPPED)})",
            op=">", threshold=None, for_=threshold("dropped_for"),
            summary="claude-otel in {{ $labels.job }} is dropping {{ $labels.signal }}",
            description="claude-otel in {{ $labels.job }} dropped {{ $value | humanize }} {{ $labels.signal }} "
                        "items per second over the last 5 minutes: its exporter or collector is down, slow or "
                        "refusing. Claude calls are unaffected; these dashboards are incomplete.",
            fmt="humanize", panel=("claude-overview", "Telemetry dropped by claude-otel"), scope="job"),
    ]


def threshold_value(a: Alert) -> float:
    """Returns the alert's threshold (0 for an alert without one)."""
    return 0.0 if a.threshold is None else float(threshold(a.threshold))


def prometheus_expr(a: Alert) -> str:
    """Returns the Prometheus alert expression: the value's line compared with the threshold, then the gates."""
    if a.op is None:
        return a.expr
    head, sep, gates = a.expr.partition("\n")
    return f"{head} {a.op} {threshold_value(a):g}" + (f"\n{gates}" if sep else "")


# -- annotations: what a page says ---------------------------------------------------------------------------------
# Every alert carries the same keys, so a receiver (and the on-call engineer) finds them in one place: service,
# model, stream, timeout_kind, cause, threshold, dashboard_url, runbook_url, next to summary and description.
# timeout_kind and cause are read at notification time by a query in the template (the alert's own labels do not
# hold them, and putting a changing cause in the labels would restart the alert whenever the cause changes).

ANNOTATION_KEYS = ("summary", "description", "service", "model", "stream", "timeout_kind", "cause", "threshold",
                   "dashboard_url", "runbook_url")
NO_TIMEOUT = "none: no attempt timed out in the last 5 minutes"


def label_matchers(scope: str) -> Tuple[str, str]:
    """Returns (PromQL matcher format, the template's printf arguments) selecting an alert's job, model (, stream)."""
    fmt = "job=%q, gen_ai_request_model=%q"
    args = "$labels.job $labels.gen_ai_request_model"
    if scope == "job_model_stream":
        fmt += ", anthropic_request_stream=%q"
        args += " $labels.anthropic_request_stream"
    return fmt, args


def kind_template(a: Alert) -> str:
    """Returns the timeout_kind annotation: the alert's own label, else the phase of most timed-out attempts."""
    if a.scope == "job":
        return "n/a (not about calls)"
    # the headroom rules keep the timeout kind as a label of their own (recording.py): a warning before any timeout
    # names the limit being approached, not "no attempt timed out"
    if KIND in a.expr or "timeout_utilization_over_" in a.expr:
        return "{{ $labels.anthropic_timeout_kind }}"
    fmt, args = label_matchers(a.scope)
    query = (f"topk(1, sum by (anthropic_timeout_phase) (claude:attempt_timeouts:rate5m{{{fmt}}}) > 0)")
    return ('{{ with query (printf "' + query.replace('"', '\\"') + '" ' + args + ') }}'
            '{{ . | first | label "anthropic_timeout_phase" }}{{ else }}' + NO_TIMEOUT + '{{ end }}')


def cause_template(a: Alert) -> str:
    """Returns the cause annotation: the dominant anthropic.failure.cause and its share, read when it fires."""
    if a.scope == "job":
        return "n/a (not about calls)"
    fmt, args = label_matchers(a.scope)
    if a.name.startswith("ClaudeTimeoutBudget"):
        rule, of, stream = f"claude:timeout_cause:share_rate{CAUSE_WINDOW}", "timed-out", ""
    else:  # every failed call of the job and model, the stream it happened on included
        fmt, args = label_matchers("job_model")
        rule, of, stream = f"claude:failure_cause:share_rate{CAUSE_WINDOW}", "failed", \
            ", stream={{ .Labels.anthropic_request_stream }}"
    query = f"topk(1, {rule}{{{fmt}}} > 0)"
    return ('{{ with query (printf "' + query.replace('"', '\\"') + '" ' + args + ') }}{{ with first . }}'
            '{{ or .Labels.anthropic_failure_cause "unrecorded" }} ({{ .Value | humanizePercentage }} of the '
            f'{of} calls in the last {CAUSE_WINDOW}{stream}){{{{ end }}}}{{{{ else }}}}'
            f'none: no call {of.replace("-", " ")} in the last {CAUSE_WINDOW}{{{{ end }}}}')


def threshold_template(a: Alert) -> str:
    """Returns the threshold annotation (plain text)."""
    if a.threshold_text:
        return a.threshold_text
    if a.threshold is None:
        return f"{'any rate above 0' if a.op else 'the condition itself'}, for {a.for_}"
    v = threshold_value(a)
    shown = {"humanizePercentage": f"{v * 100:g}%", "humanizeDuration": f"{v:g} s"}.get(a.fmt, f"{v:g}")
    return f"{'above' if a.op == '>' else 'below'} {shown} ({a.threshold}) for {a.for_}"


def dashboard_url(a: Alert) -> str:
    """Returns the dashboard_url annotation: the alert's dashboard, filtered to its job (and model, stream)."""
    uid = a.panel[0]
    url = f"{config.GRAFANA_URL}/d/{uid}?var-job={{{{ $labels.job | urlquery }}}}"
    if a.scope != "job":
        url += "&var-model={{ $labels.gen_ai_request_model | urlquery }}"
    if a.scope == "job_model_stream":
        url += "&var-stream={{ $labels.anthropic_request_stream }}"
    return url


def annotations(a: Alert) -> Dict[str, str]:
    """Returns the alert's Prometheus annotations (templates), in ANNOTATION_KEYS order."""
    found = {
        "summary": a.summary,
        "description": a.description,
        "service": "{{ $labels.job }}",
        "model": "n/a (every model of the job)" if a.scope == "job" else "{{ $labels.gen_ai_request_model }}",
        "stream": {"job_model_stream": "{{ $labels.anthropic_request_stream }}",
                   "job_model": "any (the alert is per job and model)", "job": "n/a"}[a.scope],
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


def alert_groups() -> List[dict]:
    """Returns the Prometheus alert rule groups (one group, claude-otel.alerts)."""
    return [{"name": "claude-otel.alerts", "rules": [{
        "alert": a.name,
        "expr": prometheus_expr(a),
        "for": a.for_,
        "labels": {"severity": a.severity},
        "annotations": annotations(a),
    } for a in alerts()]}]


def grafana_alerting(panel_ids: Dict[Tuple[str, str], int]) -> dict:
    """Returns the same alerts as Grafana-managed rules (file provisioning, apiVersion 1)."""
    # Query A is the alert's value over the raw series (so these work without the recording rules), B reduces it
    # to its last value, C is the threshold. Grafana does not expand environment variables in annotations, so the
    # {{ $labels.x }} and {{ $values.B.Value }} templates are safe there.
    rules = []
    for a in alerts():
        evaluator = {"type": "lt" if a.op == "<" else "gt", "params": [threshold_value(a)]}
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
                 "model": {"refId": "C", "type": "threshold", "expression": "B",
                           "conditions": [{"evaluator": evaluator}],
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


