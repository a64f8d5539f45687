"""`claude-otel demo` headless and in a terminal: every core metric appears on its /metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from prometheus_server import free_port

ROOT = Path(__file__).resolve().parent.parent
CORE_METRICS = (
    "gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
    "gen_ai_client_operation_time_to_first_chunk_seconds", "anthropic_client_stream_max_gap_seconds",
    "anthropic_client_prefill_duration_seconds", "anthropic_client_attempt_duration_seconds",
    "anthropic_client_retries_total", "anthropic_client_retry_backoff_seconds", "anthropic_client_timeouts_total",
    "anthropic_client_timeout_utilization", "anthropic_client_active_requests", "anthropic_ratelimit_remaining",
)


def env():
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    e["PYTHONPATH"] = str(ROOT)
    return e


def test_demo_headless_serves_every_core_metric():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "demo", "--duration", "10", "--no-tty",
                             "--metrics-port", str(port), "--rate", "5"], env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    text = ""
    try:
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
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "Final figures" in out and "claude-sonnet-4-5" in out and "max util" in out
    assert "scrape_configs" in out and "grafana" in out and "Traceback" not in out


@pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"), reason="tmux is not installed")
def test_demo_live_view_in_a_terminal_stops_cleanly_on_ctrl_c(tmp_path):
    session = f"claude-otel-demo-{os.getpid()}"
    done = tmp_path / "exit-code"
    command = (f"cd {ROOT} && PYTHONPATH={ROOT} {sys.executable} -m claude_otel demo --duration 0 --metrics-port 0; "
               f"echo $? > {done}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40", command], check=True)
    try:
        screen = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
            if "requests" in screen and "claude-" in screen and "max util" in screen:
                break
            time.sleep(0.5)
        assert "max util" in screen and "claude-otel demo" in screen, screen
        subprocess.run(["tmux", "send-keys", "-t", session, "C-c"], check=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not done.exists():
            time.sleep(0.3)
        assert done.exists() and done.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
