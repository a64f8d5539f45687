"""Every SDK surface beyond messages.create, through the real SDK over HTTP to the simulator: structured outputs,
the beta tool runner (its spans nested with the agent's), the refusal-fallback middleware (one call, two models),
the aiohttp transport, with_options, streamed beta.messages and a stream cut short before message_stop.

A surface the installed SDK lacks is skipped with the reason; the matrix venvs run this file too
(tests/test_sdk_matrix.py).
"""

from __future__ import annotations

import asyncio
import gc
import importlib

import anthropic
import pytest
from opentelemetry import trace

MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


def client(sim, **kwargs):
    """Returns a sync client on the simulator."""
    return anthropic.Anthropic(base_url=sim.base_url, api_key="test-key", max_retries=kwargs.pop("max_retries", 2),
                               **kwargs)


def async_client(sim, **kwargs):
    """Returns an async client on the simulator."""
    return anthropic.AsyncAnthropic(base_url=sim.base_url, api_key="test-key", **kwargs)


def served(sim, path="/v1/messages"):
    """Returns the simulator's records of the requests to path that it answered with 200."""
    return [r for r in sim.requests if r.path.split("?")[0] == path and r.status == 200]


def attempts_of(recorded, op_span):
    """Returns the attempt spans that are children of op_span."""
    return [s for s in recorded.attempt_spans() if s.parent is not None and s.parent.span_id == op_span.context.span_id]


def has_sdk_tracing() -> bool:
    """Returns whether the installed SDK starts its own call spans (anthropic >= 1.14)."""
    return hasattr(anthropic._base_client.BaseClient, "_tracer")


# -- messages.parse (structured outputs) ----------------------------------------------------------------------

def test_messages_parse_is_one_chat_operation_with_usage(recorded, sim):
    c = client(sim)
    if not hasattr(c.messages, "parse"):
        pytest.skip(f"anthropic {anthropic.__version__} has no messages.parse (structured outputs)")
    from pydantic import BaseModel

    class Person(BaseModel):
        name: str
        age: int

    result = c.messages.parse(model=MODEL, max_tokens=50, messages=MESSAGES, output_format=Person,
                              extra_headers={"x-sim-text": '{"name": "Ada", "age": 36}', "x-sim-output-tokens": "7"})
    assert result.parsed_output == Person(name="Ada", age=36)
    (op,) = recorded.operation_spans()
    (record,) = served(sim)
    assert op.name == f"chat {MODEL}"
    assert op.attributes["gen_ai.operation.name"] == "chat"
    assert op.attributes["gen_ai.usage.output_tokens"] == 7
    assert op.attributes["gen_ai.usage.input_tokens"] == record.input_tokens
    assert len(attempts_of(recorded, op)) == 1
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="output") == 7
    assert recorded.total("gen_ai.client.operation.duration", gen_ai__operation__name="chat") == 1


# -- the beta tool runner ---------------------------------------------------------------------------------------

def _weather_tool(is_async: bool):
    """Returns a runnable tool the simulator's tool_use answer calls."""
    if is_async:
        @anthropic.beta_async_tool
        async def get_weather(city: str) -> str:
            """Returns the weather of a city."""
            return f"sunny in {city}"
        return get_weather

    @anthropic.beta_tool
    def get_weather(city: str) -> str:  # noqa: F811
        """Returns the weather of a city."""
        return f"sunny in {city}"
    return get_weather


