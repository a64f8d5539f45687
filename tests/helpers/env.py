"""One environment scrubber for every child process a test starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, Optional

ROOT = Path(__file__).resolve().parents[2]

# Settings a developer's shell (or CI) may carry that would change what the agent, the SDK or an exporter does.
SCRUBBED_PREFIXES = ("OTEL_", "CLAUDE_OTEL_", "ANTHROPIC_")
# ...except the switch that tells nested test runs they are in CI (they must fail, not skip, too).
KEPT = ("CLAUDE_OTEL_CI",)


def clean_env(base_url: Optional[str] = None, drop: Iterable[str] = (), pythonpath: Optional[str] = None,
              **extra) -> Dict[str, str]:
    """Returns os.environ without OTEL_*, CLAUDE_OTEL_* and ANTHROPIC_* settings (and `drop`), with PYTHONPATH set
    to the repository root, ANTHROPIC_OPEN_TELEMETRY=false (the SDK's own tracing off), ANTHROPIC_BASE_URL when
    given, and `extra` (values turned into strings)."""
    dropped = set(drop)
    env = {k: v for k, v in os.environ.items()
           if k not in dropped and (k in KEPT or not k.upper().startswith(SCRUBBED_PREFIXES))}
    env["PYTHONPATH"] = pythonpath if pythonpath is not None else str(ROOT)
    env["ANTHROPIC_OPEN_TELEMETRY"] = "false"
    if base_url is not None:
        env["ANTHROPIC_BASE_URL"] = base_url
    env.update({k: str(v) for k, v in extra.items()})
    return env
