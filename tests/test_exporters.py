"""Exporters end to end: configure() in a real application process, a real OTLP receiver, a real Prometheus."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from otlp_receiver import GrpcReceiver, HttpReceiver
from prometheus_server import PrometheusServer, free_port

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "tests" / "apps" / "instrumented_app.py")


def app_env(sim, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    env.update({"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_OPEN_TELEMETRY": "false", "PYTHONPATH": str(ROOT)})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_app(sim, timeout=90, **extra):
    result = subprocess.run([sys.executable, APP], env=app_env(sim, **extra), capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]), result.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_receives_spans_and_metrics_of_real_calls(sim, protocol):
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    try:
        out, _ = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                         OTEL_EXPORTER_OTLP_HEADERS="x-tenant=team-a", OTEL_METRIC_EXPORT_INTERVAL=60000,
                         OTEL_SERVICE_NAME="checkout", OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test",
                         APP_CALLS=2, APP_RETRY_CALLS=1, APP_STREAMS=1)
        got = receiver.received
        assert got.wait_for(lambda: got.metrics and got.traces)
        names = [s.name for s in got.spans()]
        assert names.count("chat claude-x") == 4
        assert names.count("POST /v1/messages") == 6  # 2 + 3 (two 529s then success) + 1
        resource = {a.key: a.value.string_value for a in got.resources()[0].attributes}
        assert resource["service.name"] == "checkout"
        assert resource["deployment.environment"] == "test"
        assert len(resource["service.instance.id"]) == 36
        assert got.headers[0].get("x-tenant") == "team-a"
        assert set(out["trace_ids"]) <= {s.trace_id.hex() for s in got.spans()}

        [(unit, kind, point)] = got.metric_points("anthropic.client.retries")
        assert kind == "sum" and point.as_double + point.as_int == 2
        assert {a.key: a.value.string_value for a in point.attributes}["anthropic.retry.reason"] == "529"
        durations = got.metric_points("gen_ai.client.operation.duration")
        assert durations[0][0] == "s" and durations[0][1] == "histogram"
        assert sum(p.count for _, _, p in durations) == 4
        assert got.metric_points("anthropic.client.timeout.utilization")[0][0] == "1"
        tokens = got.metric_points("gen_ai.client.token.usage")
        assert tokens[0][0] == "{token}" and sum(p.count for _, _, p in tokens) == 8
        assert {"gen_ai.client.operation.time_to_first_chunk", "anthropic.client.prefill.duration",
                "anthropic.client.stream.max_gap", "anthropic.client.attempt.duration",
                "anthropic.client.retry.backoff", "anthropic.client.active_requests",
                "anthropic.ratelimit.remaining"} <= got.metric_names()
    finally:
        receiver.stop()


def scrape(url, openmetrics=False):
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.read().decode()


def test_prometheus_scrapes_metrics_endpoint_with_exemplars(sim, tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, APP], env=app_env(
        sim, CLAUDE_OTEL_PROMETHEUS_PORT=port, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1", APP_WAIT=1, APP_CALLS=3,
        APP_RETRY_CALLS=1, APP_STREAMS=2), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    prom = None
    try:
        out = json.loads(proc.stdout.readline())
        assert out["prometheus_url"] == f"http://127.0.0.1:{port}/metrics"
        text = scrape(out["prometheus_url"])
        for name in ("gen_ai_client_operation_duration_seconds_bucket", "anthropic_client_retries_total",
                     "anthropic_client_timeout_utilization_bucket", "gen_ai_client_token_usage_bucket",
                     "anthropic_client_active_requests", "anthropic_ratelimit_remaining"):
            assert name in text, name
        assert "_ratio" not in text and "sk-ant-app-SECRET" not in text
        (tmp_path / "metrics.txt").write_text(text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check

        openmetrics = scrape(out["prometheus_url"], openmetrics=True)
        assert "# {span_id=" in openmetrics and openmetrics.rstrip().endswith("# EOF")

        prom = PrometheusServer(targets=[f"127.0.0.1:{port}"])
        assert prom.wait_for("sum(anthropic_client_retries_total)", lambda v: v == 2) == 2
        assert prom.value("sum(gen_ai_client_operation_duration_seconds_count)") == 6
        assert prom.value('sum(gen_ai_client_operation_time_to_first_chunk_seconds_count)') == 2
        assert prom.value('sum(anthropic_client_retries_total{anthropic_retry_reason="529"})') == 2
        data = prom.api("query_exemplars", query="gen_ai_client_operation_duration_seconds_bucket",
                        start=time.time() - 300, end=time.time() + 60)
        exemplar_traces = {e["labels"]["trace_id"] for series in data for e in series["exemplars"]}
        assert exemplar_traces & set(out["trace_ids"]), (exemplar_traces, out["trace_ids"])
    finally:
        if prom is not None:
            prom.stop()
        proc.stdin.close()
        proc.wait(30)


def test_invalid_settings_name_the_setting_and_the_app_still_runs(sim):
    out, stderr = run_app(sim, CLAUDE_OTEL_PROMETHEUS_PORT="ninety", APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0)
    assert stderr.count("CLAUDE_OTEL_PROMETHEUS_PORT='ninety'") == 1
    assert len(out["latencies"]) == 1

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, stderr = run_app(sim, CLAUDE_OTEL_PROMETHEUS_PORT=port, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1",
                              APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0)
    assert stderr.count(f"CLAUDE_OTEL_PROMETHEUS_PORT={port}") == 1 and "in use" in stderr
    assert len(out["latencies"]) == 1

    out, stderr = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1", OTEL_EXPORTER_OTLP_PROTOCOL="pigeon",
                          APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0)
    assert stderr.count("OTEL_EXPORTER_OTLP_PROTOCOL='pigeon'") == 1
    assert len(out["latencies"]) == 1


def test_collector_down_or_slow_never_slows_calls(sim):
    receiver = GrpcReceiver()
    try:
        up, _ = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
                        APP_CALLS=40, APP_RETRY_CALLS=0, APP_STREAMS=10, OTEL_BSP_SCHEDULE_DELAY=50)
    finally:
        receiver.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down, stderr = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed}",
                           OTEL_EXPORTER_OTLP_PROTOCOL="grpc", APP_CALLS=40, APP_RETRY_CALLS=0, APP_STREAMS=10,
                           OTEL_BSP_SCHEDULE_DELAY=50, OTEL_METRIC_EXPORT_INTERVAL=500, APP_DROPS_WAIT=20)
    slow_receiver = HttpReceiver()
    slow_receiver.received.mode = "slow"
    try:
        slow, _ = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=slow_receiver.endpoint,
                          OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", APP_CALLS=40, APP_RETRY_CALLS=0,
                          APP_STREAMS=10, OTEL_BSP_SCHEDULE_DELAY=50)
    finally:
        slow_receiver.stop()
    base = statistics.median(up["latencies"])
    ratio_down = statistics.median(down["latencies"]) / base
    ratio_slow = statistics.median(slow["latencies"]) / base
    print(f"median call latency: collector up {base * 1000:.1f} ms, down x{ratio_down:.2f}, slow x{ratio_slow:.2f}")
    assert ratio_down < 1.5 or statistics.median(down["latencies"]) - base < 0.02
    assert ratio_slow < 1.5 or statistics.median(slow["latencies"]) - base < 0.02
    assert down["dropped"] > 0
    assert stderr.count("claude-otel: dropping") == 1, stderr[-3000:]
    assert down["shutdown_seconds"] < 8 and slow["shutdown_seconds"] < 8


def test_claude_otel_run_launcher_configures_before_the_app(sim):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "run", "--", sys.executable, APP], env=app_env(
        sim, CLAUDE_OTEL_PROMETHEUS_PORT=port, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1", APP_CONFIGURE=0, APP_WAIT=1),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out = json.loads(proc.stdout.readline())
        assert out["prometheus_url"].endswith(f":{port}/metrics")
        assert "gen_ai_client_operation_duration_seconds_count" in scrape(out["prometheus_url"])
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 0


def test_opentelemetry_instrument_finds_the_entry_point(sim):
    from importlib.metadata import entry_points

    assert "claude_otel" in [e.name for e in entry_points(group="opentelemetry_instrumentor")]
    script = ("import anthropic, os; c = anthropic.Anthropic(base_url=os.environ['ANTHROPIC_BASE_URL'], api_key='k');"
              "c.messages.create(model='claude-x', max_tokens=8, messages=[{'role':'user','content':'hi'}])")
    env = app_env(sim, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                  OTEL_SERVICE_NAME="zero-code")
    bindir = Path(sys.executable).parent
    result = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '"name": "chat claude-x"' in result.stdout
    assert '"name": "POST /v1/messages"' in result.stdout
