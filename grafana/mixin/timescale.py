"""Rules for a fire drill: the recording rules and alerts with every window and `for` divided by a factor."""

from __future__ import annotations

import re
from typing import Dict, List

from .alerts import alert_groups
from .outputs import HEADER, dump_yaml
from .promql import seconds
from .recording import recording_groups

DURATION = re.compile(r"\[(\d+)([smhdw])\]")


def scaled_duration(window: str, factor: float) -> str:
    """Returns a Prometheus duration divided by factor, in whole seconds (at least 1s): "15m" / 60 -> "15s"."""
    return f"{max(1, round(seconds(window) / factor))}s"


def time_scaled(groups: List[dict], factor: float) -> List[dict]:
    """Returns rule groups with every range window ([5m]), `for` and duration in a template divided by factor."""
    # The drill runs an incident in minutes: its Prometheus loads the rules generated from the same THRESHOLDS
    # with windows scaled (a 1 h burn-rate window of 60 s at factor 60). Thresholds and ratios are unchanged;
    # rule names and annotation text still say "5m", "1h".
    def scale(text: str) -> str:
        """Returns text with every [window] scaled."""
        return DURATION.sub(lambda m: "[" + scaled_duration(m.group(1) + m.group(2), factor) + "]", text)

    out = []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            rule = dict(rule, expr=scale(rule["expr"]))
            if "for" in rule:
                rule["for"] = scaled_duration(rule["for"], factor)
            if "annotations" in rule:
                rule["annotations"] = {k: scale(v) for k, v in rule["annotations"].items()}
            rules.append(rule)
        out.append(dict(group, rules=rules))
    return out


def scaled_rule_files(factor: float) -> Dict[str, str]:
    """Returns {file name: text} of the recording rules and alerts with windows divided by factor."""
    note = f"# Time-scaled for claude-otel drill: every window and `for` divided by {factor:g}.\n"
    return {
        "claude-otel.rules.yml": HEADER + note + dump_yaml({"groups": time_scaled(recording_groups(), factor)}),
        "claude-otel.alerts.yml": HEADER + note + dump_yaml({"groups": time_scaled(alert_groups(), factor)}),
    }
