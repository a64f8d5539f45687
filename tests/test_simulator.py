"""Every simulator profile with the plain SDK (no claude-otel): the fault really happens."""

from __future__ import annotations

import asyncio
import socket
import time

import anthropic
import pytest

from claude_otel.simulator import PROFILES, Simulator
from conftest import sdk_httpx

httpx = sdk_httpx()
MESSAGES = [{"role": "user", "content": "hi"}]
SCALE = 0.05


@pytest.fixture(scope="module")
def scaled():
    with Simulator(time_scale=SCALE) as sim:
        yield sim


def client(sim, **kw):
    kw.setdefault("max_retries", 2)
    return anthropic.Anthropic(base_url=sim.base_url, api_key="k", **kw)


def profile(name):
    return {"x-sim-profile": name}


def first_token_and_gaps(stream):
    start = time.monotonic()
    first, times = None, []
    for event in stream:
        if event.type == "content_block_delta":
            now = time.monotonic()
            first = first or now - start
            times.append(now)
    gaps = [b - a for a, b in zip(times, times[1:])]
    return first, gaps


def test_every_profile_is_documented():
    assert set(PROFILES) == {"normal", "slow-prefill", "slow-generation", "long-nonstream", "idle-stall",
                             "rate-limited", "overloaded", "mid-stream-error", "dropped-connection", "proxy-idle"}
    assert all(description for _, description in PROFILES.values())


def test_normal_messages_shapes(scaled):
    message = client(scaled).messages.create(model="claude-x", max_tokens=5, messages=MESSAGES)
    assert message.usage.output_tokens == 5 and message.stop_reason == "max_tokens" and message.content[0].text
    events = list(client(scaled).messages.create(model="claude-x", max_tokens=64, messages=MESSAGES, stream=True))
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-2].usage.output_tokens == 12 and events[-1].type == "message_stop"
    with client(scaled).messages.stream(model="claude-x", max_tokens=64, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream)
        assert stream.get_final_message().usage.output_tokens == 12


def test_slow_prefill(scaled):
    first, _ = first_token_and_gaps(client(scaled).messages.create(
        model="sim-slow-prefill", max_tokens=64, messages=MESSAGES, stream=True))
    assert 8 * SCALE * 0.9 <= first < 8 * SCALE + 1.0


def test_slow_generation(scaled):
    _, gaps = first_token_and_gaps(client(scaled).messages.create(
        model="claude-x", max_tokens=40, messages=MESSAGES, stream=True, extra_headers=profile("slow-generation")))
    assert len(gaps) == 39 and sorted(gaps)[len(gaps) // 2] >= 0.2 * SCALE * 0.8


def test_long_nonstream_and_sdk_timeout(scaled):
    start = time.monotonic()
    client(scaled).messages.create(model="claude-x", max_tokens=64, messages=MESSAGES,
                                   extra_headers=profile("long-nonstream"))
    assert time.monotonic() - start >= 40 * SCALE * 0.9
    with pytest.raises(anthropic.APITimeoutError):
        client(scaled, timeout=0.5, max_retries=0).messages.create(
            model="claude-x", max_tokens=64, messages=MESSAGES, extra_headers=profile("long-nonstream"))


def test_idle_stall_and_mid_stream_read_timeout(scaled):
    _, gaps = first_token_and_gaps(client(scaled).messages.create(
        model="claude-x", max_tokens=64, messages=MESSAGES, stream=True, extra_headers=profile("idle-stall")))
    assert max(gaps) >= 20 * SCALE * 0.9
    stream = client(scaled, timeout=0.3, max_retries=0).messages.create(
        model="claude-x", max_tokens=64, messages=MESSAGES, stream=True,
        extra_headers={"x-sim-stall-at": "2", "x-sim-stall": "2"})
    with pytest.raises(httpx.ReadTimeout):
        list(stream)


@pytest.mark.parametrize("name,status,attempts", [("rate-limited", 429, 2), ("overloaded", 529, 3)])
def test_retry_profiles_then_success(scaled, name, status, attempts):
    scaled.reset()
    raw = client(scaled, max_retries=3).messages.with_raw_response.create(
        model="claude-x", max_tokens=8, messages=MESSAGES, extra_headers=profile(name))
    assert raw.retries_taken == attempts - 1
    served = [r for r in scaled.requests if r.path.startswith("/v1/messages")]
    assert [r.retry_count for r in served] == list(range(attempts))
    assert [r.status for r in served] == [status] * (attempts - 1) + [200]
    with pytest.raises(anthropic.APIStatusError) as info:
        client(scaled, max_retries=0).messages.create(model="claude-x", max_tokens=8, messages=MESSAGES,
                                                      extra_headers=profile(name))
    assert info.value.status_code == status


def test_retry_after_ms_is_honoured_by_the_sdk(sim):
    start = time.monotonic()
    client(sim).messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, extra_headers={
        "x-sim-fail-attempts": "1", "x-sim-fail-status": "429", "x-sim-retry-after-ms": "700"})
    assert time.monotonic() - start >= 0.65


