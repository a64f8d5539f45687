"""Zero code: this app never imports claude_otel. Run it with either launcher:

    opentelemetry-instrument --traces_exporter otlp --metrics_exporter otlp python examples/zero_code.py
    claude-otel run -- python examples/zero_code.py        # also serves /metrics with CLAUDE_OTEL_PROMETHEUS_PORT
"""

import os

import anthropic

client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
reply = client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "Hi"}])
print(reply.content[0].text)
