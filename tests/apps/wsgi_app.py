"""A WSGI service for the multi-worker test: /call makes one SDK call, /metrics serves claude-otel's totals."""

import os

import anthropic

import claude_otel
from claude_otel.exporters.prometheus import make_wsgi_app

claude_otel.configure(service_name="wsgi-test", prometheus=True)
metrics_app = None
client = anthropic.Anthropic(base_url=os.environ["ANTHROPIC_BASE_URL"], api_key="k", max_retries=2)


def app(environ, start_response):
    global metrics_app
    path = environ.get("PATH_INFO", "/")
    if path == "/metrics":
        if metrics_app is None:
            metrics_app = make_wsgi_app()
        return metrics_app(environ, start_response)
    if path == "/call":
        client.messages.create(model="claude-x", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    start_response("200 OK", [("content-type", "text/plain")])
    return [str(os.getpid()).encode()]
