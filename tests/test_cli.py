"""The claude-otel command line: version, simulate (serves and stops), run usage."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers.procs import read_line

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "claude_otel", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, **kw)


def in_process(capsys, *args):
    """Returns (exit code, stdout, stderr) of claude_otel.cli.main(args) run in this process."""
    from claude_otel.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's --help and usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_version_and_help(capsys):
    import anthropic

    from claude_otel import __version__

    out = cli("version")  # python -m claude_otel
    assert out.returncode == 0 and out.stdout.startswith(f"claude-otel {__version__} (anthropic {anthropic.__version__}")
    script = Path(sys.executable).parent / "claude-otel"  # the console script from [project.scripts]
    if script.exists():
        assert subprocess.run([str(script), "--version"], capture_output=True, text=True).stdout == out.stdout
    assert in_process(capsys, "--version")[1] == out.stdout
    code, top, _ = in_process(capsys, "--help")
    assert code == 0 and all(c in top for c in ("demo", "simulate", "doctor", "drill", "run", "version"))
    code, _, err = in_process(capsys)
    assert code == 2 and "usage" in err and "claude-otel demo" in err
    for command, flag in (("demo", "--metrics-port"), ("doctor", "--max-tokens"), ("simulate", "--profile"),
                          ("drill", "--mixin")):
        code, helped, _ = in_process(capsys, command, "--help")
        assert code == 0 and flag in helped, command
    code, _, err = in_process(capsys, "run")
    assert code == 2 and "usage" in err
    code, run_help, _ = in_process(capsys, "run", "--help")
    assert code == 0 and "claude-otel run -- python app.py" in run_help
    code, profiles, _ = in_process(capsys, "simulate", "--list-profiles")
    assert code == 0 and "slow-prefill" in profiles and "proxy-idle" in profiles


def test_run_configures_the_program_and_returns_its_exit_code(sim):
    program = ("import os, sys, anthropic; from claude_otel.patches import STATE; "
               "print('instrumented', STATE.telemetry is not None); "
               "anthropic.Anthropic(api_key='k', base_url=os.environ['SIM']).messages.create("
               "model='claude-haiku-4-5', max_tokens=8, messages=[{'role': 'user', 'content': 'hi'}]); sys.exit(3)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_"))}
    env.update({"SIM": sim.base_url, "PYTHONPATH": str(ROOT)})
    out = cli("run", "--", sys.executable, "-c", program, env=env)
    assert out.returncode == 3 and "instrumented True" in out.stdout, out.stderr[-2000:]
    assert len(sim.requests) == 1
    missing = cli("run", "--", "no-such-program-claude-otel", env=env)
    assert missing.returncode == 127 and "cannot start" in missing.stderr


def test_simulate_serves_the_sdk_and_stops_on_ctrl_c():
    import anthropic

    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "simulate", "--port", "0", "--profile",
                             "rate-limited", "--time-scale", "0.1"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = read_line(proc, 30, "the simulator's listening line")
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert found and int(found.group(1)) > 0, line  # port 0 asked for: the bound one is reported
        port = int(found.group(1))
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k")
        raw = client.messages.with_raw_response.create(model="claude-x", max_tokens=8,
                                                       messages=[{"role": "user", "content": "hi"}])
        assert raw.retries_taken == 1
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers={"x-sim-profile": "normal"})
        with urllib.request.urlopen(request) as r:
            assert json.load(r)["data"]
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0


# -- Ctrl-C stops `claude-otel simulate` promptly, whatever its connections are doing ----------------------------

STOP_BOUND = 3.0  # seconds; the promise is 2 s, the rest is slack for a loaded CI machine (the bug was: never)


class _Lines:
    """A child's stdout read by a thread, so that every read has a deadline instead of hanging the test."""

    def __init__(self, stream):
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        """Returns at EOF, having queued every line (then None)."""
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, timeout=30.0):
        """Returns the next line, or None at EOF; raises queue.Empty after timeout seconds."""
        return self.queue.get(timeout=timeout)

    def rest(self, timeout=10.0):
        """Returns everything until EOF."""
        out = []
        while (line := self.next(timeout)) is not None:
            out.append(line)
        return "".join(out)


def _start_simulate(*flags, ignore_sigint=False):
    """Returns (process, its stdout lines, base URL) of `claude-otel simulate --port 0` once it listens."""
    # ignore_sigint: what a shell without job control (a CI script's `cmd &`) hands to a background job
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "simulate", "--port", "0", *flags],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=preexec)
    lines = _Lines(proc.stdout)
    try:
        first = lines.next()
        url = re.search(r"http://127\.0\.0\.1:\d+", first or "").group(0)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return proc, lines, url


def _interrupt_and_time(proc):
    """Returns (seconds from SIGINT to exit, exit code); kills the process if it does not exit in 15 s."""
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError("claude-otel simulate did not exit within 15 s of SIGINT") from None
    elapsed = time.monotonic() - start
    print(f"claude-otel simulate exited {elapsed:.3f} s after SIGINT (code {code})")
    return elapsed, code


