"""`claude-otel doctor --prometheus URL`: advice from the live metrics of a Prometheus that scrapes claude-otel.

Per service (the scrape `job`) and model, over the last `--window`: the p99 wait for a byte against the applied
read timeout and a proxy's idle timeout, the prefill trend (this window's mean against the window before), the
share of non-streamed calls that waited long enough to be better off streamed, retries per call, and one
recommended change.  Percentiles are interpolated inside histogram buckets exactly as PromQL's
histogram_quantile does, so the report shows what a dashboard would.  Nothing here raises: an unreachable
Prometheus or one without claude-otel data is a FAIL with its reason.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Sequence, Tuple

from .checks import FAIL, PASS, WARN, Result

SDK_DEFAULT_READ_TIMEOUT = 600.0
HEADROOM = 0.5  # a wait above this share of a limit is worth a change
DANGER = 0.9  # ...and above this share the limit is about to cut calls
RETRIES_PER_CALL = 0.5  # the retry-storm threshold of the bundled alert
PREFILL_GROWTH = 1.5  # this window's mean prefill over the previous window's
MODEL, JOB, STREAM = "gen_ai_request_model", "job", "anthropic_request_stream"
GENERATION = 'gen_ai_operation_name=~"chat|text_completion"'
Group = Tuple[str, str]  # (job, model)


def parse_window(text: str) -> float:
    """Returns seconds from '90', '90s', '15m', '2h' or '1d'; raises ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


