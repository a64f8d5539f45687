"""Exporters: the Prometheus conversion and OTLP plumbing in-process, then configure() end to end in real
application processes against a real OTLP receiver (gRPC and HTTP), the launcher and opentelemetry-instrument.

Anything that sets the global OpenTelemetry providers runs in a subprocess (they can be set once per process).
"""

from __future__ import annotations

import json
import re
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from claude_otel import semconv
from claude_otel import fork, settings
from claude_otel.exporters import otlp
from claude_otel.exporters.dropped import DropCounter, ExporterLogs
from claude_otel.exporters.prometheus import (
    exposition_name, label_name, label_value, merge, metric_name,
)
from tests.helpers.procs import read_line
from tests.helpers.app import APP, app_env, local_pipeline, run_app, scrape
from tests.helpers.env import ROOT
from tests.helpers.otlp import GrpcReceiver, HttpReceiver, attrs


# -- in-process: naming and conversion --------------------------------------------------------------------------------

CONTRACT = {
    semconv.OPERATION_DURATION: ("s", "histogram", "gen_ai_client_operation_duration_seconds"),
    semconv.TOKEN_USAGE: ("{token}", "histogram", "gen_ai_client_token_usage"),
    semconv.TIME_TO_FIRST_CHUNK: ("s", "histogram", "gen_ai_client_operation_time_to_first_chunk_seconds"),
    semconv.RETRIES: ("{retry}", "counter", "anthropic_client_retries"),
    semconv.TIMEOUT_UTILIZATION: ("1", "histogram", "anthropic_client_timeout_utilization"),
    semconv.ACTIVE_REQUESTS: ("{request}", "gauge", "anthropic_client_active_requests"),
    semconv.RATELIMIT_REMAINING: ("{unit}", "gauge", "anthropic_ratelimit_remaining"),
    semconv.EXPORTER_DROPPED: ("{item}", "counter", "claude_otel_exporter_dropped"),
}


def test_prometheus_names_follow_the_opentelemetry_rules():
    for name, (unit, kind, expected) in CONTRACT.items():
        assert metric_name(name, unit) == expected
    assert exposition_name(semconv.RETRIES, "{retry}", "counter") == ("anthropic_client_retries_total",)
    assert exposition_name(semconv.TIMEOUT_UTILIZATION, "1", "histogram")[0] == \
        "anthropic_client_timeout_utilization_bucket"
    assert exposition_name(semconv.ACTIVE_REQUESTS, "{request}", "gauge") == ("anthropic_client_active_requests",)
    assert metric_name("x.duration_seconds", "s") == "x_duration_seconds"
    assert label_name(semconv.REQUEST_MODEL) == "gen_ai_request_model"
    assert label_name("9lives") == "_9lives"
    assert (label_value(True), label_value(False), label_value(3), label_value(["a", "b"])) == \
        ("true", "false", "3", "a,b")


