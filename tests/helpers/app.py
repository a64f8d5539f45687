"""The instrumented test application (tests/apps/instrumented_app.py) run in a child process, and reading what it
serves."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from tests.helpers.env import ROOT, clean_env

APP = str(ROOT / "tests" / "apps" / "instrumented_app.py")


def app_env(sim, **extra) -> dict:
    """Returns a scrubbed environment (see clean_env) pointing the app at simulator `sim`, plus `extra`."""
    return clean_env(base_url=sim.base_url, **extra)


def run_app(sim, timeout=90, argv=None, expect=0, **extra):
    """Runs the instrumented app to the end; returns its JSON lines (the last one first) and its stderr."""
    result = subprocess.run(argv or [sys.executable, APP], env=app_env(sim, **extra), capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT)
    assert result.returncode == expect, result.stderr[-4000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return lines, result.stderr


def scrape(url: str, openmetrics: bool = False) -> str:
    """Returns the exposition text at `url` (OpenMetrics when asked) within 10 s; raises on an HTTP error."""
    headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.read().decode()


def local_pipeline():
    """Returns (meter, tracer, reader, registry, meter provider) on providers of their own (not the globals)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from claude_otel.exporters.prometheus import PrometheusReader, registry_for

    reader = PrometheusReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    return (meter_provider.get_meter("t"), tracer_provider.get_tracer("t"), reader, registry_for(reader),
            meter_provider)
