"""Narrow unit tests of the agent's parsers and classifiers (no SDK, no network)."""

from __future__ import annotations

import asyncio
import math

import pytest

from claude_otel import errors, headers, semconv, timeouts
from claude_otel.attributes import ModelGuard, operation_name, route
from claude_otel.settings import Settings
from tests.helpers.procs import wait_pid


class _Timeout:
    def __init__(self, read, connect):
        self.read, self.connect = read, connect


def test_applied_timeouts_prefer_the_request_extension():
    assert timeouts.applied_timeouts({"timeout": {"read": 600.0, "connect": 5.0}}, {}) == (600.0, 5.0)
    assert timeouts.applied_timeouts({}, {"x-stainless-read-timeout": "30"}) == (30.0, None)
    assert timeouts.applied_timeouts({"timeout": {"read": None, "connect": None}}, None) == (None, None)
    assert timeouts.applied_timeouts(None, None) == (None, None)


def test_client_timeout_values():
    assert timeouts.from_client_value(120) == (120.0, 120.0)
    assert timeouts.from_client_value(_Timeout(600, 5)) == (600.0, 5.0)
    assert timeouts.from_client_value(None) == (None, None)
    assert timeouts.from_client_value(float("nan")) == (None, None)


def test_utilization_picks_the_closest_timeout():
    assert timeouts.utilization(4.0, 30.0, 600.0, 5.0) == (0.8, "connect")
    assert timeouts.utilization(0.1, 540.0, 600.0, 5.0) == (0.9, "read")
    value, kind = timeouts.utilization(None, 45.0, 600.0, 5.0, proxy_idle_timeout=60.0)
    assert kind == "proxy_idle" and math.isclose(value, 0.75)
    assert timeouts.utilization(None, None, 600.0, 5.0) == (None, None)
    assert timeouts.utilization(None, 1.0, None, None) == (None, None)


def test_retry_after_headers():
    assert headers.retry_after({"retry-after-ms": "250"}) == 0.25
    assert headers.retry_after({"retry-after": "2"}) == 2.0
    assert headers.retry_after({"retry-after": "soon"}) is None
    assert headers.retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert headers.retry_after({}) is None


def test_ratelimit_and_request_id_headers():
    found = dict(headers.ratelimit_remaining({
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-input-tokens-remaining": "8000",
        "anthropic-ratelimit-tokens-remaining": "nan",
        "anthropic-ratelimit-output-tokens-remaining": "x"}))
    assert found == {"requests": 49.0, "input_tokens": 8000.0}
    assert headers.request_id({"request-id": "req_1"}) == "req_1"
    assert len(headers.request_id({"request-id": "r" * 1000})) == 128


class ReadTimeout(Exception):
    pass


class APITimeoutError(Exception):
    pass


class APIStatusError(Exception):
    def __init__(self, status, body):
        self.status_code, self.body = status, body


def test_error_types():
    assert errors.error_type(ReadTimeout()) == "timeout"
    assert errors.timeout_phase(ReadTimeout()) == "read"
    wrapped = APITimeoutError()
    wrapped.__cause__ = ReadTimeout()
    assert errors.error_type(wrapped) == "timeout" and errors.timeout_phase(wrapped) == "read"
    assert errors.error_type(APIStatusError(529, {"type": "error", "error": {"type": "overloaded_error"}})) \
        == "overloaded_error"
    assert errors.error_type(APIStatusError(502, "<html>")) == "502"
    assert errors.error_type(APIStatusError(400, {"error": {"type": "Free text with spaces"}})) == "400"
    assert errors.error_type(ConnectionResetError()) == "connection_error"
    assert errors.error_type(asyncio.CancelledError()) == "cancelled"
    assert errors.error_type(ValueError()) == "ValueError"


def test_operation_names_and_routes():
    assert operation_name("/v1/messages") == "chat"
    assert operation_name("/v1/messages?beta=true") == "chat"
    assert operation_name("/v1/messages/count_tokens") == "count_tokens"
    assert operation_name("/v1/messages/batches/msgbatch_0123456789") == "batches"
    assert operation_name("/v1/complete") == "text_completion"
    assert operation_name("/model/anthropic.claude-3/invoke-with-response-stream") == "chat"
    assert operation_name("/v1/something") == "other"
    assert route("/v1/messages/batches/msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d") == "/v1/messages/batches/{id}"


def test_model_guard_caps_distinct_names():
    guard = ModelGuard(2)
    assert [guard(m) for m in ("a", "b", "c", "a", None, 7, "bad name!")] == \
        ["a", "b", "_OTHER", "a", "unknown", "_OTHER", "_OTHER"]


