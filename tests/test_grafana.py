"""Dashboards, recording rules and alerts: promtool, schema checks, and every query against a real Prometheus.

The live test runs `claude-otel demo` (real SDK calls to the simulator with timeouts, retries, slow
streams, near-timeouts), lets a real Prometheus scrape it with the rule files loaded, then executes every
dashboard and rule expression and checks each returns data, and values where the workload fixes them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import promql_parser
import pytest
import yaml

from prometheus_server import PrometheusServer, free_port, require_prometheus, require_tool

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "grafana"
RULE_FILES = sorted((GRAFANA / "rules").glob("*.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

sys.path.insert(0, str(GRAFANA))
import build  # noqa: E402


def promtool() -> str:
    return require_tool("promtool")


def contract_series() -> set:
    """Returns every Prometheus series name the agent can expose, from the OpenTelemetry names."""
    from claude_otel import semconv
    from claude_otel.exporters.prometheus import exposition_name

    kinds = {
        semconv.OPERATION_DURATION: ("s", "histogram"), semconv.TOKEN_USAGE: ("{token}", "histogram"),
        semconv.TIME_TO_FIRST_CHUNK: ("s", "histogram"), semconv.TIME_PER_OUTPUT_CHUNK: ("s", "histogram"),
        semconv.STREAM_MAX_GAP: ("s", "histogram"), semconv.PREFILL_DURATION: ("s", "histogram"),
        semconv.ATTEMPT_DURATION: ("s", "histogram"), semconv.RETRIES: ("{retry}", "counter"),
        semconv.RETRY_BACKOFF: ("s", "histogram"), semconv.TIMEOUTS: ("{timeout}", "counter"),
        semconv.TIMEOUT_UTILIZATION: ("1", "histogram"), semconv.ACTIVE_REQUESTS: ("{request}", "gauge"),
        semconv.RATELIMIT_REMAINING: ("{unit}", "gauge"), semconv.EXPORTER_DROPPED: ("{item}", "counter"),
    }
    return {n for name, (unit, kind) in kinds.items() for n in exposition_name(name, unit, kind)}


def recorded_names() -> set:
    return {r["record"] for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]
            if "record" in r}


def all_rules():
    return [r for f in RULE_FILES for g in yaml.safe_load(f.read_text())["groups"] for r in g["rules"]]


def panels(dashboard: dict):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs():
    for path in DASHBOARDS:
        model = json.loads(path.read_text())
        for panel in panels(model):
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target["expr"]


def substitute(expr: str, rate_interval: str = "5m") -> str:
    """Returns a dashboard query with Grafana's variables replaced as Grafana would for 'All'."""
    return (expr.replace("$__rate_interval", rate_interval).replace('"$job"', '".*"')
            .replace('"$model"', '".*"').replace('"$stream"', '".*"'))


METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)")


def test_generated_files_are_committed_as_generated():
    for relative, text in build.outputs().items():
        assert (GRAFANA / relative).read_text() == text, f"grafana/{relative} differs: run python grafana/build.py"


