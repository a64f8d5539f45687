"""Async: concurrent AsyncAnthropic calls, each with its own spans and timings."""

import asyncio
import os

import anthropic

import claude_otel


async def main() -> None:
    claude_otel.configure(service_name="async-example")
    client = anthropic.AsyncAnthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
    replies = await asyncio.gather(*(
        client.messages.create(model="claude-haiku-4-5", max_tokens=128,
                               messages=[{"role": "user", "content": f"Question {i}"}])
        for i in range(int(os.environ.get("EXAMPLE_CALLS", "5")))))
    print(f"{len(replies)} replies")


asyncio.run(main())
