"""`claude-otel drill`: a timeout incident played for real against the simulator, watched by the real alerts.

The simulator serves a ramp (ramp.py): healthy traffic, then prefill growing until read waits approach the
limits, then a proxy cutting idle connections, then timeouts.  An instrumented application (workload.py) calls
it through the real SDK with short client timeouts, so the incident plays in about two minutes.  When
`prometheus` and `prometheus-alertmanager` are installed, a local Prometheus scrapes the agent's /metrics every
second with the mixin's rules time-scaled by 60, and Alertmanager delivers to a webhook inside the drill
(stack.py, webhook.py); the drill prints when each alert arrived relative to the first timeout (report.py).

Exit codes: 0 the drill ran with Prometheus and Alertmanager and its checks passed (incident: a headroom warning
before the first timeout, a page during the timeout phase naming the injected cause; --healthy: no page);
1 it ran but a check failed; 2 it could not start (bad option, no mixin, a child that would not start);
3 Prometheus or Alertmanager is not installed, so only the workload ran (what was skipped is printed);
130 Ctrl-C (or SIGTERM) stopped it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

EXIT_PASSED, EXIT_FAILED, EXIT_CANNOT_START, EXIT_WORKLOAD_ONLY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
HEALTHY_DURATION = 45.0
DESCRIPTION = """Plays a timeout incident against the local simulator and shows which alerts fired, and when.

Phases: 1 healthy; 2 prefill grows until read waits approach the limits (headroom warnings); 3 a proxy cuts
connections idle for 6 s (the non-streamed reports); 4 the streamed chats' prefill outgrows their 5 s read
timeout (timeouts, the burn-rate page). The application calls the real SDK with claude-otel configured.

With prometheus and prometheus-alertmanager installed (Debian packages; tests/setup.sh installs them) a local
Prometheus scrapes the agent's /metrics every second and loads the mixin's rules time-scaled by 60 (a 1 h
window lasts 60 s, a 15 m `for` 15 s: `python grafana/build.py --time-scale 60 --out DIR`), and Alertmanager
routes critical to a pager and warning to tickets, both a webhook inside the drill. The mixin is grafana/
beside the claude_otel package (a source checkout), or --mixin DIR. Everything listens on 127.0.0.1 and is
stopped at the end, also after Ctrl-C.

Prints a timeline: each alert's arrival relative to the first timeout (negative = lead time), its severity,
and the timeout kind and cause its annotations name; --json prints one JSON document at the end instead."""
EPILOG = """exit codes:
  0    ran with Prometheus and Alertmanager, checks passed (a headroom warning before the first timeout and a
       page during the timeout phase naming the injected cause; --healthy: no page)
  1    ran, a check failed
  2    could not start (option, mixin, a child program)
  3    prometheus or prometheus-alertmanager not installed: only the workload ran (what was skipped is printed)
  130  stopped by Ctrl-C or SIGTERM"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the drill sub-command's flags, description and exit codes to parser."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--healthy", action="store_true",
                        help="the same stack with healthy traffic only (phase 1): must page nothing")
    parser.add_argument("--duration", type=float, default=HEALTHY_DURATION, metavar="S",
                        help=f"with --healthy, seconds to run (default {HEALTHY_DURATION:g})")
    parser.add_argument("--mixin", metavar="DIR",
                        help="the mixin directory holding build.py (default: grafana/ beside the claude_otel "
                             "package, i.e. a source checkout)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document at the end on stdout (the live log goes to stderr)")