class Prometheus:
    """A Prometheus HTTP API client (instant queries at one evaluation time)."""

    def __init__(self, url: str, at: Optional[float] = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.at = at
        self.timeout = timeout

    def query(self, promql: str, at: Optional[float] = None) -> List[dict]:
        """Returns the vector a PromQL query gives; raises OSError/ValueError when Prometheus fails."""
        params = {"query": promql}
        when = self.at if at is None else at
        if when is not None:
            params["time"] = f"{when:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=self.timeout) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise ValueError(f"Prometheus answered {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def by(self, promql: str, labels: Sequence[str] = (JOB, MODEL), at: Optional[float] = None) -> Dict[tuple, float]:
        """Returns {label values: value} for a query's finite samples."""
        found = {}
        for sample in self.query(promql, at):
            value = float(sample["value"][1])
            if math.isfinite(value):
                found[tuple(sample["metric"].get(k, "") for k in labels)] = value
        return found

    def buckets(self, metric: str, selector: str, window: str) -> Dict[Group, List[Tuple[float, float]]]:
        """Returns {(job, model): [(le, cumulative count), ...]} of a histogram's increase over the window."""
        found: Dict[Group, List[Tuple[float, float]]] = {}
        promql = f"sum by (job, {MODEL}, le) (increase({metric}_bucket{{{selector}}}[{window}]))"
        for (job, model, le), value in self.by(promql, (JOB, MODEL, "le")).items():
            found.setdefault((job, model), []).append((float(le), value))
        for rows in found.values():
            rows.sort()
        return found


def quantile(q: float, buckets: Optional[List[Tuple[float, float]]]) -> Optional[float]:
    """Returns the q-quantile of cumulative (le, count) buckets as histogram_quantile computes it, or None."""
    if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == math.inf:
                return lower  # Prometheus answers the highest finite bound
            return lower + (le - lower) * (rank - below) / (count - below) if count > below else le
        lower, below = le, count
    return None


def share_above(threshold: float, buckets: Optional[List[Tuple[float, float]]]) -> Optional[float]:
    """Returns the share of observations above threshold, interpolating inside its bucket, or None."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if threshold <= le:
            inside = 0.0 if le == math.inf else (threshold - lower) / (le - lower)
            return max(0.0, min(1.0, 1.0 - (below + (count - below) * inside) / total))
        lower, below = le, count
    return 0.0


def _seconds(value: Optional[float]) -> str:
    """Returns a duration for people: 412 s, 2.04 s, 85 ms."""
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:.0f} ms"


def collect(prom: Prometheus, window: float, read_timeout: Optional[float],
            proxy_idle: Optional[float]) -> Dict[Group, dict]:
    """Returns the measured figures of every (job, model) with calls in the window."""
    w = f"{int(round(window))}s"
    calls = prom.by(f"sum by (job, {MODEL}, {STREAM}) (increase(gen_ai_client_operation_duration_seconds_count"
                    f"{{{GENERATION}}}[{w}]))", (JOB, MODEL, STREAM))
    groups: Dict[Group, dict] = {}
    for (job, model, stream), n in calls.items():
        if n > 0:
            g = groups.setdefault((job, model), {"job": job, "model": model, "calls": 0.0, "streamed_calls": 0.0,
                                                 "non_streamed_calls": 0.0})
            g["calls"] += n
            g["streamed_calls" if stream == "true" else "non_streamed_calls"] += n
    nonstream = f'{GENERATION},{STREAM}="false"'
    waits = prom.buckets("anthropic_client_attempt_duration_seconds", nonstream, w)
    prefill = prom.buckets("anthropic_client_prefill_duration_seconds", GENERATION, w)
    gaps = prom.buckets("anthropic_client_stream_max_gap_seconds", GENERATION, w)
    util = prom.buckets("anthropic_client_timeout_utilization",
                        f'{GENERATION},anthropic_timeout_kind=~"read|proxy_idle"', w)
    wait_sum = prom.by(f"sum by (job, {MODEL}) (increase(anthropic_client_attempt_duration_seconds_sum{{{nonstream}}}"
                       f"[{w}]))")
    util_sum = prom.by(f"sum by (job, {MODEL}) (increase(anthropic_client_timeout_utilization_sum{{{nonstream},"
                       f'anthropic_timeout_kind="read"}}[{w}]))')
    retries = prom.by(f"sum by (job, {MODEL}) (increase(anthropic_client_retries_total{{{GENERATION}}}[{w}]))")
    mean_prefill = (f"sum by (job, {MODEL}) (increase(anthropic_client_prefill_duration_seconds_sum{{{GENERATION}}}"
                    f"[{w}])) / sum by (job, {MODEL}) (increase(anthropic_client_prefill_duration_seconds_count"
                    f"{{{GENERATION}}}[{w}]))")
    prefill_now = prom.by(mean_prefill)
    prefill_before = prom.by(mean_prefill, at=(prom.at if prom.at is not None else _now()) - window)
    for key, g in groups.items():
        wait_buckets = waits.get(key)
        non_streamed_p99 = quantile(0.99, wait_buckets)
        stream_p99 = max((v for v in (quantile(0.99, prefill.get(key)), quantile(0.99, gaps.get(key)))
                          if v is not None), default=None)
        timeout, source = read_timeout, "given"
        if timeout is None and util_sum.get(key) and wait_sum.get(key):
            timeout, source = wait_sum[key] / util_sum[key], "inferred from the utilization"
        if timeout is None:
            timeout, source = SDK_DEFAULT_READ_TIMEOUT, "the SDK default"
        limit = min(timeout, proxy_idle) if proxy_idle else timeout
        p99 = max((v for v in (non_streamed_p99, stream_p99) if v is not None), default=None)
        g.update({
            "read_wait_p99": p99,
            "non_streamed_wait_p99": non_streamed_p99,
            "streamed_wait_p99": stream_p99,
            "read_utilization_p99": quantile(0.99, util.get(key)),
            "read_timeout": timeout,
            "read_timeout_source": source,
            "proxy_idle_timeout": proxy_idle,
            "wait_over_read_timeout": p99 / timeout if p99 is not None else None,
            "wait_over_proxy_idle": p99 / proxy_idle if (p99 is not None and proxy_idle) else None,
            "stream_threshold": HEADROOM * limit,
            "non_streamed_share_to_stream": share_above(HEADROOM * limit, wait_buckets),
            "retries_per_call": retries.get(key, 0.0) / g["calls"],
            "prefill_mean": prefill_now.get(key),
            "prefill_mean_before": prefill_before.get(key),
        })
        before, now = g["prefill_mean_before"], g["prefill_mean"]
        g["prefill_trend"] = now / before if (now is not None and before) else None
    return groups


def _now() -> float:
    import time

    return time.time()


def advise(g: dict) -> Result:
    """Returns one group's verdict, the figures as its reason and the one change recommended first."""
    model, timeout, proxy = g["model"], g["read_timeout"], g["proxy_idle_timeout"]
    findings: List[Tuple[str, str]] = []  # (status, change) in order of priority
    wait, util = g["non_streamed_wait_p99"], g["read_utilization_p99"]
    share = g["non_streamed_share_to_stream"] or 0.0
    limit_text = f"a {_seconds(timeout)} timeout" + (f" and a {_seconds(proxy)} proxy idle timeout" if proxy else "")
    limit = min(timeout, proxy) if proxy else timeout
    if wait is not None and share > 0 and wait >= HEADROOM * limit:
        findings.append((FAIL if wait >= DANGER * limit else WARN,
                         f"stream {model} calls: their longest wait for a byte is {_seconds(wait)} of {limit_text} "
                         f"({share:.0%} of the non-streamed calls waited over {_seconds(g['stream_threshold'])})"))
    streamed = g["streamed_wait_p99"]
    if streamed is not None and proxy and streamed >= HEADROOM * proxy:
        findings.append((FAIL if streamed >= DANGER * proxy else WARN,
                         f"raise the proxy idle timeout above {_seconds(2 * streamed)}: {model} streams wait up to "
                         f"{_seconds(streamed)} for a byte (prefill or a gap), {streamed / proxy:.0%} of its "
                         f"{_seconds(proxy)}"))
    if streamed is not None and streamed >= HEADROOM * timeout:
        findings.append((FAIL if streamed >= DANGER * timeout else WARN,
                         f"raise the read timeout of {model} streams to at least {_seconds(2 * streamed)}: they wait "
                         f"up to {_seconds(streamed)} of {_seconds(timeout)} for a byte"))
    if g["retries_per_call"] > RETRIES_PER_CALL:
        findings.append((WARN, f"cut the retries of {model} calls ({g['retries_per_call']:.2f} per call): spread "
                               "the load or ask for a higher rate limit; each retry waits a backoff"))
    trend = g["prefill_trend"]
    if trend is not None and trend >= PREFILL_GROWTH:
        findings.append((WARN, f"shorten or cache the prompts of {model}: mean prefill grew ×{trend:.1f} "
                               f"({_seconds(g['prefill_mean_before'])} → {_seconds(g['prefill_mean'])}) in one window"))
    parts = [f"{g['calls']:.0f} calls ({g['non_streamed_calls']:.0f} non-streamed)",
             f"p99 wait for a byte {_seconds(g['read_wait_p99'])} of the {_seconds(timeout)} read timeout "
             f"({g['read_timeout_source']})"]
    if util is not None:
        parts.append(f"p99 read utilization {util:.2f}")
    if proxy and g["wait_over_proxy_idle"] is not None:
        parts.append(f"{g['wait_over_proxy_idle']:.0%} of the {_seconds(proxy)} proxy idle timeout")
    if g["non_streamed_calls"]:
        parts.append(f"{share:.0%} of non-streamed calls would be better streamed")
    parts.append(f"{g['retries_per_call']:.2f} retries per call")
    if trend is not None:
        parts.append(f"prefill mean {_seconds(g['prefill_mean_before'])} → {_seconds(g['prefill_mean'])} "
                     f"(×{trend:.2f})")
    data = dict(g, findings=[change for _, change in findings])
    name = f"{g['job']}/{model}"
    if not findings:
        return Result(name, PASS, "; ".join(parts) + "; no change needed", "", data)
    worst = FAIL if any(s == FAIL for s, _ in findings) else WARN
    return Result(name, worst, "; ".join(parts), findings[0][1], data)


def live_checks(url: str, window: float = 3600.0, read_timeout: Optional[float] = None,
                proxy_idle: Optional[float] = None, at: Optional[float] = None) -> List[Result]:
    """Returns a `prometheus` result and one result per (job, model) with calls in the window; never raises."""
    prom = Prometheus(url, at)
    span = f"the last {_seconds(window)}"
    try:
        groups = collect(prom, window, read_timeout, proxy_idle)
    except Exception as exc:  # unreachable, refused, not Prometheus, a query error
        return [Result("prometheus", FAIL, f"could not query {url}: {type(exc).__name__}: {exc}",
                       "give the URL of a Prometheus that scrapes claude-otel (e.g. http://prometheus:9090)",
                       {"url": url})]
    if not groups:
        return [Result("prometheus", FAIL, f"{url} has no claude-otel calls in {span} "
                       "(gen_ai_client_operation_duration_seconds_count)",
                       "check that Prometheus scrapes the /metrics of claude-otel (CLAUDE_OTEL_PROMETHEUS_PORT) or "
                       "widen --window", {"url": url, "window_seconds": window})]
    jobs = sorted({job for job, _ in groups})
    head = Result("prometheus", PASS, f"{url}: {len(groups)} job/model pairs with calls in {span} "
                  f"(jobs: {', '.join(jobs)})", "", {"url": url, "window_seconds": window, "jobs": jobs})
    return [head] + [advise(groups[key]) for key in sorted(groups)]
