"""`claude-otel drill`: the real incident against the simulator, a real Prometheus with the mixin's rules
time-scaled by 60 and a real Alertmanager delivering to the drill's webhook.

The incident run asserts what the drill exists to show: a headroom warning for the calls that later time out
reaches the webhook before the first of them times out, the page comes during the timeout phase and its
annotations name the cause the drill injected (client_read_timeout), and the proxy's cuts are ticketed as
proxy_idle_cut.  The healthy run, on the same stack, must page nothing.  A missing prometheus or Alertmanager
skips these on a developer's machine and fails them in CI.

The whole module takes about three and a half minutes (the incident about 110 s, the healthy run about 45 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.ports import read_text
from tests.helpers.procs import poll
from tests.helpers.require import require_tool

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "alertmanager" / "alertmanager.yml"
HINT = "tests/setup.sh installs Debian's prometheus and prometheus-alertmanager packages"
CHAT_MODEL, REPORT_MODEL = "claude-sonnet-4-5", "claude-opus-4-1"
CHAT_TIMEOUT = 5.0  # the chats' read timeout (claude_otel/drill/ramp.py)
HEADROOM = ("ClaudeRequestsNearTimeout", "ClaudeRequestsVeryNearTimeout")


def env(**extra):
    """Returns the drill's environment: no OTEL_/CLAUDE_OTEL_/ANTHROPIC_ settings of the developer's shell."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_", "ANTHROPIC_"))}
    e.update({"PYTHONPATH": str(ROOT), "ANTHROPIC_OPEN_TELEMETRY": "false", **extra})
    return e


def require_stack() -> None:
    """Returns when prometheus and Alertmanager are installed; skips locally and fails in CI otherwise."""
    require_tool("prometheus", HINT)
    require_tool("prometheus-alertmanager", HINT)


def drill(children, *args, timeout: float, **extra_env):
    """Returns (exit code, JSON document, live log) of `claude-otel drill --json ARGS` run to its end within
    `timeout` seconds (the children fixture kills it, and its process group, if the test fails first)."""
    proc = children.popen([sys.executable, "-m", "claude_otel", "drill", "--json", *args], cwd=ROOT,
                          env=env(**extra_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"claude-otel drill {' '.join(args)} did not end within {timeout} s") from None
    try:
        doc = json.loads(out)
    except ValueError:
        raise AssertionError(f"no JSON document on stdout (exit {proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    return proc.returncode, doc, err


def assert_gone(pids) -> None:
    """Asserts that none of the processes runs any more (the drill stopped its children)."""
    alive = []
    for name, pid in pids.items():
        stat = read_text(f"/proc/{pid}/stat")
        if stat and stat.split(") ", 1)[1][:1] != "Z":
            alive.append(f"{name} (pid {pid}): {read_text(f'/proc/{pid}/cmdline')!r}")
    assert not alive, f"left running: {alive}"


def test_the_drills_alertmanager_routes_like_the_example(tmp_path):
    """Same routing as examples/alertmanager/alertmanager.yml (severity routes, grouping, inhibition), waits of
    1 s, both receivers posting to the webhook; amtool accepts it."""
    from claude_otel.drill.stack import alertmanager_config

    config = alertmanager_config("http://127.0.0.1:9")
    example = yaml.safe_load(EXAMPLE.read_text())
    assert config["inhibit_rules"] == example["inhibit_rules"]
    routes = {tuple(r["matchers"]): r for r in config["route"]["routes"]}
    for route in example["route"]["routes"]:
        ours = routes[tuple(route["matchers"])]
        assert (ours["receiver"], ours["group_by"]) == (route["receiver"], route["group_by"])
        assert ours["group_wait"] == "1s"
    assert config["route"]["receiver"] == example["route"]["receiver"]
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]}
    assert urls == {"pager": "http://127.0.0.1:9/pager", "tickets": "http://127.0.0.1:9/tickets"}
    amtool = require_tool("amtool", HINT)
    path = tmp_path / "alertmanager.yml"
    path.write_text(json.dumps(config))
    checked = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr


