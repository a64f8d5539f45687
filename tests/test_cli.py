"""The claude-otel command line: version, simulate (serves and stops), run usage."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_server import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "claude_otel", "version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.startswith("claude-otel ")
    usage = subprocess.run([sys.executable, "-m", "claude_otel", "run"], capture_output=True, text=True, cwd=ROOT)
    assert usage.returncode == 2 and "usage" in usage.stderr
    profiles = subprocess.run([sys.executable, "-m", "claude_otel", "simulate", "--list-profiles"],
                              capture_output=True, text=True, cwd=ROOT)
    assert "slow-prefill" in profiles.stdout and "proxy-idle" in profiles.stdout


def test_simulate_serves_the_sdk_and_stops_on_ctrl_c():
    import anthropic

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "simulate", "--port", str(port), "--profile",
                             "rate-limited", "--time-scale", "0.1"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k")
        raw = client.messages.with_raw_response.create(model="claude-x", max_tokens=8,
                                                       messages=[{"role": "user", "content": "hi"}])
        assert raw.retries_taken == 1
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers={"x-sim-profile": "normal"})
        with urllib.request.urlopen(request) as r:
            assert json.load(r)["data"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