class Log:
    """Prints the live log (stdout, or stderr with --json) from any thread, a line at a time."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        """Prints text and flushes."""
        with self._lock:
            print(text, file=self.stream, flush=True)


def run(args: argparse.Namespace) -> int:
    """Runs the drill; returns its exit code (see the module docstring)."""
    from . import stack as stack_mod
    from .ramp import INCIDENT, Ramp, healthy

    log = Log(sys.stderr if args.json else sys.stdout)
    if args.healthy and not args.duration > 0:
        print("claude-otel drill: --duration must be positive", file=sys.stderr)
        return EXIT_CANNOT_START
    ramp = Ramp(healthy(args.duration) if args.healthy else INCIDENT)
    found = stack_mod.tools()
    missing = [name for name, path in (("prometheus", found["prometheus"]),
                                       ("prometheus-alertmanager", found["alertmanager"])) if path is None]
    mixin = Path(args.mixin) if args.mixin else stack_mod.default_mixin()
    workdir = Path(tempfile.mkdtemp(prefix="claude-otel-drill-"))
    try:
        return _drill(args, log, ramp, found, missing, mixin, workdir)
    except CannotStart as exc:
        print(f"claude-otel drill: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"mode": "healthy" if args.healthy else "incident", "error": str(exc),
                              "exit_code": EXIT_CANNOT_START}, indent=1), flush=True)
        return EXIT_CANNOT_START
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class CannotStart(Exception):
    """The drill could not start: the message says what and how to fix it (exit code 2)."""


def _drill(args, log: Log, ramp, found: Dict[str, Optional[str]], missing: List[str], mixin: Path,
           workdir: Path) -> int:
    """Returns the exit code after running the drill with its files in workdir."""
    import claude_otel

    from ..simulator import Simulator
    from . import report
    from .ramp import PROXY_IDLE
    from .stack import TIME_SCALE, Stack, StackError, build_rules
    from .webhook import Webhook
    from .workload import DrillWorkload

    mode = "healthy" if args.healthy else "incident"
    rules: List[str] = []
    if not missing:
        try:
            rules = build_rules(mixin, workdir / "rules", TIME_SCALE)
        except StackError as exc:
            raise CannotStart(str(exc)) from None
    zero = [time.monotonic()]  # drill time 0, reset when the first call starts

    def clock() -> float:
        """Returns the drill time."""
        return time.monotonic() - zero[0]

    def arrived(arrival) -> None:
        """Prints an alert's first arrival at the webhook (live)."""
        log.say(f"  t={arrival.at:6.1f} s  {report.alert_line(report.alert_row(arrival, ramp, None))}")

    def failed(outcome, kind, at, detail) -> None:
        """Prints the application's first failure of a kind (live)."""
        log.say(f"  t={at:6.1f} s  first {outcome.replace('_', ' ')}: {detail}"[:200])

    webhook = stack = sim = handle = None
    interrupted = threading.Event()
    previous = {}
    info: Dict[str, object] = {"skipped": [], "problems": []}
    try:
        sim = Simulator("127.0.0.1", 0, "normal", proxy_idle_timeout=PROXY_IDLE).start()
        # The agent measures headroom against the proxy's idle timeout where it is shorter than the client's
        # timeout (the reports), and names a cut after that much silence proxy_idle_cut.
        handle = claude_otel.configure(service_name="claude-otel-drill", prometheus_port=0,
                                       prometheus_addr="127.0.0.1", proxy_idle_timeout=PROXY_IDLE)
        info.update(simulator=sim.base_url, metrics=handle.prometheus_url)
        if missing:
            info["skipped"] = ["prometheus", "alertmanager", "alerts"]
            log.say(f"claude-otel drill: {' and '.join(missing)} not installed (Debian: apt-get install prometheus "
                    "prometheus-alertmanager; tests/setup.sh installs them): SKIPPED Prometheus, Alertmanager and "
                    f"the alerts; running the workload only (exit code {EXIT_WORKLOAD_ONLY})")
        else:
            if handle.prometheus_url is None:
                raise CannotStart("the agent's /metrics did not start: " + "; ".join(handle.problems))
            webhook = Webhook(clock, on_arrival=arrived)
            stack = Stack(found["prometheus"], found["alertmanager"], workdir)
            try:
                stack.start(webhook.url, handle.prometheus_url, rules)
                _wait_scraped(stack.prometheus.url)
            except StackError as exc:
                raise CannotStart(str(exc)) from None
            info.update(prometheus=stack.prometheus.url, alertmanager=stack.alertmanager.url, webhook=webhook.url,
                        rules=f"{mixin}/build.py --time-scale {TIME_SCALE}", pids=stack.pids())
        log.say(f"claude-otel drill ({mode}): simulator {sim.base_url} (proxy idle timeout {PROXY_IDLE:g} s), "
                f"/metrics {handle.prometheus_url}"
                + (f", Prometheus {info['prometheus']} (rules time-scaled by {TIME_SCALE}), Alertmanager "
                   f"{info['alertmanager']}, webhook {info['webhook']}" if stack else ""))
        log.say(_kinds_line())

        def stop(signum, frame) -> None:
            """Ends the drill early (Ctrl-C, SIGTERM); a second Ctrl-C stops waiting for calls in flight."""
            if interrupted.is_set():  # a second Ctrl-C: stop waiting for calls in flight
                raise KeyboardInterrupt
            interrupted.set()

        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
        zero[0] = time.monotonic()
        workload = DrillWorkload(sim.base_url, ramp, zero[0], on_failure=failed)
        try:
            _play(workload, ramp, log, webhook, stack, interrupted, healthy=args.healthy)
        except KeyboardInterrupt:
            interrupted.set()
            workload.stop()
        return _report(args, log, ramp, workload, webhook, stack, info, missing, interrupted.is_set())
    finally:
        # Another Ctrl-C now would leave children running: the clean-up (bounded: SIGKILL after 10 s) goes first.
        if previous:
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
            if webhook is not None:
                webhook.stop()
            if handle is not None:
                handle.shutdown(timeout=3)
            if sim is not None:
                sim.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _report(args, log: Log, ramp, workload, webhook, stack, info: Dict[str, object], missing: List[str],
            interrupted: bool) -> int:
    """Returns the exit code after printing the timeline and verdict (and with --json the document)."""
    from . import report

    mode = "healthy" if args.healthy else "incident"
    rules: Dict[str, object] = {}
    if stack is not None:
        info["problems"] = stack.problems()
        rules = info["rules_health"] = stack.rule_health()
    rows = [report.alert_row(a, ramp, workload.outcomes.first.get("timeout"))
            for a in (webhook.snapshot() if webhook else [])]
    first, detail = dict(workload.outcomes.first), dict(workload.outcomes.first_detail)
    judged = report.verdict(rows, ramp, first.get("timeout"), args.healthy, rules) \
        if stack is not None and not interrupted else None
    if interrupted:
        code = EXIT_INTERRUPTED
    elif stack is None:
        code = EXIT_WORKLOAD_ONLY
    else:
        code = EXIT_PASSED if judged["passed"] and not info["problems"] else EXIT_FAILED
    log.say("")
    log.say(report.timeline_text(ramp, rows, first, detail))
    log.say(report.verdict_text(judged, interrupted))
    for problem in list(info["problems"]) + list(rules.get("errors") or []):
        log.say(f"  problem: {problem}")
    if missing:
        log.say(f"SKIPPED: {' and '.join(missing)} not installed; no alerts were evaluated "
                f"(exit code {EXIT_WORKLOAD_ONLY})")
    if interrupted:
        log.say("stopped by Ctrl-C: the timeline above is partial")
    if args.json:
        doc = report.document(mode, ramp, rows, first, detail, workload.outcomes.snapshot(), info, judged,
                              code, interrupted)
        print(json.dumps(doc, indent=1), flush=True)
    return code