def _run_tool_runner(sim, recorded, is_async: bool, stream: bool, sdk_spans: bool):
    """Runs a two-turn tool-runner loop (tool_use, then end_turn) and returns the final message's stop reason."""
    options = {"open_telemetry": {"tracer_provider": recorded.tracer_provider}} if sdk_spans else {}
    params = dict(model=MODEL, max_tokens=50, messages=MESSAGES, tools=[_weather_tool(is_async)],
                  extra_headers={"x-sim-tool-use": "true"}, stream=stream)
    if not is_async:
        runner = client(sim, **options).beta.messages.tool_runner(**params)
        if stream:
            for message_stream in runner:
                for _ in message_stream:
                    pass
        return runner.until_done().stop_reason

    async def go():
        async with async_client(sim, **options) as c:
            runner = c.beta.messages.tool_runner(**params)
            if stream:
                async for message_stream in runner:
                    async for _ in message_stream:
                        pass
            return (await runner.until_done()).stop_reason
    return asyncio.run(go())


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_tool_runner_each_model_call_is_an_operation_nested_in_the_runner_span(recorded, sim, is_async, stream):
    if not hasattr(anthropic.resources.beta.messages.Messages, "tool_runner"):
        pytest.skip(f"anthropic {anthropic.__version__} has no beta.messages.tool_runner")
    if not has_sdk_tracing():
        pytest.skip(f"anthropic {anthropic.__version__} has no spans of its own (the runner's span needs >= 1.14)")
    assert _run_tool_runner(sim, recorded, is_async, stream, sdk_spans=True) == "end_turn"
    gc.collect()
    records = served(sim)
    assert [r.stream for r in records] == [stream, stream]
    spans = recorded.spans_exporter.get_finished_spans()
    runners = [s for s in spans if s.name == "anthropic.messages.tool_runner"]
    assert len(runners) == 1, [s.name for s in spans]
    runner = runners[0]
    tools = [s for s in spans if s.name == "anthropic.custom_tool_use get_weather"]
    calls = [s for s in spans if s.name == "anthropic.messages.create"]
    # One model call per turn, each the SDK's call span enriched by the agent (no second operation span).
    assert len(calls) == 2 and len(tools) == 1
    assert not [s for s in recorded.operation_spans() if s.name.startswith("chat ")]
    for span in calls + tools:
        assert span.parent is not None and span.parent.span_id == runner.context.span_id
        assert span.context.trace_id == runner.context.trace_id
    for call, record in zip(sorted(calls, key=lambda s: s.start_time), records):
        (attempt,) = attempts_of(recorded, call)
        assert attempt.attributes["gen_ai.request.model"] == MODEL
        assert call.attributes["gen_ai.usage.output_tokens"] == record.output_tokens_served
        assert call.attributes["anthropic.attempt.count"] == 1
        if stream:
            assert 0 < call.attributes["gen_ai.response.time_to_first_chunk"] < 5
    # The tool ran between the two model calls.
    first, second = sorted(calls, key=lambda s: s.start_time)
    assert first.end_time <= tools[0].start_time and tools[0].end_time <= second.start_time
    assert recorded.total("gen_ai.client.operation.duration") == 2
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="output") == \
        sum(r.output_tokens_served for r in records)
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == (2 if stream else 0)
    assert recorded.total("anthropic.client.retries") == 0


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_tool_runner_without_sdk_spans_nests_operations_in_the_app_span(recorded, sim, is_async, stream):
    if not hasattr(anthropic.resources.beta.messages.Messages, "tool_runner"):
        pytest.skip(f"anthropic {anthropic.__version__} has no beta.messages.tool_runner")
    tracer = recorded.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("app request") as app:
        assert _run_tool_runner(sim, recorded, is_async, stream, sdk_spans=False) == "end_turn"
    gc.collect()
    records = served(sim)
    ops = sorted((s for s in recorded.operation_spans() if s.name == f"chat {MODEL}"), key=lambda s: s.start_time)
    assert len(ops) == 2 and len(records) == 2
    for op, record in zip(ops, records):
        assert op.parent.span_id == app.get_span_context().span_id
        assert len(attempts_of(recorded, op)) == 1
        assert op.attributes["gen_ai.usage.output_tokens"] == record.output_tokens_served
        assert "anthropic.stream.closed_early" not in op.attributes
    assert recorded.total("gen_ai.client.operation.duration") == 2
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == (2 if stream else 0)


# -- the refusal-fallback middleware ------------------------------------------------------------------------------

def _fallback_client(sim, refused, fallback, is_async=False, **options):
    """Returns a client with the SDK's refusal-fallback middleware falling back from `refused` to `fallback`."""
    middleware = importlib.import_module("anthropic.lib.middleware").BetaRefusalFallbackMiddleware
    make = async_client if is_async else client
    return make(sim, middleware=[middleware([{"model": fallback}])],
                default_headers={"x-sim-refuse-model": refused}, **options)


def _needs_fallback_middleware():
    try:
        importlib.import_module("anthropic.lib.middleware")
    except ImportError:
        pytest.skip(f"anthropic {anthropic.__version__} has no refusal-fallback middleware")


