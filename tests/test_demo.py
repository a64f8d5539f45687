"""`claude-otel demo`: the workload's coverage, the table's single source of truth, headless and in a terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.procs import read_rest, read_until

ROOT = Path(__file__).resolve().parent.parent
CORE_METRICS = (
    "gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
    "gen_ai_client_operation_time_to_first_chunk_seconds", "anthropic_client_stream_max_gap_seconds",
    "anthropic_client_prefill_duration_seconds", "anthropic_client_attempt_duration_seconds",
    "anthropic_client_retries_total", "anthropic_client_retry_backoff_seconds", "anthropic_client_timeouts_total",
    "anthropic_client_timeout_utilization", "anthropic_client_active_requests", "anthropic_ratelimit_remaining",
)
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_", "ANTHROPIC_"))}
    e.update({"PYTHONPATH": str(ROOT), "ANTHROPIC_OPEN_TELEMETRY": "false"})
    return e


def test_the_mix_shows_every_signal_within_8_seconds(recorded, sim):
    """One round of the mix at the default rate: every kind of call and fault, recorded by the agent."""
    from claude_otel.demo.workload import SCENARIOS, Workload

    workload = Workload(sim.base_url, rate=4.0)
    start = time.monotonic()
    workload.run(duration=len(SCENARIOS) / 4.0, drain=8.0)
    assert time.monotonic() - start < 12
    assert workload.started == len(SCENARIOS) and workload.in_flight == 0
    r = recorded
    assert {p.attrs["gen_ai.request.model"] for p in r.points("gen_ai.client.operation.duration")} == set(MODELS)
    assert r.total("gen_ai.client.operation.duration") == len(SCENARIOS)
    streams = {p.attrs["anthropic.request.stream"] for p in r.points("gen_ai.client.operation.duration")}
    assert streams == {True, False}
    reasons = {p.attrs.get("anthropic.retry.reason") for p in r.points("anthropic.client.retries")}
    assert {"429", "529", "timeout"} <= reasons, reasons
    assert r.total("anthropic.client.retries") >= 4  # 429 once, 529 twice, async 529 once, a timeout retried
    assert r.total("anthropic.client.retry.backoff") >= 4
    assert r.total("anthropic.client.timeouts") >= 3  # headers timeout twice, the stall once
    assert r.hist_max("anthropic.client.timeout.utilization") >= 0.99
    near = [p for p in r.points("anthropic.client.timeout.utilization") if p.attrs["gen_ai.request.model"] ==
            "claude-opus-4-1"]
    assert any(0.7 <= b for p in near for b, c in zip(p.bounds, p.counts) if c)  # 1.6 s of 2 s
    errors = {p.attrs.get("error.type") for p in r.points("gen_ai.client.operation.duration")} - {None}
    assert "timeout" in errors and len(errors) >= 3, errors  # timeouts, the stream error event, the dropped stream
    assert r.total("gen_ai.client.operation.time_to_first_chunk") >= 6
    assert r.total("anthropic.client.prefill.duration") >= 6
    assert r.hist_max("anthropic.client.prefill.duration") >= 1.4  # the slow prefill
    assert r.points("anthropic.ratelimit.remaining")
    assert sum(workload.caught.values()) >= 4, workload.caught
    # sync and async clients, create / stream=True / messages.stream()
    assert any(s.attributes.get("anthropic.request.stream") for s in r.operation_spans())
    assert len(sim.requests) >= len(SCENARIOS) + 4


def test_the_table_is_read_from_the_agents_metrics(recorded, sim):
    """summary.rows() over the reader's snapshot agrees with the recorded points: no parallel count."""
    from claude_otel.demo import summary
    from claude_otel.demo.workload import Workload
    from claude_otel.exporters.prometheus import snapshot

    workload = Workload(sim.base_url, rate=8.0)
    workload.run(duration=14 / 8.0, drain=8.0)
    rows = {row.model: row for row in summary.rows(snapshot(recorded.reader.get_metrics_data()))}
    assert set(rows) == set(MODELS)
    for model, row in rows.items():
        assert row.requests == recorded.total("gen_ai.client.operation.duration", gen_ai__request__model=model)
        assert row.retries == recorded.total("anthropic.client.retries", gen_ai__request__model=model)
        assert row.timeouts == recorded.total("anthropic.client.timeouts", gen_ai__request__model=model)
        assert row.p50 is not None and row.p95 >= row.p50
    assert rows["claude-opus-4-1"].max_util >= 0.99
    text = summary.table(list(rows.values()))
    assert text.splitlines()[0].split()[:2] == ["model", "requests"] and "claude-opus-4-1" in text


def test_quantile_from_buckets():
    from claude_otel.demo.summary import quantile

    assert quantile(0.5, [1.0, 2.0], [0, 0, 0]) is None
    assert quantile(0.5, [1.0, 2.0], [0, 10, 0]) == pytest.approx(1.5)
    assert quantile(0.95, [1.0, 2.0], [0, 0, 4]) == 2.0  # +Inf bucket: the highest finite bound
    assert quantile(0.5, [1.0, 2.0], [10, 0, 0]) == pytest.approx(0.5)


