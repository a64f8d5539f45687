"""Every example runs against the simulator; the stack's configs validate with the tools available here."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from prometheus_server import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def env(sim, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_", "ANTHROPIC_"))}
    e.update({"ANTHROPIC_BASE_URL": sim.base_url, "PYTHONPATH": str(ROOT), "ANTHROPIC_OPEN_TELEMETRY": "false"})
    e.update({k: str(v) for k, v in extra.items()})
    return e


def run(args, sim, **extra):
    result = subprocess.run(args, env=env(sim, **extra), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def get(url):
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read().decode()


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_quickstart_async_and_streaming(sim):
    out = run([sys.executable, "examples/quickstart.py"], sim)
    assert out.stdout.strip()
    assert "5 replies" in run([sys.executable, "examples/async_app.py"], sim).stdout
    assert "output tokens: 12" in run([sys.executable, "examples/streaming.py"], sim).stdout
    assert len(sim.requests) == 7


def test_zero_code_with_both_launchers(sim):
    out = run([str(BIN / "opentelemetry-instrument"), "--traces_exporter", "console", "--metrics_exporter", "none",
               "--logs_exporter", "none", sys.executable, "examples/zero_code.py"], sim)
    assert '"name": "chat claude-haiku-4-5"' in out.stdout
    out = run([sys.executable, "-m", "claude_otel", "run", "--", sys.executable, "examples/zero_code.py"], sim)
    assert out.stdout.strip()


def test_fastapi_service_mounts_metrics(sim):
    port = free_port()
    proc = subprocess.Popen([str(BIN / "uvicorn"), "examples.fastapi_app:app", "--port", str(port), "--host",
                             "127.0.0.1"], env=env(sim), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_http(f"http://127.0.0.1:{port}/ask")
        get(f"http://127.0.0.1:{port}/ask?q=again")
        metrics = get(f"http://127.0.0.1:{port}/metrics/")
        assert 'gen_ai_client_operation_duration_seconds_count{anthropic_request_stream="false"' in metrics
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def test_gunicorn_example_sums_workers(sim, tmp_path):
    port = free_port()
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], cwd=EXAMPLES / "gunicorn",
                            env=env(sim, BIND=f"127.0.0.1:{port}", WORKERS=3,
                                    CLAUDE_OTEL_MULTIPROC_DIR=tmp_path / "mp"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        for _ in range(11):
            get(f"http://127.0.0.1:{port}/")
        time.sleep(2.5)
        text = get(f"http://127.0.0.1:{port}/metrics")
        total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("gen_ai_client_operation_duration_seconds_count"))
        assert total == 12
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_stack_configs_validate():
    stack = EXAMPLES / "stack"
    compose = yaml.safe_load((stack / "compose.yaml").read_text())
    assert {"demo", "otel-collector", "prometheus", "tempo", "grafana"} <= set(compose["services"])
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (stack / source).resolve().exists(), source
    promtool = shutil.which("promtool")
    if promtool is None and not os.environ.get("CI"):
        pytest.skip("promtool is not installed")
    check = subprocess.run([promtool, "check", "config", "--syntax-only", str(stack / "prometheus.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    collector = yaml.safe_load((stack / "otel-collector.yaml").read_text())
    for pipeline in collector["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in collector[kind], (kind, name)
    tempo = yaml.safe_load((stack / "tempo.yaml").read_text())
    assert tempo["distributor"]["receivers"]["otlp"]
    exporter_target = collector["exporters"]["otlp/tempo"]["endpoint"]
    assert exporter_target.startswith("tempo:")