@pytest.mark.parametrize("sdk_spans", [False, True], ids=["agent-span", "sdk-span"])
@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_refusal_fallback_records_each_attempts_model(recorded, sim, stream, sdk_spans):
    _needs_fallback_middleware()
    if sdk_spans and not has_sdk_tracing():
        pytest.skip(f"anthropic {anthropic.__version__} has no spans of its own (>= 1.14)")
    refused, fallback = "claude-opus-4-1", "claude-haiku-4-5"
    options = {"open_telemetry": {"tracer_provider": recorded.tracer_provider}} if sdk_spans else {}
    c = _fallback_client(sim, refused, fallback, **options)
    if stream:
        events = [e.type for e in c.beta.messages.create(model=refused, max_tokens=20, messages=MESSAGES,
                                                          stream=True)]
        assert events[-1] == "message_stop"
    else:
        message = c.beta.messages.create(model=refused, max_tokens=20, messages=MESSAGES)
        assert message.model == fallback and message.stop_reason == "end_turn"
    records = served(sim)
    assert [r.model for r in records] == [refused, fallback]
    gc.collect()
    (op,) = recorded.operation_spans()
    assert op.name == ("anthropic.messages.create" if sdk_spans else f"chat {refused}")
    assert op.attributes["gen_ai.request.model"] == refused
    attempts = sorted(attempts_of(recorded, op), key=lambda s: s.start_time)
    assert [a.attributes["gen_ai.request.model"] for a in attempts] == [refused, fallback]
    assert attempts[1].attributes["http.request.resend_count"] == 1
    # A fallback hop is a second attempt, not a retry (an enriched SDK span ended early has no count: none).
    assert op.attributes["anthropic.attempt.count"] == 2
    assert op.attributes.get("anthropic.retry.count", 0) == 0
    assert recorded.total("anthropic.client.retries") == 0
    assert not [e for e in op.events if e.name == "anthropic.retry"]
    assert recorded.total("anthropic.client.attempt.duration", gen_ai__request__model=refused) == 1
    assert recorded.total("anthropic.client.attempt.duration", gen_ai__request__model=fallback) == 1
    assert recorded.total("anthropic.client.timeout.utilization", gen_ai__request__model=fallback) == 1
    # The call itself stays the application's call: one operation, under the model it asked for.
    assert recorded.total("gen_ai.client.operation.duration") == 1
    assert recorded.total("gen_ai.client.operation.duration", gen_ai__request__model=refused) == 1
    assert op.status.status_code.name != "ERROR"
    if stream:
        assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == 1
        assert "anthropic.stream.closed_early" not in op.attributes
        assert op.attributes["gen_ai.usage.output_tokens"] > 0
    else:
        assert op.attributes["gen_ai.response.model"] == fallback
        assert op.attributes["gen_ai.usage.output_tokens"] == records[1].output_tokens_served


def test_refusal_fallback_pinned_state_sends_the_first_attempt_to_the_fallback(recorded, sim):
    _needs_fallback_middleware()
    refused, fallback = "claude-opus-4-1", "claude-haiku-4-5"
    c = _fallback_client(sim, refused, fallback)
    with importlib.import_module("anthropic.lib.middleware").BetaFallbackState():
        c.beta.messages.create(model=refused, max_tokens=20, messages=MESSAGES)
        recorded.clear()
        c.beta.messages.create(model=refused, max_tokens=20, messages=MESSAGES)
    assert [r.model for r in served(sim)] == [refused, fallback, fallback]
    (op,) = recorded.operation_spans()
    (attempt,) = attempts_of(recorded, op)
    # The application asked for the refused model; the one request of this call went to the pinned fallback.
    assert op.attributes["gen_ai.request.model"] == refused
    assert attempt.attributes["gen_ai.request.model"] == fallback
    assert op.attributes["anthropic.attempt.count"] == 1


def test_refusal_fallback_async_stream(recorded, sim):
    _needs_fallback_middleware()
    refused, fallback = "claude-opus-4-1", "claude-haiku-4-5"

    async def go():
        async with _fallback_client(sim, refused, fallback, is_async=True) as c:
            stream = await c.beta.messages.create(model=refused, max_tokens=20, messages=MESSAGES, stream=True)
            return [e.type async for e in stream]
    assert asyncio.run(go())[-1] == "message_stop"
    (op,) = recorded.operation_spans()
    attempts = sorted(attempts_of(recorded, op), key=lambda s: s.start_time)
    assert [a.attributes["gen_ai.request.model"] for a in attempts] == [refused, fallback]
    assert recorded.total("anthropic.client.retries") == 0
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == 1


