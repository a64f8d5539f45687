"""A snapshot: the agent's metrics as plain data, which worker processes can merge and share as JSON.

    {name: {"type": counter|gauge|histogram, "help": str, "agg": sum|last,
            "samples": {labels_key: sample}}}

where labels_key is a tuple of (label, value) pairs and a sample is

    counter/gauge: {"value": float, "time": ns}
    histogram:     {"bounds": [...], "counts": [...], "sum": float, "max": float,
                    "exemplars": {bucket_index: [trace_id, span_id, value, ns]}}

`merge()` sums counters and histograms and sums or takes the newest gauge
values; `write_file()` / `read_file()` are the multi-process directory's file
format (`encode()` / `decode()` its JSON form).
"""

from __future__ import annotations

import json
import math
import os
from typing import Dict, Iterable

from opentelemetry.sdk.metrics.export import Gauge, Sum
from opentelemetry.sdk.metrics.export import Histogram as HistogramData

from .naming import label_name, label_value, metric_name


def snapshot(metrics_data) -> Dict[str, dict]:
    """Returns the plain-data snapshot of an OpenTelemetry MetricsData (cumulative)."""
    families: Dict[str, dict] = {}
    if metrics_data is None:
        return families
    for rm in metrics_data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                data = metric.data
                name = metric_name(metric.name, metric.unit)
                if isinstance(data, HistogramData):
                    kind, agg = "histogram", "sum"
                elif isinstance(data, Sum):
                    kind = "counter" if data.is_monotonic else "gauge"
                    agg = "sum"
                elif isinstance(data, Gauge):
                    kind, agg = "gauge", "last"
                else:
                    continue
                family = families.setdefault(name, {"type": kind, "help": metric.description or metric.name,
                                                    "agg": agg, "samples": {}})
                for point in data.data_points:
                    key = tuple(sorted((label_name(k), label_value(v)) for k, v in point.attributes.items()))
                    if kind == "histogram":
                        family["samples"][key] = {
                            "bounds": list(point.explicit_bounds), "counts": list(point.bucket_counts),
                            "sum": point.sum, "max": _finite(point.max), "exemplars": _exemplars(point),
                        }
                    else:
                        family["samples"][key] = {"value": point.value, "time": point.time_unix_nano}
    return families


def _finite(value) -> float:
    """Returns value, or 0.0 when the SDK reports none (None or an infinite placeholder)."""
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


def _exemplars(point) -> Dict[int, list]:
    """Returns {bucket index: [trace_id, span_id, value, time_ns]} for a histogram point's sampled exemplars."""
    found: Dict[int, list] = {}
    bounds = point.explicit_bounds
    for exemplar in getattr(point, "exemplars", None) or ():
        if not exemplar.trace_id:
            continue
        index = len(bounds)
        for i, bound in enumerate(bounds):
            if exemplar.value <= bound:
                index = i
                break
        found[index] = [format(exemplar.trace_id, "032x"), format(exemplar.span_id, "016x"), exemplar.value,
                        exemplar.time_unix_nano]
    return found


def merge(snapshots: Iterable[Dict[str, dict]]) -> Dict[str, dict]:
    """Returns one snapshot summing counters and histograms, summing or taking the newest gauge values."""
    merged: Dict[str, dict] = {}
    for snap in snapshots:
        for name, family in snap.items():
            target = merged.setdefault(name, {"type": family["type"], "help": family["help"], "agg": family["agg"],
                                              "samples": {}})
            for key, sample in family["samples"].items():
                key = tuple(tuple(pair) for pair in key)
                have = target["samples"].get(key)
                if have is None:
                    target["samples"][key] = _copy(sample)
                elif family["type"] == "histogram":
                    if have["bounds"] == sample["bounds"]:
                        have["counts"] = [a + b for a, b in zip(have["counts"], sample["counts"])]
                        have["sum"] += sample["sum"]
                        have["max"] = max(have.get("max") or 0.0, sample.get("max") or 0.0)
                        for index, ex in sample["exemplars"].items():
                            index = int(index)
                            if index not in have["exemplars"] or ex[3] > have["exemplars"][index][3]:
                                have["exemplars"][index] = list(ex)
                elif family["agg"] == "last":
                    if sample["time"] > have["time"]:
                        target["samples"][key] = _copy(sample)
                else:
                    have["value"] += sample["value"]
    return merged


def _copy(sample: dict) -> dict:
    """Returns a copy of a sample that merging can change without touching the original."""
    copied = dict(sample)
    if "counts" in sample:
        copied["counts"] = list(sample["counts"])
        copied["exemplars"] = {int(k): list(v) for k, v in sample["exemplars"].items()}
    return copied


def encode(snap: Dict[str, dict]) -> dict:
    """Returns a JSON-ready form of a snapshot (label keys become lists)."""
    return {name: dict(family, samples=[[list(map(list, key)), sample] for key, sample in family["samples"].items()])
            for name, family in snap.items()}


def decode(data: dict) -> Dict[str, dict]:
    """Returns the snapshot of encode()'s output."""
    return {name: dict(family, samples={tuple(tuple(p) for p in key): sample for key, sample in family["samples"]})
            for name, family in data.items()}


def read_file(path: str) -> Dict[str, dict]:
    """Returns the snapshot in a file write_file() wrote; raises for a missing or malformed file."""
    with open(path) as f:
        return decode(json.load(f)["families"])


def write_file(path: str, snap: Dict[str, dict], pid: int) -> None:
    """Writes the snapshot of process `pid` to path atomically (a temporary file, then os.replace)."""
    tmp = f"{path}.{pid}.tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": pid, "families": encode(snap)}, f, separators=(",", ":"))
    os.replace(tmp, path)
