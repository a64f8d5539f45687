"""OpenTelemetry's standard switches and the conventions' token accounting, with the real SDK over HTTP to the
simulator and in-memory exporters.

- gen_ai.usage.input_tokens (span) and gen_ai.token.type=input (metric) are input + cache read + cache write, the
  conventions' Anthropic rule (docs/gen-ai/anthropic.md in semantic-conventions-genai) and the SDK's own sum;
- suppress_instrumentation() (or the suppression key alone) silences the agent: no span, no metric point;
- OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT turns capture on, CLAUDE_OTEL_CAPTURE_CONTENT wins when set;
- with capture on and the SDK's own span enriched, the prompt is on that span.
"""

from __future__ import annotations

import asyncio
import json
import logging

import anthropic
import pytest
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from tests.helpers.sdk import sdk_version

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Say hello to the switches"}]
# Each count distinct, so a sum that leaves one out (or counts one twice) misses the expected total.
CACHED = {"x-sim-input-tokens": "20", "x-sim-cache-read-tokens": "5", "x-sim-cache-creation-tokens": "300"}
TOTAL_INPUT = 325


def client(sim, **kwargs):
    """Returns an SDK client of the simulator, without retries."""
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test-key", **kwargs)


def aclient(sim, **kwargs):
    """Returns an async SDK client of the simulator, without retries."""
    kwargs.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="sk-ant-test-key", **kwargs)


def reinstrument(recorded, **kwargs):
    """Instruments again into the test's exporters, so settings read from the environment at instrument() apply."""
    from claude_otel import ClaudeInstrumentor

    ClaudeInstrumentor().uninstrument()
    ClaudeInstrumentor().instrument(tracer_provider=recorded.tracer_provider, meter_provider=recorded.meter_provider,
                                    **kwargs)


def metric_points(recorded) -> int:
    """Returns how many data points every instrument holds together (0 when nothing was recorded)."""
    data = recorded.reader.get_metrics_data()
    count = 0
    for rm in (data.resource_metrics if data else []):
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    # active_requests is observed at collection: a series that never moved stays 0
                    count += 1 if getattr(point, "value", 1) != 0 else 0
    return count


# -- token accounting ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_input_tokens_count_cache_read_and_write_on_span_and_metric(sim, recorded, stream):
    c = client(sim)
    if stream:
        for _ in c.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES, stream=True,
                                   extra_headers=CACHED):
            pass
    else:
        message = c.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES, extra_headers=CACHED)
        assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
                message.usage.cache_creation_input_tokens) == (20, 5, 300)
    [op] = recorded.operation_spans()
    assert op.attributes["gen_ai.usage.input_tokens"] == TOTAL_INPUT
    assert op.attributes["gen_ai.usage.cache_read.input_tokens"] == 5
    assert op.attributes["gen_ai.usage.cache_creation.input_tokens"] == 300
    # the default metric keeps today's contract: input without the cached tokens, which have their own types
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="input") == 20
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="cache_read") == 5
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="cache_creation") == 300


def test_input_tokens_without_cache_are_the_raw_count(sim, recorded):
    client(sim).messages.create(model=MODEL, max_tokens=16, messages=MESSAGES,
                                extra_headers={"x-sim-input-tokens": "17"})
    [op] = recorded.operation_spans()
    assert op.attributes["gen_ai.usage.input_tokens"] == 17
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="input") == 17


@pytest.mark.skipif(sdk_version() < (1, 14), reason="the SDK's own call span exists from anthropic 1.14")
def test_enriched_sdk_span_agrees_with_the_sdks_own_input_sum(sim, recorded, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    c = client(sim, open_telemetry={"tracer_provider": recorded.tracer_provider})
    c.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES, extra_headers=CACHED)
    [sdk_span] = [s for s in recorded.spans() if s.instrumentation_scope.name != "claude_otel"]
    assert sdk_span.attributes["gen_ai.usage.input_tokens"] == TOTAL_INPUT
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="input") == 20


@pytest.mark.skipif(sdk_version() < (1, 14), reason="the SDK's own call span exists from anthropic 1.14")
def test_enriched_streamed_sdk_span_gets_no_duplicate_of_what_the_sdk_records(sim, recorded, monkeypatch):
    # The SDK's span of a stream is still open when the agent finishes the call (at message_stop): the agent adds
    # its timings, never its own copy of the response's id, model, usage or stop reason (the SDK's own tests check
    # that gen_ai.response.finish_reasons is absent beside anthropic.message.stop_reason).
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    c = client(sim, open_telemetry={"tracer_provider": recorded.tracer_provider})
    for _ in c.messages.create(model=MODEL, max_tokens=16, messages=MESSAGES, stream=True, extra_headers=CACHED):
        pass
    [sdk_span] = [s for s in recorded.spans() if s.instrumentation_scope.name != "claude_otel"]
    attrs = sdk_span.attributes
    assert attrs["anthropic.message.stop_reason"] == "end_turn"
    assert "gen_ai.response.finish_reasons" not in attrs
    assert "gen_ai.usage.cache_creation.input_tokens" not in attrs  # the SDK's is gen_ai.usage.cache_write.*
    assert attrs["gen_ai.usage.input_tokens"] == TOTAL_INPUT  # the SDK's own sum
    assert "anthropic.prefill.duration" in attrs and attrs["anthropic.attempt.count"] == 1
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="cache_creation") == 300


# -- suppress_instrumentation --------------------------------------------------------------------------------------

