"""grafana/: generated files up to date, promtool checks and unit tests, every PromQL expression parsed and
limited to the metric contract, dashboard models validated (grafana-foundation-sdk, Grafana 11.6 types), and every
dashboard, recording-rule and alert expression evaluated by a real Prometheus on a workload.

Two workloads: a synthetic exposition made here (90 minutes of scrapes: timeouts, retries, slow prefill, stream
gaps near a proxy idle timeout, rate limits, a service going silent), backfilled with promtool, where the alerts
must fire exactly where the workload says; and a real `claude-otel demo` scraped live with the rules loaded.
To add another input, append a Workload to WORKLOADS: any OpenMetrics text with timestamps works
(tests.helpers.prometheus.scrapes_to_openmetrics turns several untimestamped scrapes into one).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import promql_parser
import pytest
import yaml

from tests.helpers.procs import read_rest, read_until  # noqa: E402
from tests.helpers.prometheus import PrometheusServer, PrometheusUnavailable, scrapes_to_openmetrics, tool  # noqa: E402
from tests.helpers.require import missing, require_module  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
RULE_FILES = sorted((GRAFANA / "rules").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
UNIT_TESTS = sorted((GRAFANA / "tests").glob("*.yml"))
GRAFANA_ALERTS = GRAFANA / "provisioning" / "alerting" / "claude-otel-alerts.yml"

sys.path.insert(0, str(GRAFANA))
from mixin import alerts, config, outputs, promql  # noqa: E402
from mixin.dashboards import OWN_NOTE  # noqa: E402

# The metric contract: base name -> kind. Histograms expose _bucket, _sum and _count.
CONTRACT = {
    "gen_ai_client_operation_duration_seconds": "histogram",
    "gen_ai_client_token_usage": "histogram",
    "gen_ai_client_operation_time_to_first_chunk_seconds": "histogram",
    "gen_ai_client_operation_time_per_output_chunk_seconds": "histogram",
    "anthropic_client_stream_max_gap_seconds": "histogram",
    "anthropic_client_prefill_duration_seconds": "histogram",
    "anthropic_client_attempt_duration_seconds": "histogram",
    "anthropic_client_retries_total": "counter",
    "anthropic_client_retry_backoff_seconds": "histogram",
    "anthropic_client_timeouts_total": "counter",
    "anthropic_client_timeout_utilization": "histogram",
    "anthropic_client_active_requests": "gauge",
    "anthropic_ratelimit_remaining": "gauge",
    "claude_otel_exporter_dropped_total": "counter",
}
# The latest GenAI conventions (claude-otel with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental, or the
# official OpenTelemetry GenAI instrumentation), which every rule and panel over a gen_ai.* metric also reads.
LATEST_CONTRACT = {
    "gen_ai_client_inference_duration_seconds": "histogram",
    "gen_ai_client_inference_time_to_first_chunk_seconds": "histogram",
    "gen_ai_client_inference_time_per_output_chunk_seconds": "histogram",
    "gen_ai_client_inference_usage_input_tokens_total": "counter",
    "gen_ai_client_inference_usage_output_tokens_total": "counter",
    "gen_ai_client_inference_usage_cache_read_input_tokens_total": "counter",
    "gen_ai_client_inference_usage_cache_write_input_tokens_total": "counter",
    "gen_ai_client_inference_operation_input_tokens": "histogram",
    "gen_ai_client_inference_operation_output_tokens": "histogram",
}
CONTRACT_SERIES = {name + suffix for name, kind in CONTRACT.items()
                   for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))}
LATEST_SERIES = {name + suffix for name, kind in LATEST_CONTRACT.items()
                 for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))}


def promtool() -> str:
    try:
        return tool("promtool")
    except PrometheusUnavailable as e:
        missing(f"{e}: tests/setup.sh installs Debian's prometheus package")


def require_prometheus() -> None:
    try:
        tool("prometheus")
        tool("promtool")
    except PrometheusUnavailable as e:
        missing(f"{e}: tests/setup.sh installs Debian's prometheus package")


# -- reading the files -------------------------------------------------------------------------------------------

def rules() -> List[dict]:
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def recorded_names() -> Set[str]:
    return {r["record"] for r in rules() if "record" in r}


def grafana_rules() -> List[dict]:
    return [r for g in yaml.safe_load(GRAFANA_ALERTS.read_text())["groups"] for r in g["rules"]]


def models() -> Dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in DASHBOARDS}


def panels(model: dict):
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str, model: dict, rate_interval: str = "5m") -> str:
    """A dashboard query as Grafana sends it with every variable on its default (query variables on All)."""
    for var in model["templating"]["list"]:
        if var["type"] == "query":
            value = var.get("allValue") or ".*"
        elif var["type"] in ("textbox", "constant", "custom"):
            value = var["query"]
        else:
            continue
        expr = re.sub(r"\$\{?" + var["name"] + r"\}?(?!\w)", value, expr)
    return expr.replace("$__rate_interval", rate_interval)


def dashboard_queries(rate_interval: str = "5m") -> List[Tuple[str, str]]:
    """[(where, PromQL with variables substituted)] for every dashboard target."""
    out = []
    for name, model in models().items():
        for panel in panels(model):
            for target in panel.get("targets", []):
                out.append((f"{name} / {panel['title']} / {target['refId']}", substitute(target["expr"], model,
                                                                                         rate_interval)))
    return out


def all_expressions() -> List[Tuple[str, str]]:
    """Every PromQL expression the mixin ships: rules, Grafana-managed alert queries, dashboards, variables."""
    exprs = [(f"rule {r.get('record') or r['alert']}", r["expr"]) for r in rules()]
    exprs += [(f"grafana alert {r['title']} / {d['refId']}", d["model"]["expr"]) for r in grafana_rules()
              for d in r["data"] if "expr" in d["model"]]
    exprs += dashboard_queries()
    for name, model in models().items():
        for var in model["templating"]["list"]:
            if var["type"] == "query":
                match = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["definition"])
                assert match, (name, var["definition"])
                exprs.append((f"{name} / variable {var['name']}", substitute(match.group(1), model)))
    return exprs


def metric_names(expr: str) -> Set[str]:
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


# -- static checks -----------------------------------------------------------------------------------------------

def test_generated_files_are_committed_as_generated():
    for relative, text in outputs.outputs().items():
        path = GRAFANA / relative
        assert path.exists() and path.read_text() == text, f"grafana/{relative} differs: run python grafana/build.py"


def test_promtool_checks_every_rule_file():
    for path in RULE_FILES:
        result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    assert UNIT_TESTS
    for path in UNIT_TESTS:
        result = subprocess.run([promtool(), "test", "rules", path.name], capture_output=True, text=True,
                                cwd=path.parent)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not():
    alert_names = {r["alert"] for r in rules() if "alert" in r}
    assert len(alert_names) >= 8
    fired, silent, tested_records = set(), set(), set()
    rule_files_used = set()
    for path in UNIT_TESTS:
        suite = yaml.safe_load(path.read_text())
        rule_files_used |= {(path.parent / f).resolve() for f in suite["rule_files"]}
        for test in suite["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case["exp_alerts"] else silent).add(case["alertname"])
                for expected in case["exp_alerts"]:
                    rule = next(r for r in rules() if r.get("alert") == case["alertname"])
                    assert expected["exp_labels"]["severity"] == rule["labels"]["severity"]
                    assert tuple(expected["exp_annotations"]) == alerts.ANNOTATION_KEYS
                    assert expected["exp_annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]
            tested_records |= {t["expr"] for t in test.get("promql_expr_test", [])}
    assert rule_files_used == {p.resolve() for p in RULE_FILES}
    assert alert_names == fired, f"alerts no unit test fires: {alert_names - fired}"
    assert alert_names == silent, f"alerts no unit test keeps silent: {alert_names - silent}"
    # the recording rules alerts read are tested for exact values
    assert {"claude:requests:rate5m", "claude:timeout_ratio:rate5m", "claude:timeout_ratio:rate1d",
            "claude:timeout_utilization_over_80:ratio_rate5m", "claude:retries_per_request:ratio_rate5m"} <= tested_records


def test_every_alert_is_documented_linked_and_also_grafana_managed():
    runbooks = (GRAFANA / "runbooks.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbooks, re.M)}
    alert_rules = [r for r in rules() if "alert" in r]
    for rule in alert_rules:
        annotations = rule["annotations"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert tuple(annotations) == alerts.ANNOTATION_KEYS
        assert "your-org" not in json.dumps(annotations)
        assert annotations["runbook_url"] == f"{config.RUNBOOK_BASE}#{rule['alert'].lower()}"
        assert rule["alert"].lower() in headings, f"runbooks.md has no section '## {rule['alert']}'"
        assert "$labels.job" in annotations["summary"] + annotations["description"]
        if rule["alert"] != "ClaudeTelemetryAbsent":
            assert "{{ $value" in annotations["description"], rule["alert"]
    by_title = {r["title"]: r for r in grafana_rules()}
    assert set(by_title) == {r["alert"] for r in alert_rules}
    uids = [r["uid"] for r in grafana_rules()]
    assert len(uids) == len(set(uids)) and all(len(u) <= 40 for u in uids)
    dashboards = {m["uid"]: {p["id"]: p for p in panels(m)} for m in models().values()}
    for rule in alert_rules:
        g = by_title[rule["alert"]]
        assert g["for"] == rule["for"] and g["labels"] == rule["labels"]
        assert g["annotations"]["runbook_url"] == rule["annotations"]["runbook_url"]
        assert "$value " not in g["annotations"]["description"], "Grafana templates read $values.B.Value"
        assert g["condition"] == "C" and [d["refId"] for d in g["data"]] == ["A", "B", "C"]
        query, reduce, threshold = (d["model"] for d in g["data"])
        assert g["data"][0]["datasourceUid"] == config.DATASOURCE_UID and g["data"][0]["relativeTimeRange"]
        assert reduce["type"] == "reduce" and threshold["type"] == "threshold"
        assert g["panelId"] in dashboards[g["dashboardUid"]], "the alert's panel exists"
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    assert prometheus["uid"] == config.DATASOURCE_UID and prometheus["url"] == "http://prometheus:9090"
    traces = {d["uid"] for d in datasources["datasources"] if d["type"] in ("tempo", "jaeger")}
    assert {d["datasourceUid"] for d in prometheus["jsonData"]["exemplarTraceIdDestinations"]} <= traces
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "claude-otel.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/claude-otel"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_runbooks_name_real_panels_and_link_real_sections():
    runbooks = (GRAFANA / "runbooks.md").read_text()
    anchors = {slug(h) for h in re.findall(r"^#{1,4} (.+)$", runbooks, re.M)}
    for target in re.findall(r"\]\(#([^)]+)\)", runbooks):
        assert target in anchors, f"runbooks.md links to a missing section #{target}"
    dashboards = {"Overview": "claude-overview.json", "Timeouts": "claude-timeouts.json",
                  "Streaming": "claude-streaming.json"}
    titles = {name: {p["title"] for p in panels(m)} for name, m in models().items()}
    references = re.findall(r"\*\*(Overview|Timeouts|Streaming) › ([^*]+)\*\*", runbooks.replace("\n", " "))
    assert len(references) > 30
    for dashboard, panel in references:
        panel = re.sub(r"\s+", " ", panel)
        assert panel in titles[dashboards[dashboard]], f"runbooks.md names a missing panel: {dashboard} › {panel}"


def test_runbooks_quote_the_current_thresholds():
    """runbooks.md is hand-written: every number it quotes next to a THRESHOLDS name must be that threshold."""
    text = re.sub(r"\s+", " ", (GRAFANA / "runbooks.md").read_text())
    quoted = re.findall(r"(\d+(?:\.\d+)?) ?(%|s|x|minutes|times per call)? \(`(\w+)`", text)
    assert len(quoted) >= 10, quoted
    for number, unit, name in quoted:
        value = config.threshold(name)
        if unit == "%":
            assert float(number) / 100 == pytest.approx(value), name
        elif unit == "minutes":
            assert f"{number}m" == value, name
        else:
            assert float(number) == pytest.approx(float(value)), name


def test_every_expression_parses_and_uses_only_contract_metrics_and_recording_rules():
    known = CONTRACT_SERIES | LATEST_SERIES | recorded_names()
    exprs = all_expressions()
    assert len(exprs) > 80
    for where, expr in exprs:
        assert not re.search(r"\$(?!\d)", expr), f"{where}: unsubstituted variable in {expr}"  # $1: label_replace
        try:
            names = metric_names(expr)
        except ValueError as e:
            raise AssertionError(f"{where}: does not parse: {e}\n{expr}") from e
        assert names <= known, f"{where}: unknown metrics {names - known}"
        # never `le="1"` or `le="1.0"`: exporters disagree on how the bound 1 is written
        assert not re.search(r'le\s*=\s*"1(\.0)?"', expr), where


def test_contract_matches_what_claude_otel_exposes():
    """The metric contract the dashboards are written against is what the agent's Prometheus exporter names."""
    semconv = require_module("claude_otel.semconv")
    from claude_otel.exporters.prometheus import exposition_name

    instruments = {
        semconv.OPERATION_DURATION: ("s", "histogram"), semconv.TOKEN_USAGE: ("{token}", "histogram"),
        semconv.TIME_TO_FIRST_CHUNK: ("s", "histogram"), semconv.TIME_PER_OUTPUT_CHUNK: ("s", "histogram"),
        semconv.STREAM_MAX_GAP: ("s", "histogram"), semconv.PREFILL_DURATION: ("s", "histogram"),
        semconv.ATTEMPT_DURATION: ("s", "histogram"), semconv.RETRIES: ("{retry}", "counter"),
        semconv.RETRY_BACKOFF: ("s", "histogram"), semconv.TIMEOUTS: ("{timeout}", "counter"),
        semconv.TIMEOUT_UTILIZATION: ("1", "histogram"), semconv.ACTIVE_REQUESTS: ("{request}", "gauge"),
        semconv.RATELIMIT_REMAINING: ("{unit}", "gauge"), semconv.EXPORTER_DROPPED: ("{item}", "counter"),
    }
    exposed = {s for name, (unit, kind) in instruments.items() for s in exposition_name(name, unit, kind)}
    assert exposed == CONTRACT_SERIES
    latest = {
        semconv.INFERENCE_DURATION: ("s", "histogram"), semconv.INFERENCE_TIME_TO_FIRST_CHUNK: ("s", "histogram"),
        semconv.INFERENCE_TIME_PER_OUTPUT_CHUNK: ("s", "histogram"),
        semconv.USAGE_INPUT_COUNTER: ("{token}", "counter"), semconv.USAGE_OUTPUT_COUNTER: ("{token}", "counter"),
        semconv.USAGE_CACHE_READ_COUNTER: ("{token}", "counter"),
        semconv.USAGE_CACHE_WRITE_COUNTER: ("{token}", "counter"),
        semconv.OPERATION_INPUT_TOKENS: ("{token}", "histogram"),
        semconv.OPERATION_OUTPUT_TOKENS: ("{token}", "histogram"),
    }
    assert {s for name, (unit, kind) in latest.items() for s in exposition_name(name, unit, kind)} == LATEST_SERIES
    # the mixin's names and buckets come from claude_otel.semconv, written the exporter's way
    assert promql.OPS == "gen_ai_client_operation_duration_seconds"
    assert promql.L_OPS == "gen_ai_client_inference_duration_seconds"
    assert promql.L_CACHE_WRITE == "gen_ai_client_inference_usage_cache_write_input_tokens_total"
    assert promql.DURATION_BUCKETS == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                                      40.96, 81.92, 163.84, 327.68, 655.36]
    assert promql.SPEC_DURATION_BUCKETS == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                                           20.48, 40.96, 81.92]


