"""The claude-otel command line: version, simulate (serves and stops), run usage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_server import free_port

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
    assert code == 0 and all(c in top for c in ("demo", "simulate", "doctor", "run", "version"))
    code, _, err = in_process(capsys)
    assert code == 2 and "usage" in err and "claude-otel demo" in err
    for command, flag in (("demo", "--metrics-port"), ("doctor", "--max-tokens"), ("simulate", "--profile")):
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

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "claude_otel", "simulate", "--port", str(port), "--profile",
                             "rate-limited", "--time-scale", "0.1"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line
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