def _stopped_after(lines):
    """Returns the request count of the 'stopped after N requests' line the simulator prints last."""
    match = re.search(r"claude-otel simulator stopped after (\d+) requests\n\Z", lines.rest())
    assert match, "no final 'stopped after N requests' line"
    return int(match.group(1))


def test_ctrl_c_with_an_idle_keep_alive_connection_even_when_sigint_was_ignored_at_start():
    proc, lines, url = _start_simulate(ignore_sigint=True)
    try:
        port = urlsplit(url).port
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(b"GET /v1/models HTTP/1.1\r\nhost: sim\r\n\r\n")  # HTTP/1.1: the connection stays open
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 ") and b"connection: keep-alive" in head.lower()
        elapsed, code = _interrupt_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < STOP_BOUND and code == 0
    assert _stopped_after(lines) == 1
    conn.settimeout(5)
    while conn.recv(65536):  # the rest of the models page, then EOF: stopping closed the idle connection
        pass
    conn.close()


def test_ctrl_c_during_a_stalled_stream():
    proc, lines, url = _start_simulate()
    try:
        conn = socket.create_connection(("127.0.0.1", urlsplit(url).port), timeout=10)
        body = b'{"model":"m","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
        conn.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n"
                     b"x-sim-stall-at: 2\r\nx-sim-stall: 60\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        data = b""
        while data.count(b"event: content_block_delta") < 2:  # two tokens, then 60 s of silence
            chunk = conn.recv(65536)
            assert chunk, "the stream ended before its stall"
            data += chunk
        elapsed, code = _interrupt_and_time(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert elapsed < STOP_BOUND and code == 0
    assert _stopped_after(lines) == 1
    conn.settimeout(5)
    rest = b""
    while chunk := conn.recv(65536):
        rest += chunk
    conn.close()
    assert b"message_stop" not in rest  # cut, not finished: the stall was not waited out


def test_ctrl_c_under_load():
    import anthropic

    proc, lines, url = _start_simulate("--time-scale", "0.1")
    done = threading.Event()
    served = []
    failed = []

    def load(stream):
        """Calls the simulator until told to stop; counts calls that succeeded."""
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0, timeout=30)
        while not done.is_set():
            try:
                if stream:  # long streams: 200 tokens at 20 ms, still open when SIGINT comes
                    list(client.messages.create(model="sim-slow-generation", max_tokens=200, stream=True,
                                                messages=[{"role": "user", "content": "hi"}]))
                else:
                    client.messages.create(model="m", max_tokens=4, messages=[{"role": "user", "content": "hi"}])
                served.append(1)
            except Exception as exc:  # APIConnectionError, or the transport's own error mid-stream
                failed.append(exc)
                return

    workers = [threading.Thread(target=load, args=(i < 4,), daemon=True) for i in range(16)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(served) < 100 and time.monotonic() < deadline:  # well under way before the signal
            time.sleep(0.05)
        assert len(served) >= 100, f"only {len(served)} calls served in 30 s"
        elapsed, code = _interrupt_and_time(proc)
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
    for worker in workers:
        worker.join(10)
    assert elapsed < STOP_BOUND and code == 0
    assert not any(worker.is_alive() for worker in workers)
    assert _stopped_after(lines) >= len(served) and failed  # clients in flight saw the stop


def test_python_m_claude_otel_demo_runs_headless():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAUDE_OTEL_", "ANTHROPIC_"))}
    env.update({"PYTHONPATH": str(ROOT), "ANTHROPIC_OPEN_TELEMETRY": "false"})
    out = subprocess.run([sys.executable, "-m", "claude_otel.demo", "--profile", "rate-limited", "--duration", "2",
                          "--rate", "6", "--no-tty", "--metrics-port", "0"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=90)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert re.match(r"claude-otel demo: simulator http://127\.0\.0\.1:\d+, /metrics http://127\.0\.0\.1:\d+/metrics, "
                    r"profile rate-limited, 6 calls/s for 2 s\n", out.stdout), out.stdout[:500]
    started = int(re.search(r"finished after [\d.]+ s: (\d+) calls started", out.stdout).group(1))
    final = out.stdout[out.stdout.index("Final figures"):]
    rows = {line.split()[0]: [int(n) for n in line.split()[1:5]] for line in final.splitlines()
            if line.startswith("claude-")}
    [total] = [[int(n) for n in line.split()[2:6]] for line in final.splitlines() if line.startswith("all models")]
    assert len(rows) >= 2 and started >= 6, final
    # the profile fails every call's first attempt with a 429: each call took exactly one retry, none failed
    for requests, errors, timeouts, retries in rows.values():
        assert requests >= 1 and errors == timeouts == 0 and retries == requests, final
    assert sum(r[0] for r in rows.values()) == total[0] == started == total[3]