# -- DefaultAioHttpClient --------------------------------------------------------------------------------------

def test_aiohttp_transport_what_is_measured_and_what_degrades(recorded, sim):
    if not hasattr(anthropic, "DefaultAioHttpClient"):
        pytest.skip(f"anthropic {anthropic.__version__} has no DefaultAioHttpClient")
    pytest.importorskip("aiohttp", reason="aiohttp is not installed here (tests/setup.sh installs it everywhere)")

    async def go():
        async with async_client(sim, http_client=anthropic.DefaultAioHttpClient(), timeout=4.0,
                                max_retries=0) as c:
            await c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES,
                                    extra_headers={"x-sim-headers-delay": "1"})
            stream = await c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, stream=True)
            async for _ in stream:
                pass
            with pytest.raises(anthropic.APITimeoutError):
                await c.with_options(timeout=0.3).messages.create(
                    model=MODEL, max_tokens=5, messages=MESSAGES, extra_headers={"x-sim-headers-delay": "2"})
    asyncio.run(go())
    ops = sorted(recorded.operation_spans(), key=lambda s: s.start_time)
    assert len(ops) == 3
    plain, streamed, timed_out = ops
    # Measured: operations and attempts, usage, the applied timeouts, read utilization, TTFT, timeouts.
    assert plain.attributes["anthropic.timeout.read"] == 4.0
    assert 0.25 <= plain.attributes["anthropic.timeout.utilization"] < 0.5  # 1 s of 4 s
    assert plain.attributes["gen_ai.usage.output_tokens"] == 5
    assert 0 < streamed.attributes["gen_ai.response.time_to_first_chunk"] < 2
    assert timed_out.attributes["error.type"] == "timeout"
    assert timed_out.attributes["anthropic.timeout.read"] == 0.3
    assert timed_out.attributes["anthropic.timeout.utilization"] >= 1.0
    assert recorded.total("anthropic.client.timeouts", anthropic__timeout__phase="read") == 1
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == 1
    # Degraded: aiohttp has no httpcore trace extension, so no connection phases: the request counts as sent when
    # send() starts and prefill equals the attempt's time to first chunk (with httpx it is shorter).
    (attempt,) = attempts_of(recorded, streamed)
    assert attempt.attributes["anthropic.prefill.duration"] == attempt.attributes["gen_ai.response.time_to_first_chunk"]


def test_httpx_transport_separates_prefill_from_connect(recorded, sim):
    """The counterpart of the aiohttp degradation: with httpx the phases are there, prefill starts after the send."""
    async def go():
        async with async_client(sim) as c:
            stream = await c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, stream=True)
            async for _ in stream:
                pass
    asyncio.run(go())
    (attempt,) = recorded.attempt_spans()
    assert attempt.attributes["anthropic.prefill.duration"] < attempt.attributes["gen_ai.response.time_to_first_chunk"]


# -- with_options ------------------------------------------------------------------------------------------------

def test_with_options_timeout_governs_utilization(recorded, sim):
    c = client(sim).with_options(timeout=2.0, max_retries=0)
    c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, extra_headers={"x-sim-headers-delay": "0.6"})
    (op,) = recorded.operation_spans()
    assert op.attributes["anthropic.timeout.read"] == 2.0
    # 0.6 s of 2 s; under the client default (600 s) it would be 0.001.
    assert 0.3 <= op.attributes["anthropic.timeout.utilization"] < 0.6
    assert 0.3 <= recorded.hist_max("anthropic.client.timeout.utilization", anthropic__timeout__kind="read") < 0.6


