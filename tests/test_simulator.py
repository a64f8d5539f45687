"""The simulator with the plain SDK (no claude-otel): every endpoint parses, and every fault really happens.

Times are measured on the client side with generous bounds: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from statistics import median

import anthropic
import pytest

from claude_otel.simulator import PROFILES, Fault, Simulator
from claude_otel.simulator.faults import FaultError, resolve
from tests.helpers.procs import read_line, read_rest
from tests.helpers.sdk import sdk_httpx, sdk_version

httpx = sdk_httpx()
ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "Say something about foxes, please."}]
SCALE = 0.025  # profiles at real-world scale, run 40 times faster


@pytest.fixture(scope="module")
def scaled():
    with Simulator(time_scale=SCALE) as sim:
        yield sim


def client(sim, **kw):
    kw.setdefault("max_retries", 2)
    return anthropic.Anthropic(base_url=sim.base_url, api_key="k", **kw)


def api(c):
    """count_tokens and batches lived under client.beta.messages before they went GA (SDK 0.40)."""
    return c.messages if hasattr(c.messages, "count_tokens") else c.beta.messages


def stream_timing(stream):
    """Returns (seconds to message_start, seconds to the first delta, gaps between deltas, number of deltas)."""
    start = time.monotonic()
    started, times = None, []
    for event in stream:
        now = time.monotonic() - start
        if event.type == "message_start":
            started = now
        elif event.type == "content_block_delta":
            times.append(now)
    return started, times[0] if times else None, [b - a for a, b in zip(times, times[1:])], len(times)


def raw_http(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Returns every byte the server sends for raw request bytes, until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def post(path: str, body: bytes, headers: str = "", connection: str = "close") -> bytes:
    """Returns a raw HTTP/1.1 POST request."""
    return (f"POST {path} HTTP/1.1\r\nhost: sim\r\ncontent-type: application/json\r\n{headers}"
            f"content-length: {len(body)}\r\nconnection: {connection}\r\n\r\n").encode() + body


# -- profiles and fault resolution --------------------------------------------------------------------------------

def test_profiles_are_named_and_described():
    assert list(PROFILES) == ["normal", "slow-prefill", "slow-generation", "long-nonstream", "idle-stall",
                              "rate-limited", "overloaded", "mid-stream-error", "dropped-connection", "proxy-idle"]
    for fault, description in PROFILES.values():
        assert isinstance(fault, Fault) and description and "\n" not in description
    assert PROFILES["slow-prefill"].fault.prefill_delay == 8.0
    assert PROFILES["proxy-idle"].fault.proxy_idle_timeout < PROFILES["proxy-idle"].fault.prefill_delay


def test_fault_resolution_order_and_scaling():
    default = PROFILES["normal"].fault
    # a named profile is scaled; header values are absolute and override it field by field
    fault = resolve({"x-sim-profile": "idle-stall", "x-sim-stall-at": "2"}, "claude-x", default, 0.1, None)
    assert fault.stall == pytest.approx(2.0) and fault.stall_at == 2 and fault.token_delay == pytest.approx(0.002)
    assert resolve({}, "sim-slow-prefill", default, 0.5, None).prefill_delay == 4.0
    assert resolve({}, "sim-not-a-profile", default, 0.5, None) is default
    assert resolve({"x-sim-prefill-delay": "3"}, None, default, 0.01, None).prefill_delay == 3.0
    assert resolve({"x-sim-retry_after_ms": "70"}, None, default, 1.0, None).retry_after_ms == 70
    assert resolve({"x-sim-profile": "rate-limited"}, None, default, 0.5, None).retry_after_ms == 250
    # the server-wide proxy idle timeout stacks with a profile's (the smaller wins); "none" clears a field
    assert resolve({"x-sim-profile": "proxy-idle"}, None, default, 1.0, 12.0).proxy_idle_timeout == 12.0
    assert resolve({"x-sim-profile": "proxy-idle", "x-sim-proxy-idle-timeout": "none"}, None, default, 1.0,
                   12.0).proxy_idle_timeout is None
    for bad in ({"x-sim-profile": "nope"}, {"x-sim-stall": "soon"}, {"x-sim-malformed": "xml"},
                {"x-sim-output-tokens": "-1"}):
        with pytest.raises(FaultError):
            resolve(bad, None, default, 1.0, None)
    with pytest.raises(ValueError):
        Simulator(profile="nope")


# -- endpoints ------------------------------------------------------------------------------------------------------

def test_non_streaming_message_shape_usage_and_headers(sim):
    c = client(sim)
    raw = c.messages.with_raw_response.create(model="claude-test-model", max_tokens=5, messages=MESSAGES,
                                              extra_headers={"x-sim-cache-read-tokens": "40",
                                                             "x-sim-cache-creation-tokens": "3"})
    message = raw.parse()
    assert message.model == "claude-test-model" and message.type == "message" and message.role == "assistant"
    assert re.fullmatch(r"msg_sim_\d+", message.id)
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 5
    assert message.content[0].type == "text" and len(message.content[0].text.split()) == 5
    assert 1 <= message.usage.input_tokens < 40
    assert message.usage.cache_read_input_tokens == 40 and message.usage.cache_creation_input_tokens == 3
    assert re.fullmatch(r"req_sim_\d+", raw.headers["request-id"])
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        for suffix in ("limit", "remaining", "reset"):
            assert raw.headers[f"anthropic-ratelimit-{kind}-{suffix}"]
    full = c.messages.create(model="m", max_tokens=100, messages=MESSAGES, extra_headers={
        "x-sim-output-tokens": "7", "x-sim-input-tokens": "1234"})
    assert full.stop_reason == "end_turn" and full.usage.output_tokens == 7 and full.usage.input_tokens == 1234
    later = c.messages.with_raw_response.create(model="m", max_tokens=5, messages=MESSAGES)
    for kind in ("requests", "tokens"):
        key = f"anthropic-ratelimit-{kind}-remaining"
        reset = f"anthropic-ratelimit-{kind}-reset"
        new_window = later.headers[reset] != raw.headers[reset]
        assert int(later.headers[key]) < int(raw.headers[key]) or new_window
    [first, second, third] = sim.requests
    assert (first.method, first.path, first.model, first.stream, first.status) == (
        "POST", "/v1/messages", "claude-test-model", False, 200)
    assert first.body["max_tokens"] == 5 and first.headers["x-sim-cache-read-tokens"] == "40"
    assert first.output_tokens_served == 5 and second.input_tokens == 1234 and first.retry_count == 0
    assert first.started <= first.finished <= second.started <= third.finished


def test_streaming_message_events_like_the_api(sim):
    events = list(client(sim).messages.create(model="claude-stream", max_tokens=64, messages=MESSAGES, stream=True,
                                              extra_headers={"x-sim-output-tokens": "6"}))
    assert [e.type for e in events] == ["message_start", "content_block_start"] + ["content_block_delta"] * 6 + [
        "content_block_stop", "message_delta", "message_stop"]
    start = events[0].message
    assert start.model == "claude-stream" and start.usage.output_tokens == 1 and start.usage.input_tokens >= 1
    assert all(e.delta.type == "text_delta" and e.delta.text for e in events[2:8])
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens == 6
    capped = list(client(sim).messages.create(model="m", max_tokens=4, messages=MESSAGES, stream=True))
    assert capped[-2].delta.stop_reason == "max_tokens" and capped[-2].usage.output_tokens == 4
    assert sim.requests[0].stream and sim.requests[0].output_tokens_served == 6
    # the raw stream also carries the ping the SDK skips, each event as one chunk
    data = raw_http(sim.port, post("/v1/messages?beta=true", b'{"model":"m","max_tokens":2,"stream":true}'))
    assert b"content-type: text/event-stream" in data and data.count(b"event: ping\n") == 1
    assert data.index(b"event: message_start") < data.index(b"event: ping") < data.index(b"content_block_delta")


def test_stream_helper_text_and_final_message(sim):
    with client(sim).messages.stream(model="claude-x", max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("The quick brown fox") and final.content[0].text == text
    assert final.usage.output_tokens == 12 and final.stop_reason == "end_turn"

    async def helper():
        c = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k")
        async with c.messages.stream(model="claude-x", max_tokens=3, messages=MESSAGES) as stream:
            return "".join([t async for t in stream.text_stream]), (await stream.get_final_message()).usage

    text, use = asyncio.run(helper())
    assert text == "The quick brown" and use.output_tokens == 3


def test_count_tokens_batches_models_and_unknown_paths(sim):
    c = client(sim)
    assert api(c).count_tokens(model="m", messages=[{"role": "user", "content": "x" * 400}]).input_tokens >= 100
    assert api(c).count_tokens(model="m", messages=[{"role": "user", "content": ""}]).input_tokens >= 1
    batches = api(c).batches
    batch = batches.create(requests=[{"custom_id": f"r{i}", "params": {
        "model": "claude-x", "max_tokens": 8, "messages": MESSAGES}} for i in range(3)])
    assert batch.type == "message_batch" and batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3 and batch.expires_at > batch.created_at
    done = batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.request_counts.succeeded == 3 and done.results_url
    assert [r.custom_id for r in batches.results(batch.id)] == ["r0", "r1", "r2"]
    other = batches.create(requests=[{"custom_id": "x", "params": {"model": "m", "max_tokens": 1, "messages": []}}])
    assert batches.cancel(other.id).processing_status == "canceling"
    assert [b.id for b in batches.list()] == [other.id, batch.id]
    assert [b.id for b in batches.list(limit=1)] == [other.id, batch.id]  # one page each, newest first
    with pytest.raises(anthropic.NotFoundError):
        batches.retrieve("msgbatch_unknown")
    if hasattr(c, "models"):  # from SDK 0.41
        assert len(list(c.models.list(limit=2))) == 3 and c.models.retrieve("claude-x").id == "claude-x"
    with pytest.raises(anthropic.NotFoundError) as info:
        c.get("/v1/nothing-here", cast_to=object)
    assert info.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError):  # a typo in a profile name is an error, not a silent default
        c.messages.create(model="m", max_tokens=4, messages=MESSAGES, extra_headers={"x-sim-profile": "slow"})


def test_legacy_completions(sim):
    c = client(sim)
    body = {"model": "claude-2.1", "max_tokens_to_sample": 4, "prompt": "\n\nHuman: hi\n\nAssistant:"}
    if hasattr(c, "completions"):  # the legacy Text Completions API left the SDK in 2.x
        done = c.completions.create(**body)
        assert done.completion == "The quick brown fox" and done.stop_reason == "max_tokens"
        assert "".join(e.completion for e in c.completions.create(**body, stream=True)) == "The quick brown fox"
    done = c.post("/v1/complete", body=body, cast_to=object)
    assert done["type"] == "completion" and done["completion"] == "The quick brown fox"
    with httpx.Client(base_url=sim.base_url) as http:
        with http.stream("POST", "/v1/complete", json=dict(body, stream=True)) as response:
            lines = [line for line in response.iter_lines() if line]
    events = [line for line in lines if line.startswith("event: ")]
    assert events == ["event: ping"] + ["event: completion"] * 5
    assert '"stop_reason":"max_tokens"' in lines[-1]


# -- timing faults ----------------------------------------------------------------------------------------------

def test_prefill_delay_is_time_to_first_token(scaled):
    started, first, _, n = stream_timing(client(scaled).messages.create(
        model="sim-slow-prefill", max_tokens=64, messages=MESSAGES, stream=True))
    prefill = 8 * SCALE
    assert n == 12 and prefill * 0.9 <= first - started and first < prefill + 1.5  # message_start came first


def test_token_delay_and_stalls_show_as_gaps(scaled):
    start = time.monotonic()
    _, _, gaps, n = stream_timing(client(scaled).messages.create(
        model="claude-x", max_tokens=40, messages=MESSAGES, stream=True,
        extra_headers={"x-sim-profile": "slow-generation"}))
    assert n == 40 and sum(gaps) >= 39 * 0.2 * SCALE * 0.9 and time.monotonic() - start < 5
    _, _, gaps, n = stream_timing(client(scaled).messages.create(
        model="claude-x", max_tokens=8, messages=MESSAGES, stream=True, extra_headers={"x-sim-token-delay": "0.06"}))
    assert n == 8 and sum(gaps) >= 7 * 0.06 * 0.9 and median(gaps) >= 0.045 and max(gaps) < 1.0
    _, _, gaps, n = stream_timing(client(scaled).messages.create(
        model="sim-idle-stall", max_tokens=64, messages=MESSAGES, stream=True))
    stall = 20 * SCALE
    assert n == 12 and gaps[4] >= stall * 0.9 and gaps.index(max(gaps)) == 4  # silent before token 5


def test_non_streaming_waits_for_the_whole_generation(scaled):
    start = time.monotonic()
    message = client(scaled).messages.create(model="sim-long-nonstream", max_tokens=64, messages=MESSAGES)
    assert 40 * SCALE * 0.95 <= time.monotonic() - start < 40 * SCALE + 1.5 and message.usage.output_tokens == 64
    start = time.monotonic()
    client(scaled).messages.create(model="m", max_tokens=4, messages=MESSAGES, extra_headers={
        "x-sim-headers-delay": "0.1", "x-sim-prefill-delay": "0.1", "x-sim-token-delay": "0.05"})
    assert 0.38 <= time.monotonic() - start < 2.0


def test_sdk_timeout_shorter_than_the_headers_delay(scaled):
    start = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client(scaled, timeout=0.3, max_retries=0).messages.create(model="sim-long-nonstream", max_tokens=64,
                                                                   messages=MESSAGES)
    assert 0.25 <= time.monotonic() - start < 2.0


def test_mid_stream_stall_longer_than_the_read_timeout_is_a_read_timeout(scaled):
    stream = client(scaled, timeout=0.3, max_retries=0).messages.create(
        model="claude-x", max_tokens=64, messages=MESSAGES, stream=True,
        extra_headers={"x-sim-stall-at": "2", "x-sim-stall": "3"})
    received = 0
    # httpx's own ReadTimeout, unwrapped, before anthropic 2.17; the SDK's APITimeoutError from it
    expected = anthropic.APITimeoutError if sdk_version() >= (2, 17) else httpx.ReadTimeout
    with pytest.raises(expected):
        for event in stream:
            received += event.type == "content_block_delta"
    assert received == 2


# -- failures and retries ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,status,failures", [("rate-limited", 429, 1), ("overloaded", 529, 2)])
def test_retry_profiles_fail_then_succeed(scaled, name, status, failures):
    scaled.reset()
    raw = client(scaled, max_retries=3).messages.with_raw_response.create(
        model="claude-x", max_tokens=8, messages=MESSAGES, extra_headers={"x-sim-profile": name})
    assert raw.retries_taken == failures and raw.parse().usage.output_tokens == 8
    assert [r.retry_count for r in scaled.requests] == list(range(failures + 1))
    assert [r.status for r in scaled.requests] == [status] * failures + [200]


@pytest.mark.parametrize("header,value,wait", [("retry-after-ms", "900", 0.9), ("retry-after", "1", 1.0)])
def test_the_sdk_waits_as_retry_after_says(sim, header, value, wait):
    client(sim).messages.create(model="m", max_tokens=4, messages=MESSAGES, extra_headers={
        "x-sim-fail-attempts": "1", "x-sim-fail-status": "429", "x-sim-" + header: value})
    failed, retried = sim.requests
    # the SDK's own backoff for a first retry would be 0.375-0.5 s
    assert wait * 0.95 <= retried.started - failed.finished < wait + 1.0
    response = httpx.post(sim.base_url + "/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []},
                          headers={"x-sim-fail-attempts": "1", "x-sim-fail-status": "429", "x-sim-" + header: value})
    assert response.status_code == 429 and response.headers[header] == value
    assert "x-should-retry" not in response.headers and response.headers["request-id"].startswith("req_sim_")
    assert response.json() == {"type": "error", "error": {"type": "rate_limit_error", "message": response.json()[
        "error"]["message"]}}


@pytest.mark.parametrize("status,error_class,error_type", [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (529, getattr(anthropic, "OverloadedError", anthropic.InternalServerError), "overloaded_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (503, anthropic.InternalServerError, "api_error"),
])
def test_more_failures_than_retries_raise_the_status_error(sim, status, error_class, error_type):
    with pytest.raises(error_class) as info:
        client(sim, max_retries=1).messages.create(model="m", max_tokens=4, messages=MESSAGES, extra_headers={
            "x-sim-fail-attempts": "5", "x-sim-fail-status": str(status), "x-sim-retry-after-ms": "10"})
    assert info.value.status_code == status and info.value.body["error"]["type"] == error_type
    assert [(r.retry_count, r.status) for r in sim.requests] == [(0, status), (1, status)]


def test_mid_stream_error_event(scaled):
    received = 0
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in client(scaled).messages.create(model="sim-mid-stream-error", max_tokens=64, messages=MESSAGES,
                                                    stream=True):
            received += event.type == "content_block_delta"
    assert received == 5 and info.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.APIStatusError) as info:
        list(client(scaled).messages.create(model="m", max_tokens=64, messages=MESSAGES, stream=True, extra_headers={
            "x-sim-error-after": "0", "x-sim-error-type": "api_error"}))
    assert info.value.body["error"]["type"] == "api_error"


def test_dropped_connection(scaled):
    scaled.reset()
    received = 0
    with pytest.raises((httpx.TransportError, anthropic.APIConnectionError)):
        for event in client(scaled, max_retries=0).messages.create(
                model="sim-dropped-connection", max_tokens=64, messages=MESSAGES, stream=True):
            received += event.type == "content_block_delta"
    assert received == 3
    assert (scaled.requests[-1].status, scaled.requests[-1].output_tokens_served) == (200, 3)
    # before any response: the SDK sees a connection error, and retries it
    with pytest.raises(anthropic.APIConnectionError):
        client(scaled, max_retries=1).messages.create(model="m", max_tokens=4, messages=MESSAGES,
                                                      extra_headers={"x-sim-drop-after": "0"})
    assert [(r.retry_count, r.status) for r in scaled.requests[1:]] == [(0, None), (1, None)]


def test_proxy_idle_timeout_cuts_idle_connections(scaled):
    scaled.reset()
    idle = 30 * SCALE
    start = time.monotonic()
    with pytest.raises(anthropic.APIConnectionError) as info:  # non-streaming: idle while waiting for headers
        client(scaled, max_retries=0).messages.create(model="m", max_tokens=8, messages=MESSAGES,
                                                      extra_headers={"x-sim-profile": "proxy-idle"})
    assert not isinstance(info.value, anthropic.APITimeoutError)
    assert idle * 0.95 <= time.monotonic() - start < idle + 1.5
    assert scaled.requests[-1].status is None
    stream = client(scaled, max_retries=0).messages.create(model="sim-proxy-idle", max_tokens=8, messages=MESSAGES,
                                                           stream=True)
    with pytest.raises((httpx.TransportError, anthropic.APIConnectionError)):  # streaming: idle in the prefill
        list(stream)
    assert scaled.requests[-1].status == 200 and scaled.requests[-1].output_tokens_served == 0
    with Simulator(proxy_idle_timeout=0.4) as proxied:  # server-wide, like a load balancer in front
        assert client(proxied).messages.create(model="m", max_tokens=4, messages=MESSAGES).content
        received = 0
        with pytest.raises((httpx.TransportError, anthropic.APIConnectionError)):
            for event in client(proxied, max_retries=0).messages.create(
                    model="m", max_tokens=8, messages=MESSAGES, stream=True,
                    extra_headers={"x-sim-stall-at": "2", "x-sim-stall": "1"}):
                received += event.type == "content_block_delta"
        assert received == 2 and proxied.requests[-1].output_tokens_served == 2


# -- scale, malformed output, HTTP details, lifecycle -----------------------------------------------------------

async def test_two_hundred_concurrent_async_streams(sim):
    c = anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="k", max_retries=0, timeout=30)

    async def one():
        deltas = 0
        async for event in await c.messages.create(model="m", max_tokens=8, messages=MESSAGES, stream=True,
                                                   extra_headers={"x-sim-token-delay": "0.05"}):
            deltas += event.type == "content_block_delta"
        return deltas

    start = time.monotonic()
    assert await asyncio.gather(*(one() for _ in range(200))) == [8] * 200
    assert time.monotonic() - start < 20
    assert len(sim.requests) == 200 and all(r.status == 200 for r in sim.requests)
    # they were served concurrently, not one after the other
    edges = sorted([(r.started, 1) for r in sim.requests] + [(r.finished, -1) for r in sim.requests])
    assert max(itertools.accumulate(step for _, step in edges)) >= 100


def test_malformed_output(sim):
    body = b'{"model":"m","max_tokens":3,"messages":[],"stream":%s}'
    sse_line = raw_http(sim.port, post("/v1/messages", body % b"true", "x-sim-malformed: sse-line\r\n"))
    garbage = [line for line in sse_line.split(b"\r\n") if line.startswith(b"this line")]
    assert garbage and b":" not in garbage[0]
    assert b"data: {not json" in raw_http(sim.port, post("/v1/messages", body % b"true", "x-sim-malformed: json\r\n"))
    html = raw_http(sim.port, post("/v1/messages", body % b"false", "x-sim-malformed: content-type\r\n"))
    assert html.startswith(b"HTTP/1.1 200 ") and b"content-type: text/html" in html and html.endswith(b"</html>\n")
    huge = raw_http(sim.port, post("/v1/messages", body % b"false", "x-sim-malformed: huge-header\r\n"))
    assert b"\r\nx-sim-padding: " + b"p" * 65536 + b"\r\n" in huge
    # what the SDK makes of them, where it is certain
    c = client(sim, max_retries=0)
    assert c.messages.create(model="m", max_tokens=3, messages=MESSAGES,
                             extra_headers={"x-sim-malformed": "huge-header"}).usage.output_tokens == 3
    assert len(list(c.messages.create(model="m", max_tokens=3, messages=MESSAGES, stream=True,
                                      extra_headers={"x-sim-malformed": "sse-line"}))) == 8
    with pytest.raises(ValueError):
        list(c.messages.create(model="m", max_tokens=3, messages=MESSAGES, stream=True,
                               extra_headers={"x-sim-malformed": "json"}))


def test_http_keep_alive_chunked_bodies_and_bad_requests(sim):
    body = b'{"model":"m","max_tokens":2,"messages":[]}'
    chunked = (b"POST /v1/messages HTTP/1.1\r\nhost: sim\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    data = raw_http(sim.port, post("/v1/messages", body, connection="keep-alive") + chunked)
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b'"type":"message"') == 2
    ids = [int(i) for i in re.findall(rb"request-id: req_sim_(\d+)", data)]
    assert len(ids) == 2 and ids[0] < ids[1]
    assert raw_http(sim.port, b"NONSENSE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert b"invalid_request_error" in raw_http(sim.port, post("/v1/messages", b"{not json"))
    missing = raw_http(sim.port, b"GET /v2/whatever HTTP/1.1\r\nhost: sim\r\nconnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404 ") and b'"not_found_error"' in missing and b"request-id: " in missing


def test_http_100_continue_http_1_0_oversized_heads_and_clients_that_leave(sim):
    body = b'{"model":"m","max_tokens":2,"messages":[],"stream":true}'
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:  # curl's way with a large body
        s.sendall(post("/v1/messages", body, "expect: 100-continue\r\n").split(b"\r\n\r\n")[0] + b"\r\n\r\n")
        assert s.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # nothing else before the body is sent
        s.sendall(body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.rstrip().endswith(b"0")  # the last chunk
    # HTTP/1.0 has no chunked encoding: the stream is delimited by closing the connection
    old = raw_http(sim.port, post("/v1/messages", body).replace(b"HTTP/1.1", b"HTTP/1.0", 1))
    head, _, rest = old.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ") or head.startswith(b"HTTP/1.1 200 ")
    assert b"chunked" not in head.lower() and rest.startswith(b"event: message_start")
    assert rest.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    huge = raw_http(sim.port, b"GET /v1/models HTTP/1.1\r\nhost: sim\r\nx-big: " + b"a" * 300_000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 431 ") and b"invalid_request_error" in huge
    # a client that leaves while its response is being generated gets none, and none is recorded
    sim.reset()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as s:
        s.sendall(post("/v1/messages", body, "x-sim-headers-delay: 0.3\r\n"))
    deadline = time.monotonic() + 5
    while not (sim.requests and sim.requests[-1].finished) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sim.requests[-1].finished and sim.requests[-1].status is None


def test_lifecycle_start_stop_reset_and_serve_forever():
    sim = Simulator()
    assert sim.start() is sim and sim.port > 0 and sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert client(sim).messages.create(model="m", max_tokens=1, messages=MESSAGES).content
    stream = client(sim, max_retries=0).messages.create(model="m", max_tokens=4, messages=MESSAGES, stream=True,
                                                        extra_headers={"x-sim-prefill-delay": "30"})
    start = time.monotonic()
    threading.Timer(0.3, sim.stop).start()
    with pytest.raises((httpx.TransportError, anthropic.APIConnectionError)):
        list(stream)  # stop() cuts open connections
    assert time.monotonic() - start < 5
    sim.stop()
    assert len(sim.requests) == 2
    sim.reset()
    assert sim.requests == []
    with pytest.raises(anthropic.APIConnectionError):
        client(sim, max_retries=0).messages.create(model="m", max_tokens=1, messages=MESSAGES)
    with Simulator() as taken:
        with pytest.raises(OSError):
            Simulator(port=taken.port).start()
        foreground = Simulator()
        runner = threading.Thread(target=foreground.serve_forever)
        runner.start()
        while not foreground.port:
            time.sleep(0.01)
        assert client(foreground).messages.create(model="m", max_tokens=1, messages=MESSAGES).content
        foreground.stop()
        runner.join(5)
        assert not runner.is_alive()


def test_cli_serves_with_fault_flags_and_stops_on_ctrl_c():
    from claude_otel.simulator import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert "slow-prefill" in parser.format_help() and "--prefill-delay" in parser.format_help()
    args = parser.parse_args(["--port", "0", "--output-tokens", "3", "--stall-at", "none"])
    assert args.fault_output_tokens == 3 and args.fault_stall_at is None and not hasattr(args, "fault_stall")
    code = ("import argparse, sys; from claude_otel.simulator import cli; p = argparse.ArgumentParser(); "
            "cli.add_arguments(p); sys.exit(cli.run(p.parse_args(sys.argv[1:])))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--profile", "rate-limited",
                             "--time-scale", "0.1", "--output-tokens", "3"], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        first = read_line(proc, 30, "the listening line")
        url = re.search(r"http://127\.0\.0\.1:\d+", first).group(0)
        assert f"export ANTHROPIC_BASE_URL={url}" in read_line(proc, 30, "the export line")
        raw = anthropic.Anthropic(base_url=url, api_key="k").messages.with_raw_response.create(
            model="m", max_tokens=8, messages=MESSAGES)
        assert raw.retries_taken == 1 and raw.parse().usage.output_tokens == 3
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    assert "stopped" in read_rest(proc, 10)
    listing = subprocess.run([sys.executable, "-c", code, "--list-profiles"], capture_output=True, text=True,
                             cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert listing.returncode == 0 and all(name in listing.stdout for name in PROFILES)


def test_fault_is_recorded_per_request(scaled):
    scaled.reset()
    client(scaled).messages.create(model="sim-slow-prefill", max_tokens=1, messages=MESSAGES,
                                   extra_headers={"x-sim-prefill-delay": "0.01"})
    [record] = scaled.requests
    expected = dataclasses.replace(PROFILES["slow-prefill"].fault.scaled(SCALE), prefill_delay=0.01)
    assert record.fault == expected and record.model == "sim-slow-prefill"
