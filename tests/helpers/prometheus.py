"""A real Prometheus (Debian's 2.x package) for tests, fed either by scraping or by backfilling OpenMetrics text.

Scrape mode: Prometheus scrapes 127.0.0.1 targets with rule files loaded and evaluated live.

Backfill mode: any exposition text with timestamps (or several untimestamped scrapes joined with
`scrapes_to_openmetrics`) becomes TSDB blocks through `promtool tsdb create-blocks-from openmetrics`; Prometheus
starts on them, and recording rules are backfilled over the same time range with
`promtool tsdb create-blocks-from rules`, one dependency level at a time (a rule reading another recorded series
needs that series on disk first). Queries then run at any timestamp inside the data, independent of the clock.

    with PrometheusServer(scrape_targets=["127.0.0.1:9464"], rule_files=[...]) as prom:
        prom.wait_for("up", lambda v: v == 1)

    with PrometheusServer.from_openmetrics(text, rule_files=[...]) as prom:
        prom.query("claude:requests:rate5m", at=prom.data_end)

Prometheus listens on 127.0.0.1:0 and the port it bound is read back from /proc (its log names only the
configured address).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from tests.helpers.ports import listening_port
from tests.helpers.require import require_tool


class PrometheusUnavailable(RuntimeError):
    """prometheus or promtool is not installed."""


def tool(name: str) -> str:
    """Returns the path of a program of Debian's prometheus package; raises PrometheusUnavailable without it."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusUnavailable(f"{name} is not installed (Debian: apt-get install prometheus)")
    return path


def require_prometheus() -> str:
    """Returns the prometheus binary after checking promtool is there too; skips locally, fails in CI."""
    require_tool("promtool", "tests/setup.sh installs Debian's prometheus package")
    return require_tool("prometheus", "tests/setup.sh installs Debian's prometheus package")


# -- exposition text ---------------------------------------------------------------------------------------------

# name, {labels} (quoted values may hold braces and escaped quotes), value, optional timestamp, optional exemplar
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^}"]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)(?:\s+([^#\s]\S*))?'
                     r'\s*(?:#.*)?$')


def scrapes_to_openmetrics(scrapes: Iterable[Tuple[float, str]], target_labels: Optional[Dict[str, str]] = None,
                           ) -> str:
    """Joins several scrapes (unix time in seconds, exposition text in the Prometheus text format or OpenMetrics)
    into one OpenMetrics document with timestamps, for `promtool tsdb create-blocks-from openmetrics`.

    Samples are grouped by metric family (OpenMetrics wants each family in one block) and each series is kept in
    time order; exemplars, `_created` series and timestamps inside the scrapes are dropped (each scrape gets its
    own time). Scrapes may mix formats: a counter family `x_total` (text format) and `x` (OpenMetrics) merge.
    `target_labels` (e.g. {"job": "api", "instance": "api-0:9464"}) are added to every series that lacks them,
    as a scrape would: the dashboards and rules group by `job`."""
    families: Dict[str, dict] = {}
    order: List[str] = []
    series_family: Dict[Tuple[str, str], str] = {}
    points: Dict[Tuple[str, str], List[Tuple[float, str]]] = {}

    def family(name: str) -> dict:
        if name not in families:
            families[name] = {"type": "unknown", "help": None, "unit": None, "series": []}
            order.append(name)
        return families[name]

    for when, text in scrapes:
        current = None
        types: Dict[str, str] = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line == "# EOF":
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("TYPE", "HELP", "UNIT"):
                    name = parts[2]
                    value = parts[3] if len(parts) > 3 else ""
                    if parts[1] == "TYPE" and value == "counter" and name.endswith("_total"):
                        name = name[:-len("_total")]
                    if parts[1] == "TYPE":
                        types[name] = value
                    f = family(name)
                    if parts[1] == "TYPE":
                        f["type"] = "unknown" if value == "untyped" else value
                    elif parts[1] == "HELP":
                        f["help"] = value
                    else:
                        f["unit"] = value
                    current = name
                continue
            match = _SAMPLE.match(line)
            if not match:
                raise ValueError(f"not an exposition sample: {line!r}")
            name, labels, value = match.group(1), match.group(2) or "", match.group(3)
            if name.endswith("_created"):
                continue
            if target_labels:
                labels = _with_labels(labels, target_labels)
            key = (name, labels)
            if key not in series_family:
                owner = _family_of(name, current, types)
                series_family[key] = owner
                family(owner)["series"].append(key)
            points.setdefault(key, []).append((when, value))
    lines = []
    for name in order:
        f = families[name]
        if not f["series"]:
            continue
        kind = f["type"]
        if kind == "counter" and not all(key[0] == name + "_total" for key in f["series"]):
            kind = "unknown"  # a Prometheus-text counter without the _total suffix
        lines.append(f"# TYPE {name} {kind}")
        if f["unit"] and name.endswith("_" + f["unit"]):
            lines.append(f"# UNIT {name} {f['unit']}")
        if f["help"]:
            lines.append(f"# HELP {name} {f['help']}")
        for sample_name, labels in f["series"]:
            last = None
            for when, value in sorted(points[(sample_name, labels)], key=lambda p: p[0]):
                if when != last:  # one sample per series and time
                    lines.append(f"{sample_name}{labels} {value} {when:.3f}")
                last = when
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _with_labels(labels: str, extra: Dict[str, str]) -> str:
    inner = labels[1:-1].strip().rstrip(",") if labels else ""
    added = [f'{k}="{v}"' for k, v in extra.items() if not re.search(r'(^|[{,\s])' + k + r'\s*=', inner)]
    return "{" + ",".join(added + ([inner] if inner else [])) + "}"


