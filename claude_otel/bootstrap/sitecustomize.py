"""Loaded by `claude-otel run` through PYTHONPATH: configures claude-otel before the application starts."""

import importlib.util
import os
import sys


def _configure():
    try:
        import claude_otel

        claude_otel.configure()
    except Exception as exc:  # the application must start regardless
        sys.stderr.write(f"claude-otel: could not configure ({exc}); the application runs uninstrumented\n")


def _chain():
    # An application's own sitecustomize further down the path still runs.
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or ".") == here:
            continue
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_app_sitecustomize", candidate)
            if spec and spec.loader:
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


_configure()
_chain()