def test_dashboards_are_complete_and_linked():
    titles = {}
    for name, model in models().items():
        assert model["schemaVersion"] >= 39 and model["uid"] and model["title"]
        titles[model["uid"]] = model["title"]
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        for var in ("job", "model", "stream"):
            assert variables[var]["multi"] and variables[var]["includeAll"], (name, var)
        ids = [p["id"] for p in panels(model)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        links = {link["url"] for link in model["links"]}
        assert config.RUNBOOK_BASE in links
        for panel in panels(model):
            grid = panel["gridPos"]
            assert 0 < grid["w"] <= 24 and grid["x"] + grid["w"] <= 24, panel["title"]
            if panel["type"] in ("row", "text"):
                continue
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name} / {panel['title']}: no unit"
            assert len(panel.get("description", "")) > 40, f"{name} / {panel['title']}: no description"
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert steps[0]["value"] is None
            for target in panel["targets"]:
                used = set(re.findall(r"\$\{?([A-Za-z_]\w*)", target["expr"])) - {"__rate_interval"}
                assert used <= set(variables), (panel["title"], used - set(variables))
                is_histogram = "_bucket{" in target["expr"] and "claude:" not in target["expr"]
                if is_histogram:
                    assert target.get("exemplar") is True, f"{panel['title']}: raw histogram without exemplars"
        for link in model["links"]:
            if link["url"].startswith("/d/"):
                assert link["url"][3:] in {m["uid"] for m in models().values()}
        assert len([link for link in model["links"] if link["url"].startswith("/d/")]) == len(models()) - 1
    # every alert's threshold shows on a panel at the same level
    for alert in alerts.alerts():
        if alert.threshold is None:
            continue
        level = config.burn_ratio(alert.threshold) if alert.threshold.startswith("slo_") else config.threshold(alert.threshold)
        assert any(step["value"] == level for m in models().values() for p in panels(m) if p["type"] != "row"
                   and p["type"] != "text" for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"]), alert.name


def _diff(original, roundtrip, path="") -> List[str]:
    """Paths where `original` has something the round trip through the SDK's types lost or changed."""
    if isinstance(original, dict):
        if not isinstance(roundtrip, dict):
            return [f"{path}: {type(roundtrip).__name__} instead of an object"]
        return [d for k, v in original.items() for d in
                (_diff(v, roundtrip[k], f"{path}.{k}") if k in roundtrip else [f"{path}.{k}: unknown field"])]
    if isinstance(original, list):
        if not isinstance(roundtrip, list) or len(roundtrip) != len(original):
            return [f"{path}: list changed"]
        return [d for i, (a, b) in enumerate(zip(original, roundtrip)) for d in _diff(a, b, f"{path}[{i}]")]
    if original != roundtrip and not (isinstance(original, (int, float)) and original == roundtrip):
        return [f"{path}: {original!r} became {roundtrip!r}"]
    return []


def test_dashboards_and_grafana_alerts_load_into_grafana_11_6_types():
    """Round-trips every dashboard and Grafana-managed alert query through grafana-foundation-sdk's Grafana 11.6
    models: a field the SDK does not know (misspelt, wrong place, wrong type) is lost on the way and reported."""
    require_module("grafana_foundation_sdk", "pip install 'grafana-foundation-sdk==1769699379!11.6.0'")
    from importlib.metadata import version

    assert version("grafana-foundation-sdk").endswith("11.6.0"), "pin the Grafana 11.6 build of the SDK"
    from grafana_foundation_sdk.cog import plugins
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.models import alerting, dashboard

    plugins.register_default_plugins()
    # fields Grafana stores in the JSON model but the SDK's 11.6 types leave out
    tolerated = re.compile(r"\.templating\.list\[\d+\]\.definition: unknown field$")  # the UI's copy of the query
    problems = []
    for name, model in models().items():
        roundtrip = json.loads(json.dumps(dashboard.Dashboard.from_json(model), cls=JSONEncoder))
        assert roundtrip["schemaVersion"] == model["schemaVersion"] == dashboard.Dashboard().schema_version
        problems += [f"{name}{p}" for p in _diff(model, roundtrip) if not tolerated.search(p)]
    for rule in grafana_rules():
        api_rule = {k: v for k, v in rule.items() if k not in ("dashboardUid", "panelId")}
        roundtrip = json.loads(json.dumps(alerting.Rule.from_json(api_rule), cls=JSONEncoder))
        problems += [f"alert {rule['title']}{p}" for p in _diff(api_rule, roundtrip)]
    assert not problems, "\n".join(problems)


# -- a synthetic workload ----------------------------------------------------------------------------------------

DURATION = promql.DURATION_BUCKETS
CHUNK_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
TOKEN_BUCKETS = [4.0 ** i for i in range(14)]
UTIL_BUCKETS = promql.UTIL_BUCKETS


def fmt_bound(b: float) -> str:
    """As prometheus_client writes a bucket bound (1.0 -> "1.0")."""
    return "+Inf" if b == math.inf else repr(float(b))


class Registry:
    """Cumulative metric state of one process, rendered as a Prometheus text exposition."""

    def __init__(self, job: str, instance: str) -> None:
        self.base = f'job="{job}",instance="{instance}"'
        self.hist: Dict[Tuple[str, str], list] = {}
        self.buckets: Dict[str, List[float]] = {}
        self.counters: Dict[Tuple[str, str], float] = {}
        self.gauges: Dict[Tuple[str, str], float] = {}

    def observe(self, name: str, bounds: List[float], labels: str, value: float, weight: int = 1) -> None:
        self.buckets[name] = bounds
        state = self.hist.setdefault((name, labels), [[0] * (len(bounds) + 1), 0.0, 0])
        state[0][bisect_left(bounds, value)] += weight
        state[1] += value * weight
        state[2] += weight

    def inc(self, name: str, labels: str, by: float = 1) -> None:
        self.counters[(name, labels)] = self.counters.get((name, labels), 0) + by

    def set(self, name: str, labels: str, value: float) -> None:
        self.gauges[(name, labels)] = value

    def render(self) -> str:
        out = []
        for (name, labels), (counts, total, count) in sorted(self.hist.items()):
            out.append(f"# TYPE {name} histogram")
            cumulative = 0
            for bound, n in zip(self.buckets[name] + [math.inf], counts):
                cumulative += n
                out.append(f'{name}_bucket{{{self.base},{labels},le="{fmt_bound(bound)}"}} {cumulative}')
            out.append(f"{name}_sum{{{self.base},{labels}}} {total!r}")
            out.append(f"{name}_count{{{self.base},{labels}}} {count}")
        for (name, labels), value in sorted(self.counters.items()):
            out.append(f"# TYPE {name[:-6]} counter")
            out.append(f"{name}{{{self.base},{labels}}} {value!r}")
        for (name, labels), value in sorted(self.gauges.items()):
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name}{{{self.base},{labels}}} {value!r}")
        return "\n".join(out) + "\n"