def test_the_incident_warns_before_the_first_timeout_and_pages_with_the_injected_cause(children):
    require_stack()
    code, doc, log = drill(children, timeout=240)
    assert code == 0 and doc["exit_code"] == 0, log[-4000:]
    assert_gone(doc["stack"]["pids"])
    phases = {p["name"]: p for p in doc["phases"]}
    assert [p["name"] for p in doc["phases"]] == ["healthy", "prefill-grows", "proxy-cuts", "timeouts"]
    health = doc["stack"]["rules_health"]
    assert health["alert_rules"] >= 10 and health["errors"] == [], health

    # Nothing failed before the proxy phase, and nothing timed out before the timeout phase: the lead time is real.
    calls = doc["calls"]
    for phase in ("healthy", "prefill-grows"):
        assert set(calls[phase]["chat"]) == {"ok"} and set(calls[phase]["report"]) == {"ok"}, calls
    assert set(calls["proxy-cuts"]["chat"]) == {"ok"} and calls["proxy-cuts"]["report"].get("connection_error", 0) >= 5
    assert calls["timeouts"]["chat"].get("timeout", 0) >= 10, calls
    timeouts_start = phases["timeouts"]["start_s"]
    first_timeout = doc["first_timeout_s"]
    # the first timeout is a chat that ran into its 5 s read timeout, started in the timeout phase
    assert timeouts_start + CHAT_TIMEOUT - 0.5 <= first_timeout <= timeouts_start + CHAT_TIMEOUT + 3, doc
    assert doc["first_timeout"].startswith(f"chat ({CHAT_MODEL}, streamed): APITimeoutError")

    alerts = doc["alerts"]
    assert all(a["relative_to_first_timeout_s"] == pytest.approx(a["at_s"] - first_timeout, abs=0.02)
               for a in alerts)
    # The headroom warning for the chats (read timeout) reached the webhook as a ticket before the first timeout,
    # and only once their waits approached it: after the prefill started to grow.
    warnings = [a for a in alerts if a["alert"] in HEADROOM and a["model"] == CHAT_MODEL]
    assert warnings, alerts
    warning = min(warnings, key=lambda a: a["at_s"])
    assert (warning["severity"], warning["receiver"], warning["stream"], warning["timeout_kind"]) == \
        ("warning", "tickets", "true", "read"), warning
    assert phases["prefill-grows"]["start_s"] + 10 <= warning["at_s"], warning  # a 10 s `for` at the least
    lead = first_timeout - warning["at_s"]
    assert lead > 0 and warning["relative_to_first_timeout_s"] < 0, warning
    assert doc["verdict"]["warning_lead_s"] == pytest.approx(lead, abs=0.02)

    # The page: critical, to the pager, during the timeout phase, for the chats, naming the injected cause.
    pages = [a for a in alerts if a["severity"] == "critical"]
    assert pages, alerts
    assert all(p["at_s"] > first_timeout for p in pages), pages  # no page before anything timed out
    page = min(pages, key=lambda a: a["at_s"])
    assert page["alert"] in ("ClaudeTimeoutBudgetFastBurn", "ClaudeTimeoutBudgetSlowBurn"), page
    assert (page["receiver"], page["model"], page["stream"], page["phase"]) == \
        ("pager", CHAT_MODEL, "true", "timeouts"), page
    assert phases["timeouts"]["injects"] == "client_read_timeout"
    assert page["cause"].startswith("client_read_timeout ("), page["annotations"]
    assert page["timeout_kind"] == "read", page["annotations"]
    assert 0 < page["relative_to_first_timeout_s"] < 40, page

    # The proxy's cuts of the reports: ticketed as connection errors whose cause is proxy_idle_cut, not paged.
    cut = [a for a in alerts if a["alert"] == "ClaudeAPIErrors" and a["model"] == REPORT_MODEL]
    assert cut and cut[0]["cause"].startswith("proxy_idle_cut (") and cut[0]["severity"] == "warning", alerts
    assert phases["proxy-cuts"]["injects"] == "proxy_idle_cut"
    assert not [p for p in pages if p["model"] == REPORT_MODEL], pages

    assert doc["verdict"]["passed"] is True and all(doc["verdict"]["checks"].values()), doc["verdict"]
    assert "FIRST TIMEOUT" in log and "verdict: PASS" in log


