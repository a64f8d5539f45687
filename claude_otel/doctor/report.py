"""The doctor's output: a text report for people, JSON for machines, and the exit code (worst verdict wins)."""

from __future__ import annotations

import json
from typing import Dict, List

from .checks import FAIL, PASS, SKIP, WARN, Result

EXIT = {PASS: 0, SKIP: 0, WARN: 1, FAIL: 2}
COLOR = {PASS: "\x1b[32m", WARN: "\x1b[33m", FAIL: "\x1b[31m", SKIP: "\x1b[2m"}
RESET = "\x1b[0m"
NAME_WIDTH = 15


def exit_code(results: List[Result]) -> int:
    """Returns 0 when every check passed (or was skipped), 1 with a warning, 2 with a failure."""
    return max((EXIT.get(r.status, 2) for r in results), default=0)


def counts(results: List[Result]) -> Dict[str, int]:
    """Returns how many checks ended with each verdict."""
    found = {PASS: 0, WARN: 0, FAIL: 0, SKIP: 0}
    for r in results:
        found[r.status] = found.get(r.status, 0) + 1
    return found


def _wrap(text: str, width: int, indent: str) -> List[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False) or [
        indent]


def render(results: List[Result], color: bool = False, width: int = 110, header: str = "") -> str:
    """Returns the human-readable report: one verdict a check, its reason, and the fix when it did not pass."""
    pad = " " * (6 + NAME_WIDTH + 1)
    lines = [header, ""] if header else []
    for r in results:
        status = f"{COLOR.get(r.status, '')}{r.status:4}{RESET}" if color else f"{r.status:4}"
        body = _wrap(r.reason, width, pad)
        lines.append(f"{status}  {r.name:{NAME_WIDTH}} {body[0].lstrip()}")
        lines.extend(body[1:])
        if r.fix and r.status in (WARN, FAIL):
            lines.extend(_wrap("fix: " + r.fix, width, pad))
    n = counts(results)
    code = exit_code(results)
    verdict = {0: "all passed", 1: "warnings", 2: "failures"}[code]
    parts = [f"{n[PASS]} passed", f"{n[WARN]} warning{'s' if n[WARN] != 1 else ''}",
             f"{n[FAIL]} failed"] + ([f"{n[SKIP]} skipped"] if n[SKIP] else [])
    lines.append("")
    lines.append(f"{len(results)} checks: {', '.join(parts)} ({verdict}; exit code {code})")
    return "\n".join(lines)


def to_json(results: List[Result], **context) -> str:
    """Returns the JSON report: {"checks": [...], "summary": {...}, "exit_code": n, ...context}."""
    n = counts(results)
    document = dict(context)
    document.update({
        "checks": [r.as_dict() for r in results],
        "summary": {"pass": n[PASS], "warn": n[WARN], "fail": n[FAIL], "skip": n[SKIP]},
        "exit_code": exit_code(results),
    })
    return json.dumps(document, indent=2, default=str)
