"""A WSGI service under gunicorn with several workers; /metrics reports the totals of all of them.

    CLAUDE_OTEL_MULTIPROC_DIR=/tmp/claude-otel ANTHROPIC_BASE_URL=http://127.0.0.1:8089 \
        gunicorn -c examples/gunicorn/gunicorn.conf.py app:app --chdir examples/gunicorn
"""

import os

import anthropic

import claude_otel
from claude_otel.exporters.prometheus import make_wsgi_app

claude_otel.configure(service_name="gunicorn-example", prometheus=True)
client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
metrics = make_wsgi_app()


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/metrics":
        return metrics(environ, start_response)
    reply = client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                   messages=[{"role": "user", "content": "Hi"}])
    start_response("200 OK", [("content-type", "text/plain")])
    return [reply.content[0].text.encode()]