def test_exposition_counters_histograms_gauges_and_exemplars():
    meter, tracer, reader, registry, _ = local_pipeline()
    duration = meter.create_histogram(semconv.OPERATION_DURATION, unit="s", description="Duration.",
                                      explicit_bucket_boundaries_advisory=[0.1, 1.0, 10.0])
    retries = meter.create_counter(semconv.RETRIES, unit="{retry}", description="Retries.")
    utilization = meter.create_histogram(semconv.TIMEOUT_UTILIZATION, unit="1", description="Utilization.",
                                         explicit_bucket_boundaries_advisory=[0.5, 1.0])
    remaining = meter.create_gauge(semconv.RATELIMIT_REMAINING, unit="{unit}", description="Remaining.")
    active = meter.create_up_down_counter(semconv.ACTIVE_REQUESTS, unit="{request}", description="In flight.")
    labels = {semconv.REQUEST_MODEL: "claude-x", semconv.REQUEST_STREAM: False}
    with tracer.start_as_current_span("call") as span:
        duration.record(0.5, labels)
        trace_id = format(span.get_span_context().trace_id, "032x")
    duration.record(5.0, labels)  # no span: no exemplar
    retries.add(2, {**labels, semconv.RETRY_REASON: "529"})
    utilization.record(0.7, labels)
    remaining.set(42, {semconv.RATELIMIT_KIND: "requests"})
    active.add(1, labels)
    active.add(-1, labels)

    text = generate_latest(registry).decode()
    series = 'gen_ai_request_model="claude-x"'
    assert f'gen_ai_client_operation_duration_seconds_bucket{{anthropic_request_stream="false",{series},le="1.0"}} ' \
           f'1.0' in text
    assert f'gen_ai_client_operation_duration_seconds_bucket{{anthropic_request_stream="false",{series},le="+Inf"}}' \
           f' 2.0' in text
    assert f'gen_ai_client_operation_duration_seconds_count{{anthropic_request_stream="false",{series}}} 2.0' in text
    assert f'gen_ai_client_operation_duration_seconds_sum{{anthropic_request_stream="false",{series}}} 5.5' in text
    assert 'anthropic_client_retries_total{anthropic_request_stream="false",anthropic_retry_reason="529",' in text
    assert "anthropic_client_timeout_utilization_bucket{" in text and "_ratio" not in text
    assert 'anthropic_ratelimit_remaining{anthropic_ratelimit_kind="requests"} 42.0' in text
    assert "# TYPE anthropic_client_active_requests gauge" in text
    assert f'anthropic_client_active_requests{{anthropic_request_stream="false",{series}}} 0.0' in text
    assert "target_info{" in text and 'telemetry_sdk_language="python"' in text
    assert "service_instance_id" not in text  # differs per worker: not a label of target_info

    om = generate_openmetrics(registry).decode()
    assert "# UNIT gen_ai_client_operation_duration_seconds seconds" in om
    bucket = next(line for line in om.splitlines() if line.startswith("gen_ai_client_operation_duration_seconds_"
                                                                       "bucket") and 'le="1.0"' in line)
    assert '# {span_id="' in bucket and f'trace_id="{trace_id}"}} 0.5' in bucket
    assert om.rstrip().endswith("# EOF")
    # The SDK hands an exemplar to one collection only; the reader keeps it for every later scrape.
    assert f'trace_id="{trace_id}"' in generate_openmetrics(registry).decode()


def test_merge_sums_counters_and_histograms_and_takes_the_newest_gauge():
    key = (("gen_ai_request_model", "m"),)

    def snap(count, gauge, at, active):
        return {
            "c": {"type": "counter", "help": "", "agg": "sum", "samples": {key: {"value": count, "time": at}}},
            "h": {"type": "histogram", "help": "", "agg": "sum", "samples": {key: {
                "bounds": [1.0], "counts": [count, 1], "sum": count + 2.0, "max": 2.0, "exemplars": {}}}},
            "g": {"type": "gauge", "help": "", "agg": "last", "samples": {key: {"value": gauge, "time": at}}},
            "a": {"type": "gauge", "help": "", "agg": "sum", "samples": {key: {"value": active, "time": at}}},
        }

    merged = merge([snap(2, 10, 5, 1), snap(3, 7, 9, 2), snap(1, 99, 1, 0)])
    assert merged["c"]["samples"][key]["value"] == 6
    assert merged["h"]["samples"][key]["counts"] == [6, 3] and merged["h"]["samples"][key]["sum"] == 12
    assert merged["g"]["samples"][key]["value"] == 7  # changed most recently
    assert merged["a"]["samples"][key]["value"] == 3


def test_reset_metric_state_empties_every_aggregation():
    meter, _, reader, _, meter_provider = local_pipeline()
    counter = meter.create_counter("c")
    counter.add(5)
    assert reader.snapshot()["c"]["samples"][()]["value"] == 5
    assert fork.reset_metric_state(meter_provider)
    assert reader.snapshot().get("c", {"samples": {}})["samples"] == {}
    counter.add(2)
    assert reader.snapshot()["c"]["samples"][()]["value"] == 2


