"""Every example runs against the simulator; the stack's configs validate with the tools available here."""

from __future__ import annotations

import json
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

from tests.helpers.ports import _legacy_free_port as free_port

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
    port = free_port()
    out = run([sys.executable, "examples/quickstart.py"], sim, CLAUDE_OTEL_PROMETHEUS_PORT=port)
    assert out.stdout.strip() and "metrics: http://" in out.stdout and f":{port}/metrics" in out.stdout
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
    from claude_otel.exporters.multiprocess import ARCHIVE, _write

    port = free_port()
    # what an earlier run of the service left behind: its on_starting hook must clear claude-otel's files only
    (tmp_path / "mp").mkdir()
    _write(str(tmp_path / "mp" / ARCHIVE), {"gen_ai_client_operation_duration_seconds": {
        "type": "histogram", "help": "h", "agg": "sum", "samples": {(("gen_ai_request_model", "old"),): {
            "bounds": [1.0], "counts": [1000, 0], "sum": 1.0, "max": 0.5, "exemplars": {}}}}}, 1)
    (tmp_path / "mp" / "someone_elses.db").write_text("kept")
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
        assert total == 12  # not 1012: the earlier run's archive was cleared at start
        assert (tmp_path / "mp" / "someone_elses.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(25)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


STACK = EXAMPLES / "stack"


def load(path: Path):
    return yaml.safe_load(path.read_text())


def host_port(address: str):
    address = address.split("//", 1)[-1].split("/", 1)[0]
    host, _, port = address.rpartition(":")
    return host, int(port)


def test_stack_compose_file():
    compose = load(STACK / "compose.yaml")
    services = compose["services"]
    assert set(services) == {"demo", "otel-collector", "prometheus", "tempo", "grafana"}
    for name, service in services.items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name  # pinned images
        for dependency in service.get("depends_on", []):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("."), volume  # bind mounts of files in this repository
            assert (STACK / source).resolve().exists(), source
    demo = services["demo"]
    assert "claude-otel demo" in " ".join(demo["command"]) and "--metrics-addr 0.0.0.0" in " ".join(demo["command"])
    collector_host, collector_port = host_port(demo["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
    assert collector_host == "otel-collector" and f"{collector_port}:{collector_port}" in \
        services["otel-collector"]["ports"]
    assert "--enable-feature=exemplar-storage" in services["prometheus"]["command"]
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert grafana_mounts["../../grafana/provisioning"] == "/etc/grafana/provisioning"
    # the dashboard provider reads the folder the dashboards are mounted at
    provider = load(ROOT / "grafana" / "provisioning" / "dashboards" / "claude-otel.yml")["providers"][0]
    assert provider["options"]["path"] == grafana_mounts["../../grafana/dashboards"]
    assert (ROOT / "grafana" / "dashboards" / "claude-overview.json").exists()
    # the provisioned data sources point at the services of this file
    sources = load(ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    for source in sources:
        host, port = host_port(source["url"])
        assert host in services and any(str(p).endswith(f":{port}") for p in services[host]["ports"]), source

    try:
        import check_jsonschema
        import jsonschema
    except ImportError:
        pytest.skip("check-jsonschema (which ships the Compose specification's schema) is not installed")
    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_stack_prometheus_config_and_rules(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None and not os.environ.get("CI"):
        pytest.skip("promtool is not installed")
    config = load(STACK / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/claude-otel/*.yml"]  # where compose.yaml mounts grafana/rules
    compose = load(STACK / "compose.yaml")
    mounts = dict(v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"])
    assert mounts["../../grafana/rules"] == "/etc/prometheus/claude-otel"
    collector = load(STACK / "otel-collector.yaml")
    targets = [t for job in config["scrape_configs"] for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"otel-collector:{host_port(collector['exporters']['prometheus']['endpoint'])[1]}"]
    # promtool checks the config and the rule files it loads: point rule_files at the repository's copy
    config["rule_files"] = [str(ROOT / "grafana" / "rules" / "*.yml")]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(checked)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr and "rule" in (result.stdout + result.stderr).lower()


# Components of the otel/opentelemetry-collector-contrib image that the stack may use.
COLLECTOR_COMPONENTS = {
    "receivers": {"otlp", "prometheus", "hostmetrics"},
    "processors": {"batch", "memory_limiter", "resource", "attributes", "filter", "transform"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
}


def test_stack_collector_and_tempo_configs():
    collector = load(STACK / "otel-collector.yaml")
    compose = load(STACK / "compose.yaml")
    for kind, known in COLLECTOR_COMPONENTS.items():
        for name in collector[kind]:
            assert name.split("/")[0] in known, (kind, name)
    for kind_of_data, pipeline in collector["service"]["pipelines"].items():
        assert kind_of_data in ("traces", "metrics", "logs")
        for kind in ("receivers", "processors", "exporters"):
            for name in pipeline.get(kind, []):
                assert name in collector[kind], (kind, name)
    assert set(collector["service"]["pipelines"]) == {"metrics", "traces"}
    assert collector["exporters"]["prometheus"]["enable_open_metrics"] is True  # exemplars
    ports = {host_port(p["endpoint"])[1] for p in collector["receivers"]["otlp"]["protocols"].values()}
    assert ports == {4317, 4318}
    tempo_host, tempo_port = host_port(collector["exporters"]["otlp/tempo"]["endpoint"])
    assert tempo_host == "tempo" and tempo_host in compose["services"]
    tempo = load(STACK / "tempo.yaml")
    assert host_port(tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"])[1] == tempo_port
    assert tempo["server"]["http_listen_port"] == 3200
    assert tempo["storage"]["trace"]["backend"] == "local"


def test_examples_readme_lists_every_example():
    text = (EXAMPLES / "README.md").read_text()
    for path in sorted(EXAMPLES.iterdir()):
        if path.name != "README.md" and not path.name.startswith((".", "__")):
            assert f"`{path.name}" in text, path.name
