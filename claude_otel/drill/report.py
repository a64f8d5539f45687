"""The drill's account: the timeline of phases, first failures and alert arrivals, the verdict, text and JSON.

Times are drill seconds (0 = the first call) and, for alerts, seconds relative to the first timeout the
application saw: negative is lead time, the warning came that long before anything timed out.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

from .ramp import Ramp
from .webhook import Arrival

HEADROOM_ALERTS = ("ClaudeRequestsNearTimeout", "ClaudeRequestsVeryNearTimeout")
TIMEOUT_PHASE = "timeouts"


def alert_row(arrival: Arrival, ramp: Ramp, first_timeout: Optional[float]) -> Dict[str, object]:
    """Returns one alert's timeline entry: name, severity, where, the timeout kind and cause it named, when."""
    labels, notes = arrival.labels, arrival.annotations
    return {
        "alert": arrival.name,
        "severity": arrival.severity,
        "receiver": arrival.receiver,
        "model": labels.get("gen_ai_request_model", ""),
        "stream": labels.get("anthropic_request_stream", notes.get("stream", "")),
        # the headroom alerts carry the kind of timeout approached as a label; the others name in an annotation
        # the phase of the attempts that timed out
        "timeout_kind": labels.get("anthropic_timeout_kind") or notes.get("timeout_kind", ""),
        "cause": notes.get("cause", ""),
        "error_type": labels.get("error_type", ""),
        "at_s": round(arrival.at, 2),
        "relative_to_first_timeout_s": None if first_timeout is None else round(arrival.at - first_timeout, 2),
        "phase": ramp.phases[ramp.index_at(arrival.at)].name,
        "resolved_at_s": None if arrival.resolved_at is None else round(arrival.resolved_at, 2),
        "summary": notes.get("summary", ""),
        "annotations": dict(notes),
    }


def verdict(rows: List[Dict[str, object]], ramp: Ramp, first_timeout: Optional[float], healthy: bool,
            rules: Dict[str, object]) -> Dict[str, object]:
    """Returns the checks the drill makes of its own run and whether all passed.

    Both modes: Prometheus loaded alert rules and every rule evaluated without error (a broken rule never fires).
    Incident: a headroom warning reached the webhook before the first timeout, a page came during the timeout
    phase, and its cause annotation names the cause that phase injected.  Healthy: nothing paged.
    """
    pages = [r for r in rows if r["severity"] == "critical"]
    rules_ok = {"alert rules loaded and evaluated without error": bool(rules.get("alert_rules"))
                and not rules.get("errors")}
    if healthy:
        checks = {**rules_ok, "no page": not pages}
        return {"passed": all(checks.values()), "checks": checks, "pages": len(pages), "alerts": len(rows)}
    warnings = [r for r in rows if r["alert"] in HEADROOM_ALERTS]
    warning = warnings[0] if warnings else None
    lead = None
    if warning is not None and first_timeout is not None:
        lead = round(first_timeout - float(warning["at_s"]), 2)
    index = next(i for i, p in enumerate(ramp.phases) if p.name == TIMEOUT_PHASE)
    injected = ramp.phases[index].injects or ""
    page = pages[0] if pages else None
    checks = {
        **rules_ok,
        "headroom warning before the first timeout": lead is not None and lead > 0,
        "page during the timeout phase": page is not None and float(page["at_s"]) >= ramp.starts[index],
        f"page names the injected cause ({injected})": page is not None and str(page["cause"]).startswith(injected),
    }
    return {"passed": all(checks.values()), "checks": checks, "warning": warning and warning["alert"],
            "warning_lead_s": lead, "page": page and page["alert"], "page_at_s": page and page["at_s"],
            "page_relative_to_first_timeout_s": page and page["relative_to_first_timeout_s"],
            "page_cause": page and page["cause"], "page_timeout_kind": page and page["timeout_kind"],
            "injected_cause": injected}


