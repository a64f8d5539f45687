"""Prometheus names for OpenTelemetry metrics and attributes, by the OpenTelemetry-to-Prometheus rules.

Dots become underscores, unit "s" adds `_seconds` (also an OpenMetrics UNIT
line), unit "1" and `{...}` annotations add nothing, counters get `_total`,
up-down counters and gauges keep the plain name, boolean attribute values are
"true"/"false".
"""

from __future__ import annotations

import re
from typing import Tuple

_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "%": "percent"}


def metric_name(name: str, unit: str) -> str:
    """Returns the Prometheus name of an OpenTelemetry metric (without _total / _bucket suffixes)."""
    base = _INVALID.sub("_", name)
    suffix = _UNITS.get(unit or "", "")
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def label_name(key: str) -> str:
    """Returns a Prometheus label name for an attribute key."""
    name = _INVALID.sub("_", key).replace(":", "_")
    return "_" + name if name[:1].isdigit() else name


def label_value(value: object) -> str:
    """Returns a label value: booleans as true/false, sequences joined, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(label_value(v) for v in value)
    return str(value)


def unit_of(name: str) -> str:
    """Returns the OpenMetrics unit a Prometheus name ends with ("seconds", ...), or ""."""
    for unit in _UNITS.values():
        if name.endswith("_" + unit):
            return unit
    return ""


def exposition_name(name: str, unit: str, kind: str) -> Tuple[str, ...]:
    """Returns the series names one OpenTelemetry metric produces in the exposition (documentation and tests)."""
    base = metric_name(name, unit)
    if kind == "counter":
        return (base + "_total",)
    if kind == "histogram":
        return (base + "_bucket", base + "_sum", base + "_count")
    return (base,)