# -- in-process: OTLP settings, drop counting, one warning --------------------------------------------------------------

def test_otlp_settings_from_the_standard_variables():
    assert settings.otlp_signals({}) == {"traces": False, "metrics": False}
    assert settings.otlp_signals({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}) == \
        {"traces": True, "metrics": True}
    assert settings.otlp_signals({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}) == \
        {"traces": True, "metrics": False}
    assert settings.otlp_signals({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_METRICS_EXPORTER": "none"}) == \
        {"traces": True, "metrics": False}
    assert settings.otlp_signals({"OTEL_METRICS_EXPORTER": "otlp"}) == {"traces": False, "metrics": True}
    assert settings.otlp_signals({}, explicit=True) == {"traces": True, "metrics": True}
    assert settings.otlp_signals({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, explicit=False) == \
        {"traces": False, "metrics": False}
    assert settings.otlp_protocol({}, "traces") == "http/protobuf"
    assert settings.otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "metrics") == "grpc"
    assert settings.otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                   "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "traces") == "http/protobuf"
    with pytest.raises(settings.SettingError, match="OTEL_EXPORTER_OTLP_PROTOCOL='http/json'"):
        settings.otlp_protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "traces")
    assert settings.otlp_timeout({}, "traces") == settings.OTLP_DEFAULT_TIMEOUT
    assert settings.otlp_timeout({"OTEL_EXPORTER_OTLP_TIMEOUT": "2"}, "traces") is None  # the exporter reads it
    with pytest.raises(settings.SettingError, match="OTEL_EXPORTER_OTLP_METRICS_TIMEOUT='soon'"):
        settings.otlp_timeout({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "soon"}, "metrics")


class Stuck(SpanExporter):
    """An exporter whose first export hangs until released (a collector that accepted and went quiet)."""

    def __init__(self):
        self.release = threading.Event()
        self.entered = threading.Event()
        self.exported = 0

    def export(self, spans):
        self.entered.set()
        self.release.wait(10)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self):
        self.release.set()


def test_full_queue_drops_are_counted_with_one_warning(caplog):
    drops = DropCounter(exporter_logs=ExporterLogs())
    stuck = Stuck()
    processor = otlp.CountingBatchSpanProcessor(otlp.CountingSpanExporter(lambda: stuck, drops), drops,
                                                max_queue_size=10, max_export_batch_size=5,
                                                schedule_delay_millis=10)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            tracer.start_span("first").end()
        assert stuck.entered.wait(10)  # the worker took the first batch and hangs in export
        for _ in range(40):
            tracer.start_span("more").end()
        stuck.release.set()
        processor.shutdown()
    assert drops.by_signal == {"traces": 30}  # 40 spans into a queue of 10 while the exporter hangs
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("claude_otel")]
    assert len(warnings) == 1 and "dropping telemetry" in warnings[0].getMessage()
    assert stuck.exported + drops.total == 45


def test_failed_exports_are_counted_and_a_forked_child_gets_its_own_exporter():
    built = []

    class Failing(SpanExporter):
        def export(self, spans):
            return SpanExportResult.FAILURE

        def shutdown(self):
            pass

    def factory():
        built.append(Failing())
        return built[-1]

    drops = DropCounter(warn_every=3600)
    exporter = otlp.CountingSpanExporter(factory, drops)
    assert exporter.export([object()] * 3) == SpanExportResult.FAILURE
    assert drops.total == 3 and len(built) == 1
    exporter._exporter._pid = -1  # as seen from a forked child: the parent's exporter is not reused
    exporter.export([object()])
    assert len(built) == 2 and drops.total == 4


