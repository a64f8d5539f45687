"""`claude-otel doctor --prometheus URL` on live data: an instrumented workload against the simulator serves
/metrics, a real Prometheus scrapes it every second, and the doctor's report must match what was injected.

The workload (a child process, `configure()` with CLAUDE_OTEL_PROMETHEUS_PORT) runs, for job `checkout`:
- claude-opus-4-1, non-streamed, read timeout 3 s: calls alternate between a 2.0 s and a 0.05 s wait for the
  response, so half of them wait more than half the 2.5 s proxy idle timeout;
- claude-haiku-4-5, streamed: every call is answered 529 once then succeeds (one retry per call), and its
  prefill goes from 0.1 s to 0.5 s half-way, so the last window's mean prefill is about 5x the one before.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time

import pytest

from claude_otel.doctor import live
from tests.helpers.procs import read_line
from tests.helpers.env import ROOT, clean_env
from tests.helpers.ports import listening_port
from tests.helpers.prometheus import PrometheusServer, require_prometheus

WINDOW = 12  # seconds the doctor looks at
PHASE_ONE = 16  # seconds of low prefill before it rises
SLOW, FAST, READ_TIMEOUT, PROXY = 2.0, 0.05, 3.0, 2.5
LOW, HIGH = 0.1, 0.5
SLACK = 0.6

WORKLOAD = f"""
import sys, threading, time
import anthropic, claude_otel
claude_otel.configure(service_name="checkout")
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
M = [{{"role": "user", "content": "hello"}}]
opus = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0, timeout={READ_TIMEOUT})
haiku = anthropic.Anthropic(api_key="sk-ant-test", max_retries=2)
prefill = [{LOW}]
stop = threading.Event()
def non_streamed():
    while not stop.is_set():
        for delay in ({SLOW}, {FAST}):
            opus.messages.create(model="claude-opus-4-1", max_tokens=8, messages=M,
                                 extra_headers={{"x-sim-headers-delay": str(delay)}})
def streamed():
    while not stop.is_set():
        headers = {{"x-sim-prefill-delay": str(prefill[0]), "x-sim-fail-attempts": "1", "x-sim-fail-status": "529",
                   "x-sim-retry-after-ms": "10", "x-sim-token-delay": "0.005"}}
        for _ in haiku.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=M, stream=True,
                                       extra_headers=headers):
            pass
threads = [threading.Thread(target=f, daemon=True) for f in (non_streamed,) * 3 + (streamed,) * 2]
for t in threads:
    t.start()
time.sleep({PHASE_ONE})
prefill[0] = {HIGH}
sys.stdout.write("phase2\\n"); sys.stdout.flush()
sys.stdin.readline()
stop.set()
for t in threads:
    t.join(10)
