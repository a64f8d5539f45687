"""The two metric name sets: today's (the default public contract) and the latest GenAI conventions behind
OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental, recorded from the real SDK over HTTP to the simulator.

Every expected name, unit and bucket list below is written out literally from the spec text
(open-telemetry/semantic-conventions-genai, docs/gen-ai/client-inference.md and gen-ai-token-metrics.md), never
read from claude_otel.semconv, so a wrong constant there fails here.
"""

from __future__ import annotations

import urllib.parse

import anthropic
import pytest

from tests.helpers.sdk import sdk_httpx

httpx = sdk_httpx()
MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "Say hello"}]

SPEC_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
SPEC_TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DEFAULT_SECONDS = SPEC_SECONDS + (163.84, 327.68, 655.36)
DEFAULT_CHUNK = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

# Every instrument one streamed call records, by name set (active_requests is observed at collection).
OWN = {
    "anthropic.client.stream.max_gap", "anthropic.client.prefill.duration", "anthropic.client.attempt.duration",
    "anthropic.client.timeout.utilization", "anthropic.client.active_requests",
}
DEFAULT_NAMES = OWN | {
    "gen_ai.client.operation.duration", "gen_ai.client.operation.time_to_first_chunk",
    "gen_ai.client.operation.time_per_output_chunk", "gen_ai.client.token.usage",
}
LATEST_NAMES = OWN | {
    "gen_ai.client.inference.duration", "gen_ai.client.inference.time_to_first_chunk",
    "gen_ai.client.inference.time_per_output_chunk",
    "gen_ai.client.inference.usage.input_tokens", "gen_ai.client.inference.usage.output_tokens",
    "gen_ai.client.inference.usage.cache_read.input_tokens",
    "gen_ai.client.inference.usage.cache_write.input_tokens",
    "gen_ai.client.inference.operation.input_tokens", "gen_ai.client.inference.operation.output_tokens",
}


@pytest.fixture
def default(monkeypatch, request):
    """The agent with no opt-in (another signal's opt-in must not switch the GenAI names)."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    monkeypatch.setenv("CLAUDE_OTEL_CHUNK_METRICS", "true")
    return request.getfixturevalue("recorded")


@pytest.fixture
def latest(monkeypatch, request):
    """The agent opted into the latest conventions, spelled as users do (a list with spaces)."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http/dup, gen_ai_latest_experimental ")
    monkeypatch.setenv("CLAUDE_OTEL_CHUNK_METRICS", "true")
    return request.getfixturevalue("recorded")


def client(sim, **kwargs):
    """Returns an SDK client of the simulator."""
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test-key", **kwargs)


def faults(**values):
    """Returns the simulator's fault headers."""
    return {f"x-sim-{k.replace('_', '-')}": str(v) for k, v in values.items()}


def stream_call(sim, **fault):
    """Makes one streamed call read to its end; returns its events."""
    stream = client(sim, timeout=10.0).messages.create(
        model=MODEL, max_tokens=64, messages=MESSAGES, stream=True, extra_headers=faults(**fault))
    return [e for e in stream]


def metrics_of(recorded) -> dict:
    """Returns {name: metric} of everything collected."""
    data = recorded.reader.get_metrics_data()
    return {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def base_attrs(sim, stream_key: str, stream: bool = True) -> dict:
    """Returns the attributes every metric of one call to the simulator carries."""
    port = urllib.parse.urlsplit(sim.base_url).port
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic", "gen_ai.request.model": MODEL,
            "server.address": "127.0.0.1", "server.port": port, stream_key: stream}


CACHED = dict(input_tokens=20, cache_read_tokens=5, cache_creation_tokens=3, output_tokens=6)


def test_default_names_are_unchanged(sim, default):
    stream_call(sim, **CACHED)
    found = metrics_of(default)
    assert set(found) - {"anthropic.ratelimit.remaining"} == DEFAULT_NAMES
    [op] = default.points("gen_ai.client.operation.duration")
    assert op.attrs == base_attrs(sim, "anthropic.request.stream")
    assert op.bounds == DEFAULT_SECONDS
    [chunk] = default.points("gen_ai.client.operation.time_per_output_chunk")[:1]
    assert chunk.bounds == DEFAULT_CHUNK
    tokens = {p.attrs["gen_ai.token.type"]: p.sum for p in default.points("gen_ai.client.token.usage")}
    assert tokens == {"input": 20, "output": 6, "cache_read": 5, "cache_creation": 3}
    [span] = default.operation_spans()
    assert span.attributes["gen_ai.usage.cache_creation.input_tokens"] == 3
    assert "gen_ai.usage.cache_write.input_tokens" not in span.attributes