def test_a_healthy_run_pages_nothing(children):
    require_stack()
    code, doc, log = drill(children, "--healthy", "--duration", "30", timeout=150)  # twice the longest `for`
    assert code == 0 and doc["mode"] == "healthy", log[-4000:]
    assert_gone(doc["stack"]["pids"])
    health = doc["stack"]["rules_health"]
    assert health["alert_rules"] >= 10 and health["errors"] == [], health
    # the stack saw real traffic for the whole run (2 chats and 1 report a second), all of it healthy
    calls = doc["calls"]["healthy"]
    assert set(calls["chat"]) == {"ok"} and set(calls["report"]) == {"ok"}, calls
    assert calls["chat"]["ok"] >= 40 and calls["report"]["ok"] >= 20, calls
    assert doc["first_timeout_s"] is None and doc["first_connection_error_s"] is None
    assert [a for a in doc["alerts"] if a["severity"] == "critical"] == []
    assert doc["alerts"] == []  # not even a ticket: every rule stayed quiet on healthy traffic
    assert doc["verdict"]["checks"]["no page"] is True and doc["verdict"]["passed"] is True


def test_ctrl_c_stops_every_child_and_exits_130(children, tmp_path):
    require_stack()
    errors = tmp_path / "drill.log"
    with open(errors, "w") as err:
        proc = children.popen([sys.executable, "-m", "claude_otel", "drill", "--json", "--healthy",
                               "--duration", "120"], cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=err,
                              text=True)
    poll(lambda: "phase 1" in read_text(errors) or proc.poll() is not None, timeout=90,
         what="the drill's first phase")
    assert proc.poll() is None, read_text(errors)
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        raise AssertionError("the drill did not stop within 40 s of Ctrl-C:\n" + read_text(errors)[-3000:]) from None
    assert proc.returncode == 130, read_text(errors)[-3000:]
    doc = json.loads(out)
    assert doc["interrupted"] is True and doc["exit_code"] == 130 and doc["verdict"] is None
    assert set(doc["stack"]["pids"]) == {"prometheus", "alertmanager"} and all(doc["stack"]["pids"].values())
    assert_gone(doc["stack"]["pids"])
    assert "stopped by Ctrl-C" in read_text(errors)


def test_without_prometheus_and_alertmanager_only_the_workload_runs(children, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    code, doc, log = drill(children, "--healthy", "--duration", "4", timeout=90, PATH=str(empty))
    assert code == 3 and doc["exit_code"] == 3, log[-3000:]
    assert doc["stack"]["skipped"] == ["prometheus", "alertmanager", "alerts"] and "pids" not in doc["stack"]
    assert "prometheus and prometheus-alertmanager not installed" in log and "SKIPPED" in log
    assert doc["verdict"] is None and doc["alerts"] == []
    assert doc["calls"]["healthy"]["chat"]["ok"] >= 4  # the workload itself ran


def test_a_missing_mixin_is_a_clear_start_failure(children, tmp_path):
    require_stack()  # without Prometheus the drill needs no mixin (exit 3 instead)
    code, doc, log = drill(children, "--healthy", "--mixin", str(tmp_path / "nowhere"), timeout=60)
    assert code == 2 and doc["exit_code"] == 2, log
    assert f"no {tmp_path / 'nowhere' / 'build.py'}" in doc["error"] and "--mixin" in doc["error"]
    assert "--mixin" in log