def _kinds_line() -> str:
    """Returns the line describing the application's two kinds of call."""
    from .ramp import KINDS

    return "  calls: " + "; ".join(
        f"{k.name} {k.model} {'streamed' if k.stream else 'non-streamed'}, timeout {k.timeout:g} s, "
        f"{k.rate:g}/s" for k in KINDS) + " (max_retries=0)"


def _play(workload, ramp, log: Log, webhook, stack, interrupted: threading.Event, healthy: bool) -> None:
    """Runs the workload through the phases; returns when the last ends (incident: soon after the first page),
    on Ctrl-C, or when a child of the stack exits."""
    from .ramp import PAGE_SETTLE

    runner = threading.Thread(target=workload.run, args=(0.0, 1.0), name="claude-otel-drill", daemon=True)
    runner.start()
    shown = -1
    try:
        while not interrupted.is_set():
            t = workload.now()
            index = ramp.index_at(t)
            if index != shown:
                phase = ramp.phases[index]
                chat, rep = phase.waits(phase.ramp)
                to = "→ " if phase.ramp else ""
                log.say(f"  t={t:6.1f} s  phase {index + 1}: {phase.title} (chat prefill {to}{chat:g} s, "
                        f"report wait {to}{rep:g} s)")
                shown = index
            if t >= ramp.length:
                break
            if stack is not None and stack.problems():
                log.say("  " + "; ".join(stack.problems()))
                break
            if webhook is not None and not healthy and index == len(ramp.phases) - 1:
                page = webhook.first(lambda a: a.severity == "critical")
                if page is not None and t >= page.at + PAGE_SETTLE:
                    break
            interrupted.wait(0.2)
    finally:
        workload.stop()
        runner.join(10)


def _wait_scraped(prometheus_url: str, timeout: float = 20.0) -> None:
    """Returns once Prometheus has scraped the agent's /metrics successfully; raises StackError otherwise."""
    from .stack import StackError

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(prometheus_url + "/api/v1/targets", timeout=2) as answer:
                targets = json.load(answer)["data"]["activeTargets"]
            if targets and all(t.get("health") == "up" for t in targets):
                return
            last = targets
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.2)
    raise StackError(f"Prometheus did not scrape the agent's /metrics within {timeout:g} s: {last}")


def main(argv: Optional[list] = None) -> int:
    """Runs `claude-otel drill` with these arguments (for `python -m claude_otel.drill`); returns the exit code."""
    parser = argparse.ArgumentParser(prog="claude-otel drill")
    add_arguments(parser)
    return run(parser.parse_args(argv))


__all__ = ["add_arguments", "run", "main"]
