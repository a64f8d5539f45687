"""Every example runs against the simulator; the stack's configs validate with the tools available here."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.env import ROOT, clean_env
from tests.helpers.otlp import HttpReceiver
from tests.helpers.ports import listening_port, port_in_log, read_text
from tests.helpers.procs import get, poll, stop, wait_http
from tests.helpers.require import require_module, require_tool

EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def env(sim, **extra):
    """Returns a scrubbed environment pointing the examples at simulator `sim`, plus `extra`."""
    return clean_env(base_url=sim.base_url, **extra)


def run(args, sim, **extra):
    """Runs an example to its end within 120 s; returns the finished process (asserting it exited with 0)."""
    result = subprocess.run(args, env=env(sim, **extra), capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def operation_counts(text: str) -> float:
    """Returns the sum of the gen_ai_client_operation_duration_seconds_count series of an exposition text."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gen_ai_client_operation_duration_seconds_count"))


def test_quickstart_async_and_streaming(sim):
    out = run([sys.executable, "examples/quickstart.py"], sim, CLAUDE_OTEL_PROMETHEUS_PORT=0,
              CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1")
    reply, metrics_line = out.stdout.splitlines()
    assert reply.strip() and metrics_line.startswith("metrics: http://127.0.0.1:") and \
        metrics_line.endswith("/metrics") and ":0/" not in metrics_line  # the port it bound, not the 0 asked for
    assert "5 replies" in run([sys.executable, "examples/async_app.py"], sim).stdout
    assert "output tokens: 12" in run([sys.executable, "examples/streaming.py"], sim).stdout
    assert len(sim.requests) == 7


def test_zero_code_with_both_launchers(sim):
    out = run([str(BIN / "opentelemetry-instrument"), "--traces_exporter", "console", "--metrics_exporter", "none",
               "--logs_exporter", "none", sys.executable, "examples/zero_code.py"], sim)
    assert '"name": "chat claude-haiku-4-5"' in out.stdout
    plain = run([sys.executable, "examples/zero_code.py"], sim)
    receiver = HttpReceiver()
    try:
        launched = subprocess.run(
            [sys.executable, "-m", "claude_otel", "run", "--", sys.executable, "examples/zero_code.py"],
            env=env(sim, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                    OTEL_SERVICE_NAME="zero-code"), capture_output=True, text=True, timeout=120, cwd=ROOT)
        # the app cannot tell: same reply, same exit code, nothing on stderr
        assert (launched.returncode, launched.stdout, launched.stderr) == (0, plain.stdout, ""), launched
        got = receiver.received
        assert got.wait_for(lambda: any(s.name == "chat claude-haiku-4-5" for s in got.spans())), \
            [s.name for s in got.spans()]
        assert [s.name for s in got.spans()].count("chat claude-haiku-4-5") == 1
        assert {a.value.string_value for r in got.resources() for a in r.attributes if a.key == "service.name"} \
            == {"zero-code"}
    finally:
        receiver.stop()
    assert len(sim.requests) == 3


def test_fastapi_service_mounts_metrics(sim, children):
    # uvicorn binds port 0 itself; the port it got is read from /proc (its log line is not a stable interface)
    proc = children.popen([str(BIN / "uvicorn"), "examples.fastapi_app:app", "--port", "0", "--host", "127.0.0.1"],
                          env=env(sim), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = listening_port(proc)
    wait_http(f"http://127.0.0.1:{port}/ask", proc=proc)
    get(f"http://127.0.0.1:{port}/ask?q=again")
    metrics = get(f"http://127.0.0.1:{port}/metrics/")
    assert 'gen_ai_client_operation_duration_seconds_count{anthropic_request_stream="false"' in metrics
    assert operation_counts(metrics) == 2
    assert stop(proc, signal.SIGINT, timeout=20) == 0


def test_gunicorn_example_sums_workers(sim, tmp_path, children):
    from claude_otel.exporters.multiprocess import ARCHIVE
    from claude_otel.exporters.prometheus import write_file

    # what an earlier run of the service left behind: its on_starting hook must clear claude-otel's files only
    (tmp_path / "mp").mkdir()
    write_file(str(tmp_path / "mp" / ARCHIVE), {"gen_ai_client_operation_duration_seconds": {
        "type": "histogram", "help": "h", "agg": "sum", "samples": {(("gen_ai_request_model", "old"),): {
            "bounds": [1.0], "counts": [1000, 0], "sum": 1.0, "max": 0.5, "exemplars": {}}}}}, 1)
    (tmp_path / "mp" / "someone_elses.db").write_text("kept")
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:  # a file, not a pipe nobody reads
        proc = children.popen([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "app:app"], cwd=EXAMPLES / "gunicorn",
                              env=env(sim, BIND="127.0.0.1:0", WORKERS=3, CLAUDE_OTEL_MULTIPROC_DIR=tmp_path / "mp"),
                              stdout=log, stderr=subprocess.STDOUT)
    # gunicorn binds port 0 itself and logs the address it got
    port = port_in_log(lambda: read_text(log_path), r"Listening at: http://127\.0\.0\.1:(\d+)", proc=proc)
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/", proc=proc)
    for _ in range(11):
        get(base + "/")
    # workers write their snapshots at least once a second: poll for the total rather than sleeping
    totals = []

    def settled():
        totals.append(operation_counts(get(base + "/metrics")))
        assert totals[-1] <= 12, totals  # never the earlier run's 1000 (cleared at start), never counted twice
        return totals[-1] == 12

    poll(settled, timeout=20, interval=0.2, what="/metrics reporting the 12 calls")
    assert (tmp_path / "mp" / "someone_elses.db").exists()
    assert stop(proc, signal.SIGTERM, timeout=25, group=True) == 0, read_text(log_path)[-3000:]


STACK = EXAMPLES / "stack"


def load(path: Path):
    """Returns the parsed YAML file at `path`."""
    return yaml.safe_load(path.read_text())


def host_port(address: str):
    """Returns (host, port) of an address or URL such as http://otel-collector:4317/v1."""
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

    check_jsonschema = require_module("check_jsonschema", "a test dependency: it ships the Compose specification's "
                                      "schema")
    jsonschema = require_module("jsonschema", "a dependency of check-jsonschema")
    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(compose), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_stack_prometheus_config_and_rules(tmp_path):
    promtool = require_tool("promtool", "tests/setup.sh installs Debian's prometheus package")
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
    result = subprocess.run([promtool, "check", "config", str(checked)], capture_output=True, text=True, timeout=60)
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