@dataclass
class Traffic:
    job: str
    instances: List[str]
    model: str
    stream: bool
    rate: float  # calls per second, all instances together
    proxy_idle: Optional[float] = None  # a declared proxy idle timeout, seconds
    until: Optional[float] = None  # stops (its process goes away) after this many seconds


READ_TIMEOUT, CONNECT_TIMEOUT = 600.0, 5.0
# The incident (opus: 30% of non-streamed calls time out, a 30x burn of a 1% error budget) must last long enough
# for the fast-burn alert's full hour to cross 14.4x: 30% over more than 29 of its 60 minutes (SRE workbook: 1 h
# x 14.4 / 30). So the span covers an hour before the end plus clean traffic before the incident; 40 minutes of
# incident put the 1 h ratio near 18% and the 1 d ratio (all of opus, 90 minutes of data) near 8%.
INCIDENT = 50 * 60  # seconds after the start: the incident the alerts must catch
SPAN = 90 * 60
SCRAPE = 30

TRAFFIC = [
    Traffic("chat-api", ["chat-api-0:9464", "chat-api-1:9464"], "claude-sonnet-4-5", True, 2.0, proxy_idle=60),
    Traffic("chat-api", ["chat-api-0:9464", "chat-api-1:9464"], "claude-sonnet-4-5", False, 0.5, proxy_idle=60),
    Traffic("chat-api", ["chat-api-0:9464", "chat-api-1:9464"], "claude-opus-4-1", False, 0.5, proxy_idle=60),
    Traffic("chat-api", ["chat-api-0:9464", "chat-api-1:9464"], "claude-opus-4-1", True, 0.3, proxy_idle=60),
    Traffic("batch-worker", ["batch-worker-0:9464"], "claude-haiku-4-5", False, 3.0),
    Traffic("report-cron", ["report-cron-0:9464"], "claude-haiku-4-5", False, 0.2, until=15 * 60),
]