def test_invalid_settings_fall_back_with_one_message_naming_them(caplog):
    settings = Settings.from_env({"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "soon", "CLAUDE_OTEL_PROMETHEUS_PORT": "http",
                                  "CLAUDE_OTEL_CHUNK_METRICS": "maybe", "CLAUDE_OTEL_MAX_MODELS": "-1",
                                  "CLAUDE_OTEL_ATTEMPT_SPANS": "some"})
    assert settings.proxy_idle_timeout is None and settings.prometheus_port is None
    assert settings.chunk_metrics is False and settings.max_models == 50 and settings.attempt_spans == "all"
    assert len(settings.problems) == 5
    for name in ("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT='soon'", "CLAUDE_OTEL_PROMETHEUS_PORT='http'",
                 "CLAUDE_OTEL_CHUNK_METRICS='maybe'", "CLAUDE_OTEL_MAX_MODELS='-1'",
                 "CLAUDE_OTEL_ATTEMPT_SPANS='some' is not one of all, retries"):
        assert sum(name in r.getMessage() for r in caplog.records) == 1


def test_valid_settings_and_overrides():
    settings = Settings.from_env({"CLAUDE_OTEL_PROXY_IDLE_TIMEOUT": "60", "CLAUDE_OTEL_CAPTURE_CONTENT": "TRUE",
                                  "PROMETHEUS_MULTIPROC_DIR": "/tmp/x", "CLAUDE_OTEL_ATTEMPT_SPANS": " Retries"},
                                 max_models=7)
    assert settings.proxy_idle_timeout == 60.0 and settings.capture_content is True
    assert settings.attempt_spans == "retries"
    assert settings.multiproc_dir == "/tmp/x" and settings.max_models == 7 and not settings.problems


def test_in_flight_counts_start_empty_and_unlocked_in_a_forked_child():
    import os

    from claude_otel.metrics import InFlight

    in_flight = InFlight()
    in_flight.add(("m",), {"gen_ai.request.model": "m"}, 1)
    with in_flight._lock:  # another thread of the parent holds the lock at fork time
        pid = os.fork()
        if pid == 0:  # the child: must neither block nor report the parent's call
            try:
                in_flight.add(("m",), {"gen_ai.request.model": "m"}, 1)
                os._exit(0 if in_flight.value(("m",)) == 1 else 1)
            finally:
                os._exit(2)
    status = wait_pid(pid, 30)
    assert os.waitstatus_to_exitcode(status) == 0
    assert in_flight.value(("m",)) == 1


def test_a_class_under_two_module_names_is_patched_once(monkeypatch):
    # httpx2.alias_httpx() (the SDK's own test suite calls it) makes `import httpx` give httpx2: each send was
    # wrapped twice, so every HTTP request counted as two attempts and a retry.
    import sys

    httpx2 = pytest.importorskip("httpx2")
    from claude_otel import patches

    monkeypatch.setitem(sys.modules, "httpx", httpx2)
    assert not patches._applied, "another test left the agent instrumented"
    try:
        patches.apply()
        sends = [(cls, attr) for cls, attr, _, _ in patches._applied if attr == "send"]
        assert sorted(cls.__name__ for cls, _ in sends) == ["AsyncClient", "Client"]
    finally:
        patches.remove()
    assert "__wrapped__" not in dir(httpx2.Client.__dict__["send"])


@pytest.mark.parametrize("stream", [False, True], ids=["returned", "streamed"])
@pytest.mark.parametrize("value", ["12", 12.5, True, -3, None, b"7", [1], float("nan"), 10**30],
                         ids=["str", "float", "bool", "negative", "none", "bytes", "list", "nan", "huge"])
def test_token_counts_of_any_shape_end_the_call_and_record_only_whole_counts(value, stream):
    # The SDK's own tests (non-strict validation) give usage counts as strings: recording one raised
    # `TypeError: must be real number, not str` at request end and lost the call's telemetry.
    from types import SimpleNamespace

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from claude_otel import streams
    from claude_otel.operation import Operation
    from claude_otel.telemetry import Telemetry

    reader = InMemoryMetricReader()
    tel = Telemetry(TracerProvider(), MeterProvider(metric_readers=[reader]))
    options = SimpleNamespace(method="post", url="/v1/messages", json_data={"model": "m", "max_tokens": 8})
    op = Operation(tel, SimpleNamespace(base_url=None), options, stream)
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    if stream:
        streams._usage(op, {name: value for name in fields}, placeholder_output=False)
        op.finish(op.start + 1.0)
    else:
        op.returned(SimpleNamespace(usage=SimpleNamespace(**{name: value for name in fields}), id="msg_1",
                                    model="m", stop_reason="end_turn"))
    assert op.finished
    data = reader.get_metrics_data()
    points = {metric.name: list(metric.data.data_points) for rm in data.resource_metrics
              for sm in rm.scope_metrics for metric in sm.metrics}
    assert len(points["gen_ai.client.operation.duration"]) == 1
    whole = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    tokens = points.get("gen_ai.client.token.usage", [])
    assert [p.sum for p in tokens] == ([value] * 4 if whole else [])


# -- edges the mutation check (tests/mutation.py) found untested ------------------------------------------------

class _Raising:
    """A mapping-like or timeout-like object whose every read raises."""

    def get(self, *args):
        raise RuntimeError("broken headers")

    @property
    def read(self):
        raise RuntimeError("broken timeout")


