"""Quickstart: one line turns claude-otel on; /metrics on :9464 and OTLP if OTEL_EXPORTER_OTLP_ENDPOINT is set.

    claude-otel simulate &                          # or use the real API with ANTHROPIC_API_KEY
    ANTHROPIC_BASE_URL=http://127.0.0.1:8089 CLAUDE_OTEL_PROMETHEUS_PORT=9464 python examples/quickstart.py
"""

import os

import anthropic

import claude_otel

claude_otel.configure(service_name="quickstart")

client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
message = client.messages.create(
    model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "Hello, Claude"}])
print(message.content[0].text)