"""


def between(value, low, high):
    assert value is not None and low <= value <= high, f"{value} not in [{low}, {high}]"


def bucket_of(value, bounds):
    """Returns the (lower, upper] histogram bucket holding value."""
    lower = 0.0
    for upper in bounds:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


@pytest.fixture(scope="module")
def live_run(simulator):
    """Runs the workload scraped by a real Prometheus; yields (prometheus, time the doctor evaluates at)."""
    require_prometheus()
    env = clean_env(base_url=simulator.base_url, CLAUDE_OTEL_PROMETHEUS_PORT=0, CLAUDE_OTEL_PROMETHEUS_ADDR="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-c", WORKLOAD], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    prom = None
    try:
        assert read_line(proc, 60, "the workload's ready line").strip() == "ready"
        port = listening_port(proc, 30)
        prom = PrometheusServer(scrape_targets=[f"127.0.0.1:{port}"], job="checkout")
        assert prom.wait_for('up{job="checkout"}', lambda v: v == 1, timeout=30) == 1, prom.log()[-3000:]
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert read_line(proc, 120, "the workload's phase2 line").strip() == "phase2"
        time.sleep(WINDOW + 2)  # the last window holds the second phase only
        at = time.time() - 1  # a scrape has landed for the last window's end
        yield prom, at
    finally:
        if proc.poll() is None:
            try:
                proc.stdin.write("stop\n")
                proc.stdin.flush()
                proc.wait(20)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(5)
        if prom is not None:
            prom.stop()


def _by_model(results):
    return {r.data["model"]: r for r in results if r.name != "prometheus"}


def test_the_report_matches_the_injected_workload(live_run):
    from claude_otel import semconv

    prom, at = live_run
    results = live.live_checks(prom.url, WINDOW, None, PROXY, at=at)
    head = results[0]
    assert head.name == "prometheus" and head.status == "PASS", head.reason
    assert head.data["jobs"] == ["checkout"]
    models = _by_model(results)
    assert sorted(models) == ["claude-haiku-4-5", "claude-opus-4-1"]

    opus = models["claude-opus-4-1"].data
    assert opus["job"] == "checkout" and opus["streamed_calls"] == 0 and opus["non_streamed_calls"] > 8
    # p99 of the non-streamed waits is in the 2.0 s wait's bucket, interpolated as histogram_quantile does
    wait_low, wait_high = bucket_of(SLOW, semconv.DURATION_BUCKETS)
    between(opus["non_streamed_wait_p99"], wait_low, wait_high)
    assert opus["read_wait_p99"] == opus["non_streamed_wait_p99"] and opus["streamed_wait_p99"] is None
    low = bucket_of(SLOW / READ_TIMEOUT, semconv.UTILIZATION_BUCKETS)[0]
    high = bucket_of((SLOW + SLACK) / READ_TIMEOUT, semconv.UTILIZATION_BUCKETS)[1]  # the wait plus serving noise
    between(opus["read_utilization_p99"], low, high)
    # the applied read timeout, inferred from waits and their utilization (no --timeout given): 3 s, not 600
    between(opus["read_timeout"], READ_TIMEOUT * 0.92, READ_TIMEOUT * 1.08)
    assert opus["read_timeout_source"] == "inferred from the utilization"
    between(opus["wait_over_proxy_idle"], wait_low / PROXY, wait_high / PROXY)
    # half the calls waited 2.0 s, over the threshold 0.5 x min(3, 2.5) = 1.25 s; the other half 0.05 s
    assert opus["stream_threshold"] == pytest.approx(0.5 * PROXY)
    between(opus["non_streamed_share_to_stream"], 0.35, 0.65)
    assert opus["retries_per_call"] == 0
    verdict = models["claude-opus-4-1"]
    assert verdict.status == "FAIL"  # p99 ~2.5 s reaches 0.9 x the 2.5 s proxy idle timeout
    assert verdict.fix.startswith("stream claude-opus-4-1 calls: their longest wait for a byte is ")
    match = re.search(r"is (\d+\.\d\d) s of a (\d+\.\d\d) s timeout and a 2\.50 s proxy idle timeout", verdict.fix)
    assert match, verdict.fix
    assert [float(v) for v in match.groups()] == [round(opus["read_wait_p99"], 2), round(opus["read_timeout"], 2)]

    haiku = models["claude-haiku-4-5"].data
    assert haiku["non_streamed_calls"] == 0 and haiku["streamed_calls"] > 8
    between(haiku["retries_per_call"], 0.8, 1.2)  # one 529 per call
    between(haiku["prefill_mean"], HIGH - 0.02, HIGH + SLACK)
    between(haiku["prefill_mean_before"], LOW - 0.02, (LOW + HIGH) / 2)  # mostly the first phase
    assert haiku["prefill_trend"] > 1.8
    assert haiku["non_streamed_share_to_stream"] is None
    verdict = models["claude-haiku-4-5"]
    assert verdict.status == "WARN"
    assert verdict.fix.startswith("cut the retries of claude-haiku-4-5 calls (")  # the first change: retries
    assert any(f.startswith("shorten or cache the prompts of claude-haiku-4-5: mean prefill grew")
               for f in haiku["findings"])


def test_cli_json_and_exit_code(live_run):
    prom, at = live_run
    result = subprocess.run(
        [sys.executable, "-m", "claude_otel", "doctor", "--prometheus", prom.url, "--window", f"{WINDOW}s",
         "--timeout", str(READ_TIMEOUT), "--proxy-idle-timeout", str(PROXY), "--json"],
        capture_output=True, text=True, timeout=60, env=clean_env(), cwd=ROOT)
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"claude_otel", "prometheus", "window_seconds", "checks", "summary", "exit_code"}
    assert report["exit_code"] == 2 and report["summary"]["fail"] >= 1
    assert [c["name"] for c in report["checks"]] == ["prometheus", "checkout/claude-haiku-4-5",
                                                      "checkout/claude-opus-4-1"]
    opus = report["checks"][2]
    assert set(opus) == {"name", "status", "reason", "fix", "data"}
    assert opus["data"]["read_timeout"] == READ_TIMEOUT and opus["data"]["read_timeout_source"] == "given"
    text = subprocess.run(
        [sys.executable, "-m", "claude_otel", "doctor", "--prometheus", prom.url, "--window", f"{WINDOW}s",
         "--proxy-idle-timeout", str(PROXY)], capture_output=True, text=True, timeout=60, env=clean_env(), cwd=ROOT)
    assert text.returncode == 2
    assert "FAIL  checkout/claude-opus-4-1" in text.stdout and "fix: stream claude-opus-4-1 calls" in text.stdout


def test_a_prometheus_without_claude_otel_data_fails_with_the_reason():
    with PrometheusServer() as prom:
        [result] = live.live_checks(prom.url, 600)
    assert result.status == "FAIL" and "has no claude-otel calls" in result.reason


def test_an_unreachable_prometheus_fails_without_raising():
    from tests.helpers.ports import closed_endpoint

    [result] = live.live_checks(closed_endpoint(), 600)
    assert result.status == "FAIL" and result.reason.startswith("could not query")


@pytest.mark.parametrize("q, expected", [(0.5, 1.0), (0.99, 1.98), (0.25, 0.5), (0.75, 1.5), (1.0, 2.0)])
def test_quantile_interpolates_like_histogram_quantile(q, expected):
    # 10 observations in (1, 2], 10 in (0, 1]
    buckets = [(1.0, 10.0), (2.0, 20.0), (math.inf, 20.0)]
    assert live.quantile(q, buckets) == pytest.approx(expected)
    assert live.share_above(1.5, buckets) == pytest.approx(0.25)
    assert live.share_above(0.5, buckets) == pytest.approx(0.75)
    assert live.quantile(0.99, [(1.0, 0.0), (math.inf, 0.0)]) is None


def test_window_parsing():
    assert [live.parse_window(t) for t in ("90", "90s", "15m", "2h", "1d")] == [90, 90, 900, 7200, 86400]
    for bad in ("", "-5m", "0", "soon", "5y"):
        with pytest.raises(ValueError):
            live.parse_window(bad)


def figures(**changes):
    """Returns one group's figures as collect() builds them: a healthy non-streamed model, then `changes`."""
    g = {"job": "api", "model": "claude-opus-4-1", "calls": 100.0, "streamed_calls": 0.0,
         "non_streamed_calls": 100.0, "read_wait_p99": 20.0, "non_streamed_wait_p99": 20.0, "streamed_wait_p99": None,
         "read_utilization_p99": 0.04, "read_timeout": 600.0, "read_timeout_source": "given",
         "proxy_idle_timeout": None, "wait_over_read_timeout": 20.0 / 600, "wait_over_proxy_idle": None,
         "stream_threshold": 300.0, "non_streamed_share_to_stream": 0.0, "retries_per_call": 0.1,
         "prefill_mean": None, "prefill_mean_before": None, "prefill_trend": None}
    g.update(changes)
    return g