def document(mode: str, ramp: Ramp, rows: List[Dict[str, object]], first: Dict[str, float],
             first_detail: Dict[str, str], outcomes: Dict[int, Dict[str, Dict[str, int]]],
             stack: Dict[str, object], judged: Optional[Dict[str, object]], exit_code: int,
             interrupted: bool) -> Dict[str, object]:
    """Returns the --json document: phases, first failures, calls per phase, alerts, stack, verdict, exit code."""
    return {
        "mode": mode,
        "phases": [{"name": p.name, "title": p.title, "start_s": round(s, 2), "injects": p.injects}
                   for p, s in zip(ramp.phases, ramp.starts)],
        "first_timeout_s": _round(first.get("timeout")),
        "first_timeout": first_detail.get("timeout"),
        "first_connection_error_s": _round(first.get("connection_error")),
        "first_connection_error": first_detail.get("connection_error"),
        "calls": {ramp.phases[i].name: kinds for i, kinds in sorted(outcomes.items())},
        "alerts": rows,
        "stack": stack,
        "verdict": judged,
        "interrupted": interrupted,
        "exit_code": exit_code,
    }


def _round(value: Optional[float]) -> Optional[float]:
    """Returns value rounded to 10 ms, or None."""
    return None if value is None else round(value, 2)


def _short(text: object) -> str:
    """Returns an annotation in brief: "none: no call failed ..." -> "none", "client_read_timeout (100% of the
    timed-out calls in the last 1h)" -> "client_read_timeout (100%)"."""
    value = str(text)
    if value.startswith("none:"):
        return "none"
    match = re.match(r"^(\S+) \((\S+%) of ", value)
    return f"{match.group(1)} ({match.group(2)})" if match else value


def alert_line(row: Dict[str, object]) -> str:
    """Returns one alert as a line of the live log and the timeline (without its time): severity, name, where,
    the timeout kind and the cause it named (in brief; the JSON has the annotations in full)."""
    stream = str(row["stream"]).split(" ", 1)[0]  # "any (the alert is per job and model)" -> "any"
    where = f"{row['model']} stream={stream}" if row["model"] else ""
    line = (f"{row['severity']:8} {row['alert']:30} {where:30} kind {_short(row['timeout_kind']) or '-':10} "
            f"cause {_short(row['cause']) or '-'}")
    return line + (f", error {row['error_type']}" if row["error_type"] else "")


def timeline_text(ramp: Ramp, rows: List[Dict[str, object]], first: Dict[str, float],
                  first_detail: Dict[str, str]) -> str:
    """Returns the timeline: phase starts, first failures and alert arrivals relative to the first timeout."""
    zero = first.get("timeout")
    entries = [(s, f"phase {i + 1}: {p.title}") for i, (p, s) in enumerate(zip(ramp.phases, ramp.starts))]
    for outcome, label in (("connection_error", "first connection error"), ("timeout", "FIRST TIMEOUT")):
        if outcome in first:
            entries.append((first[outcome], f"{label}: {first_detail.get(outcome, '')}"[:150]))
    entries += [(float(r["at_s"]), alert_line(r)) for r in rows]
    entries.sort(key=lambda e: e[0])
    if zero is None:
        head = "timeline (drill seconds; no call timed out)"
        lines = [f"  t={at:6.1f} s  {text}" for at, text in entries]
    else:
        head = f"timeline (seconds relative to the first timeout at t={zero:.1f} s; negative = before it)"
        lines = [f"  {at - zero:+7.1f} s  {text}" for at, text in entries]
    return "\n".join([head] + lines)


def verdict_text(judged: Optional[Dict[str, object]], interrupted: bool = False) -> str:
    """Returns the verdict as lines: each check PASS/FAIL, then the lead time and the page."""
    if interrupted:
        return "verdict: none (stopped by Ctrl-C before the end)"
    if judged is None:
        return "verdict: none (no Prometheus and Alertmanager: no alerts to judge)"
    lines = [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in judged["checks"].items()]
    if judged.get("warning_lead_s") is not None:
        lines.append(f"  {judged['warning']} reached the webhook {judged['warning_lead_s']:.1f} s before the "
                     "first timeout")
    if judged.get("page"):
        relative = judged.get("page_relative_to_first_timeout_s")
        when = f"{relative:+.1f} s from the first timeout" if relative is not None else f"t={judged['page_at_s']} s"
        lines.append(f"  {judged['page']} paged at {when}: cause {judged['page_cause']}; timeout kind "
                     f"{judged['page_timeout_kind']}")
    return "\n".join([f"verdict: {'PASS' if judged['passed'] else 'FAIL'}"] + lines)
