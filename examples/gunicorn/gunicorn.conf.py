# gunicorn settings for the multi-worker example: claude-otel shares metrics through CLAUDE_OTEL_MULTIPROC_DIR.
import os
import tempfile

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "3"))
preload_app = True  # configure() runs once in the master; each forked worker restarts the agent's threads
os.environ.setdefault("CLAUDE_OTEL_MULTIPROC_DIR", tempfile.gettempdir() + "/claude-otel")


def on_starting(server):
    # Runs once in the master before any worker: totals start from zero on every (re)start of the service,
    # not from the files an earlier run left in the shared directory.
    from claude_otel.exporters.multiprocess import clear

    clear(os.environ["CLAUDE_OTEL_MULTIPROC_DIR"])