def simulate_call(rng: random.Random, traffic: Traffic, incident: bool) -> dict:
    """One SDK call: attempts (duration, error type, timeout utilization and kind), retries, streaming timings."""
    model, stream = traffic.model, traffic.stream
    call = {"attempts": [], "retries": [], "error": None, "tokens": {}}
    input_tokens = rng.randint(2000, 20000)
    output_tokens = rng.randint(200, 2000)
    max_gap = prefill = None
    if model == "claude-opus-4-1" and not stream:
        output_tokens = rng.randint(2000, 16000)
        if incident and rng.random() < 0.3:  # long non-streamed generations run into the 600 s read timeout
            for attempt in range(3):
                call["attempts"].append((READ_TIMEOUT, "timeout", 1.0, "read", "read"))
                if attempt < 2:
                    call["retries"].append(("timeout", rng.uniform(0.5, 1.0)))
            call["error"] = "timeout"
            output_tokens = 0
        else:
            seconds = rng.uniform(20, 200)
            call["attempts"].append((seconds, None, seconds / READ_TIMEOUT, "read", None))
    elif model == "claude-haiku-4-5":
        retries = 0
        if incident:  # the API is overloaded: 529s, retried; some calls run out of retries
            roll = rng.random()
            retries = 0 if roll < 0.2 else 1 if roll < 0.75 else 2
            call["error"] = "overloaded_error" if roll >= 0.92 else None
        for _ in range(retries):
            call["attempts"].append((rng.uniform(0.2, 1.0), "overloaded_error", 0.01, "read", None))
            call["retries"].append(("529", rng.uniform(0.5, 2.0)))
        if call["error"]:
            call["attempts"].append((rng.uniform(0.2, 1.0), "overloaded_error", 0.01, "read", None))
        else:
            seconds = rng.uniform(0.5, 4)
            call["attempts"].append((seconds, None, seconds / READ_TIMEOUT, "read", None))
    elif stream:
        prefill = rng.uniform(0.3, 1.5)
        max_gap = rng.uniform(0.2, 3.0)
        if model == "claude-opus-4-1":
            prefill = rng.uniform(1, 6)
            if incident:  # huge prompts: long prefill
                input_tokens = rng.randint(150000, 190000)
                prefill = rng.uniform(25, 44)
        if model == "claude-sonnet-4-5" and incident and rng.random() < 0.2:  # stalls near the proxy's idle timeout
            max_gap = rng.uniform(50, 59)
        generation = output_tokens * 0.02 + max_gap
        wait = max(prefill, max_gap)
        limit, kind = (traffic.proxy_idle, "proxy_idle") if traffic.proxy_idle else (READ_TIMEOUT, "read")
        call["attempts"].append((prefill + generation, None, wait / limit, kind, None))
    else:
        seconds = rng.uniform(2, 30)
        call["attempts"].append((seconds, None, seconds / READ_TIMEOUT, "read", None))
    call["prefill"], call["max_gap"] = prefill, max_gap
    backoff = sum(b for _, b in call["retries"])
    call["duration"] = sum(a[0] for a in call["attempts"]) + backoff
    if prefill is not None:
        call["ttft"] = backoff + prefill + rng.uniform(0.05, 0.3)
    call["tokens"] = {"input": input_tokens, "output": output_tokens,
                      "cache_read": rng.choice([0, 0, input_tokens // 2]), "cache_creation": rng.choice([0, 1024])}
    return call


def record_call(reg: Registry, traffic: Traffic, call: dict, rng: random.Random) -> None:
    common = (f'gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="{traffic.model}",'
              f'server_address="api.anthropic.com",server_port="443",'
              f'anthropic_request_stream="{str(traffic.stream).lower()}"')
    op = common + (f',error_type="{call["error"]}"' if call["error"] else "")
    reg.observe("gen_ai_client_operation_duration_seconds", DURATION, op, call["duration"])
    for kind, n in call["tokens"].items():
        if n and (kind in ("input", "output") or n):
            reg.observe("gen_ai_client_token_usage", TOKEN_BUCKETS, f'{common},gen_ai_token_type="{kind}"', n)
    for seconds, error, util, kind, phase in call["attempts"]:
        labels = common + (f',error_type="{error}"' if error else "")
        reg.observe("anthropic_client_attempt_duration_seconds", DURATION, labels, seconds)
        reg.observe("anthropic_client_timeout_utilization", UTIL_BUCKETS,
                    f'{labels},anthropic_timeout_kind="{kind}"', min(util, 1.0))
        if phase:
            reg.inc("anthropic_client_timeouts_total", f'{common},anthropic_timeout_phase="{phase}"')
    for reason, backoff in call["retries"]:
        reg.inc("anthropic_client_retries_total", f'{common},anthropic_retry_reason="{reason}"')
        reg.observe("anthropic_client_retry_backoff_seconds", DURATION, f'{common},anthropic_retry_reason="{reason}"',
                    backoff)
    if call.get("prefill") is not None and not call["error"]:
        reg.observe("gen_ai_client_operation_time_to_first_chunk_seconds", DURATION, common, call["ttft"])
        reg.observe("anthropic_client_prefill_duration_seconds", DURATION, common, call["prefill"])
        reg.observe("anthropic_client_stream_max_gap_seconds", DURATION, common, call["max_gap"])
        chunks = max(1, call["tokens"]["output"] // 20)
        for _ in range(4):  # four representative chunk gaps, weighted
            reg.observe("gen_ai_client_operation_time_per_output_chunk_seconds", CHUNK_BUCKETS, common,
                        rng.uniform(0.02, 0.4), weight=max(1, chunks // 4))


def synthetic_workload(end: float) -> str:
    """90 minutes of scrapes every 30 s ending at `end`, as timestamped OpenMetrics. From minute 50: long
    non-streamed opus calls time out (retried twice), opus streams get huge prompts (slow prefill), sonnet streams
    stall near the 60 s proxy idle timeout, haiku is overloaded (529 retries, overloaded_error) and its token rate
    limit nearly exhausted, batch-worker drops traces; report-cron stops reporting at minute 15."""
    rng = random.Random(20261124)
    start = end - SPAN
    registries: Dict[str, Registry] = {}
    scrapes = []
    carry: Dict[int, float] = {}
    for step in range(SPAN // SCRAPE + 1):
        now = step * SCRAPE
        incident = now > INCIDENT
        if step:
            for i, traffic in enumerate(TRAFFIC):
                if traffic.until is not None and now > traffic.until:
                    continue
                expected = traffic.rate * SCRAPE + carry.get(i, 0.0)
                calls = int(expected)
                carry[i] = expected - calls
                for n in range(calls):
                    instance = traffic.instances[n % len(traffic.instances)]
                    reg = registries.setdefault(instance, Registry(traffic.job, instance))
                    record_call(reg, traffic, simulate_call(rng, traffic, incident), rng)
        for instance, reg in registries.items():
            for traffic in TRAFFIC:
                if instance not in traffic.instances or (traffic.until is not None and now > traffic.until):
                    continue
                labels = (f'gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",'
                          f'gen_ai_request_model="{traffic.model}",server_address="api.anthropic.com",'
                          f'server_port="443",anthropic_request_stream="{str(traffic.stream).lower()}"')
                reg.set("anthropic_client_active_requests", labels,
                        round(traffic.rate / len(traffic.instances) * (40 if "opus" in traffic.model else 5)))
                model = (f'gen_ai_request_model="{traffic.model}",gen_ai_provider_name="anthropic",'
                         f'server_address="api.anthropic.com",server_port="443"')
                tokens = rng.uniform(8000, 30000) if incident and traffic.job == "batch-worker" else \
                    rng.uniform(300000, 390000)
                reg.set("anthropic_ratelimit_remaining", model + ',anthropic_ratelimit_kind="tokens"', tokens)
                reg.set("anthropic_ratelimit_remaining", model + ',anthropic_ratelimit_kind="requests"',
                        rng.uniform(3000, 3900))
            if incident and reg.base.startswith('job="batch-worker"'):
                reg.inc("claude_otel_exporter_dropped_total", 'signal="traces"', 5)
            if not (instance.startswith("report-cron") and now > 15 * 60):
                scrapes.append((start + now, reg.render()))
    return scrapes_to_openmetrics(scrapes)


# What the synthetic workload must fire at its end, per alert: the label values, in this order.
ALERT_KEYS = {
    "ClaudeRequestsNearTimeout": ("job", "gen_ai_request_model", "anthropic_request_stream", "anthropic_timeout_kind"),
    "ClaudeRequestsVeryNearTimeout": ("job", "gen_ai_request_model", "anthropic_request_stream",
                                      "anthropic_timeout_kind"),
    "ClaudeTimeoutBudgetFastBurn": ("job", "gen_ai_request_model", "anthropic_request_stream"),
    "ClaudeTimeoutBudgetSlowBurn": ("job", "gen_ai_request_model", "anthropic_request_stream"),
    "ClaudeTimeoutBudgetTicket": ("job", "gen_ai_request_model", "anthropic_request_stream"),
    "ClaudeAPIErrors": ("job", "gen_ai_request_model", "error_type"),
    "ClaudeRetryStorm": ("job", "gen_ai_request_model"),
    "ClaudeSlowFirstToken": ("job", "gen_ai_request_model"),
    "ClaudeSlowPrefill": ("job", "gen_ai_request_model"),
    "ClaudeLongStreamGaps": ("job", "gen_ai_request_model"),
    "ClaudeRateLimitNearlyExhausted": ("job", "gen_ai_request_model", "anthropic_ratelimit_kind"),
    "ClaudeTelemetryAbsent": ("job",),
    "ClaudeTelemetryDropped": ("job", "signal"),
}
SYNTHETIC_FIRING = {
    "ClaudeRequestsNearTimeout": {("chat-api", "claude-sonnet-4-5", "true", "proxy_idle"),
                                  ("chat-api", "claude-opus-4-1", "false", "read")},
    "ClaudeRequestsVeryNearTimeout": {("chat-api", "claude-sonnet-4-5", "true", "proxy_idle"),
                                      ("chat-api", "claude-opus-4-1", "false", "read")},
    "ClaudeTimeoutBudgetFastBurn": {("chat-api", "claude-opus-4-1", "false")},
    "ClaudeTimeoutBudgetSlowBurn": {("chat-api", "claude-opus-4-1", "false")},
    "ClaudeTimeoutBudgetTicket": {("chat-api", "claude-opus-4-1", "false")},
    "ClaudeAPIErrors": {("batch-worker", "claude-haiku-4-5", "overloaded_error")},
    "ClaudeRetryStorm": {("batch-worker", "claude-haiku-4-5")},  # opus: 0.3 x 2 retries on 5/8 of its calls
    "ClaudeSlowFirstToken": {("chat-api", "claude-opus-4-1")},
    "ClaudeSlowPrefill": {("chat-api", "claude-opus-4-1")},
    "ClaudeLongStreamGaps": {("chat-api", "claude-sonnet-4-5")},
    "ClaudeRateLimitNearlyExhausted": {("batch-worker", "claude-haiku-4-5", "tokens")},
    "ClaudeTelemetryAbsent": {("report-cron",)},
    "ClaudeTelemetryDropped": {("batch-worker", "traces")},
}


@dataclass
class Workload:
    """Exposition text to evaluate everything on, and what is known about it."""

    name: str
    openmetrics: Callable[[float], str]  # given the end time (unix seconds), the OpenMetrics text
    rate_interval: str = "2m"  # what Grafana's $__rate_interval would be at its scrape interval
    firing: Optional[Dict[str, Set[tuple]]] = None  # alert -> label values it must fire for (None: not checked)
    optional: Set[str] = field(default_factory=set)  # metric names the workload may lack (then their queries may be empty)


WORKLOADS = [Workload("synthetic", synthetic_workload, firing=SYNTHETIC_FIRING)]


@pytest.fixture(scope="module", params=WORKLOADS, ids=lambda w: w.name)
def loaded(request):
    """(workload, a Prometheus holding it and the recording rules backfilled over it, evaluation time)."""
    require_prometheus()
    import time

    workload = request.param
    end = (int(time.time()) // 60) * 60 - 600
    prom = PrometheusServer.from_openmetrics(workload.openmetrics(end), rule_files=[str(p) for p in RULE_FILES],
                                             rule_interval="60s")
    try:
        yield workload, prom, prom.rules_end
    finally:
        prom.stop()


DEFAULT_GEN_AI_SERIES = {n for n in CONTRACT_SERIES if n.startswith("gen_ai_")}


def reads_only(query: str, series: Set[str]) -> bool:
    """Returns whether every metric a query reads is one of `series` (a name set the workload lacks)."""
    names = metric_names(query)
    return bool(names) and names <= series


def assert_every_query_returns_data(prom: PrometheusServer, at: float, rate_interval: str, optional=(),
                                    absent: Set[str] = frozenset(LATEST_SERIES)) -> None:
    """Every dashboard target, recording rule (its series and its expression) and alert value (the first line of
    the alert: the measured value, without threshold and gates) has data at `at`."""
    empty = []
    queries = dashboard_queries(rate_interval)
    queries += [(f"record {r['record']}", r["record"]) for r in rules() if "record" in r]
    queries += [(f"record {r['record']} (its expression)", r["expr"]) for r in rules() if "record" in r]
    for alert in alerts.alerts():
        queries.append((f"alert {alert.name}", alert.expr.split("\n")[0]))
        queries.append((f"grafana alert {alert.name}", alert.raw.split("\n")[0]))
    for where, query in queries:
        if any(m in query for m in optional) or reads_only(query, absent):
            continue  # a query of only the other name set's metrics (a panel's second line) is empty here
        if not prom.query(query, at=at):
            empty.append(f"{where}: {query}")
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_every_dashboard_rule_and_alert_query_returns_data(loaded):
    workload, prom, at = loaded
    assert_every_query_returns_data(prom, at, workload.rate_interval, workload.optional)
    # a range query over the whole span, as a dashboard draws it
    assert prom.query_range(dashboard_queries(workload.rate_interval)[0][1], at - 1800, at, 60)


def test_alerts_fire_exactly_where_the_workload_says(loaded):
    workload, prom, at = loaded
    if workload.firing is None:
        pytest.skip(f"{workload.name}: no expected alerts")
    by_name = {r["alert"]: r for r in rules() if "alert" in r}
    grafana = {r["title"]: r for r in grafana_rules()}
    for alert in alerts.alerts():
        keys = ALERT_KEYS[alert.name]
        fired = set(prom.values(by_name[alert.name]["expr"], at, keys))
        assert fired == workload.firing[alert.name], f"{alert.name}: fired for {fired}"
        # the Grafana-managed twin (raw series, threshold in expression C) agrees
        evaluator = grafana[alert.name]["data"][2]["model"]["conditions"][0]["evaluator"]
        limit = evaluator["params"][0]
        raw = prom.values(grafana[alert.name]["data"][0]["model"]["expr"], at, keys)
        grafana_fired = {k for k, v in raw.items() if (v < limit if evaluator["type"] == "lt" else v > limit)}
        assert grafana_fired == fired, f"{alert.name}: Grafana-managed rule fires for {grafana_fired}"


def test_values_match_the_synthetic_workload(loaded):
    workload, prom, at = loaded
    if workload.name != "synthetic":
        pytest.skip("values are only known for the synthetic workload")
    jm = ("job", "gen_ai_request_model")
    calls = prom.value("sum(claude:requests:rate5m)", at)
    assert calls == pytest.approx(sum(t.rate for t in TRAFFIC if t.until is None), rel=0.1)
    # opus: 0.5 calls/s non-streamed, 30% time out; 0.3 calls/s streamed, none: 0.15 / 0.8
    ratio = prom.values("claude:timeout_ratio:rate5m", at, jm)
    assert ratio[("chat-api", "claude-opus-4-1")] == pytest.approx(0.15 / 0.8, abs=0.07)
    assert ratio[("chat-api", "claude-sonnet-4-5")] == 0
    assert prom.values("claude:timeout_ratio:rate1d", at, jm)[("chat-api", "claude-opus-4-1")] < 0.1
    share = prom.values("claude:timeout_utilization_over_80:ratio_rate5m", at,
                        ("gen_ai_request_model", "anthropic_request_stream", "anthropic_timeout_kind"))
    assert share[("claude-sonnet-4-5", "true", "proxy_idle")] == pytest.approx(0.2, abs=0.08)
    # 30% of calls make three attempts that all time out: 0.9 of 1.6 attempts per call
    assert share[("claude-opus-4-1", "false", "read")] == pytest.approx(0.9 / 1.6, abs=0.08)
    retries = prom.values("claude:retries_per_request:ratio_rate5m", at, jm)
    assert retries[("batch-worker", "claude-haiku-4-5")] == pytest.approx(0.55 + 2 * 0.25, abs=0.25)
    # prefill 25-44 s: the p95 interpolates inside the (20.48, 40.96] or (40.96, 81.92] bucket
    assert 20.48 < prom.values("claude:prefill_duration_seconds:p95_5m", at, jm)[("chat-api", "claude-opus-4-1")] <= 81.92
    assert prom.values("claude:prefill_duration_seconds:p95_5m", at, jm)[("chat-api", "claude-sonnet-4-5")] < 2.56
    gaps = prom.values("claude:stream_max_gap_seconds:p99_5m", at, jm)
    assert 40.96 < gaps[("chat-api", "claude-sonnet-4-5")] <= 81.92
    phases = prom.values("sum by (anthropic_timeout_phase) (claude:attempt_timeouts:rate5m)", at,
                         ("anthropic_timeout_phase",))
    assert set(phases) == {("read",)}
    # recording rules agree with the raw expressions they stand for
    def by_labels(query: str, when: float) -> Dict[frozenset, float]:
        return {frozenset((k, v) for k, v in r["metric"].items() if k != "__name__"): float(r["value"][1])
                for r in prom.query(query, when)}

    for rule in rules():
        if "record" in rule and "[1d]" not in rule["expr"]:
            # rule groups evaluate at an offset of their own: compare at the recorded sample's time
            when = max(float(r["value"][1]) for r in prom.query(f"timestamp({rule['record']})", at))
            recorded, direct = by_labels(rule["record"], when), by_labels(rule["expr"], when)
            assert recorded.keys() == direct.keys(), rule["record"]
            for key, value in direct.items():
                if math.isnan(value):
                    continue
                assert recorded[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (rule["record"], key)


# -- a real instrumented process, scraped live ---------------------------------------------------------------------

@pytest.mark.parametrize("names", ["default", "latest"])
def test_every_query_returns_data_from_a_live_scrape_of_claude_otel_demo(tmp_path, names):
    """`claude-otel demo` (the real SDK against the local simulator: timeouts, retries, slow prefill, stalls,
    rate limits) scraped every second by a Prometheus with the rule files loaded (evaluated every second)."""
    require_prometheus()
    import time

    rule_files = []
    for path in RULE_FILES:
        groups = yaml.safe_load(path.read_text())
        for group in groups["groups"]:
            group["interval"] = "1s"
        (tmp_path / path.name).write_text(yaml.safe_dump(groups))
        rule_files.append(str(tmp_path / path.name))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    env.update(PYTHONPATH=str(ROOT), CLAUDE_OTEL_CHUNK_METRICS="true")
    if names == "latest":
        env["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    absent = LATEST_SERIES if names == "default" else DEFAULT_GEN_AI_SERIES
    # the demo binds /metrics to a port of its own choosing and says which; Prometheus then scrapes that one
    demo = subprocess.Popen([sys.executable, "-m", "claude_otel", "demo", "--duration", "18", "--rate", "6",
                             "--no-tty", "--metrics-port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        started = read_until(demo, lambda line: "/metrics http://" in line, 60, "the demo's /metrics line")
        port = int(re.search(r"/metrics http://127\.0\.0\.1:(\d+)", started).group(1))
    except BaseException:
        demo.kill()
        demo.wait()
        raise
    with PrometheusServer(scrape_targets=[f"127.0.0.1:{port}"], rule_files=rule_files) as prom:
        try:
            last = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and demo.poll() is None:
                # the time of the last scrape that reached the demo, once the rules have recorded its calls
                scraped = prom.value("timestamp(up == 1) and on() count(claude:requests:rate5m) > 0")
                if scraped:
                    last = scraped
                time.sleep(1)
            out = started + read_rest(demo, 60)
            demo.wait(30)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
        assert demo.returncode == 0, out[-3000:]
        assert last is not None, "Prometheus never recorded the demo's calls:\n" + prom.log()[-2000:]
        # drops only happen with a collector down; the 1-day absent check is about history this run lacks
        assert_every_query_returns_data(prom, last, "4s", optional={"claude_otel_exporter_dropped_total"},
                                        absent=absent)
        # the demo emitted exactly one name set
        emitted = {s["metric"]["__name__"] for s in prom.query('{__name__=~"gen_ai_.+"}', at=last)}
        assert emitted and not emitted & absent and emitted <= CONTRACT_SERIES | LATEST_SERIES, emitted
        reasons = set(prom.values("claude:retries:rate5m", last, ("anthropic_retry_reason",)))
        assert {("429",), ("529",)} <= reasons, reasons
        assert prom.value("max(claude:timeout_utilization_over_80:ratio_rate5m)", last) > 0


# -- both name sets: a fleet mixing today's names, the latest conventions and the official instrumentation ---------

FLEET_STEP = 15  # seconds between samples
FLEET_STEPS = 80  # 20 minutes of data
SPEC_BOUNDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
DEFAULT_BOUNDS = SPEC_BOUNDS + [163.84, 327.68, 655.36]
DEFAULT_CHUNK_BOUNDS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]


class Fleet:
    """OpenMetrics text of several services, each series a counter growing at a constant rate per second."""

    def __init__(self) -> None:
        self.families: Dict[str, Tuple[str, List[Tuple[str, str, float]]]] = {}

    def add(self, family: str, kind: str, sample: str, labels: str, rate: float) -> None:
        """Adds one series of a family (kind: counter or histogram) growing by `rate` per second."""
        self.families.setdefault(family, (kind, []))[1].append((sample, labels, rate))

    def histogram(self, family: str, labels: str, rate: float, value: float, bounds: List[float]) -> None:
        """Adds a histogram series observing `value` `rate` times per second."""
        for bound in bounds + [math.inf]:
            le = "+Inf" if bound == math.inf else f"{bound:g}"
            self.add(family, "histogram", family + "_bucket", f'{labels}, le="{le}"', rate if value <= bound else 0)
        self.add(family, "histogram", family + "_count", labels, rate)
        self.add(family, "histogram", family + "_sum", labels, rate * value)

    def text(self, start: float) -> str:
        """Returns the OpenMetrics document with timestamps from `start`."""
        lines = []
        for family, (kind, series) in self.families.items():
            lines.append(f"# TYPE {family} {kind}")
            for sample, labels, rate in series:
                labels = labels.replace(", ", ",")  # OpenMetrics allows no space between labels
                for i in range(FLEET_STEPS + 1):
                    lines.append(f"{sample}{{{labels}}} {rate * FLEET_STEP * i:.6f} {start + FLEET_STEP * i}")
        return "\n".join(lines + ["# EOF"]) + "\n"


def mixed_fleet() -> Fleet:
    """old: claude-otel with today's names; new: claude-otel opted into the latest conventions; mix: one instance
    of each in one job (a migration); otel: the official OpenTelemetry GenAI instrumentation (latest names, no
    stream label, no cache counters, its own error.type values)."""
    f = Fleet()
    ops, tokens, ttft = "gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage", \
        "gen_ai_client_operation_time_to_first_chunk_seconds"
    l_ops, l_ttft, l_chunk = ("gen_ai_client_inference_duration_seconds",
                              "gen_ai_client_inference_time_to_first_chunk_seconds",
                              "gen_ai_client_inference_time_per_output_chunk_seconds")
    usage = "gen_ai_client_inference_usage_"
    common = 'gen_ai_operation_name="chat", gen_ai_provider_name="anthropic", gen_ai_request_model="m"'

    def default(instance: str) -> None:
        labels = f'job="{instance.split(":")[0]}", instance="{instance}", {common}, anthropic_request_stream="false"'
        f.histogram(ops, labels, 0.2, 1.0, DEFAULT_BOUNDS)
        f.histogram(ttft, labels, 0.2, 0.3, DEFAULT_BOUNDS)
        f.histogram("gen_ai_client_operation_time_per_output_chunk_seconds", labels, 2.0, 0.05, DEFAULT_CHUNK_BOUNDS)
        for kind, rate in (("input", 10), ("output", 4), ("cache_read", 2), ("cache_creation", 1)):
            f.histogram(tokens, f'{labels}, gen_ai_token_type="{kind}"', 0.2, rate / 0.2, [])

    def latest(instance: str, stream: Optional[str], rate: float, value: float, cache: bool = True) -> dict:
        labels = f'job="{instance.split(":")[0]}", instance="{instance}", {common}'
        if stream is not None:
            labels += f', gen_ai_request_stream="{stream}"'
        f.histogram(l_ops, labels, rate, value, SPEC_BOUNDS)
        f.histogram(l_ttft, labels, rate, 0.3, SPEC_BOUNDS)
        f.histogram(l_chunk, labels, 2.0, 0.05, SPEC_BOUNDS)
        f.histogram("gen_ai_client_inference_operation_output_tokens", labels, rate, 8 / rate, [1, 4, 16, 64])
        counted = labels + ', gen_ai_token_modality="unknown"'
        for name, per_s in (("input_tokens", 20), ("output_tokens", 8)) + (
                (("cache_read_input_tokens", 5), ("cache_write_input_tokens", 3)) if cache else ()):
            f.add(usage + name, "counter", usage + name + "_total", counted, per_s)
        return labels

    default("old:1")
    old_timeouts = f'job="old", instance="old:1", {common}, anthropic_request_stream="false", error_type="timeout"'
    f.histogram(ops, old_timeouts, 0.05, 60.0, DEFAULT_BOUNDS)
    # new: half its calls at 0.5 s, half at 100 s (beyond the spec's last bound, 81.92 s)
    new = latest("new:1", "true", 0.2, 0.5)
    f.histogram(l_ops, new.replace('instance="new:1"', 'instance="new:2"'), 0.2, 100.0, SPEC_BOUNDS)
    default("mix:1")
    latest("mix:2", "false", 0.1, 100.0)
    otel = latest("otel:1", None, 0.05, 0.5, cache=False).replace(common, common + ', gen_ai_response_model="m-1"')
    f.histogram(l_ops, otel + ', error_type="APITimeoutError"', 0.01, 0.5, SPEC_BOUNDS)
    return f


@pytest.fixture(scope="module")
def fleet():
    """(a Prometheus holding the mixed fleet with the recording rules backfilled, evaluation time)."""
    require_prometheus()
    import time

    start = (int(time.time()) // 60) * 60 - 3600
    prom = PrometheusServer.from_openmetrics(mixed_fleet().text(start), rule_files=[str(p) for p in RULE_FILES],
                                             rule_interval="60s")
    try:
        yield prom, prom.rules_end
    finally:
        prom.stop()


def test_recording_rules_sum_both_name_sets_exactly(fleet):
    prom, at = fleet
    key = ("job", "anthropic_request_stream")
    assert prom.values("claude:requests:rate5m", at, key) == pytest.approx(
        {("old", "false"): 0.25, ("new", "true"): 0.4, ("mix", "false"): 0.3, ("otel", ""): 0.06}, rel=1e-9)
    assert prom.values("claude:timeouts:rate5m", at, key) == pytest.approx({("old", "false"): 0.05}, rel=1e-9)
    assert prom.values("claude:errors:rate5m", at, ("job", "error_type")) == pytest.approx(
        {("old", "timeout"): 0.05, ("otel", "APITimeoutError"): 0.01}, rel=1e-9)
    # today's token types: the latest input count includes cached tokens, so input = 20 - 5 - 3 there
    tokens = prom.values("claude:tokens:rate5m", at, ("job", "gen_ai_token_type"))
    assert tokens == pytest.approx({
        ("old", "input"): 10, ("old", "output"): 4, ("old", "cache_read"): 2, ("old", "cache_creation"): 1,
        ("new", "input"): 12, ("new", "output"): 8, ("new", "cache_read"): 5, ("new", "cache_creation"): 3,
        ("mix", "input"): 22, ("mix", "output"): 12, ("mix", "cache_read"): 7, ("mix", "cache_creation"): 4,
        ("otel", "input"): 20, ("otel", "output"): 8}, rel=1e-9)


def test_recorded_duration_buckets_and_quantiles_of_a_mixed_fleet(fleet):
    prom, at = fleet
    buckets = prom.values("claude:operation_duration_seconds_bucket:rate5m", at, ("job", "le"))
    # mix: 0.2/s at 1 s (default names) + 0.1/s at 100 s (latest: counted at 163.84 s and up from its +Inf)
    assert {le: v for (job, le), v in buckets.items() if job == "mix" and le in ("0.64", "1.28", "81.92", "163.84",
                                                                                "655.36", "+Inf")} \
        == pytest.approx({"0.64": 0, "1.28": 0.2, "81.92": 0.2, "163.84": 0.3, "655.36": 0.3, "+Inf": 0.3}, rel=1e-9)
    assert {le: v for (job, le), v in buckets.items() if job == "new" and le in ("0.64", "81.92", "163.84")} \
        == pytest.approx({"0.64": 0.2, "81.92": 0.2, "163.84": 0.4}, rel=1e-9)
    # cumulative counts never decrease along le, in every job
    for job in ("old", "new", "mix", "otel"):
        counts = [buckets[(job, f"{b:g}")] for b in DEFAULT_BOUNDS] + [buckets[(job, "+Inf")]]
        assert counts == sorted(counts), (job, counts)
    p50 = prom.values("claude:operation_duration_seconds:p50_5m", at, ("job",))
    p99 = prom.values("claude:operation_duration_seconds:p99_5m", at, ("job",))
    # p50 of mix: rank 0.15 of 0.3 in (0.64, 1.28] holding 0.2; p99: rank 0.297 in (81.92, 163.84] holding 0.1
    assert p50[("mix",)] == pytest.approx(0.64 + 0.64 * 0.15 / 0.2, rel=1e-9)
    assert p99[("mix",)] == pytest.approx(81.92 + 81.92 * 0.097 / 0.1, rel=1e-9)


def test_gen_ai_panels_light_up_for_the_official_instrumentation_and_the_rest_say_why_not(fleet):
    prom, at = fleet
    lit, own, empty = [], [], []
    for name, model in models().items():
        for panel in panels(model):
            if not panel.get("targets"):
                continue
            if OWN_NOTE.strip() in panel["description"]:
                own.append(panel["title"])
                continue
            lit.append(panel["title"])
            for target in panel["targets"]:
                query = substitute(target["expr"].replace("$job", "otel"), model, "2m")
                if reads_only(query, DEFAULT_GEN_AI_SERIES):
                    continue  # the default set's own line of a panel drawing both
                if not prom.query(query, at=at):
                    empty.append(f"{name} / {panel['title']} / {target['refId']}: {query}")
    assert not empty, "gen_ai.* panels with no data for the official instrumentation:\n" + "\n".join(empty)
    assert sorted(lit) == sorted([
        "Calls per second", "Error ratio", "p99 call duration", "Call rate by service and model",
        "Errors by error type", "p50 call duration by model", "p95 call duration by model",
        "p99 call duration by model", "Tokens per second by type", "Time to first token by model",
        "Time per output chunk by model", "Output tokens per call by model and mode",
        "Time to first token p95 / p99 by model"])
    assert "Timeout utilization per attempt" in own and "Share of calls streamed by model" in own