def test_advice_healthy_is_a_pass_with_no_fix():
    result = live.advise(figures())
    assert result.status == "PASS" and result.fix == "" and result.reason.endswith("no change needed")
    assert result.name == "api/claude-opus-4-1"


def test_advice_stream_when_non_streamed_waits_near_the_timeout():
    warn = live.advise(figures(non_streamed_wait_p99=412.0, read_wait_p99=412.0, non_streamed_share_to_stream=0.2))
    assert warn.status == "WARN"  # 412 s is 69 % of 600 s: above 50 %, below 90 %
    assert warn.fix.startswith("stream claude-opus-4-1 calls: their longest wait for a byte is 412 s of a 600 s "
                               "timeout (20% of the non-streamed calls waited over 300 s)")
    fail = live.advise(figures(non_streamed_wait_p99=560.0, non_streamed_share_to_stream=0.2))
    assert fail.status == "FAIL"
    # no call waited over the threshold: nothing to gain by streaming
    assert live.advise(figures(non_streamed_wait_p99=412.0, non_streamed_share_to_stream=0.0)).status == "PASS"


def test_advice_for_streams_proxy_then_read_timeout_then_retries_then_prefill():
    stream = dict(streamed_calls=100.0, non_streamed_calls=0.0, non_streamed_wait_p99=None,
                  non_streamed_share_to_stream=None)
    proxy = live.advise(figures(**stream, streamed_wait_p99=55.0, proxy_idle_timeout=60.0, retries_per_call=0.9,
                                prefill_trend=2.0, prefill_mean=40.0, prefill_mean_before=20.0))
    assert proxy.status == "FAIL" and proxy.fix.startswith("raise the proxy idle timeout above 110 s: ")
    assert [f.split(" ")[0] for f in proxy.data["findings"]] == ["raise", "cut", "shorten"]
    read = live.advise(figures(**stream, streamed_wait_p99=40.0, read_timeout=60.0))
    assert read.status == "WARN" and read.fix.startswith("raise the read timeout of claude-opus-4-1 streams to at "
                                                         "least 80.00 s")
    retries = live.advise(figures(**stream, streamed_wait_p99=1.0, retries_per_call=0.6))
    assert retries.status == "WARN" and retries.fix.startswith("cut the retries of claude-opus-4-1 calls (0.60 ")
    prefill = live.advise(figures(**stream, streamed_wait_p99=1.0, prefill_trend=1.6, prefill_mean=1.6,
                                  prefill_mean_before=1.0))
    assert prefill.status == "WARN" and "mean prefill grew ×1.6 (1.00 s → 1.60 s)" in prefill.fix
    assert live.advise(figures(**stream, streamed_wait_p99=1.0, prefill_trend=1.4)).status == "PASS"