def test_latest_names_units_buckets_and_attributes(sim, latest):
    stream_call(sim, **CACHED, token_delay=0.01)
    found = metrics_of(latest)
    assert set(found) - {"anthropic.ratelimit.remaining"} == LATEST_NAMES
    units = {name: found[name].unit for name in LATEST_NAMES - OWN}
    assert units == {
        "gen_ai.client.inference.duration": "s", "gen_ai.client.inference.time_to_first_chunk": "s",
        "gen_ai.client.inference.time_per_output_chunk": "s",
        "gen_ai.client.inference.usage.input_tokens": "{token}", "gen_ai.client.inference.usage.output_tokens":
            "{token}", "gen_ai.client.inference.usage.cache_read.input_tokens": "{token}",
        "gen_ai.client.inference.usage.cache_write.input_tokens": "{token}",
        "gen_ai.client.inference.operation.input_tokens": "{token}",
        "gen_ai.client.inference.operation.output_tokens": "{token}",
    }
    expected = base_attrs(sim, "gen_ai.request.stream")
    for name in ("gen_ai.client.inference.duration", "gen_ai.client.inference.time_to_first_chunk",
                 "gen_ai.client.inference.time_per_output_chunk"):
        points = latest.points(name)
        assert points and all(p.bounds == SPEC_SECONDS and p.attrs == expected for p in points), name
    assert sum(p.count for p in latest.points("gen_ai.client.inference.time_per_output_chunk")) == 5
    # the usage counters are monotonic sums with the required gen_ai.token.modality
    counted = dict(expected, **{"gen_ai.token.modality": "unknown"})
    values = {}
    for name in ("input_tokens", "output_tokens", "cache_read.input_tokens", "cache_write.input_tokens"):
        metric = found["gen_ai.client.inference.usage." + name]
        assert metric.data.is_monotonic is True, name
        [point] = latest.points(metric.name)
        assert point.attrs == counted, name
        values[name] = point.value
    # input includes cached tokens (Anthropic's input_tokens leaves them out): 20 + 5 + 3
    assert values == {"input_tokens": 28, "output_tokens": 6, "cache_read.input_tokens": 5,
                      "cache_write.input_tokens": 3}
    [inputs] = latest.points("gen_ai.client.inference.operation.input_tokens")
    [outputs] = latest.points("gen_ai.client.inference.operation.output_tokens")
    assert (inputs.count, inputs.sum, inputs.bounds, inputs.attrs) == (1, 28, SPEC_TOKENS, expected)
    assert (outputs.count, outputs.sum, outputs.bounds) == (1, 6, SPEC_TOKENS)
    # claude-otel's own instruments keep their names and buckets; their stream attribute follows the set
    [gap] = latest.points("anthropic.client.stream.max_gap")
    assert gap.bounds == DEFAULT_SECONDS and gap.attrs == expected
    [span] = latest.operation_spans()
    assert span.attributes["gen_ai.usage.cache_write.input_tokens"] == 3
    assert "gen_ai.usage.cache_creation.input_tokens" not in span.attributes


def test_latest_usage_is_recorded_on_a_stream_cut_after_message_start(sim, latest):
    with pytest.raises((httpx.HTTPError, anthropic.APIError)):
        stream_call(sim, input_tokens=25, cache_read_tokens=4, cache_creation_tokens=2, drop_after=2)
    [op] = latest.points("gen_ai.client.inference.duration")
    assert op.attrs["error.type"] == "connection_error"
    values = {name: latest.total("gen_ai.client.inference.usage." + name)
              for name in ("input_tokens", "output_tokens", "cache_read.input_tokens", "cache_write.input_tokens")}
    # message_start's usage arrived; its output count is a placeholder, so no output tokens are claimed
    assert values == {"input_tokens": 31, "output_tokens": 0, "cache_read.input_tokens": 4,
                      "cache_write.input_tokens": 2}
    [inputs] = latest.points("gen_ai.client.inference.operation.input_tokens")
    assert (inputs.count, inputs.sum, inputs.attrs["error.type"]) == (1, 31, "connection_error")
    [outputs] = latest.points("gen_ai.client.inference.operation.output_tokens")
    assert (outputs.count, outputs.sum, outputs.attrs["error.type"]) == (1, 0, "connection_error")


def test_latest_usage_is_zero_when_no_response_arrived(sim, latest):
    with pytest.raises(anthropic.APIConnectionError):
        client(sim).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES,
                                    extra_headers=faults(drop_after=0))
    for name in ("input_tokens", "output_tokens", "cache_read.input_tokens", "cache_write.input_tokens"):
        [point] = latest.points("gen_ai.client.inference.usage." + name)
        assert (point.value, point.attrs["gen_ai.token.modality"]) == (0, "unknown"), name
    [inputs] = latest.points("gen_ai.client.inference.operation.input_tokens")
    assert (inputs.count, inputs.sum, inputs.attrs["error.type"]) == (1, 0, "connection_error")


def test_default_records_no_tokens_for_a_failed_call(sim, default):
    with pytest.raises((httpx.HTTPError, anthropic.APIError)):
        stream_call(sim, input_tokens=25, drop_after=2)
    assert default.points("gen_ai.client.token.usage") == []
    assert [p.attrs["error.type"] for p in default.points("gen_ai.client.operation.duration")] \
        == ["connection_error"]


def test_latest_non_inference_calls_record_duration_but_no_token_metrics(sim, latest):
    c = client(sim)
    messages = c.messages if hasattr(c.messages, "count_tokens") else c.beta.messages  # beta only before 0.41
    if not hasattr(messages, "count_tokens"):
        pytest.skip("this SDK has no count_tokens")
    result = messages.count_tokens(model=MODEL, messages=MESSAGES)
    assert result.input_tokens > 0
    [op] = latest.points("gen_ai.client.inference.duration")
    assert op.attrs["gen_ai.operation.name"] == "count_tokens"
    assert latest.points("gen_ai.client.inference.usage.input_tokens") == []
    assert latest.points("gen_ai.client.inference.operation.input_tokens") == []


@pytest.mark.parametrize("value, expected", [
    ("gen_ai_latest_experimental", True), (" http , gen_ai_latest_experimental", True),
    ("gen_ai_latest_experimental/dup", False), ("gen_ai", False), ("", False), (None, False),
])
def test_opt_in_parsing_matches_opentelemetry_instrumentation(value, expected):
    from claude_otel.semconv import latest_opted_in

    assert latest_opted_in(value) is expected
