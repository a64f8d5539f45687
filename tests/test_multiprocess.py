"""Several worker processes: /metrics reports the totals of all of them, whichever process answers.

The shared directory in-process (exited and live workers, the archive), a forked child that must not count
its parent's calls twice, and gunicorn with three real workers (with and without --preload, with workers
recycled by --max-requests).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from claude_otel.exporters.multiprocess import ARCHIVE, PREFIX, SharedSnapshots
from claude_otel.exporters.prometheus import families, merge, write_file
from tests.helpers.app import run_app
from tests.helpers.env import ROOT, clean_env
from tests.helpers.ports import listening_port, port_in_log, read_text
from tests.helpers.procs import get, poll, wait_http

DEAD_PID = 4194305  # above the largest pid_max Linux allows: no such process


def count_of(text: str, name: str) -> float:
    """Returns the sum of the samples of series `name` (any labels) in an exposition text."""
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


KEY = (("gen_ai_request_model", "m"),)


def snap(calls: int, in_flight: int, remaining: float, changed: int) -> dict:
    """Returns a worker snapshot (the shared directory's format) with these figures."""
    return {
        "calls": {"type": "counter", "help": "h", "agg": "sum", "samples": {KEY: {"value": calls, "time": changed}}},
        "dur_seconds": {"type": "histogram", "help": "h", "agg": "sum", "samples": {KEY: {
            "bounds": [1.0], "counts": [calls, 0], "sum": calls * 0.5, "max": 0.5,
            "exemplars": {"0": ["ab" * 16, "cd" * 8, 0.5, changed]}}}},
        "active": {"type": "gauge", "help": "h", "agg": "sum", "samples": {KEY: {"value": in_flight, "time": changed}}},
        "remaining": {"type": "gauge", "help": "h", "agg": "last",
                      "samples": {KEY: {"value": remaining, "time": changed}}},
    }


def totals(merged: dict) -> tuple:
    """Returns (calls, in flight, remaining, histogram count) of a merged snapshot."""
    return tuple(merged[n]["samples"][KEY]["value"] for n in ("calls", "active", "remaining")) + (
        sum(merged["dur_seconds"]["samples"][KEY]["counts"]),)


def test_shared_directory_sums_live_and_exited_workers_and_folds_exited_ones(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        write_file(str(tmp_path / f"{PREFIX}{live.pid}.json"), snap(5, 2, 100, changed=3), live.pid)
        write_file(str(tmp_path / f"{PREFIX}{DEAD_PID}.json"), snap(7, 4, 50, changed=9), DEAD_PID)
        (tmp_path / f"{PREFIX}{live.pid}.json.{live.pid}.tmp").write_text("{half a file")  # ignored
        shared = SharedSnapshots(str(tmp_path), lambda: snap(1, 1, 75, changed=5), interval=3600)
        try:
            own = snap(1, 1, 75, changed=5)
            merged = merge([own] + shared.others())
            # counters and histograms: every process; in-flight: live ones only; remaining: the newest change
            assert totals(merged) == (13, 3, 50, 13)
            assert not (tmp_path / f"{PREFIX}{DEAD_PID}.json").exists()  # folded into the archive
            assert (tmp_path / ARCHIVE).exists()
            assert totals(merge([own] + shared.others())) == (13, 3, 50, 13)  # same totals after folding

            write_file(str(tmp_path / f"{PREFIX}{DEAD_PID - 1}.json"), snap(2, 9, 1, changed=1), DEAD_PID - 1)
            assert totals(merge([own] + shared.others())) == (15, 3, 50, 15)
            assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".json")) == \
                sorted([ARCHIVE, f"{PREFIX}{live.pid}.json"])
            text = "".join(str(m) for m in families(merge([own] + shared.others())))
            assert "abab" in text  # exemplars survive merging
            shared.write()
            assert (tmp_path / f"{PREFIX}{os.getpid()}.json").exists()
        finally:
            shared.stop()
    finally:
        live.stdin.close()
        live.wait(10)


def test_forked_child_does_not_report_its_parents_calls_twice(sim, tmp_path):
    lines, _ = run_app(sim, CLAUDE_OTEL_MULTIPROC_DIR=tmp_path / "mp", APP_CALLS=1, APP_RETRY_CALLS=0, APP_STREAMS=0,
                       APP_FORK=2)
    [child] = [line for line in lines if line.get("child")]
    assert child["own_snapshot_count"] == 2  # the child's metric state started empty
    assert lines[-1]["merged_count"] == 3  # parent 1 + child 2, not 1 + (1 + 2)