def test_promtool_checks_every_rule_file():
    for path in RULE_FILES:
        result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    tests = sorted((GRAFANA / "tests").glob("*.yml"))
    assert tests
    result = subprocess.run([promtool(), "test", "rules", *map(str, tests)], capture_output=True, text=True,
                            cwd=GRAFANA / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    alerts = {r["alert"] for r in all_rules() if "alert" in r}
    fired, silent = set(), set()
    for path in (GRAFANA / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case["exp_alerts"] else silent).add(case["alertname"])
                for expected in case["exp_alerts"]:
                    assert expected["exp_annotations"]["runbook_url"].startswith(build.RUNBOOK_URL)
                    assert expected["exp_labels"]["severity"] in ("warning", "critical")
    assert alerts == fired == silent


def test_every_alert_has_annotations_and_a_runbook_section():
    runbooks = (GRAFANA / "runbooks.md").read_text()
    for rule in all_rules():
        if "alert" not in rule:
            continue
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert f'id="{anchor}"' in runbooks and f"## {rule['alert']}" in runbooks
    grafana_rules = yaml.safe_load((GRAFANA / "provisioning" / "alerting" / "claude-otel-alerts.yml").read_text())
    titles = {r["title"] for g in grafana_rules["groups"] for r in g["rules"]}
    assert titles == {r["alert"] for r in all_rules() if "alert" in r}


def test_every_expression_parses_and_uses_known_metrics():
    known = contract_series() | recorded_names()
    exprs = [("rule", r.get("record") or r["alert"], r["expr"]) for r in all_rules()]
    exprs += list(dashboard_exprs())
    grafana_rules = yaml.safe_load((GRAFANA / "provisioning" / "alerting" / "claude-otel-alerts.yml").read_text())
    exprs += [("grafana", r["title"], d["model"]["expr"]) for g in grafana_rules["groups"] for r in g["rules"]
              for d in r["data"] if "expr" in d["model"]]
    assert len(exprs) > 40
    functions = {"sum", "rate", "histogram_quantile", "increase", "max_over_time", "min", "max", "count", "by",
                 "without", "and", "or", "unless", "le", "avg", "label_values"}
    for where, name, expr in exprs:
        promql_parser.parse(substitute(expr))
        for metric in METRIC.findall(substitute(expr)):
            if metric in functions:
                continue
            assert metric in known, f"{where} {name}: unknown metric {metric}"


def test_dashboards_are_valid_models():
    for path in DASHBOARDS:
        model = json.loads(path.read_text())
        assert model["uid"] and model["title"] and model["schemaVersion"] >= 36
        names = {v["name"] for v in model["templating"]["list"]}
        assert {"datasource", "job", "model", "stream"} <= names
        ids = [p["id"] for p in panels(model)]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels(model):
            assert {"id", "type", "title", "gridPos"} <= set(panel)
            if panel["type"] == "row":
                continue
            assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}"
            for target in panel["targets"]:
                used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
                assert used <= names, (panel["title"], used)
            grid = panel["gridPos"]
            assert 0 < grid["w"] <= 24 and grid["x"] + grid["w"] <= 24
    provisioning = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "claude-otel.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"].endswith("claude-otel")
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert {d["uid"] for d in datasources["datasources"]} >= {"prometheus"}


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory):
    """A real Prometheus that scraped `claude-otel demo` with the rule files loaded; yields (server, query time)."""
    require_prometheus()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    # the same rules, evaluated every second instead of every 30 s, so a short workload gets recorded
    rules_dir = tmp_path_factory.mktemp("rules")
    fast_rules = []
    for path in RULE_FILES:
        groups = yaml.safe_load(path.read_text())
        for group in groups["groups"]:
            group["interval"] = "1s"
        (rules_dir / path.name).write_text(yaml.safe_dump(groups))
        fast_rules.append(str(rules_dir / path.name))
    prom = PrometheusServer(targets=[f"127.0.0.1:{port}"], rule_files=fast_rules)
    demo = subprocess.Popen([sys.executable, "-m", "claude_otel", "demo", "--duration", "24", "--rate", "6",
                             "--no-tty", "--metrics-port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        # let the last calls land and the rules evaluate on them before the demo exits
        deadline = time.monotonic() + 60
        last = None
        while time.monotonic() < deadline and demo.poll() is None:
            if prom.value("sum(gen_ai_client_operation_duration_seconds_count)"):
                last = time.time()
            time.sleep(1)
        out = demo.communicate(timeout=60)[0]
        assert demo.returncode == 0, out[-3000:]
        assert last is not None, "Prometheus never scraped the demo"
        yield prom, last
    finally:
        if demo.poll() is None:
            demo.kill()
        prom.stop()


def test_every_dashboard_and_rule_query_returns_data_from_a_real_scrape(live_prometheus):
    prom, at = live_prometheus
    empty = []
    queries = [(f"{dash} / {title}", substitute(expr, "1m")) for dash, title, expr in dashboard_exprs()]
    queries += [(f"record {r['record']}", r["record"]) for r in all_rules() if "record" in r]
    queries += [(f"alert {a['alert']} (its measured value)", a["query"]) for a in build.ALERTS]
    optional = {"time_per_output_chunk", "claude_otel_exporter_dropped", "ClaudeTelemetryDropped"}
    for name, query in queries:
        if any(o in query or o in name for o in optional):
            continue  # opt-in chunk metric, and drops that only exist when a collector is down
        if not prom.query(query, at=at):
            empty.append(name)
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_live_values_match_the_injected_workload(live_prometheus):
    prom, at = live_prometheus

    def value(query):
        result = prom.query(query, at=at)
        assert result, query
        return max(float(r["value"][1]) for r in result)

    # the demo's near-timeout (80% of 2 s), slow-prefill (75%) and timeout scenarios put attempts above 80%
    assert value("max(claude:timeout_utilization_over_80:ratio_rate5m)") > 0
    assert value('max(claude:timeout_ratio:rate5m{gen_ai_request_model="claude-opus-4-1"})') > 0
    # prefill is injected between 0.15 s and 1.5 s
    assert 0.1 <= value("max(claude:prefill_seconds:p95_5m)") <= 3.0
    # retries: 429 and 529 scenarios, plus timeouts retried
    reasons = {r["metric"]["anthropic_retry_reason"] for r in prom.query("claude:retries:rate5m", at=at)}
    assert {"429", "529", "timeout"} <= reasons
    phases = {r["metric"]["anthropic_timeout_phase"] for r in prom.query("anthropic_client_timeouts_total", at=at)}
    assert "read" in phases
    assert value("sum(anthropic_client_active_requests)") >= 0