def test_mid_stream_error(scaled):
    with pytest.raises(anthropic.APIStatusError):
        list(client(scaled).messages.create(model="claude-x", max_tokens=64, messages=MESSAGES, stream=True,
                                            extra_headers=profile("mid-stream-error")))


def test_dropped_connection(scaled):
    scaled.reset()
    with pytest.raises((httpx.HTTPError, anthropic.APIConnectionError)):
        list(client(scaled, max_retries=0).messages.create(model="claude-x", max_tokens=64, messages=MESSAGES,
                                                           stream=True, extra_headers=profile("dropped-connection")))
    assert scaled.requests[-1].output_tokens_served == 3


def test_proxy_idle_mode_closes_idle_connections(scaled):
    scaled.reset()
    with pytest.raises(anthropic.APIConnectionError):
        client(scaled, max_retries=0).messages.create(model="claude-x", max_tokens=8, messages=MESSAGES,
                                                      extra_headers=profile("proxy-idle"))
    assert scaled.requests[-1].status is None
    with Simulator(proxy_idle_timeout=0.3) as proxied:
        with pytest.raises((httpx.HTTPError, anthropic.APIConnectionError)):
            list(client(proxied, max_retries=0).messages.create(
                model="claude-x", max_tokens=8, messages=MESSAGES, stream=True,
                extra_headers={"x-sim-stall-at": "2", "x-sim-stall": "1"}))


def test_other_endpoints(sim):
    c = client(sim)
    assert c.messages.count_tokens(model="claude-x", messages=MESSAGES).input_tokens >= 1
    batch = c.messages.batches.create(requests=[{"custom_id": "a", "params": {
        "model": "claude-x", "max_tokens": 8, "messages": MESSAGES}}])
    assert c.messages.batches.retrieve(batch.id).processing_status == "ended"
    assert len(list(c.messages.batches.list())) == 2
    assert c.messages.batches.cancel(batch.id).processing_status == "canceling"
    assert [m.id for m in c.models.list()]
    with pytest.raises(anthropic.NotFoundError):
        c.get("/v1/nothing-here", cast_to=object)


def raw_exchange(sim, headers: str, body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n" + headers.encode()
                  + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize("mode,expect", [
    ("sse-line", b"this line is not server-sent events"),
    ("json", b"data: {not json"),
    ("content-type", b"content-type: text/html"),
    ("huge-header", b"x-sim-padding: " + b"p" * 65536),
])
def test_malformed_modes(sim, mode, expect):
    stream = mode in ("sse-line", "json")
    body = b'{"model":"claude-x","max_tokens":8,"messages":[],"stream":%s}' % (b"true" if stream else b"false")
    assert expect in raw_exchange(sim, f"x-sim-malformed: {mode}\r\n", body)


async def test_two_hundred_concurrent_streams(sim):
    c = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k")

    async def one():
        n = 0
        async for event in await c.messages.create(model="claude-x", max_tokens=8, messages=MESSAGES, stream=True):
            n += event.type == "content_block_delta"
        return n

    assert await asyncio.gather(*(one() for _ in range(200))) == [8] * 200