# -- configure() in an application process ---------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_receives_spans_and_metrics_of_real_calls(sim, protocol):
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    try:
        lines, stderr = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                                OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_HEADERS="x-tenant=team-a",
                                OTEL_METRIC_EXPORT_INTERVAL=60000, OTEL_SERVICE_NAME="checkout",
                                OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,service.version=1.2.3",
                                APP_CALLS=2, APP_RETRY_CALLS=1, APP_STREAMS=1)
        out = lines[-1]
        got = receiver.received
        assert got.wait_for(lambda: got.metrics and got.traces)
        names = [s.name for s in got.spans()]
        assert names.count("chat claude-x") == 4
        assert names.count("POST /v1/messages") == 6  # 2 + 3 (two 529s then success) + 1
        resource = attrs(got.resources()[0].attributes)
        assert resource["service.name"] == "checkout"  # the operator's OTEL_SERVICE_NAME wins over the code's
        assert resource["service.version"] == "1.2.3"
        assert resource["deployment.environment"] == "test"
        assert resource["telemetry.sdk.language"] == "python"
        assert resource["service.instance.id"] == out["instance_id"] and len(out["instance_id"]) == 36
        assert got.headers[0].get("x-tenant") == "team-a"
        assert set(out["trace_ids"]) <= {s.trace_id.hex() for s in got.spans()}

        [(unit, kind, point)] = got.metric_points(semconv.RETRIES)
        assert unit == "{retry}" and kind == "sum" and point.as_int == 2  # the simulator forced two 529s
        assert attrs(point.attributes)[semconv.RETRY_REASON] == "529"
        durations = got.metric_points(semconv.OPERATION_DURATION)
        assert durations[0][0] == "s" and durations[0][1] == "histogram"
        assert sum(p.count for _, _, p in durations) == 4
        # the documented contract, written out (not read back from semconv, which is what is under test)
        assert list(durations[0][2].explicit_bounds) == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
                                                         10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36]
        assert got.metric_points(semconv.TIMEOUT_UTILIZATION)[0][0] == "1"
        tokens = got.metric_points(semconv.TOKEN_USAGE)
        assert tokens[0][0] == "{token}" and sum(p.count for _, _, p in tokens) == 8
        assert {semconv.TIME_TO_FIRST_CHUNK, semconv.PREFILL_DURATION, semconv.STREAM_MAX_GAP,
                semconv.ATTEMPT_DURATION, semconv.RETRY_BACKOFF, semconv.ACTIVE_REQUESTS,
                semconv.RATELIMIT_REMAINING} <= got.metric_names()
        assert "Transient error" not in stderr and "claude-otel" not in stderr
    finally:
        receiver.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_forked_worker_exports_its_own_series_without_the_parents_counts(sim, protocol):
    receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    try:
        lines, _ = run_app(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
                           OTEL_METRIC_EXPORT_INTERVAL=60000, OTEL_BSP_SCHEDULE_DELAY=100,
                           APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0, APP_FORK=2)
        [child] = [line for line in lines if line.get("child")]
        parent = lines[-1]
        assert child["instance_id"] != parent["instance_id"] and child["pid"] != parent["pid"]
        got = receiver.received
        assert got.wait_for(lambda: {parent["instance_id"], child["instance_id"]} <= got.metric_instance_ids())

        def calls(instance):
            return sum(p.count for _, _, p in got.metric_points(semconv.OPERATION_DURATION, instance_id=instance))

        assert calls(child["instance_id"]) == 2  # the child's own calls, not the parent's one as well
        assert calls(parent["instance_id"]) == 1
        by_instance = {}
        for resource, span in got.span_resources():
            if span.name == "chat claude-x":
                by_instance.setdefault(resource["service.instance.id"], []).append(span)
        assert {k: len(v) for k, v in by_instance.items()} == {parent["instance_id"]: 1, child["instance_id"]: 2}
    finally:
        receiver.stop()


