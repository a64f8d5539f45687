"""The three Grafana dashboards (Overview, Timeouts and headroom, Streaming) as Grafana JSON models, built by
Dashboard: one call per row, text or panel, laid out left to right on Grafana's 24-column grid."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from . import config
from .config import burn_ratio, page_ratio, threshold
from .promql import (ACTIVE, ATTEMPTS, CHUNK, GAP, KIND, L_CHUNK, L_OPS, L_OUTPUT_PER_CALL, OPS, PREFILL, RATELIMIT,
                     STREAM, TOKENS, TTFT, UTIL, as_default_stream, bucket_rates, by, latest_matchers, quantile_of,
                     raw_rate)

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
    """Returns the matcher of a non-integer bucket bound (exporters write 1.0 as "1.0" or "1")."""
    assert bound != int(bound)
    return f'le="{bound:g}"'


@dataclass
class Target:
    """One query of a panel, and the legend of its series."""

    expr: str
    legend: str = ""
    exemplar: bool = False  # raw histogram queries: a slow point links to the trace that made it


def selector(extra: str = "") -> str:
    """Returns the matchers of the dashboard variables (and `extra`), braces included."""
    return "{" + SEL + (", " + extra if extra else "") + "}"


def filtered(name: str, extra: str = "") -> str:
    """Returns a recording rule's series, filtered by the dashboard variables."""
    return name + selector(extra)


def dashboard_quantile(q: float, metric: str, group: str = "gen_ai_request_model", extra: str = "") -> str:
    """Returns a quantile of a raw histogram (so exemplars work) over Grafana's rate interval, filtered."""
    return quantile_of(q, bucket_rates(metric, selector(extra)[1:-1], "$__rate_interval"), group)


def latest_dashboard_quantile(q: float, metric: str, group: str = "gen_ai_request_model") -> str:
    """Returns a quantile of a latest-set histogram whose bounds differ from the default set's (so not summable)."""
    return quantile_of(q, raw_rate(metric + "_bucket", latest_matchers(SEL), "$__rate_interval"), group)


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
    """Returns a panel link to an alert's runbook."""
    return {"title": f"Runbook: {alert}", "url": config.runbook_url(alert), "targetBlank": True}


def dashboard_link(uid: str) -> dict:
    """Returns a panel link to another dashboard, keeping the time range and variables."""
    return {"title": DASHBOARD_TITLES[uid], "url": f"/d/{uid}?${{__url_time_range}}&${{__all_variables}}"}


def client_timeout_lines() -> List[Tuple[float, str]]:
    """Returns the threshold lines at 80% (orange) and 100% (red) of the SDK's default read timeout."""
    return [(0.8 * threshold("client_timeout_seconds"), ORANGE), (threshold("client_timeout_seconds"), RED)]


def quantile_targets(metric: str, quantiles: Sequence[float]) -> List[Target]:
    """Returns one exemplar-linked target per quantile of a raw histogram, by model, legends "p95 <model>"."""
    return [Target(dashboard_quantile(q, metric), f"p{int(q * 100)} {{{{gen_ai_request_model}}}}", exemplar=True)
            for q in quantiles]


