"""A FastAPI service with /metrics mounted on its own server.

    ANTHROPIC_BASE_URL=http://127.0.0.1:8089 uvicorn examples.fastapi_app:app --port 8000
    curl localhost:8000/ask ; curl localhost:8000/metrics
"""

import os

import anthropic
from fastapi import FastAPI

import claude_otel
from claude_otel.exporters.prometheus import make_asgi_app

claude_otel.configure(service_name="fastapi-example", prometheus=True)
client = anthropic.AsyncAnthropic(api_key=os.environ.get("ANTHROPIC_API_KEY", "sk-ant-simulated"))
app = FastAPI()
app.mount("/metrics", make_asgi_app())


@app.get("/ask")
async def ask(q: str = "Hello") -> dict:
    message = await client.messages.create(model="claude-haiku-4-5", max_tokens=128,
                                           messages=[{"role": "user", "content": q}])
    return {"answer": message.content[0].text}
