"""The overhead benchmark runs from a clean checkout (a smoke run: nothing here is timed or compared)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# slow: a --quick run takes about a minute alone and over two on a busy 2-core machine (pyproject's 120 s)
@pytest.mark.slow
def test_overhead_benchmark_runs_and_prints_its_table(tmp_path):
    out = tmp_path / "overhead.json"
    result = subprocess.run([sys.executable, "tests/benchmarks/overhead.py", "--quick", "--only", "bare,claude-otel",
                             "--python", sys.executable, "--json", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    # The tables and the target lines are printed; whether a target passes is not a test's business.
    assert "| configuration |" in result.stdout and "| claude-otel |" in result.stdout
    assert "per streamed event" in result.stdout and "startup" in result.stdout
    assert any(line.startswith(("PASS", "FAIL")) for line in result.stdout.splitlines())
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"bare", "claude-otel"}
    assert data["results"]["claude-otel"]["census"]["call"]["spans"] > 0
