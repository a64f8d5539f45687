"""The monitoring stack of the drill: a local Prometheus loading the mixin's rules time-scaled, and Alertmanager.

Both run as child processes on 127.0.0.1 with their own temporary directory (configuration, TSDB, silences), on
ports free a moment before (if another process takes one in between, the child is started again on another).
Prometheus scrapes the agent's /metrics every second and evaluates the rules every second; Alertmanager routes
as examples/alertmanager/alertmanager.yml does (critical to the pager, warning to tickets, a page inhibiting the
same job and model's warnings) with its waits cut to a second, to the drill's webhook.  Clustering is off
(`--cluster.listen-address=` empty), so nothing listens beyond loopback.

The rules come from the mixin's own generator, called through its command line only:
`python grafana/build.py --time-scale 60 --out DIR`.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")  # Debian's name, upstream's name
JOB = "claude-otel-drill"  # the scrape job: the `job` label every rule and alert groups by
# Every window and `for` of the rules divided by 60: a 5m rate window lasts 5 s (five scrapes at 1 s), a 15m
# `for` 15 s, the 1h burn-rate window 60 s. A larger factor would leave 2-3 scrapes in a rate window (noisy
# ratios, flapping alerts); a smaller one would stretch the drill past a few minutes.
TIME_SCALE = 60
START_TIMEOUT = 30.0


class StackError(RuntimeError):
    """A part of the monitoring stack could not be built or started; the message says which and why."""


def tools() -> Dict[str, Optional[str]]:
    """Returns {"prometheus": path or None, "alertmanager": path or None} of the programs on PATH."""
    return {"prometheus": _which(PROMETHEUS), "alertmanager": _which(ALERTMANAGER)}


def _which(names: Sequence[str]) -> Optional[str]:
    """Returns the path of the first of `names` on PATH, or None."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def default_mixin() -> Path:
    """Returns the mixin directory of a source checkout: grafana/ beside the claude_otel package."""
    return Path(__file__).resolve().parent.parent.parent / "grafana"


def build_rules(mixin: Path, out: Path, scale: float = TIME_SCALE) -> List[str]:
    """Returns the paths of the time-scaled rule files `mixin`/build.py wrote into `out`; raises StackError."""
    script = mixin / "build.py"
    if not script.is_file():
        raise StackError(f"no {script}: give the mixin directory (grafana/ of a claude-otel checkout) with --mixin")
    try:
        done = subprocess.run([sys.executable, str(script), "--time-scale", f"{scale:g}", "--out", str(out)],
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise StackError(f"{script} --time-scale {scale:g} did not finish within 120 s") from None
    if done.returncode != 0:
        hint = " (it needs PyYAML: pip install pyyaml)" if "yaml" in done.stderr.lower() else ""
        raise StackError(f"{script} --time-scale {scale:g} failed{hint}:\n{(done.stdout + done.stderr)[-2000:]}")
    files = sorted(str(p) for p in out.glob("*.yml"))
    if not files:
        raise StackError(f"{script} --time-scale {scale:g} wrote no rule files into {out}")
    return files


def alertmanager_config(webhook_url: str) -> dict:
    """Returns the Alertmanager configuration: the example's routing, waits of 1 s, both receivers to the webhook."""
    fast = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": "tickets", "group_by": ["alertname", "job", "gen_ai_request_model"], **fast,
                  "routes": [
                      {"receiver": "pager", "matchers": ['severity="critical"'],
                       "group_by": ["job", "gen_ai_request_model"], **fast},
                      {"receiver": "tickets", "matchers": ['severity="warning"'],
                       "group_by": ["job", "gen_ai_request_model"], **fast}]},
        "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                           "equal": ["job", "gen_ai_request_model"]}],
        "receivers": [{"name": name, "webhook_configs": [{"url": f"{webhook_url}/{name}", "send_resolved": True}]}
                      for name in ("pager", "tickets")],
    }


