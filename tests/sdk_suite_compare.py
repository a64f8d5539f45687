"""Compares the plain and the instrumented run of the SDK's own suite (tests/sdk_suite.sh), test id by test id.

    python tests/sdk_suite_compare.py plain.json instrumented.json tests/sdk_suite_expected.txt agent-errors

The outcome files are written by tests/sdk_suite_common.py (with `<file>.deselected` beside each).  The expected
file lists the differences that are expected, one a line: `<test id> | <reason>`; `#` starts a comment line.
Exits 1 on a difference that is not listed, on a listed one that no longer occurs, on deselected sets that differ,
or on any line in the agent's error files (`<agent-errors>.<worker>`) but those of a listed test, whose
difference they are part of (it makes OpenTelemetry's functions raise, and the agent logs what it caught).
"""

from __future__ import annotations

import collections
import glob
import json
import sys


def counts(outcomes: dict) -> str:
    """`N passed, M failed, ...` in a fixed order, zero counts left out."""
    tally = collections.Counter(outcomes.values())
    order = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    return ", ".join(f"{tally[name]} {name}" for name in order if tally[name]) or "no tests"


def read_expected(path: str) -> dict:
    """The expected differences: test id -> reason."""
    expected = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test_id, sep, reason = line.partition(" | ")
            if not sep or not reason.strip():
                raise SystemExit(f"{path}:{number}: expected `<test id> | <reason>`, got {line!r}")
            expected[test_id.strip()] = reason.strip()
    return expected


def main(plain_path: str, instrumented_path: str, expected_path: str, errors_prefix: str) -> int:
    with open(plain_path, encoding="utf-8") as f:
        plain = json.load(f)
    with open(instrumented_path, encoding="utf-8") as f:
        instrumented = json.load(f)
    deselected = []
    for path in (plain_path, instrumented_path):
        try:
            with open(f"{path}.deselected", encoding="utf-8") as f:
                deselected.append(set(f.read().split("\n")) - {""})
        except FileNotFoundError:
            deselected.append(set())
    expected = read_expected(expected_path)
    problems = 0

    print(f"sdk-suite plain:        {counts(plain)}, {len(deselected[0])} deselected")
    print(f"sdk-suite instrumented: {counts(instrumented)}, {len(deselected[1])} deselected")
    if deselected[0] != deselected[1]:
        print(f"!! the runs deselected different tests: {sorted(deselected[0] ^ deselected[1])[:20]}")
        problems += 1

    differing = {}
    for test_id in sorted(set(plain) | set(instrumented)):
        before, after = plain.get(test_id, "absent"), instrumented.get(test_id, "absent")
        if before != after:
            differing[test_id] = (before, after)
    print(f"sdk-suite differences: {len(differing)} ({sum(t in expected for t in differing)} expected)")
    for test_id, (before, after) in differing.items():
        if test_id in expected:
            print(f"   expected    {test_id}: {before} -> {after} ({expected[test_id]})")
        else:
            print(f"!! UNEXPECTED {test_id}: {before} -> {after}")
            problems += 1
    for test_id, reason in expected.items():
        if test_id not in differing:
            outcome = plain.get(test_id, "absent")
            print(f"!! NO LONGER DIFFERS (remove it from {expected_path}): {test_id}: {outcome} in both ({reason})")
            problems += 1

    errors, explained = [], collections.Counter()
    for path in sorted(glob.glob(f"{errors_prefix}.*")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                test_id = line.partition("\t")[0]
                if test_id in expected:
                    # A listed test that makes OpenTelemetry's own functions raise: the agent catches and logs it.
                    explained[test_id] += 1
                elif line.strip():
                    errors.append(line.rstrip("\n"))
    for test_id, count in sorted(explained.items()):
        print(f"   expected    {count} agent error(s) logged in {test_id} (listed above)")
    print(f"sdk-suite agent errors: {len(errors)}")
    for line in errors[:50]:
        print(f"!! {line}")
    if len(errors) > 50:
        print(f"!! ... and {len(errors) - 50} more")
    problems += len(errors)

    print("sdk-suite: OK" if not problems else f"sdk-suite: FAILED ({problems} problem(s))")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
