"""A WSGI service for the multi-worker tests: /call makes one SDK call, /metrics serves claude-otel's totals.

configure() runs at import: once in the gunicorn master with --preload (workers are forked from it), else
once per worker.  make_wsgi_app() may be called before or after configure().
"""

import faulthandler
import os
import signal

import anthropic

from claude_otel.exporters.prometheus import make_wsgi_app

# A test that finds a process hung sends this signal for every thread's stack, to the log (gunicorn handles
# the usual signals itself and leaves the real-time ones alone).
DUMP_SIGNAL = signal.SIGRTMIN + 2
faulthandler.register(DUMP_SIGNAL, all_threads=True)

metrics_app = make_wsgi_app()

import claude_otel  # noqa: E402

claude_otel.configure(service_name="wsgi-test", prometheus=True)
client = anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="k", max_retries=2)


def app(environ, start_response):
    """Serves /call (one SDK call), /metrics (with the serving worker's pid in x-served-by-pid) and / (the pid)."""
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        def with_pid(status, headers, *exc_info):
            return start_response(status, list(headers) + [("x-served-by-pid", str(os.getpid()))], *exc_info)

        return metrics_app(environ, with_pid)
    if path == "/call":
        client.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    start_response("200 OK", [("content-type", "text/plain")])
    return [str(os.getpid()).encode()]
