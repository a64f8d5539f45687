"""Quickstart: one line turns claude-otel on.

    claude-otel simulate &                    # a local API; or use the real one with ANTHROPIC_API_KEY
    ANTHROPIC_BASE_URL=http://127.0.0.1:8089 CLAUDE_OTEL_PROMETHEUS_PORT=9464 python examples/quickstart.py

configure() reads the environment: OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set, /metrics when
CLAUDE_OTEL_PROMETHEUS_PORT is (or pass prometheus_port=9464).  The SDK reads ANTHROPIC_BASE_URL itself.
"""

import os

import anthropic

import claude_otel

handle = claude_otel.configure(service_name="quickstart")

client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
message = client.messages.create(
    model="claude-sonnet-4-5", max_tokens=256, messages=[{"role": "user", "content": "Hello, Claude"}])
print(message.content[0].text)
if handle.prometheus_url:
    print("metrics:", handle.prometheus_url)