def claude_otel_command():
    """Returns the `claude-otel` console script when installed (pip install -e .), else python -m claude_otel."""
    script = Path(sys.executable).parent / "claude-otel"
    return [str(script)] if script.exists() else [sys.executable, "-m", "claude_otel"]


def test_demo_headless_serves_every_core_metric():
    proc = subprocess.Popen([*claude_otel_command(), "demo", "--duration", "10", "--no-tty",
                             "--metrics-port", "0"], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    text = ""
    try:
        started = read_until(proc, lambda line: "/metrics http://" in line, 40, "the demo's /metrics line")
        port = int(re.search(r"/metrics http://127\.0\.0\.1:(\d+)", started).group(1))
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                if all(name in text for name in CORE_METRICS):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        missing = [name for name in CORE_METRICS if name not in text]
        assert not missing, missing
        out = started + read_rest(proc, 60)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "\x1b[" not in out  # plain text when not a terminal
    assert f"/metrics http://127.0.0.1:{port}/metrics" in out and "calls started" in out
    final = out[out.index("Final figures"):]
    for word in ("requests", "errors", "timeouts", "retries", "p50", "p95", "ttft p50", "prefill p50", "max util",
                 *MODELS, "all models"):
        assert word in final, word
    assert "scrape_configs" in final and f'targets: ["127.0.0.1:{port}"]' in final
    assert "grafana/dashboards" in final and "claude-timeouts.json" in final and "rules/*.yml" in final
    assert "APITimeoutError" in final  # the exceptions the demo app caught


@pytest.mark.slow  # three demo processes in a row: over the default 120 s on a busy 2-core machine
def test_demo_profile_option_and_bad_ports():
    bad = subprocess.run([sys.executable, "-m", "claude_otel", "demo", "--profile", "nope", "--no-tty"], env=env(),
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "slow-prefill" in bad.stderr and "Traceback" not in bad.stderr
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        clash = subprocess.run([sys.executable, "-m", "claude_otel", "demo", "--sim-port", str(taken), "--no-tty"],
                               env=env(), capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert clash.returncode == 2 and "--sim-port 0" in clash.stderr and "Traceback" not in clash.stderr
    one = subprocess.run([sys.executable, "-m", "claude_otel", "demo", "--profile", "rate-limited", "--duration", "2",
                          "--rate", "6", "--no-tty", "--metrics-port", "0"], env=env(), capture_output=True,
                         text=True, cwd=ROOT, timeout=90)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
    final = one.stdout[one.stdout.index("Final figures"):]
    retries = [int(line.split()[4]) for line in final.splitlines() if line.startswith(MODELS)]
    assert retries and all(n > 0 for n in retries), final  # every call of the profile was retried once


def test_demo_exports_otlp_when_an_endpoint_is_set():
    from tests.helpers.otlp import HttpReceiver

    receiver = HttpReceiver()
    try:
        e = env()
        e.update({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
        out = subprocess.run([sys.executable, "-m", "claude_otel", "demo", "--duration", "3", "--no-tty",
                              "--metrics-port", "0"], env=e, capture_output=True, text=True, cwd=ROOT, timeout=90)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        received = receiver.received
        assert received.wait_for(lambda: received.spans() and received.metrics, timeout=10)
        names = {attr.value.string_value for res in received.resources() for attr in res.attributes
                 if attr.key == "service.name"}
        assert names == {"claude-otel-demo"}
        assert {"chat claude-sonnet-4-5", "chat claude-haiku-4-5"} <= {span.name for span in received.spans()}
        assert "gen_ai.client.operation.duration" in received.metric_names()
    finally:
        receiver.stop()


@pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed")
def test_demo_live_view_in_a_terminal_stops_cleanly_on_ctrl_c(tmp_path):
    session = f"claude-otel-demo-{os.getpid()}"
    done = tmp_path / "exit-code"
    command = (f"cd {ROOT} && env -u OTEL_EXPORTER_OTLP_ENDPOINT PYTHONPATH={ROOT} {sys.executable} -m claude_otel "
               f"demo --duration 0 --metrics-port 0; echo $? > {done}; sleep 30")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True)
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if "max util" in screen and all(model in screen for model in MODELS):
                break
            time.sleep(0.5)
        assert "claude-otel demo" in screen and "runs until Ctrl-C" in screen, screen
        header = next(line for line in screen.splitlines() if line.startswith("model"))
        assert header.split()[:5] == ["model", "requests", "errors", "timeouts", "retries"], header
        assert all(model in screen for model in MODELS), screen
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (done.exists() and done.read_text().strip()):
            time.sleep(0.3)
        assert done.exists() and done.read_text().strip() == "0"
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-S", "-200", "-t", session], capture_output=True,
                                text=True).stdout
        assert "stopped by Ctrl-C" in screen and "scrape_configs" in screen and "Traceback" not in screen, screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
