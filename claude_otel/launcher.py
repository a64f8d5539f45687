"""`claude-otel run -- program args...`: start a program with claude-otel configured before its first line."""

from __future__ import annotations

import os
import shutil
import sys
from typing import List

BOOTSTRAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")


def environment(env=None) -> dict:
    """Returns the environment for the program: the bootstrap directory first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    parts = [BOOTSTRAP] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def run(argv: List[str]) -> int:
    """Replaces this process with the program (so its exit code is the program's); returns 2 on a usage error."""
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        sys.stderr.write("usage: claude-otel run -- program [args...]\n")
        return 2
    program = shutil.which(argv[0]) or argv[0]
    try:
        os.execvpe(program, argv, environment())
    except OSError as exc:
        sys.stderr.write(f"claude-otel run: cannot start {argv[0]!r}: {exc}\n")
        return 127
    return 0  # pragma: no cover - exec does not return
