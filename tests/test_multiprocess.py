"""Several gunicorn workers: /metrics reports the totals of all of them, whichever worker answers."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from prometheus_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()


def count_of(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.mark.parametrize("preload", [False, True])
def test_gunicorn_workers_report_summed_totals(sim, tmp_path, preload):
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn, "gunicorn is a test dependency"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    env.update({"ANTHROPIC_BASE_URL": sim.base_url, "ANTHROPIC_OPEN_TELEMETRY": "false",
                "CLAUDE_OTEL_MULTIPROC_DIR": str(tmp_path / "multiproc"),
                "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'apps'}"})
    args = [gunicorn, "-w", "3", "-b", f"127.0.0.1:{port}", "--threads", "1", "wsgi_app:app"]
    if preload:
        args.insert(1, "--preload")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                get(base + "/")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        calls = 30
        with ThreadPoolExecutor(6) as pool:
            pids = set(pool.map(lambda _: get(base + "/call"), range(calls)))
        assert len(pids) >= 2, "the calls should spread over several workers"
        time.sleep(2.5)  # snapshots are written every second
        seen = set()
        for _ in range(12):
            text = get(base + "/metrics")
            assert count_of(text, "gen_ai_client_operation_duration_seconds_count") == calls
            assert count_of(text, "anthropic_client_attempt_duration_seconds_count") == calls
            assert count_of(text, "anthropic_client_active_requests") == 0
            seen.add(get(base + "/"))
        assert len(seen) >= 2
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