def _family_of(sample: str, current: Optional[str], types: Dict[str, str]) -> str:
    """The metric family a sample belongs to: the one of the last # TYPE line when the name fits it."""
    if current and (sample == current or sample.startswith(current + "_")):
        return current
    for suffix in ("_total", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in types:
            return sample[: -len(suffix)]
    return sample


def openmetrics_time_range(text: str) -> Tuple[float, float]:
    """(first, last) sample timestamp of an OpenMetrics document with timestamps, in seconds."""
    first, last = math.inf, -math.inf
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match and match.group(4):
            when = float(match.group(4))
            first, last = min(first, when), max(last, when)
    if first == math.inf:
        raise ValueError("no timestamped samples: use scrapes_to_openmetrics to give each scrape a time")
    return first, last


# -- rule files --------------------------------------------------------------------------------------------------

def recording_rule_levels(rule_files: Sequence[str]) -> List[List[dict]]:
    """The recording rules of the files, split so each level only reads raw series and lower levels."""
    rules = [r for path in rule_files for g in yaml.safe_load(open(path))["groups"] for r in g["rules"]
             if "record" in r]
    names = {r["record"] for r in rules}
    level: Dict[str, int] = {}

    def depth(rule: dict, seen: Tuple[str, ...] = ()) -> int:
        name = rule["record"]
        if name in level:
            return level[name]
        if name in seen:
            raise ValueError(f"recording rules loop through {name}")
        used = {n for n in names if re.search(r"(?<![\w:])" + re.escape(n) + r"(?![\w:])", rule["expr"])} - {name}
        result = 1 + max((depth(next(r for r in rules if r["record"] == n), seen + (name,)) for n in used),
                         default=0)
        level[name] = result
        return result

    levels: Dict[int, List[dict]] = {}
    for rule in rules:
        levels.setdefault(depth(rule), []).append(rule)
    return [levels[k] for k in sorted(levels)]


# -- the server --------------------------------------------------------------------------------------------------

class PrometheusServer:
    """Runs prometheus in a temporary directory on a free 127.0.0.1 port; stop() (or `with`) cleans up."""

    def __init__(self, scrape_targets: Sequence[str] = (), rule_files: Sequence[str] = (),
                 scrape_interval: str = "1s", evaluation_interval: str = "1s", job: str = "claude-otel-test",
                 storage: Optional[str] = None) -> None:
        self.binary = tool("prometheus")
        self.dir = tempfile.mkdtemp(prefix="prom-harness-")
        self.storage = storage or os.path.join(self.dir, "data")
        os.makedirs(self.storage, exist_ok=True)
        self.config = os.path.join(self.dir, "prometheus.yml")
        self.job = job
        config = {"global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
                  "rule_files": [os.path.abspath(p) for p in rule_files],
                  "scrape_configs": ([{"job_name": job, "static_configs": [{"targets": list(scrape_targets)}]}]
                                     if scrape_targets else [])}
        with open(self.config, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.proc: Optional[subprocess.Popen] = None
        self.data_start: Optional[float] = None
        self.data_end: Optional[float] = None
        self.start()

    # lifecycle

    def start(self, timeout: float = 30.0) -> None:
        """Starts prometheus on a port it binds itself (127.0.0.1:0) and returns once it is ready; raises
        RuntimeError with its log when it exits or is not ready within `timeout` seconds."""
        self.log_path = os.path.join(self.dir, "prometheus.log")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.storage}",
             "--web.listen-address=127.0.0.1:0", "--storage.tsdb.retention.time=100y",
             "--enable-feature=exemplar-storage", "--web.enable-lifecycle", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        try:
            self.port = listening_port(self.proc, timeout)
        except AssertionError as e:
            self._terminate()
            raise RuntimeError(f"prometheus did not listen: {e}\n" + self.log()[-3000:]) from None
        self.url = f"http://127.0.0.1:{self.port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + self.log()[-3000:])
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready:\n" + self.log()[-3000:])

    def _terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self._terminate()
        self.start()

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    # backfilling

    @classmethod
    def from_openmetrics(cls, text: str, rule_files: Sequence[str] = (), rule_interval: str = "60s",
                         ) -> "PrometheusServer":
        """A server holding `text` (OpenMetrics with timestamps in seconds, ending in # EOF) and, over the same
        time range, the recording rules of `rule_files` evaluated every `rule_interval`."""
        if not text.rstrip().endswith("# EOF"):
            raise ValueError("OpenMetrics text must end with '# EOF'")
        start, end = openmetrics_time_range(text)
        server = cls()
        try:
            server.backfill_openmetrics(text)
            server.data_start, server.data_end = start, end
            if rule_files:
                server.backfill_rules(rule_files, start, end, rule_interval)
        except BaseException:
            server.stop()
            raise
        return server

    def _import_blocks(self, produce: Callable[[str], None]) -> None:
        """Runs `produce(output_dir)`, then moves the blocks it wrote into the storage and restarts."""
        out = tempfile.mkdtemp(prefix="blocks-", dir=self.dir)
        produce(out)
        self._terminate()
        for block in os.listdir(out):
            shutil.move(os.path.join(out, block), os.path.join(self.storage, block))
        shutil.rmtree(out, ignore_errors=True)
        self.start()

    def backfill_openmetrics(self, text: str) -> None:
        path = os.path.join(self.dir, "input.om")
        with open(path, "w") as f:
            f.write(text)

        def produce(out: str) -> None:
            _run([tool("promtool"), "tsdb", "create-blocks-from", "openmetrics", path, out])

        self._import_blocks(produce)

    def backfill_rules(self, rule_files: Sequence[str], start: float, end: float, interval: str = "60s") -> None:
        """Evaluates the recording rules of `rule_files` over [start, end] (unix seconds) into blocks, level by
        level. Alerting rules are left out: query their expressions with query()."""
        step = _seconds(interval)
        start = math.ceil(start / step) * step
        end = math.floor(end / step) * step
        for n, rules in enumerate(recording_rule_levels(rule_files)):
            path = os.path.join(self.dir, f"rules-level-{n + 1}.yml")
            with open(path, "w") as f:
                yaml.safe_dump({"groups": [{"name": f"level-{n + 1}", "interval": interval, "rules": rules}]}, f)

            def produce(out: str, path: str = path) -> None:
                _run([tool("promtool"), "tsdb", "create-blocks-from", "rules", f"--url={self.url}",
                      f"--start={int(start)}", f"--end={int(end)}", f"--eval-interval={interval}",
                      f"--output-dir={out}", path])

            self._import_blocks(produce)
        self.rules_end = end

    # queries

    def api(self, path: str, **params) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{path} {params}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, promql: str, at: Optional[float] = None) -> list:
        """Instant query; returns the result list (vector samples, or [time, value] for a scalar)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def query_range(self, promql: str, start: float, end: float, step: float = 60) -> list:
        return self.api("query_range", query=promql, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step:g}")["result"]

    def values(self, promql: str, at: Optional[float] = None, key: Sequence[str] = ()) -> Dict[tuple, float]:
        """{tuple of the `key` labels' values: value} of an instant query."""
        return {tuple(r["metric"].get(k, "") for k in key): float(r["value"][1]) for r in self.query(promql, at)}

    def value(self, promql: str, at: Optional[float] = None) -> Optional[float]:
        result = self.query(promql, at)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, predicate: Callable[[float], bool], timeout: float = 30.0) -> Optional[float]:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(promql)
            if value is not None and predicate(value):
                return value
            time.sleep(0.5)
        return value

    def exemplars(self, promql: str, window: float = 600.0) -> List[dict]:
        """Returns the label sets of the exemplars stored for a query's series in the last `window` seconds."""
        now = time.time()
        data = self.api("query_exemplars", query=promql, start=f"{now - window:.3f}", end=f"{now + 60:.3f}")
        return [e["labels"] for series in data for e in series["exemplars"]]

    def targets(self) -> List[dict]:
        """Returns the active scrape targets (health, lastError, scrapeUrl, ...)."""
        return self.api("targets")["activeTargets"]

    def set_scrape_targets(self, targets: Sequence[str], timeout: float = 30.0) -> None:
        """Rewrites the scrape config to `targets` and reloads it (for targets whose port is known only once they
        have started on port 0); returns once Prometheus lists them, raises AssertionError otherwise."""
        with open(self.config) as f:
            config = json.load(f)
        config["scrape_configs"] = [{"job_name": self.job, "static_configs": [{"targets": list(targets)}]}]
        with open(self.config, "w") as f:
            json.dump(config, f)
        request = urllib.request.Request(self.url + "/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200, r.status
        wanted = set(targets)
        deadline = time.monotonic() + timeout
        while {t["labels"].get("instance") for t in self.targets()} != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not take the targets {sorted(wanted)}: {self.targets()}")
            time.sleep(0.1)


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def _run(argv: List[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
