"""The overhead benchmark runs from a clean checkout (a smoke run: nothing here is timed or compared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_overhead_benchmark_runs_and_prints_its_table():
    result = subprocess.run([sys.executable, "tests/benchmarks/overhead.py", "--quick", "--only", "bare,claude-otel",
                             "--python", sys.executable], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| configuration |" in result.stdout and "| claude-otel |" in result.stdout
    assert "per streamed event" in result.stdout and "startup" in result.stdout
