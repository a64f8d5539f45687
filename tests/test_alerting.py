"""examples/alertmanager/alertmanager.yml: valid for the installed Alertmanager (amtool check-config), routes by
severity, groups by job and model, and inhibits a job and model's warnings while it has a page."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parent.parent / "examples" / "alertmanager" / "alertmanager.yml"


def test_amtool_accepts_the_example_configuration():
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is not installed: run tests/setup.sh (Debian package prometheus-alertmanager)")
    result = subprocess.run([amtool, "check-config", str(CONFIG)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_routes_by_severity_groups_by_job_and_model_and_inhibits_warnings():
    config = yaml.safe_load(CONFIG.read_text())
    routes = {tuple(r["matchers"]): r for r in config["route"]["routes"]}
    assert routes[('severity="critical"',)]["receiver"] == "pager"
    assert routes[('severity="warning"',)]["receiver"] == "tickets"
    assert all(r["group_by"] == ["job", "gen_ai_request_model"] for r in routes.values())
    [inhibit] = config["inhibit_rules"]
    assert inhibit == {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                       "equal": ["job", "gen_ai_request_model"]}
    # every severity the alerts use has a route
    alerts = yaml.safe_load((CONFIG.parent.parent.parent / "grafana" / "rules" / "claude-otel.alerts.yml").read_text())
    severities = {r["labels"]["severity"] for g in alerts["groups"] for r in g["rules"]}
    assert severities == {"critical", "warning"}
