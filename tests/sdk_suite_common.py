"""A pytest plugin loaded in BOTH runs of the anthropic SDK's own test suite by tests/sdk_suite.sh.

It does two things, identically in the plain and the instrumented run:

- deselects the tests that need the SDK's mock API server (Steady, an npm tool, on 127.0.0.1:4010 unless
  TEST_API_BASE_URL says otherwise).  The SDK's `./scripts/test` starts it; it is not in the sdist and not on
  PyPI, so those tests cannot run here.  They are the generated tests of tests/api_resources/ that take the
  `client` or `async_client` fixture without mocking HTTP with `respx_mock` (their `test_path_params_*` tests
  send nothing and still run).  Also tests/test_detect_breaking_changes.py, which runs the SDK repository's
  scripts/detect-breaking-changes.py: scripts/ is not in the sdist either.
- records one outcome per test id (passed, failed, error, skipped, xfailed, xpassed) as JSON in the file named
  by SDK_SUITE_OUTCOMES, from the controller process only (with xdist, the workers' reports reach it), and the
  deselected test ids, one a line, in that name + ".deselected".
"""

from __future__ import annotations

import json
import os

import pytest

NOT_IN_SDIST = ("tests/test_detect_breaking_changes.py",)

_OUTCOMES: dict = {}


def cannot_run_here(item) -> bool:
    """Whether a test needs the mock API server (or another part of the repository the sdist lacks): see the
    module docstring for the rule."""
    if item.nodeid.startswith(NOT_IN_SDIST):
        return True
    path = str(getattr(item, "path", "") or item.nodeid).replace(os.sep, "/")
    if "/tests/api_resources/" not in f"/{item.nodeid}" and "/tests/api_resources/" not in path:
        return False
    names = set(getattr(item, "fixturenames", ()) or ())
    if "respx_mock" in names or not names & {"client", "async_client"}:
        return False
    return not getattr(item, "originalname", item.name).startswith("test_path_params")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Deselects the tests that cannot run here (the same rule in both runs)."""
    kept, dropped = [], []
    for item in items:
        (dropped if cannot_run_here(item) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    # With xdist the workers collect, not the controller: every worker writes the same list, atomically.
    target = os.environ.get("SDK_SUITE_OUTCOMES")
    if target:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(f"{target}.deselected.{worker}", "w", encoding="utf-8") as out:
            out.write("".join(f"{item.nodeid}\n" for item in dropped))
        os.replace(f"{target}.deselected.{worker}", f"{target}.deselected")


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def pytest_runtest_logreport(report) -> None:
    """Folds each phase's report into the test's outcome (a failed phase wins over a passed one)."""
    nodeid = report.nodeid
    previous = _OUTCOMES.get(nodeid)
    if hasattr(report, "wasxfail"):
        outcome = "xfailed" if report.skipped else "xpassed"
    elif report.failed:
        outcome = "failed" if report.when == "call" else "error"
    elif report.skipped:
        outcome = "skipped"
    else:
        outcome = "passed"
    rank = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 2, "failed": 3, "error": 4}
    if previous is None or rank[outcome] > rank[previous]:
        _OUTCOMES[nodeid] = outcome


def pytest_sessionfinish(session) -> None:
    """Writes the outcomes (controller only)."""
    target = os.environ.get("SDK_SUITE_OUTCOMES")
    if not target or _is_worker(session.config):
        return
    with open(target, "w", encoding="utf-8") as out:
        json.dump(_OUTCOMES, out, indent=0, sort_keys=True)
