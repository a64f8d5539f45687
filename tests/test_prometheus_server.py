"""/metrics end to end: a real Prometheus scrapes an instrumented process; PromQL and exemplars through its API;
promtool checks the exposition; mounting /metrics in an app's own server."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from claude_otel import semconv
from claude_otel.exporters.prometheus import exposition as prom_exporter
from claude_otel.exporters.prometheus import PrometheusReader, registry_for
from tests.helpers.procs import read_line
from tests.helpers.app import APP, app_env, local_pipeline, scrape
from tests.helpers.env import ROOT
from tests.helpers.prometheus import PrometheusServer
from tests.helpers.require import require_tool


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)


def test_real_prometheus_scrapes_metrics_with_exemplars(sim, tmp_path):
    proc = subprocess.Popen([sys.executable, APP], env=app_env(
        sim, CLAUDE_OTEL_PROMETHEUS_PORT=0, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1", APP_WAIT=1, APP_CALLS=3,
        APP_RETRY_CALLS=1, APP_STREAMS=2), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    prom = None
    try:
        out = json.loads(read_line(proc, 60, "the app's report"))
        # port 0 asked for: the port the server bound is the one reported
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/metrics", out["prometheus_url"]), out
        text = scrape(out["prometheus_url"])
        for name in ("gen_ai_client_operation_duration_seconds_bucket", "anthropic_client_retries_total",
                     "anthropic_client_timeout_utilization_bucket", "gen_ai_client_token_usage_bucket",
                     "anthropic_client_active_requests", "anthropic_ratelimit_remaining",
                     "gen_ai_client_operation_time_to_first_chunk_seconds_bucket", "target_info"):
            assert name in text, name
        assert "_ratio" not in text and "sk-ant-app-SECRET" not in text
        (tmp_path / "metrics.txt").write_text(text)
        check = promtool_check(text)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check

        openmetrics = scrape(out["prometheus_url"], openmetrics=True)
        assert "# {span_id=" in openmetrics and openmetrics.rstrip().endswith("# EOF")

        port = int(out["prometheus_url"].split(":")[2].split("/")[0])
        prom = PrometheusServer(scrape_targets=[f"127.0.0.1:{port}"])
        assert prom.wait_for("sum(anthropic_client_retries_total)", lambda v: v == 2) == 2  # forced by the sim
        assert prom.value("sum(gen_ai_client_operation_duration_seconds_count)") == 6  # 3 + 1 + 2 calls
        assert prom.value("sum(gen_ai_client_operation_time_to_first_chunk_seconds_count)") == 2
        assert prom.value('sum(anthropic_client_retries_total{anthropic_retry_reason="529"})') == 2
        assert prom.value('sum(anthropic_client_attempt_duration_seconds_count)') == 8  # 3 + 3 + 2 attempts
        assert prom.value('sum(gen_ai_client_operation_duration_seconds_count{gen_ai_request_model="claude-x",'
                          'anthropic_request_stream="true"})') == 2
        assert prom.value('count(target_info{service_name="test-app"})') == 1
        assert all(t["health"] == "up" for t in prom.targets())
        exemplar_traces = {e["trace_id"] for e in prom.exemplars("gen_ai_client_operation_duration_seconds_bucket")}
        assert exemplar_traces & set(out["trace_ids"]), (exemplar_traces, out["trace_ids"])
        assert exemplar_traces <= set(out["trace_ids"])
    finally:
        if prom is not None:
            prom.stop()
        proc.stdin.close()
        proc.wait(30)


@pytest.mark.parametrize("latest", [False, True], ids=["default-names", "latest-conventions"])
def test_promtool_accepts_every_contract_metric(latest):
    """The agent's own instruments (both name sets), one value recorded in each, exposed and checked by promtool."""
    from opentelemetry.metrics import Counter, Histogram, UpDownCounter

    from claude_otel.metrics import Instruments

    meter, tracer, _, registry, _ = local_pipeline()
    ins = Instruments(meter, chunk_metrics=True, latest=latest)
    labels = {semconv.REQUEST_MODEL: "m", semconv.OPERATION_NAME: "chat", ins.stream_attribute: True}
    recorded = 0
    with tracer.start_as_current_span("call"):
        for instrument in vars(ins).values():
            if isinstance(instrument, Histogram):
                instrument.record(0.3, labels)
            elif isinstance(instrument, (Counter, UpDownCounter)):
                instrument.add(1, labels)
            elif hasattr(instrument, "set"):  # the rate-limit gauge
                instrument.set(5, labels)
            else:
                continue
            recorded += 1
        ins.in_flight.add(("m",), labels, 1)
    text = generate_latest(registry).decode()
    check = promtool_check(text)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (check, text)
    if latest:
        expected = ("gen_ai_client_inference_duration_seconds_bucket", "gen_ai_client_inference_usage_input_tokens_total",
                    "gen_ai_client_inference_operation_input_tokens_bucket")
    else:
        expected = ("gen_ai_client_operation_duration_seconds_bucket", "gen_ai_client_token_usage_bucket",
                    "gen_ai_client_operation_time_per_output_chunk_seconds_bucket")
    for name in expected + ("anthropic_client_timeouts_total", "anthropic_client_timeout_utilization_bucket",
                            "anthropic_client_active_requests", "anthropic_ratelimit_remaining",
                            "anthropic_client_prefill_duration_seconds_bucket"):
        assert name in text, name
    assert recorded >= (14 if latest else 11), recorded  # every instrument the agent has was exercised


def call_wsgi(app) -> str:
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "", "wsgi.input": io.BytesIO(),
                "SERVER_NAME": "x", "SERVER_PORT": "1"}, lambda status, headers: None)
    return b"".join(body).decode()


def test_mounted_app_serves_configure_registry_even_if_mounted_first(caplog):
    app = prom_exporter.make_wsgi_app()
    saved = prom_exporter._CONFIGURED.registry
    prom_exporter.set_default_registry(None)
    try:
        assert call_wsgi(app).strip() == ""  # before configure(): empty, one warning
        meter, _, reader, registry, _ = local_pipeline()
        meter.create_counter("mounted.calls").add(3)
        prom_exporter.set_default_registry(registry)
        assert "mounted_calls_total 3.0" in call_wsgi(app)
    finally:
        prom_exporter.set_default_registry(saved)
    assert sum("has not run" in r.getMessage() for r in caplog.records) <= 1


def test_collector_can_join_an_apps_default_style_registry():
    reader = PrometheusReader()
    from opentelemetry.sdk.metrics import MeterProvider

    meter = MeterProvider(metric_readers=[reader], shutdown_on_exit=False).get_meter("t")
    collector = list(registry_for(reader)._collector_to_names)[0]
    app_registry = CollectorRegistry()  # auto_describe, like prometheus_client.REGISTRY
    from prometheus_client import Counter

    Counter("app_own_requests", "The app's own metric.", registry=app_registry).inc()
    app_registry.register(collector)
    meter.create_counter(semconv.RETRIES, unit="{retry}").add(1)
    text = generate_latest(app_registry).decode()
    assert "app_own_requests_total 1.0" in text and "anthropic_client_retries_total 1.0" in text


def test_port_zero_serves_on_a_free_port_and_reports_its_url(sim):
    script = ("import claude_otel, json; h = claude_otel.configure(prometheus_port=0, prometheus_addr='127.0.0.1'); "
              "print(json.dumps(h.prometheus_url), flush=True); import sys; sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", script], env=app_env(sim), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = json.loads(read_line(proc, 60, "the app's /metrics URL"))
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.status == 200 and "text/plain" in r.headers["content-type"]
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0