def test_with_options_max_retries_zero_makes_one_attempt(recorded, sim):
    c = client(sim, max_retries=3).with_options(max_retries=0)
    with pytest.raises(anthropic.APIStatusError):
        c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES,
                          extra_headers={"x-sim-fail-attempts": "2", "x-sim-fail-status": "529"})
    (op,) = recorded.operation_spans()
    assert op.attributes["anthropic.attempt.count"] == 1
    assert op.attributes["error.type"] == "overloaded_error"
    assert recorded.total("anthropic.client.retries") == 0
    recorded.clear()
    client(sim, max_retries=3).messages.create(
        model=MODEL, max_tokens=5, messages=MESSAGES,
        extra_headers={"x-sim-fail-attempts": "2", "x-sim-fail-status": "529", "x-sim-retry-after-ms": "10"})
    (op,) = recorded.operation_spans()
    assert op.attributes["anthropic.attempt.count"] == 3
    assert recorded.total("anthropic.client.retries", anthropic__retry__reason="529") == 2


# -- streamed beta.messages ------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["stream=True", "stream()"])
def test_streamed_beta_messages(recorded, sim, how):
    c = client(sim)
    if how == "stream()" and not hasattr(c.beta.messages, "stream"):
        pytest.skip(f"anthropic {anthropic.__version__} has no beta.messages.stream()")
    if how == "stream=True":
        events = list(c.beta.messages.create(model=MODEL, max_tokens=6, messages=MESSAGES, stream=True))
        assert events[-1].type == "message_stop"
    else:
        with c.beta.messages.stream(model=MODEL, max_tokens=6, messages=MESSAGES) as stream:
            assert stream.get_final_message().usage.output_tokens == 6
    (op,) = recorded.operation_spans()
    (record,) = served(sim)
    assert op.name == f"chat {MODEL}" and record.stream
    assert op.attributes["anthropic.request.stream"] is True
    assert op.attributes["gen_ai.usage.output_tokens"] == 6
    assert op.attributes["gen_ai.usage.input_tokens"] == record.input_tokens
    assert 0 < op.attributes["gen_ai.response.time_to_first_chunk"] < 5
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk", anthropic__request__stream=True) == 1
    assert recorded.hist_sum("gen_ai.client.token.usage", gen_ai__token__type="output") == 6
    assert op.status.status_code.name != "ERROR"


# -- a stream that ends without message_stop --------------------------------------------------------------------

CUT = {"x-sim-no-message-stop": "true"}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_stream_without_message_stop_is_an_api_error(recorded, sim, is_async):
    if is_async:
        async def go():
            async with async_client(sim) as c:
                stream = await c.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, stream=True,
                                                 extra_headers=CUT)
                return [e.type async for e in stream]
        events = asyncio.run(go())
    else:
        events = [e.type for e in client(sim).messages.create(model=MODEL, max_tokens=5, messages=MESSAGES,
                                                               stream=True, extra_headers=CUT)]
    # The application sees no exception: the events just stop after message_delta.
    assert events[-1] == "message_delta"
    (op,) = recorded.operation_spans()
    assert op.status.status_code.name == "ERROR"
    assert op.attributes["error.type"] == "api_error"
    assert "anthropic.stream.closed_early" not in op.attributes
    assert recorded.total("gen_ai.client.operation.duration", error__type="api_error") == 1
    assert recorded.total("gen_ai.client.operation.duration") == 1
    # What did arrive is still measured.
    assert recorded.total("gen_ai.client.operation.time_to_first_chunk") == 1


def test_stream_with_message_stop_is_not_an_error(recorded, sim):
    list(client(sim).messages.create(model=MODEL, max_tokens=5, messages=MESSAGES, stream=True))
    (op,) = recorded.operation_spans()
    assert op.status.status_code.name != "ERROR"
    assert recorded.total("gen_ai.client.operation.duration", error__type="api_error") == 0


def test_stream_without_message_stop_matches_the_sdks_own_span(recorded, sim):
    if not has_sdk_tracing():
        pytest.skip(f"anthropic {anthropic.__version__} has no spans of its own (>= 1.14)")
    c = client(sim, open_telemetry={"tracer_provider": recorded.tracer_provider})
    with c.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES, extra_headers=CUT) as stream:
        for _ in stream:
            pass
    (sdk_span,) = recorded.spans("anthropic.messages.create")
    assert sdk_span.status.status_code == trace.StatusCode.ERROR
    assert sdk_span.attributes["error.type"] == "api_error"
    # The agent enriched that span (no second operation span) and its metrics carry the same error type.
    assert len(recorded.operation_spans()) == 1
    assert recorded.total("gen_ai.client.operation.duration", error__type="api_error") == 1
