"""Optional tools and packages: a missing one skips the test on a developer's machine and fails it in CI."""

from __future__ import annotations

import importlib
import os
import shutil
from typing import NoReturn

import pytest

SETUP_HINT = "bash tests/setup.sh installs it"


def in_ci() -> bool:
    """Returns True under CI (`CI` set and not "0"/"false", or CLAUDE_OTEL_CI=1): .ci/run sets both."""
    ci = os.environ.get("CI", "").strip().lower()
    return (ci not in ("", "0", "false", "no")) or os.environ.get("CLAUDE_OTEL_CI") == "1"


def missing(reason: str) -> NoReturn:
    """Skips the current test with `reason`, or fails it with that reason under CI; never returns."""
    if in_ci():
        pytest.fail(f"{reason} (a skip is a failure in CI)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, hint: str = SETUP_HINT) -> str:
    """Returns the path of the program `name` on PATH; skips (locally) or fails (CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed ({hint})")
    return path


def require_module(name: str, hint: str = SETUP_HINT):
    """Returns the imported module `name`; skips (locally) or fails (CI) when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"the {name} module cannot be imported: {e} ({hint})")


def require(name: str, hint: str = SETUP_HINT):
    """Returns the path of program `name` if on PATH, else the imported module `name`; skips locally or fails in
    CI when neither exists."""
    path = shutil.which(name)
    if path is not None:
        return path
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{name} is neither a program on PATH nor an importable module ({hint})")