class Dashboard:
    """A Grafana dashboard being built: rows, text and panels placed left to right, wrapping at 24 columns."""

    def __init__(self, uid: str, description: str) -> None:
        """Starts an empty dashboard; its title is DASHBOARD_TITLES[uid]."""
        self.uid, self.title, self.description = uid, DASHBOARD_TITLES[uid], description
        self.panels: List[dict] = []
        self.x = self.y = 0
        self.line_height = 0

    def _place(self, width: int, height: int) -> dict:
        """Returns the gridPos of the next panel of this size, on a new line if the current one is full."""
        if self.x + width > 24:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0
        pos = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.x += width
        self.line_height = max(self.line_height, height)
        return pos

    def _newline(self) -> None:
        """Moves the next panel to a new line, unless the current one is empty; returns nothing."""
        if self.x:
            self.x, self.y, self.line_height = 0, self.y + self.line_height, 0

    def row(self, title: str) -> None:
        """Adds a row header across the whole width; returns nothing."""
        self._newline()
        self.panels.append({"type": "row", "title": title, "id": len(self.panels) + 1, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def text(self, title: str, content: str, height: int = 5) -> None:
        """Adds a full-width markdown panel; returns nothing."""
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
        """Adds a timeseries, stat or heatmap panel with threshold lines at `thresholds`; returns nothing."""
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
        """Returns the dashboard's Grafana JSON model: variables, links between dashboards, the panels."""
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
        for name, text, default in (("timeout", "Client read timeout (s)", threshold("client_timeout_seconds")),
                                    ("proxy_idle", "Proxy idle timeout (s)", threshold("proxy_idle_seconds"))):
            variables.append({"name": name, "label": text, "type": "textbox", "query": str(default), "hide": 0,
                              "current": {"text": str(default), "value": str(default)},
                              "options": [{"selected": True, "text": str(default), "value": str(default)}],
                              "description": "Reference line only: the timeout your clients or proxies apply."})
        links = [{"title": DASHBOARD_TITLES[uid], "type": "link", "icon": "dashboard", "url": f"/d/{uid}",
                  "includeVars": True, "keepTime": True, "targetBlank": False, "asDropdown": False, "tags": [],
                  "tooltip": ""}
                 for uid in DASHBOARD_TITLES if uid != self.uid]
        links.append({"title": "Runbooks", "type": "link", "icon": "doc", "url": config.RUNBOOK_BASE,
                      "targetBlank": True, "includeVars": False, "keepTime": False, "asDropdown": False, "tags": [],
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


def triage() -> str:
    """Returns the markdown of the Overview's "Start here" text panel."""
    return f"""
**Are Claude calls timing out?** *Timeout ratio* (pages above {page_ratio():.1%} over 1 h and 5 m) and *Errors by error
type* below. **Which service and model?** The by-service panels. **How close are the rest?** *Attempts above 80%
of their timeout*, then [Timeouts and headroom](/d/claude-timeouts): which timeout is closest (read, connect,
proxy_idle) and why (prefill, non-streamed long generations, stream gaps). **Us or them?** `timeout`,
`connection_error` and near-timeout attempts are usually ours (timeouts, proxies, prompt size);
`overloaded_error` / 529 and `rate_limit_error` / 429 are the API's. **What to do:** each alert links its section
of the [runbooks]({config.RUNBOOK_BASE}).
"""


def overview() -> Dashboard:
    """Returns the Overview dashboard: are calls healthy, per service and model."""
    d = Dashboard("claude-overview", "Are Claude API calls healthy? Traffic, errors, timeouts, latency, tokens and "
                                     "rate limits per service (job) and model, from claude-otel. Needs the recording "
                                     "rules in grafana/rules loaded in Prometheus.")
    d.text("Start here", triage())
    requests, timeouts = filtered("claude:requests:rate5m"), filtered("claude:timeouts:rate5m")
    util = "claude:timeout_utilization_bucket:rate5m"
    d.panel("Calls per second", "Claude SDK calls per second (all selected services and models). A drop to zero "
            "while services run means calls hang or the agent stopped reporting (ClaudeTelemetryAbsent).",
            [Target(f"sum({requests})")], "reqps", kind="stat", width=4, height=4,
            links=[runbook("ClaudeTelemetryAbsent")])
    d.panel("Timeout ratio", "Share of calls that ended in 'Request timed out' over 5 minutes. Above "
            f"{page_ratio():.1%} over both 1 hour and 5 minutes pages (ClaudeTimeoutBudgetFastBurn: "
            f"{threshold('slo_fast_burn'):g}x the error budget of a {float(threshold('slo_target')):.1%} SLO). "
            "Open the Timeouts and headroom dashboard.",
            [Target(f"(sum({timeouts}) or vector(0)) / sum({requests})")], "percentunit", kind="stat", width=4,
            height=4, thresholds=[(page_ratio(), RED)],
            links=[runbook("ClaudeTimeoutBudgetFastBurn"), dashboard_link("claude-timeouts")])
    d.panel("Error ratio", "Share of calls that failed, any error type, over 5 minutes. Above "
            f"{threshold('error_ratio'):.0%} for one non-timeout error type warns: ClaudeAPIErrors. See Errors by "
            "error type.",
            [Target(f"(sum({filtered('claude:errors:rate5m')}) or vector(0)) / sum({requests})")], "percentunit",
            kind="stat", width=4, height=4, thresholds=[(threshold("error_ratio"), RED)],
            links=[runbook("ClaudeAPIErrors")])
    d.panel("Attempts above 80% of their timeout", "Share of HTTP attempts that used more than 80% of their "
            "governing timeout (connect, read or proxy idle). Above "
            f"{threshold('near_timeout_80_share'):.0%} warns (ClaudeRequestsNearTimeout): timeouts are next. Raise "
            "the timeout, stream, or fix the proxy; see the runbook.",
            [Target(f"(sum({filtered(util, LE_INF)}) - sum({filtered(util, le_is(0.8))})) / "
                    f"sum({filtered(util, LE_INF)})")], "percentunit", kind="stat", width=4, height=4,
            thresholds=[(threshold("near_timeout_80_share"), ORANGE)],
            links=[runbook("ClaudeRequestsNearTimeout"), dashboard_link("claude-timeouts")])
    d.panel("Retries per call", "SDK retries per call over 5 minutes. Above "
            f"{threshold('retries_per_call'):g} warns (ClaudeRetryStorm): see Retries by reason on the timeouts "
            "dashboard.",
            [Target(f"(sum({filtered('claude:retries:rate5m')}) or vector(0)) / sum({requests})")], "short",
            kind="stat", width=4, height=4, thresholds=[(threshold("retries_per_call"), ORANGE)],
            links=[runbook("ClaudeRetryStorm")])
    d.panel("p99 call duration", "Whole-call p99 (retries, backoff and stream reading included). Orange at 80% "
            f"and red at 100% of the SDK's default {threshold('client_timeout_seconds')} s timeout: a non-streamed "
            "call that long is about to time out.",
            [Target(f"histogram_quantile(0.99, sum by (le) "
                    f"({filtered('claude:operation_duration_seconds_bucket:rate5m')}))")],
            "s", kind="stat", width=4, height=4,
            thresholds=client_timeout_lines())

    d.row("Traffic and errors")
    d.panel("Call rate by service and model", "Calls per second per service (job) and model. A service whose "
            "line disappears stopped sending telemetry (ClaudeTelemetryAbsent) or stopped calling Claude.",
            [Target(f"sum by (job, gen_ai_request_model) ({requests})", "{{job}} {{gen_ai_request_model}}")],
            "reqps", stack=True, links=[runbook("ClaudeTelemetryAbsent")])
    d.panel("Errors by error type", "Failed calls per second by error.type. timeout = our client timeout "
            "expired; connection_error = network, DNS or proxy; overloaded_error (529) and rate_limit_error (429) "
            "= the API pushing back; cancelled = the caller gave up. Warns at "
            f"{threshold('error_ratio'):.0%} of calls for one non-timeout type (ClaudeAPIErrors).",
            [Target(f"sum by (error_type) ({filtered('claude:errors:rate5m')})", "{{error_type}}")], "reqps",
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
            [Target(f"sum by (job) ({ACTIVE}{selector()})", "{{job}}")], "short", width=8)
    d.panel("Telemetry dropped by claude-otel", "Spans and metric points the agent could not export, per second. "
            f"Non-zero for {threshold('dropped_for')} warns (ClaudeTelemetryDropped): the collector is down or slow; "
            "these dashboards undercount. Claude calls are not affected.",
            [Target('sum by (job, signal) (rate(claude_otel_exporter_dropped_total{job=~"$job"}[$__rate_interval]))',
                    "{{job}} {{signal}}")], "short", width=8, thresholds=[(1e-9, ORANGE)],
            links=[runbook("ClaudeTelemetryDropped")])

    d.row("Latency")
    for q in (0.5, 0.95, 0.99):
        d.panel(f"p{int(q * 100)} call duration by model", "Whole-call duration (retries, backoff and stream "
                "reading included) from the raw histogram; points link to traces (exemplars). Orange/red at "
                f"80%/100% of the default {threshold('client_timeout_seconds')} s timeout: non-streamed calls near it "
                "time out.",
                [Target(dashboard_quantile(q, OPS), "{{gen_ai_request_model}}", exemplar=True)], "s", width=8,
                thresholds=client_timeout_lines())

    d.row("Tokens and rate limits")
    d.panel("Tokens per second by type", "Input, output and cache tokens per second. A jump in input tokens "
            "explains longer prefill; cache_read rising means prompt caching works.",
            [Target(f"sum by (gen_ai_token_type) ({filtered('claude:tokens:rate5m')})", "{{gen_ai_token_type}}")],
            "suffix: tokens/s", width=8, stack=True)
    d.panel("Rate limit remaining", "Remaining requests and tokens in the current rate-limit window, from the "
            "API's response headers (lowest across the selected services). Near zero: 429s and retries follow.",
            [Target(f'min by (gen_ai_request_model, anthropic_ratelimit_kind) ({RATELIMIT}'
                    '{job=~"$job", gen_ai_request_model=~"$model"})',
                    "{{gen_ai_request_model}} {{anthropic_ratelimit_kind}}")], "short", width=8)
    d.panel("Rate limit remaining (share of the day's peak)", "Remaining rate limit as a share of the highest "
            "remaining value in the last day (about the limit). Below "
            f"{threshold('ratelimit_remaining_ratio'):.0%} warns (ClaudeRateLimitNearlyExhausted): slow down, spread "
            "load or ask for a higher tier.",
            [Target('min by (job, gen_ai_request_model, anthropic_ratelimit_kind) (claude:ratelimit_remaining:ratio'
                    '{job=~"$job", gen_ai_request_model=~"$model"})',
                    "{{job}} {{gen_ai_request_model}} {{anthropic_ratelimit_kind}}")], "percentunit", width=8,
            max_=1, thresholds=[(0, RED), (threshold("ratelimit_remaining_ratio"), GREEN)],
            links=[runbook("ClaudeRateLimitNearlyExhausted")])
    return d


def timeouts() -> Dashboard:
    """Returns the Timeouts and headroom dashboard: how close calls are to which timeout, and why."""
    d = Dashboard("claude-timeouts", "How close are Claude calls to their timeouts, which timeout (connect, read, "
                                     "proxy idle), and why: prefill on huge prompts, long non-streamed generations, "
                                     "stream gaps against proxy idle timeouts, retries and backoff.")
    util = "claude:timeout_utilization_bucket:rate5m"
    d.row("Headroom")
    d.panel("Timeout utilization per attempt", "Each HTTP attempt's largest share of its governing timeout (1.0 = "
            "timed out). Mass moving toward the top means timeouts are coming; click a cell's exemplar for a trace.",
            [Target(f"sum by (le) (rate({UTIL}_bucket{selector()}[$__rate_interval]))", "{{le}}", exemplar=True)],
            "percentunit", kind="heatmap", width=12, height=9)
    d.panel("Headroom: p99 timeout utilization by model", "p99 of the largest share of its timeout an attempt used, "
            "per model and governing timeout (read, connect, proxy_idle). This is the honest headroom: 0.5 = the "
            "slowest 1% used half their timeout; 1.0 = they time out. Orange at 0.8, red at 0.9.",
            [Target(f"max by (gen_ai_request_model, {KIND}) "
                    f"({dashboard_quantile(0.99, UTIL, by('gen_ai_request_model', KIND))})",
                    "{{gen_ai_request_model}} {{anthropic_timeout_kind}}", exemplar=True)], "percentunit",
            width=12, height=9, max_=1, thresholds=[(0.8, ORANGE), (0.9, RED)],
            links=[runbook("ClaudeRequestsNearTimeout")])
    for pct, alert, share in ((80, "ClaudeRequestsNearTimeout", "near_timeout_80_share"),
                              (90, "ClaudeRequestsVeryNearTimeout", "near_timeout_90_share"),
                              (95, "ClaudeRequestsVeryNearTimeout", "near_timeout_90_share")):
        level = f"{alert} warns above {threshold(share):.0%}." if pct != 95 else (
            f"No alert of its own; ClaudeRequestsVeryNearTimeout (above 90%) warns at {threshold(share):.0%}.")
        d.panel(f"Share of attempts above {pct}% of their timeout", f"Share of attempts per model and timeout kind "
                f"that came within {100 - pct}% of timing out. {level} proxy_idle: align the proxy's idle timeout; "
                "read: stream or raise the timeout; connect: check DNS and the network.",
                [Target(f"(sum by (gen_ai_request_model, {KIND}) ({filtered(util, LE_INF)}) - sum by "
                        f"(gen_ai_request_model, {KIND}) ({filtered(util, le_is(pct / 100))})) / on "
                        f"(gen_ai_request_model) group_left sum by (gen_ai_request_model) ({filtered(util, LE_INF)})",
                        "{{gen_ai_request_model}} {{anthropic_timeout_kind}}")], "percentunit", width=8,
                thresholds=[(threshold(share), ORANGE)], links=[runbook(alert)])

    d.row("Timeouts")
    d.panel("Timed-out attempts by phase", "HTTP attempts that timed out per second: connect (network, DNS, "
            "proxy), read (no byte within the read timeout: prefill, non-streamed generation, stall), write, pool "
            "(client connection pool exhausted). Retried attempts count here too.",
            [Target(f"sum by (anthropic_timeout_phase) ({filtered('claude:attempt_timeouts:rate5m')})",
                    "{{anthropic_timeout_phase}}")], "reqps", width=8, stack=True,
            links=[runbook("ClaudeTimeoutBudgetFastBurn")])
    d.panel("Calls that timed out by service and model", "Calls that failed with 'Request timed out' after all "
            "retries, per second. Compare with Timed-out attempts: the difference was saved by retries.",
            [Target(f"sum by (job, gen_ai_request_model) ({filtered('claude:timeouts:rate5m')})",
                    "{{job}} {{gen_ai_request_model}}")], "reqps", width=8,
            links=[runbook("ClaudeTimeoutBudgetFastBurn")])
    d.panel("p99 attempt duration vs client timeout", "p99 duration of one HTTP attempt per model, against the "
            "$timeout s client timeout (dashboard variable). A non-streamed attempt must finish within the read "
            "timeout; a line reaching the timeout line means those calls time out. Streams only need their gaps "
            "below it.",
            [Target(dashboard_quantile(0.99, ATTEMPTS), "{{gen_ai_request_model}}", exemplar=True),
             Target("vector($timeout)", "client timeout")], "s", width=8,
            thresholds=client_timeout_lines())

    d.row("Why: prefill, first token, stream gaps")
    d.panel("Prefill p95 / p99 by model", "Final attempt's request sent to first content token (streams): "
            "queueing plus prefill; huge prompts show here first. ClaudeSlowPrefill warns when p95 exceeds "
            f"{threshold('prefill_p95_seconds'):g} s: shorten prompts or use prompt caching.",
            quantile_targets(PREFILL, (0.95, 0.99)), "s", width=8,
            thresholds=[(threshold("prefill_p95_seconds"), ORANGE)], links=[runbook("ClaudeSlowPrefill")])
    d.panel("Time to first token p95 / p99 by model", "Call start to first content token (streams), retries and "
            "backoff included. Much higher than prefill = time lost to retries. ClaudeSlowFirstToken warns when p95 "
            f"exceeds {threshold('ttft_p95_seconds'):g} s.",
            quantile_targets(TTFT, (0.95, 0.99)), "s", width=8,
            thresholds=[(threshold("ttft_p95_seconds"), ORANGE)], links=[runbook("ClaudeSlowFirstToken")])
    d.panel("Longest stream gap p99 vs proxy idle timeout", "p99 of each stream's longest silence after the first "
            "token, against the $proxy_idle s proxy idle timeout (dashboard variable). A proxy (nginx "
            "proxy_read_timeout) cuts streams whose gap reaches it. ClaudeLongStreamGaps warns above "
            f"{threshold('stream_gap_p99_seconds'):g} s.",
            [Target(dashboard_quantile(0.99, GAP), "{{gen_ai_request_model}}", exemplar=True),
             Target("vector($proxy_idle)", "proxy idle timeout")], "s", width=8,
            thresholds=[(threshold("stream_gap_p99_seconds"), ORANGE)], links=[runbook("ClaudeLongStreamGaps")])

    d.row("Retries")
    d.panel("Retries by reason", "SDK retries per second by reason: 429 (rate limit), 529 (overloaded), 5xx, "
            "timeout, connection_error. 429/529 are the API pushing back; timeout/connection_error are usually "
            "ours.", [Target(f"sum by (anthropic_retry_reason) ({filtered('claude:retries:rate5m')})",
                             "{{anthropic_retry_reason}}")], "reqps", width=8, stack=True,
            links=[runbook("ClaudeRetryStorm")])
    d.panel("Retries per call", "Retries per call per service and model. ClaudeRetryStorm warns above "
            f"{threshold('retries_per_call'):g}: each retry adds an attempt and a backoff to the call.",
            [Target(f"(sum by (job, gen_ai_request_model) ({filtered('claude:retries:rate5m')}) or sum by (job, "
                    f"gen_ai_request_model) ({filtered('claude:requests:rate5m')}) * 0) / sum by (job, "
                    f"gen_ai_request_model) ({filtered('claude:requests:rate5m')})",
                    "{{job}} {{gen_ai_request_model}}")],
            "short", width=8, thresholds=[(threshold("retries_per_call"), ORANGE)],
            links=[runbook("ClaudeRetryStorm")])
    d.panel("Time lost to backoff", "Seconds spent waiting before retries, per second of wall time, by reason "
            "(retry-after honoured). 2 = on average two calls are sleeping at any moment.",
            [Target(f"sum by (anthropic_retry_reason) ({filtered('claude:retry_backoff_seconds:rate5m')})",
                    "{{anthropic_retry_reason}}")], "s", width=8, stack=True, links=[runbook("ClaudeRetryStorm")])
    return d


def streaming() -> Dashboard:
    """Returns the Streaming dashboard: first token, prefill, chunk timing and gaps of streamed calls."""
    d = Dashboard("claude-streaming", "Streamed Claude calls: time to first token, prefill, time per output chunk "
                                      "and the longest gap between chunks, by model.")
    d.row("First token")
    d.panel("Time to first token by model", "Call start to first content delta, p50/p95/p99, retries and backoff "
            f"included. ClaudeSlowFirstToken warns when p95 exceeds {threshold('ttft_p95_seconds'):g} s.",
            quantile_targets(TTFT, (0.5, 0.95, 0.99)), "s", thresholds=[(threshold("ttft_p95_seconds"), ORANGE)],
            links=[runbook("ClaudeSlowFirstToken")])
    d.panel("Prefill by model", "Final attempt's request sent to first content delta, p50/p95/p99: queueing plus "
            f"prompt processing. ClaudeSlowPrefill warns when p95 exceeds {threshold('prefill_p95_seconds'):g} s: "
            "shorten prompts or cache their prefix.",
            quantile_targets(PREFILL, (0.5, 0.95, 0.99)), "s",
            thresholds=[(threshold("prefill_p95_seconds"), ORANGE)],
            links=[runbook("ClaudeSlowPrefill")])
    d.row("Generation")
    d.panel("Time per output chunk by model", "Gap between content deltas after the first, p50/p95 (opt-in "
            "metric; empty unless enabled). Rising values mean slower generation, not a client problem.",
            quantile_targets(CHUNK, (0.5, 0.95)) +
            # the latest set's spec buckets differ from the default's chunk buckets: its own lines, not a sum
            [Target(latest_dashboard_quantile(q, L_CHUNK),
                    f"p{int(q * 100)} {{{{gen_ai_request_model}}}} (latest names)", exemplar=True)
             for q in (0.5, 0.95)], "s", width=8)
    d.panel("Longest stream gap by model", "Each stream's longest wait for the next event after the first token, "
            "p50/p99, against the $proxy_idle s proxy idle timeout. Reaching it cuts streams; ClaudeLongStreamGaps "
            f"warns when p99 exceeds {threshold('stream_gap_p99_seconds'):g} s.",
            quantile_targets(GAP, (0.5, 0.99)) + [Target("vector($proxy_idle)", "proxy idle timeout")], "s", width=8,
            thresholds=[(threshold("stream_gap_p99_seconds"), ORANGE)], links=[runbook("ClaudeLongStreamGaps")])
    d.panel("Longest stream gap distribution", "Streams per second by their longest gap. Cells near the proxy "
            "idle timeout are streams about to be cut; exemplars link to their traces.",
            [Target(f"sum by (le) (rate({GAP}_bucket{selector()}[$__rate_interval]))", "{{le}}", exemplar=True)],
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
    """Returns the output-token histogram rates (_sum or _count) of both name sets, by model and stream."""
    latest = as_default_stream(f"rate({L_OUTPUT_PER_CALL}{suffix}{{{latest_matchers(SEL)}}}[$__rate_interval])")
    return (f"sum by (gen_ai_request_model, {STREAM}) (rate({TOKENS}{suffix}{selector(OUTPUT)}[$__rate_interval]) "
            f"or {latest})")


DASHBOARDS: Dict[str, Callable[[], Dashboard]] = {
    "claude-overview.json": overview, "claude-timeouts.json": timeouts, "claude-streaming.json": streaming}


def models() -> Dict[str, dict]:
    """Returns {file name: Grafana JSON model} of every dashboard."""
    return {name: build().model() for name, build in DASHBOARDS.items()}


def panel_ids(models: Dict[str, dict]) -> Dict[Tuple[str, str], int]:
    """Returns {(dashboard uid, panel title): panel id} of every panel of `models`."""
    return {(m["uid"], p["title"]): p["id"] for m in models.values() for p in m["panels"]}