def test_timeout_edges_bools_broken_objects_and_ties():
    assert timeouts.from_client_value(True) == (None, None)  # a bool is not 1 second
    assert timeouts.applied_timeouts({"timeout": {"read": True, "connect": False}}, None) == (None, None)
    assert timeouts.from_client_value(_Raising()) == (None, None)
    assert timeouts.applied_timeouts({"timeout": {"read": None, "connect": 5.0}}, _Raising()) == (None, None)
    assert timeouts.utilization(4.0, "soon", 600.0, 5.0) == (None, None)  # never half an answer
    # a tie between the connect and read timeouts is reported as connect (checked first, replaced only by more)
    assert timeouts.utilization(1.0, 60.0, 600.0, 10.0) == (0.1, "connect")


def test_header_edges_zero_values_and_broken_mappings():
    assert headers.retry_after({"retry-after-ms": "0", "retry-after": "7"}) == 0.0  # 0 ms is a hint: retry now
    found = dict(headers.ratelimit_remaining({"anthropic-ratelimit-requests-remaining": "0",
                                              "anthropic-ratelimit-tokens-remaining": "-1"}))
    assert found == {"requests": 0.0}  # nothing left is the value that matters most
    assert headers.request_id(_Raising()) is None
    assert headers.request_id(None) is None


class _UnreadResponse:
    """A response whose body was not read (no _content): its error type comes from its status."""


def test_error_type_of_each_documented_status_of_an_unread_error_response():
    documented = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                  403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                  500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
    for status, expected in documented.items():
        assert errors.response_error_type(_UnreadResponse(), status) == expected, status
        # the next status up is either documented itself or falls back to the bare code
        assert errors.response_error_type(_UnreadResponse(), status + 1) == documented.get(status + 1, str(status + 1))


def test_failure_cause_looks_eight_exceptions_deep():
    import socket

    def chain(depth):
        exc = socket.gaierror("name or service not known")
        for _ in range(depth - 1):
            outer = RuntimeError("wrapper")
            outer.__cause__ = exc
            exc = outer
        return exc

    assert errors.failure_cause(chain(8)) == semconv.CAUSE_DNS == "dns"
    assert errors.failure_cause(chain(9)) == semconv.CAUSE_OTHER  # bounded: a ninth link is never looked at


def test_server_of_default_ports():
    from claude_otel.attributes import server_of
    from tests.helpers.sdk import sdk_httpx

    httpx = sdk_httpx()
    assert server_of(httpx.URL("https://api.example.com/v1/")) == ("api.example.com", 443)
    assert server_of(httpx.URL("http://plain.example.com/")) == ("plain.example.com", 80)
    assert server_of(httpx.URL("http://127.0.0.1:8123/")) == ("127.0.0.1", 8123)


def test_model_guard_keeps_names_it_admitted():
    guard = ModelGuard(2)
    assert [guard(m) for m in ("a", "b", "b", "a", "c", "c")] == ["a", "b", "b", "a", "_OTHER", "_OTHER"]


class _Event:
    def __init__(self, data):
        self.data = data

    def json(self):
        return self.data


def _stream_op(**values):
    from types import SimpleNamespace

    fields = dict(output_parts=[], finish_reason=None, response_model=None, input_tokens=None, output_tokens=None,
                  cache_read=None, cache_creation=None, span=None)
    fields.update(values)
    return SimpleNamespace(**fields)


def test_stream_events_keep_the_stop_reason_and_cap_captured_text():
    from claude_otel import streams

    op = _stream_op(finish_reason="end_turn")
    streams.read_event(op, "message_delta", _Event({"delta": {"stop_reason": None}, "usage": {"output_tokens": 3}}),
                       0.0)
    assert op.finish_reason == "end_turn" and op.output_tokens == 3
    op = _stream_op(finish_reason="stop_sequence", response_model="claude-2.1")
    streams.read_event(op, "completion", _Event({"completion": " hi", "stop_reason": None, "model": "other"}), 0.0)
    assert op.finish_reason == "stop_sequence" and op.response_model == "claude-2.1"

    op = _stream_op(output_parts=["x"] * 10000)
    streams.read_text(op, _Event({"delta": {"text": "y"}}))
    assert len(op.output_parts) == 10001 and op.output_parts[-1] == "y"
    streams.read_text(op, _Event({"delta": {"text": "z"}}))
    assert len(op.output_parts) == 10001  # capped: more than 10000 parts are never appended to


def test_a_late_own_span_is_backdated_to_the_calls_start(recorded):
    import time
    from types import SimpleNamespace

    from claude_otel.operation import Operation

    op = Operation.__new__(Operation)
    op.tel = SimpleNamespace(tracer=recorded.tracer_provider.get_tracer("t"), capture_content=False,
                             content_max_chars=100)
    op.body, op.attrs, op.name, op.model = None, {}, "chat", "m"
    op.start = time.perf_counter() - 3.0  # the call started 3 s before its span
    before = time.time_ns()
    op.own_span_start(time.perf_counter())
    op.span.end()
    [span] = recorded.operation_spans()
    assert abs((before - span.start_time) / 1e9 - 3.0) < 0.5, (before - span.start_time) / 1e9
