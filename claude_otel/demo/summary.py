"""Per-model figures for the demo's table, read from the agent's own metrics (one source of truth).

The input is a snapshot of the agent's MeterProvider taken by the same reader
that serves /metrics (`Handle.reader.snapshot()`), so the table and a scrape
can never disagree: nothing here counts calls on its own.  Percentiles are
estimated from the histogram buckets the way Prometheus' histogram_quantile()
does (linear interpolation inside the bucket), capped at the largest value
recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..exporters.prometheus import merge

MODEL = "gen_ai_request_model"


@dataclass
class Row:
    model: str
    requests: int = 0
    errors: int = 0
    timeouts: int = 0
    retries: int = 0
    p50: Optional[float] = None
    p95: Optional[float] = None
    ttft: Optional[float] = None
    prefill: Optional[float] = None
    max_util: Optional[float] = None


def quantile(q: float, bounds: List[float], counts: List[int]) -> Optional[float]:
    """Returns the q-quantile interpolated in histogram buckets as Prometheus does, or None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    running = 0
    lower = 0.0
    for i, count in enumerate(counts):
        upper = bounds[i] if i < len(bounds) else math.inf
        if running + count >= rank and count > 0:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - running) / count
        running += count
        lower = upper if not math.isinf(upper) else lower
    return lower


def _by_model(snap: Dict[str, dict], name: str) -> Dict[str, List[dict]]:
    found: Dict[str, List[dict]] = {}
    for key, sample in snap.get(name, {}).get("samples", {}).items():
        labels = dict(key)
        found.setdefault(labels.get(MODEL, "?"), []).append(dict(sample, labels=labels))
    return found


def _merged_hist(samples: List[dict]):
    bounds = samples[0]["bounds"]
    counts = [0] * len(samples[0]["counts"])
    top = 0.0
    for s in samples:
        if s["bounds"] == bounds:
            counts = [a + b for a, b in zip(counts, s["counts"])]
            top = max(top, s.get("max") or 0.0)
    return bounds, counts, top


def rows(snapshot: Dict[str, dict]) -> List[Row]:
    """Returns one Row per model from a metrics snapshot (see exporters.prometheus.snapshot)."""
    snap = merge([snapshot])
    table: Dict[str, Row] = {}

    def row(model):
        return table.setdefault(model, Row(model))

    for model, samples in _by_model(snap, "gen_ai_client_operation_duration_seconds").items():
        r = row(model)
        bounds, counts, top = _merged_hist(samples)
        r.requests = sum(counts)
        r.errors = sum(sum(s["counts"]) for s in samples if s["labels"].get("error_type"))
        r.p50, r.p95 = _capped(quantile(0.5, bounds, counts), top), _capped(quantile(0.95, bounds, counts), top)
    for model, samples in _by_model(snap, "anthropic_client_timeouts").items():
        row(model).timeouts = int(sum(s["value"] for s in samples))
    for model, samples in _by_model(snap, "anthropic_client_retries").items():
        row(model).retries = int(sum(s["value"] for s in samples))
    for name, attr in (("gen_ai_client_operation_time_to_first_chunk_seconds", "ttft"),
                       ("anthropic_client_prefill_duration_seconds", "prefill")):
        for model, samples in _by_model(snap, name).items():
            bounds, counts, top = _merged_hist(samples)
            setattr(row(model), attr, _capped(quantile(0.5, bounds, counts), top))
    for model, samples in _by_model(snap, "anthropic_client_timeout_utilization").items():
        row(model).max_util = _merged_hist(samples)[2]
    return sorted(table.values(), key=lambda r: r.model)


def _capped(value: Optional[float], top: float) -> Optional[float]:
    return value if value is None or not top else min(value, top)


def totals(all_rows: List[Row]) -> Row:
    """Returns the counts summed over every model (percentiles are per model only)."""
    total = Row("all models")
    for r in all_rows:
        total.requests += r.requests
        total.errors += r.errors
        total.timeouts += r.timeouts
        total.retries += r.retries
        if r.max_util is not None:
            total.max_util = max(total.max_util or 0.0, r.max_util)
    return total


def _fmt(value: Optional[float], unit: str = "s") -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{value * 100:.0f}%"
    return f"{value:.2f}s"


HEADER = ("model", "requests", "errors", "timeouts", "retries", "p50", "p95", "ttft p50", "prefill p50",
          "max util")


def table(all_rows: List[Row]) -> str:
    """Returns the rows as a fixed-width text table."""
    lines = [tuple(HEADER)]
    for r in all_rows:
        lines.append((r.model, str(r.requests), str(r.errors), str(r.timeouts), str(r.retries), _fmt(r.p50),
                      _fmt(r.p95), _fmt(r.ttft), _fmt(r.prefill), _fmt(r.max_util, "%")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = []
    for n, line in enumerate(lines):
        out.append("  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(line)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