def test_invalid_settings_name_the_setting_and_the_app_still_runs(sim):
    lines, stderr = run_app(sim, CLAUDE_OTEL_PROMETHEUS_PORT="ninety", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1",
                            OTEL_EXPORTER_OTLP_PROTOCOL="pigeon", OTEL_METRICS_EXEMPLAR_FILTER="sometimes",
                            CLAUDE_OTEL_MULTIPROC_DIR="/proc/claude-otel-cannot-be-here",
                            APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0)
    out = lines[-1]
    assert len(out["latencies"]) == 1 and out["prometheus_url"] is None
    for said in ("CLAUDE_OTEL_PROMETHEUS_PORT='ninety'", "OTEL_EXPORTER_OTLP_PROTOCOL='pigeon'",
                 "OTEL_METRICS_EXEMPLAR_FILTER='sometimes'",
                 "CLAUDE_OTEL_MULTIPROC_DIR='/proc/claude-otel-cannot-be-here'"):
        assert stderr.count(said) == 1, (said, stderr)
    assert len(out["problems"]) == 4 and "Traceback" not in stderr

    taken = subprocess.Popen([sys.executable, "-c", "import socket, sys; s = socket.socket(); "
                              "s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); "
                              "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(read_line(taken, 30, "the busy port"))
        lines, stderr = run_app(sim, CLAUDE_OTEL_PROMETHEUS_PORT=port, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1",
                                APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0)
    finally:
        taken.stdin.close()
        taken.wait(10)
    assert stderr.count(f"CLAUDE_OTEL_PROMETHEUS_PORT={port} is already in use") == 1, stderr
    assert "/metrics is not served" in stderr and len(lines[-1]["latencies"]) == 1


PROVIDERS_SCRIPT = """
import json, os, threading, urllib.request
import anthropic, claude_otel
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

out = {}
if os.environ.get("CASE") == "app-providers":
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    app_tp = TracerProvider(); app_tp.add_span_processor(SimpleSpanProcessor(spans)); trace.set_tracer_provider(app_tp)
    app_mp = MeterProvider(metric_readers=[reader]); metrics.set_meter_provider(app_mp)
    handles = []
    threads = [threading.Thread(target=lambda: handles.append(claude_otel.configure(
        "svc", prometheus=os.environ.get("PROM") == "1"))) for _ in range(8)]
    [t.start() for t in threads]; [t.join() for t in threads]
    h = handles[0]
    out["same_handle"] = all(x is h for x in handles)
    out["uses_app_tracer"] = h.tracer_provider is app_tp
    out["uses_app_meter"] = h.meter_provider is app_mp
    c = anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="k")
    c.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    out["app_spans"] = sorted({s.name for s in spans.get_finished_spans()})
    data = reader.get_metrics_data()
    out["app_metrics"] = sorted({m.name for rm in (data.resource_metrics if data else []) for sm in rm.scope_metrics
                                 for m in sm.metrics})
    out["own_metrics"] = sorted(h.reader.snapshot()) if h.reader else None
    h.shutdown(1)
    again = claude_otel.configure("svc", prometheus=True)
    c.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    out["reconfigured"] = again is not h and "gen_ai_client_operation_duration_seconds" in again.reader.snapshot()
else:
    h = claude_otel.configure("svc", prometheus_port=0, prometheus_addr="127.0.0.1")
    out["url"] = h.prometheus_url
    out["global_tracer_set"] = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
print(json.dumps(out))
"""


@pytest.mark.parametrize("prometheus", [False, True], ids=["app-meter", "own-meter-for-metrics"])
def test_configure_uses_the_applications_providers_once_and_thread_safely(sim, prometheus):
    env = app_env(sim, CASE="app-providers", PROM=int(prometheus))
    result = subprocess.run([sys.executable, "-c", PROVIDERS_SCRIPT], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["same_handle"] and out["uses_app_tracer"] and out["reconfigured"]
    assert out["app_spans"] == ["POST /v1/messages", "chat claude-x"]
    if prometheus:  # a provider's readers are fixed: the agent's metrics get a provider of their own for /metrics
        assert not out["uses_app_meter"] and semconv.OPERATION_DURATION not in out["app_metrics"]
        assert "gen_ai_client_operation_duration_seconds" in out["own_metrics"]
    else:
        assert out["uses_app_meter"] and semconv.OPERATION_DURATION in out["app_metrics"]


def test_claude_otel_enabled_false_starts_nothing(sim):
    result = subprocess.run([sys.executable, "-c", PROVIDERS_SCRIPT], env=app_env(sim, CLAUDE_OTEL_ENABLED="false"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"url": None, "global_tracer_set": False}


# -- zero code -----------------------------------------------------------------------------------------------------

def test_claude_otel_run_configures_before_the_app_and_keeps_its_exit_code(sim, tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['APP_OWN_SITECUSTOMIZE'] = 'ran'\n")
    env = app_env(sim, CLAUDE_OTEL_PROMETHEUS_PORT=0, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1", APP_CONFIGURE=0,
                  APP_WAIT=1, APP_EXIT=3)
    env["PYTHONPATH"] = f"{own}{os.pathsep}{ROOT}"
    probe = f"{APP}"
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "run", "--", sys.executable, probe], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out = json.loads(read_line(proc, 60, "the app's report"))
        # port 0 asked for: the port the server bound is the one reported
        assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*/metrics", out["prometheus_url"]), out
        text = scrape(out["prometheus_url"])
        assert 'gen_ai_client_operation_duration_seconds_count{' in text
        assert "anthropic_client_retries_total{" in text
    finally:
        proc.stdin.close()
        assert proc.wait(30) == 3  # the app's own exit code
    check = subprocess.run([sys.executable, "-m", "claude_otel", "run", "--", sys.executable, "-c",
                            "import os, sys; print(os.environ.get('APP_OWN_SITECUSTOMIZE'), "
                            "os.environ['PYTHONPATH'].split(os.pathsep)[1:], "
                            "'claude_otel._configuration' in sys.modules)"],
                           env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.split(" [")[0] == "ran"  # the application's own sitecustomize still ran
    assert str(own) in check.stdout and str(ROOT) in check.stdout and check.stdout.strip().endswith("True")
    missing = subprocess.run([sys.executable, "-m", "claude_otel", "run", "--", "no-such-program-here"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 127 and "no-such-program-here" in missing.stderr


def test_opentelemetry_instrument_finds_the_entry_point(sim):
    from importlib.metadata import entry_points

    if "claude_otel" not in [e.name for e in entry_points(group="opentelemetry_instrumentor")]:
        if os.environ.get("CI"):
            pytest.fail("the claude_otel entry point is not installed (pip install -e .)")
        pytest.skip("the claude_otel entry point is not installed (pip install -e .)")
    script = ("import anthropic, os; c = anthropic.Anthropic(base_url=os.environ['ANTHROPIC_BASE_URL'], api_key='k');"
              "c.messages.create(model='claude-x', max_tokens=8, messages=[{'role':'user','content':'hi'}])")
    receiver = HttpReceiver()
    env = app_env(sim, OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none",
                  OTEL_SERVICE_NAME="zero-code", OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                  OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    bindir = Path(sys.executable).parent
    try:
        result = subprocess.run([str(bindir / "opentelemetry-instrument"), sys.executable, "-c", script], env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
        got = receiver.received
        assert got.wait_for(lambda: got.traces and semconv.OPERATION_DURATION in got.metric_names())
        assert {"chat claude-x", "POST /v1/messages"} <= {s.name for s in got.spans()}
        assert attrs(got.resources()[0].attributes)["service.name"] == "zero-code"
    finally:
        receiver.stop()