def prometheus_config(metrics_target: str, alertmanager_target: str, rule_files: Sequence[str]) -> dict:
    """Returns the Prometheus configuration: scrape and evaluate every 1 s, alerts to the drill's Alertmanager."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": list(rule_files),
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [metrics_target]}]}],
    }


def free_port() -> int:
    """Returns a 127.0.0.1 port nothing listened on a moment ago (the child may lose it: Child.start retries)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prctl():
    """Returns libc's prctl, or None where there is none (it is looked up before forking, not in the child)."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
    except Exception:
        return None


def _death_signal(prctl):
    """Returns a preexec_fn asking Linux to SIGTERM the child when the drill dies, even by SIGKILL (or None)."""
    if prctl is None:  # elsewhere the drill's own clean-up, and a Ctrl-C reaching the group, remain
        return None

    def preexec() -> None:
        """Returns after setting PR_SET_PDEATHSIG (1) to SIGTERM in the child."""
        prctl(1, int(signal.SIGTERM))

    return preexec


class Child:
    """One child program of the stack, its log in the drill's temporary directory."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc: Optional[subprocess.Popen] = None
        self.url = ""

    def start(self, argv_for_port, ready_path: str = "/-/ready", attempts: int = 3) -> "Child":
        """Returns self once the program answers 200 on ready_path; raises StackError with its log otherwise.

        `argv_for_port(port)` gives the command line for a port; a port taken meanwhile is retried on another.
        """
        for attempt in range(attempts):
            port = free_port()
            with open(self.log, "a") as log:
                # The drill's own process group: a Ctrl-C in the terminal reaches the children as well, and the
                # drill stops them anyway. Called from the main thread only (the death signal follows the thread
                # that started the child).
                self.proc = subprocess.Popen(argv_for_port(port), stdout=log, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL, preexec_fn=_death_signal(_prctl()))
            self.url = f"http://127.0.0.1:{port}"
            if self._wait_ready(ready_path):
                return self
            text = self.tail()
            self.stop()
            if "address already in use" not in text or attempt == attempts - 1:
                raise StackError(f"{self.name} did not start (log {self.log}):\n{text}")
        raise StackError(f"{self.name} did not start")  # pragma: no cover - the loop raises or returns

    def _wait_ready(self, path: str) -> bool:
        """Returns whether the program answered 200 on path within START_TIMEOUT seconds (False once it exited)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def tail(self, chars: int = 2000) -> str:
        """Returns the end of the program's log ("" if there is none)."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    @property
    def pid(self) -> Optional[int]:
        """Returns the process id, or None before start."""
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        """Returns whether the program is still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """Returns the exit code after SIGTERM (SIGKILL after `timeout` s); idempotent, never raises."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                proc.terminate()
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
            except OSError:
                pass
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not honoured within 10 s
            return None


class Stack:
    """Alertmanager and Prometheus for one drill, their files in `workdir`."""

    def __init__(self, prometheus: str, alertmanager: str, workdir: Path) -> None:
        self.prometheus_bin = prometheus
        self.alertmanager_bin = alertmanager
        self.dir = workdir
        self.alertmanager = Child("alertmanager", workdir / "alertmanager.log")
        self.prometheus = Child("prometheus", workdir / "prometheus.log")

    def start(self, webhook_url: str, metrics_url: str, rule_files: Sequence[str]) -> "Stack":
        """Returns self once Alertmanager and Prometheus (scraping `metrics_url`) are ready; raises StackError."""
        am_config = self.dir / "alertmanager.yml"
        am_config.write_text(json.dumps(alertmanager_config(webhook_url), indent=1))  # JSON is YAML
        (self.dir / "alertmanager-data").mkdir(exist_ok=True)
        self.alertmanager.start(lambda port: [
            self.alertmanager_bin, f"--config.file={am_config}", f"--storage.path={self.dir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"])
        target = metrics_url.split("//", 1)[1].split("/", 1)[0]
        prom_config = self.dir / "prometheus.yml"
        prom_config.write_text(json.dumps(prometheus_config(
            target, self.alertmanager.url.split("//", 1)[1], rule_files), indent=1))
        # resend-delay 1 s: a firing alert reaches Alertmanager at every evaluation, as the scaled `for`s expect
        self.prometheus.start(lambda port: [
            self.prometheus_bin, f"--config.file={prom_config}", f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--rules.alert.resend-delay=1s", "--log.level=warn"])
        return self

    def pids(self) -> Dict[str, Optional[int]]:
        """Returns {"prometheus": pid, "alertmanager": pid} (None for one not started)."""
        return {"prometheus": self.prometheus.pid, "alertmanager": self.alertmanager.pid}

    def rule_health(self) -> Dict[str, object]:
        """Returns {"alert_rules": N, "recording_rules": N, "errors": ["name: error", ...]} from Prometheus.

        A rule that fails to evaluate never fires: the drill counts such a rule as a failed check."""
        try:
            with urllib.request.urlopen(self.prometheus.url + "/api/v1/rules", timeout=5) as answer:
                groups = json.load(answer)["data"]["groups"]
        except (OSError, ValueError, KeyError) as exc:
            return {"alert_rules": 0, "recording_rules": 0, "errors": [f"cannot read Prometheus' rules: {exc}"]}
        rules = [r for g in groups for r in g.get("rules", [])]
        return {"alert_rules": sum(r.get("type") == "alerting" for r in rules),
                "recording_rules": sum(r.get("type") == "recording" for r in rules),
                "errors": [f"{r.get('name')}: {r.get('lastError') or r.get('health')}" for r in rules
                           if r.get("health") not in ("ok", "unknown") or r.get("lastError")]}

    def problems(self) -> List[str]:
        """Returns why a child exited early, if one did while the drill ran."""
        return [f"{c.name} exited early (code {c.proc.returncode}): {c.tail(500)}"
                for c in (self.prometheus, self.alertmanager) if c.proc is not None and c.proc.poll() is not None]

    def stop(self) -> None:
        """Stops Prometheus, then Alertmanager; never raises (the caller removes the directory)."""
        self.prometheus.stop()
        self.alertmanager.stop()