def scrape_with_pid(url: str):
    """Returns (pid of the worker that served it, exposition text) of one /metrics scrape of the WSGI test app."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return int(r.headers["x-served-by-pid"]), r.read().decode()


SERIES = ("gen_ai_client_operation_duration_seconds_count", "anthropic_client_attempt_duration_seconds_count")


@pytest.mark.parametrize("preload", [False, True], ids=["fork-per-worker", "preload-recycled"])
def test_gunicorn_workers_report_summed_totals(sim, tmp_path, preload, children):
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn, "gunicorn is a test dependency"
    env = clean_env(base_url=sim.base_url, CLAUDE_OTEL_MULTIPROC_DIR=tmp_path / "multiproc",
                    pythonpath=f"{ROOT}{os.pathsep}{ROOT / 'tests' / 'apps'}")
    # gunicorn binds port 0 itself and logs the address it got
    args = [gunicorn, "-w", "3", "-b", "127.0.0.1:0", "--threads", "1", "wsgi_app:app"]
    if preload:
        # configure() runs once in the master, which then also serves /metrics on a port of its own (0: the one
        # it binds, read from /proc); workers are recycled every few requests, so totals must survive exited
        # workers.
        args[1:1] = ["--preload", "--max-requests", "6"]
        env.update({"CLAUDE_OTEL_PROMETHEUS_PORT": "0", "CLAUDE_OTEL_PROMETHEUS_ADDR": "127.0.0.1"})
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:  # a file, not a pipe nobody reads: a full pipe would block gunicorn's logging
        proc = children.popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = port_in_log(lambda: read_text(log_path), r"Listening at: http://127\.0\.0\.1:(\d+)", proc=proc)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/", proc=proc)
        calls = 30
        with ThreadPoolExecutor(6) as pool:
            pids = set(pool.map(lambda _: get(base + "/call"), range(calls)))
        assert len(pids) >= (4 if preload else 2), "the calls should spread over several (and recycled) workers"

        # Workers write their snapshots at least once a second: scrape (3 at a time, so different workers answer)
        # until two different workers have each reported every call and none in flight. A total above `calls`
        # (counted twice) fails at once; one below is a snapshot not written yet.
        exact_by_pid = {}
        scrapes = []

        def two_workers_exact():
            with ThreadPoolExecutor(3) as pool:
                for pid, text in pool.map(lambda _: scrape_with_pid(base + "/metrics"), range(3)):
                    figures = tuple(count_of(text, name) for name in SERIES) + (
                        count_of(text, "anthropic_client_active_requests"),)
                    scrapes.append((pid, figures))
                    # in flight: a snapshot written mid-call may still count it, at most one per (1-thread) worker
                    assert all(f <= calls for f in figures[:2]) and 0 <= figures[2] <= 3, scrapes[-12:]
                    if figures == (calls, calls, 0):
                        exact_by_pid[pid] = figures
            return len(exact_by_pid) >= 2

        poll(two_workers_exact, timeout=30, interval=0.2,
             what=f"two workers each reporting {calls} calls on /metrics (scrapes: {scrapes[-12:]})")
        assert len(exact_by_pid) >= 2 and proc.pid not in exact_by_pid, exact_by_pid  # workers, not the master
        if preload:
            master_port = listening_port(proc, exclude={port})
            poll(lambda: count_of(get(f"http://127.0.0.1:{master_port}/metrics"),
                                  "gen_ai_client_operation_duration_seconds_count") == calls,
                 timeout=20, interval=0.2, what=f"the master's /metrics reporting {calls} calls")
            files = [p for p in (tmp_path / "multiproc").iterdir() if p.name.endswith(".json")]
            assert len(files) <= 3 + 1 + 1, files  # live workers, the master, the archive of exited ones
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            # Under gunicorn's 30 s graceful timeout: a worker whose exit the agent hung would show here.  The
            # agent's exit work is bounded to a few seconds.
            proc.wait(25)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGRTMIN + 2)  # every process left dumps its threads' stacks (wsgi_app)
            time.sleep(1)  # the dump is written by each process itself; there is nothing to wait on
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            pytest.fail("gunicorn did not shut down within 25 s of SIGTERM:\n" + log_path.read_text()[-20000:])
