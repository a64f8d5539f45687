"""A real Prometheus server (Debian's package) for tests: scrape a 127.0.0.1 target, then query its HTTP API."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from typing import List, Optional

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tool(name: str) -> str:
    """Returns the path of a tool from Debian's prometheus package, failing under CI and skipping elsewhere."""
    binary = shutil.which(name)
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed: tests/setup.sh installs Debian's prometheus package")
        pytest.skip(f"{name} is not installed (bash tests/setup.sh)")
    return binary


def require_prometheus() -> str:
    """Returns the prometheus binary (see require_tool)."""
    return require_tool("prometheus")


class PrometheusServer:
    """Runs prometheus with a scrape config (and optional rule files) in a temporary directory."""

    def __init__(self, targets: List[str] = (), rule_files: List[str] = (), scrape_interval: str = "1s",
                 storage: Optional[str] = None, job: str = "claude-otel-test") -> None:
        self.binary = require_prometheus()
        self.dir = tempfile.mkdtemp(prefix="prom-test-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "rule_files": list(rule_files),
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}] if targets else [],
        }
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.storage = storage or os.path.join(self.dir, "data")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={path}", f"--storage.tsdb.path={self.storage}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--enable-feature=exemplar-storage",
             "--storage.tsdb.retention.time=30d", "--web.enable-lifecycle"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + open(self.log.name).read()[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready:\n" + open(self.log.name).read()[-3000:])

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str, at: Optional[float] = None) -> list:
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)["result"]

    def value(self, promql: str) -> Optional[float]:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def exemplars(self, promql: str, window: float = 600.0) -> List[dict]:
        """Returns the label sets of the exemplars stored for a query's series in the last `window` seconds."""
        now = time.time()
        data = self.api("query_exemplars", query=promql, start=f"{now - window:.3f}", end=f"{now + 60:.3f}")
        return [e["labels"] for series in data for e in series["exemplars"]]

    def targets(self) -> List[dict]:
        """Returns the active scrape targets (health, lastError, scrapeUrl, ...)."""
        return self.api("targets")["activeTargets"]

    def wait_for(self, promql: str, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(promql)
            if value is not None and predicate(value):
                return value
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
