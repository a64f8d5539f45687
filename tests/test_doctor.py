"""`claude-otel doctor`: each check's pass and fail paths, offline, JSON and exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import anthropic

from claude_otel import doctor
from claude_otel.doctor import checks

ROOT = Path(__file__).resolve().parent.parent


def by_name(results):
    return {r.name: r for r in results}


def test_timeout_check_from_a_client_object():
    good = by_name(doctor.run(client=anthropic.Anthropic(api_key="k", timeout=300), network=False))["timeout"]
    assert good.status == "PASS" and "300" in good.reason
    short = by_name(doctor.run(client=anthropic.Anthropic(api_key="k", timeout=20), network=False))["timeout"]
    assert short.status == "WARN" and short.fix
    none = checks.timeout_check(client=anthropic.Anthropic(api_key="k", timeout=None))
    assert none.status == "WARN"


def test_streaming_check_matches_the_sdk_refusal():
    assert checks.streaming_check(4096).status == "PASS"
    assert checks.streaming_check(8192).status == "WARN"
    refused = checks.streaming_check(64000)
    assert refused.status == "FAIL" and "stream" in refused.fix
    # the SDK itself refuses the same request
    client = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9")
    try:
        client.messages.create(model="claude-x", max_tokens=64000, messages=[{"role": "user", "content": "x"}])
    except ValueError as exc:
        assert "Streaming is required" in str(exc)
    else:
        raise AssertionError("the SDK accepted a non-streaming 64k-token request")


def test_proxy_check():
    assert checks.proxy_check(600.0, env={}).status == "PASS"
    assert checks.proxy_check(600.0, env={"HTTPS_PROXY": "http://user:pw@proxy:3128"}).status == "WARN"
    assert "pw" not in checks.proxy_check(600.0, env={"HTTPS_PROXY": "http://user:pw@proxy:3128"}).reason
    undercut = checks.proxy_check(600.0, env={"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "60"})
    assert undercut.status == "FAIL" and "proxy_read_timeout" in undercut.fix
    assert checks.proxy_check(600.0, env={"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "x"}).status == "FAIL"


def test_network_checks_pass_against_the_simulator_and_fail_offline(sim):
    assert checks.dns_check(sim.base_url).status == "PASS"
    assert checks.connect_check(sim.base_url).status == "PASS"
    dns = checks.dns_check("http://nonexistent.invalid")
    assert dns.status == "FAIL" and "cannot resolve" in dns.reason
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = checks.connect_check(f"http://127.0.0.1:{closed}")
    assert refused.status == "FAIL" and "cannot connect" in refused.reason
    tls = checks.connect_check(f"https://127.0.0.1:{sim.port}")
    assert tls.status == "FAIL" and "TLS" in tls.reason


def test_forced_timeout_proves_the_setting_applies(sim):
    forced = checks.forced_timeout_check(sim.base_url + "/", 0.001)
    assert forced.status == "PASS", forced
    not_enforced = checks.forced_timeout_check(sim.base_url, 30)
    assert not_enforced.status == "FAIL"


def test_agent_check_reports_bad_settings(monkeypatch):
    assert checks.agent_check().status == "PASS"
    monkeypatch.setenv("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", "soon")
    bad = checks.agent_check()
    assert bad.status == "FAIL" and "CLAUDE_OTEL_PROXY_IDLE_TIMEOUT" in bad.reason


def test_cli_json_and_exit_codes(sim):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "claude_otel", "doctor", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)

    ok = cli("--base-url", sim.base_url, "--json")
    report = json.loads(ok.stdout)
    assert ok.returncode == report["exit_code"] == 0
    assert {r["name"] for r in report["results"]} >= {"sdk", "timeout", "streaming", "proxy", "dns", "connect"}
    warn = cli("--base-url", sim.base_url, "--timeout", "20")
    assert warn.returncode == 1 and "WARN" in warn.stdout
    fail = cli("--base-url", "http://nonexistent.invalid", "--max-tokens", "64000")
    assert fail.returncode == 2 and "Traceback" not in fail.stdout + fail.stderr
    forced = cli("--base-url", sim.base_url, "--timeout", "0.001", "--json")
    assert "forced-timeout" in {r["name"] for r in json.loads(forced.stdout)["results"]}
