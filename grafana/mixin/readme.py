"""grafana/README.md: a fixed text with the tables (alerts, burn rates, thresholds, panels, recording rules)
filled in from what the other modules generate."""

from __future__ import annotations

from typing import Dict, List

from . import config
from .alerts import alerts, slo_burn_alerts
from .config import THRESHOLDS, budget, burn_rate_alert, threshold
from .promql import seconds
from .recording import CALLS, CAUSE_WINDOW, recording_groups, slo_ratio, slo_windows

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


def cell(text: str) -> str:
    """Returns text fit for one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def alert_rows() -> List[str]:
    """Returns the alert table's rows: name (linking its runbook), severity, when it fires, for how long."""
    fires_when = {
        "ClaudeRequestsNearTimeout": f"more than {threshold('near_timeout_80_share'):.0%} of a job's attempts to a "
                                     "model (per streamed/not and timeout kind: read, connect, proxy_idle) used over "
                                     "80% of their timeout",
        "ClaudeRequestsVeryNearTimeout": f"more than {threshold('near_timeout_90_share'):.0%} of them used over 90%",
        **{a.name: f"the timeout ratio of a job, model and stream burns the error budget of the "
                   f"{float(threshold('slo_target')):.1%} SLO faster than {a.threshold_text.split(' (')[0]}"
           for a in slo_burn_alerts()},
        "ClaudeAPIErrors": f"more than {threshold('error_ratio'):.0%} of calls fail with one non-timeout error type "
                           "(overloaded_error, rate_limit_error, 5xx, connection_error...)",
        "ClaudeRetryStorm": f"more than {threshold('retries_per_call'):g} retries per call",
        "ClaudeSlowFirstToken": f"p95 time to first token above {threshold('ttft_p95_seconds'):g} s",
        "ClaudeSlowPrefill": f"p95 prefill above {threshold('prefill_p95_seconds'):g} s",
        "ClaudeLongStreamGaps": f"p99 longest gap inside streams above {threshold('stream_gap_p99_seconds'):g} s",
        "ClaudeRateLimitNearlyExhausted": "remaining requests/tokens below "
                                          f"{threshold('ratelimit_remaining_ratio'):.0%} of the day's peak",
        "ClaudeTelemetryAbsent": "a job that sent call metrics in the last day sends none",
        "ClaudeTelemetryDropped": "claude-otel drops telemetry",
    }
    return [f"| [{a.name}](runbooks.md#{a.anchor}) | {a.severity} | {cell(fires_when[a.name])} | {a.for_} |"
            for a in alerts()]


def burn_rows() -> List[str]:
    """Returns the burn-rate table's rows: alert, severity, burn rate, windows, timeout ratio, budget spent."""
    rows = []
    for a in slo_burn_alerts():
        long, short, burn = burn_rate_alert(a.threshold.split("_")[1])
        spent = burn * seconds(long) / (30 * 86400)
        rows.append(f"| {a.name} | {a.severity} | {burn:g}x | {long} and {short} | above "
                    f"{burn * budget():.2%} | {spent:.0%} of 30 days' budget in {long} |")
    return rows


def panel_lists(models: Dict[str, dict]) -> str:
    """Returns, per dashboard, its title, description and every row and panel with its unit and description."""
    lists = []
    for model in models.values():
        lists.append(f"### {model['title']} (`/d/{model['uid']}`)\n\n{model['description']}\n")
        for p in model["panels"]:
            if p["type"] == "row":
                lists.append(f"\n*{p['title']}*\n")
            elif p["type"] == "text":
                lists.append(f"- **{p['title']}** (text): a triage guide linking the other dashboards and the "
                             "runbooks.")
            else:
                lists.append(f"- **{p['title']}** ({p['fieldConfig']['defaults']['unit']}): {p['description']}")
        lists.append("")
    return "\n".join(lists).rstrip()


def rule_rows() -> List[str]:
    """Returns the recording-rule table's rows: each rule and what it is."""
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
    rows = []
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
            rows.append(f"| `{name}` | {meaning} |")
    return rows


def readme(models: Dict[str, dict]) -> str:
    """Returns grafana/README.md: README with its tables filled in."""
    text = README
    threshold_rows = [f"| `{name}` | {value} | {cell(meaning)} |" for name, (value, meaning) in THRESHOLDS.items()]
    for key, value in (("runbook_base", config.RUNBOOK_BASE), ("grafana_url", config.GRAFANA_URL),
                       ("slo_target", f"{float(threshold('slo_target')):.2%}"), ("budget", f"{budget():.2%}"),
                       ("burn_table", "\n".join(burn_rows())), ("alert_table", "\n".join(alert_rows())),
                       ("min_rate", f"{threshold('min_request_rate'):g}"),
                       ("threshold_table", "\n".join(threshold_rows)), ("panel_lists", panel_lists(models)),
                       ("rule_table", "\n".join(rule_rows()))):
        text = text.replace("{" + key + "}", value)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
