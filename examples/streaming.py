"""Streaming with messages.stream(): time to first token, prefill and stream gaps are recorded."""

import os

import anthropic

import claude_otel

claude_otel.configure(service_name="streaming-example")
client = anthropic.Anthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"),
                             timeout=120.0)  # per read: the longest silence a stream may have
with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024,
                            messages=[{"role": "user", "content": "Write a long-form research paper."}]) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    print()
    print("output tokens:", stream.get_final_message().usage.output_tokens)