def test_suppressed_calls_record_nothing_sync_and_streamed(sim, recorded):
    c = client(sim)
    with suppress_instrumentation():
        c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
        for _ in c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True):
            pass
        with c.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as stream:
            stream.get_final_message()
    assert recorded.spans() == []
    assert metric_points(recorded) == 0
    # the same client, outside the block, is measured again: the switch is per context, not a global off
    c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert len(recorded.spans()) == 2
    assert recorded.total("gen_ai.client.operation.duration") == 1


def test_suppressed_calls_record_nothing_async(sim, recorded):
    async def main():
        c = aclient(sim)
        with suppress_instrumentation():
            await c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
            stream = await c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True)
            async for _ in stream:
                pass
            async with c.messages.stream(model=MODEL, max_tokens=8, messages=MESSAGES) as helper:
                await helper.get_final_message()
        await c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)

    asyncio.run(main())
    assert len(recorded.operation_spans()) == 1  # only the call made after the block
    assert recorded.total("gen_ai.client.operation.duration") == 1
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == 0


def test_the_suppression_key_alone_silences_the_agent(sim, recorded):
    # what OpenTelemetry's exporters and other instrumentations set: the context key, not the helper
    token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        client(sim).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    finally:
        otel_context.detach(token)
    assert recorded.spans() == []
    assert metric_points(recorded) == 0


def test_a_call_refused_by_the_sdk_inside_suppression_is_not_recorded(sim, recorded):
    with suppress_instrumentation(), pytest.raises(ValueError):
        client(sim).messages.create(model=MODEL, max_tokens=1_000_000, messages=MESSAGES)
    assert recorded.spans() == []
    assert metric_points(recorded) == 0


# -- content capture switches ---------------------------------------------------------------------------------------

def prompt_of(span) -> list:
    """Returns the messages recorded as the span's prompt."""
    return json.loads(span.attributes["gen_ai.input.messages"])["messages"]


@pytest.mark.parametrize("value", ["true", "SPAN_ONLY", "span_and_event"])
def test_otel_content_switch_turns_capture_on(sim, recorded, monkeypatch, value):
    monkeypatch.delenv("CLAUDE_OTEL_CAPTURE_CONTENT", raising=False)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    reinstrument(recorded)
    client(sim).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [op] = recorded.operation_spans()
    assert prompt_of(op) == MESSAGES
    assert op.attributes["gen_ai.output.messages"]


@pytest.mark.parametrize("value", ["false", "NO_CONTENT", "EVENT_ONLY"])
def test_otel_content_switch_off_values_record_no_content(sim, recorded, monkeypatch, value):
    monkeypatch.delenv("CLAUDE_OTEL_CAPTURE_CONTENT", raising=False)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    reinstrument(recorded)
    client(sim).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [op] = recorded.operation_spans()
    assert "gen_ai.input.messages" not in op.attributes and "gen_ai.output.messages" not in op.attributes


@pytest.mark.parametrize(("own", "otel", "captured"), [
    ("false", "true", False), ("true", "NO_CONTENT", True),
    ("not-a-bool", "true", True),  # an invalid own value is reported and does not hide OpenTelemetry's
])
def test_claude_otels_own_content_switch_wins_when_set(sim, recorded, monkeypatch, own, otel, captured):
    monkeypatch.setenv("CLAUDE_OTEL_CAPTURE_CONTENT", own)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", otel)
    reinstrument(recorded)
    client(sim).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [op] = recorded.operation_spans()
    assert ("gen_ai.input.messages" in op.attributes) is captured


def test_a_bad_otel_content_value_gets_one_message_naming_it(sim, recorded, monkeypatch, caplog):
    monkeypatch.delenv("CLAUDE_OTEL_CAPTURE_CONTENT", raising=False)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPANS_PLEASE")
    with caplog.at_level(logging.WARNING, logger="claude_otel"):
        reinstrument(recorded)
    messages = [r.getMessage() for r in caplog.records if "SPANS_PLEASE" in r.getMessage()]
    assert len(messages) == 1
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT" in messages[0]
    assert "SPAN_ONLY" in messages[0]  # says what would have been valid
    client(sim).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [op] = recorded.operation_spans()
    assert "gen_ai.input.messages" not in op.attributes  # the default, off


# -- the prompt on the SDK's own span ---------------------------------------------------------------------------

@pytest.mark.skipif(sdk_version() < (1, 14), reason="the SDK's own call span exists from anthropic 1.14")
@pytest.mark.parametrize("stream", [False, True], ids=["non-streamed", "streamed"])
def test_enriched_sdk_span_records_the_prompt_with_capture_on(sim, recorded, monkeypatch, stream):
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", raising=False)
    reinstrument(recorded, capture_content=True)
    c = client(sim, open_telemetry={"tracer_provider": recorded.tracer_provider})
    if stream:
        for _ in c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True):
            pass
    else:
        c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [sdk_span] = [s for s in recorded.spans() if s.instrumentation_scope.name != "claude_otel"]
    ours = [s for s in recorded.spans() if s.instrumentation_scope.name == "claude_otel"]
    assert all(s.name.startswith("POST") for s in ours)  # enriched, not a second operation span
    assert prompt_of(sdk_span) == MESSAGES
    assert sdk_span.attributes["gen_ai.output.messages"]


@pytest.mark.skipif(sdk_version() < (1, 14), reason="the SDK's own call span exists from anthropic 1.14")
def test_enriched_sdk_span_keeps_no_prompt_with_capture_off(sim, recorded, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE", raising=False)
    c = client(sim, open_telemetry={"tracer_provider": recorded.tracer_provider})
    c.messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    [sdk_span] = [s for s in recorded.spans() if s.instrumentation_scope.name != "claude_otel"]
    assert "gen_ai.input.messages" not in sdk_span.attributes
    assert "gen_ai.output.messages" not in sdk_span.attributes