def test_cli_rejects_a_bad_window():
    result = subprocess.run([sys.executable, "-m", "claude_otel", "doctor", "--prometheus", "http://127.0.0.1:1",
                             "--window", "soon"], capture_output=True, text=True, timeout=60, env=clean_env(),
                            cwd=ROOT)
    assert result.returncode == 2 and "--window" in result.stderr


# -- a long window: two hours of the agent's own scrapes, backfilled ------------------------------------------------

STEP = 120  # seconds of recorded time between two scrapes


def test_a_one_hour_window_from_backfilled_scrapes_of_the_real_agent(simulator, agent_pipeline):
    """Real SDK calls through the real agent; its /metrics text is taken every STEP of recorded time over two
    hours (the first: haiku streams with 0.05 s prefill; the second: 0.25 s, plus opus non-streamed calls that
    wait 0.6 s of a 1 s timeout), backfilled with promtool; the doctor then looks at the last hour."""
    import anthropic

    from tests.helpers.prometheus import scrapes_to_openmetrics

    render = agent_pipeline
    messages = [{"role": "user", "content": "hello"}]
    haiku = anthropic.Anthropic(base_url=simulator.base_url, api_key="sk-ant-test", max_retries=0)
    opus = anthropic.Anthropic(base_url=simulator.base_url, api_key="sk-ant-test", max_retries=0, timeout=1.0)
    end = (int(time.time()) // 60) * 60 - 600
    start = end - 2 * 3600
    scrapes = [(start, render())]
    for step in range(1, 2 * 3600 // STEP + 1):
        second_hour = step * STEP > 3600
        for _ in haiku.messages.create(model="claude-haiku-4-5", max_tokens=4, messages=messages, stream=True,
                                       extra_headers={"x-sim-prefill-delay": "0.25" if second_hour else "0.05",
                                                      "x-sim-token-delay": "0"}):
            pass
        if second_hour:
            for delay in ("0.6", "0.01"):
                opus.messages.create(model="claude-opus-4-1", max_tokens=4, messages=messages,
                                     extra_headers={"x-sim-headers-delay": delay})
        scrapes.append((start + step * STEP, render()))
    text = scrapes_to_openmetrics(scrapes, {"job": "batch", "instance": "batch-0:9464"})
    with PrometheusServer.from_openmetrics(text) as prom:
        results = live.live_checks(prom.url, 3600, None, None, at=end)
    models = _by_model(results)
    assert results[0].status == "PASS" and sorted(models) == ["claude-haiku-4-5", "claude-opus-4-1"]
    haiku_data, opus_data = models["claude-haiku-4-5"].data, models["claude-opus-4-1"].data
    # 30 scrapes in the last hour, one haiku and two opus calls between each two
    assert haiku_data["calls"] == pytest.approx(30, abs=1.5) and opus_data["calls"] == pytest.approx(60, abs=3)
    between(haiku_data["prefill_mean"], 0.25, 0.25 + SLACK)
    between(haiku_data["prefill_mean_before"], 0.05, 0.05 + SLACK / 2)
    assert haiku_data["prefill_trend"] > 2
    between(opus_data["read_timeout"], 0.9, 1.1)  # inferred: 1 s, not the SDK's 600 s
    between(opus_data["non_streamed_share_to_stream"], 0.45, 0.55)  # the 0.6 s half, over 0.5 x 1 s
    assert models["claude-opus-4-1"].fix.startswith("stream claude-opus-4-1 calls: their longest wait for a byte ")


@pytest.fixture
def agent_pipeline(monkeypatch):
    """Instruments the SDK into the agent's own Prometheus reader; yields a function rendering /metrics text."""
    from prometheus_client import generate_latest

    from claude_otel import ClaudeInstrumentor
    from tests.helpers.app import local_pipeline

    require_prometheus()
    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    _, _, _, registry, meter_provider = local_pipeline()
    from opentelemetry.sdk.trace import TracerProvider

    instrumentor = ClaudeInstrumentor()
    instrumentor.instrument(tracer_provider=TracerProvider(shutdown_on_exit=False), meter_provider=meter_provider)
    try:
        yield lambda: generate_latest(registry).decode()
    finally:
        instrumentor.uninstrument()
