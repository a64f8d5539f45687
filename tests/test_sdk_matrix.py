"""Runs the core agent's tests and the SDK-surface tests against every SDK version of the matrix, each in its own
venv (a surface a version lacks is skipped there, saying so)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = os.environ.get("CLAUDE_OTEL_SDK_MATRIX", "0.40.0 0.108.0 1.0.0 1.14.0 2.15.0").split()


# matrix: its timeout (tests/conftest.py) covers the core-agent and SDK-surface tests of one version on a busy machine.
@pytest.mark.matrix
@pytest.mark.parametrize("version", VERSIONS)
def test_core_agent_on_sdk_version(version):
    python = ROOT / ".venvs" / f"anthropic-{version}" / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{python} is missing: tests/setup.sh should have created it")
        pytest.skip(f"no venv for anthropic {version}: run bash tests/setup.sh")
    result = subprocess.run(
        [str(python), "-m", "pytest", "tests/test_core_agent.py", "tests/test_sdk_surfaces.py",
         "tests/test_failure_cause.py", "-q",
         "-p", "no:cacheprovider", "-rs",
         "-o", "addopts=", "--tb=short"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, f"anthropic {version}:\n{tail}"
    # what this version skipped (a surface it lacks) shows in the run's warnings summary, not only in its log
    for line in result.stdout.splitlines():
        if line.startswith("SKIPPED"):
            warnings.warn(f"anthropic {version}: {line}", UserWarning, stacklevel=1)
    sys.stdout.write(tail.splitlines()[-1] + "\n")
