"""anthropic.failure.cause: the real SDK over real HTTP fails in each way, and the agent names the exact cause.

Every scenario checks the cause on the attempt span, the operation span, `anthropic.client.timeouts` and the
error points of `gen_ai.client.operation.duration` / `anthropic.client.attempt.duration`, and that the app got
the exception it would have got without the agent.  Faults come from the simulator (proxy idle cuts, stalls,
error statuses) or from small loopback servers (a backlog-filled listener, a server that never reads, one that
answers TLS with plain HTTP).  Also runs in each venv of the SDK version matrix.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import threading
import time

import anthropic
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from claude_otel import errors, semconv
from tests.helpers.recorded import Recorded
from tests.helpers.sdk import sdk_httpx, sdk_version

httpx = sdk_httpx()
MODEL = "claude-sonnet-4-5"
# What a mid-stream failure reaches the app as: httpx's own error before anthropic 2.17, the SDK's wrapper from it
PEER_CLOSED = (httpx.RemoteProtocolError, anthropic.APIConnectionError)
READ_TIMEOUT = (httpx.ReadTimeout, anthropic.APITimeoutError)
MESSAGES = [{"role": "user", "content": "Say hello"}]
SLACK = 0.6  # seconds of scheduling noise tolerated above an injected delay (shared 2-core machine)
CUT = 0.8  # the simulated proxy's idle timeout, seconds
CAUSE = semconv.FAILURE_CAUSE


@pytest.fixture
def agent(monkeypatch):
    """Returns a function instrumenting the SDK (with an optional declared proxy idle timeout) into memory."""
    from claude_otel import ClaudeInstrumentor

    monkeypatch.setenv("ANTHROPIC_OPEN_TELEMETRY", "false")
    monkeypatch.delenv("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", raising=False)
    instrumentor = ClaudeInstrumentor()

    def start(proxy_idle_timeout=None) -> Recorded:
        exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        reader = InMemoryMetricReader()
        meter_provider = MeterProvider(metric_readers=[reader])
        kwargs = {"proxy_idle_timeout": proxy_idle_timeout} if proxy_idle_timeout is not None else {}
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **kwargs)
        return Recorded(exporter, reader, tracer_provider, meter_provider)

    try:
        yield start
    finally:
        instrumentor.uninstrument()
        gc.collect()


def client(base_url, **kwargs):
    kwargs.setdefault("max_retries", 0)
    return anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test-SECRET-KEY", **kwargs)


def aclient(base_url, **kwargs):
    kwargs.setdefault("max_retries", 0)
    return anthropic.AsyncAnthropic(base_url=base_url, api_key="sk-ant-test-SECRET-KEY", **kwargs)


def faults(**values):
    return {f"x-sim-{k.replace('_', '-')}": str(v) for k, v in values.items()}


def create(c, stream=False, headers=None, **kwargs):
    kwargs.setdefault("max_tokens", 64)
    kwargs.setdefault("messages", MESSAGES)
    return c.messages.create(model=MODEL, stream=stream, extra_headers=headers or {}, **kwargs)


def between(value, low, high):
    assert low <= value <= high, f"{value} not in [{low}, {high}]"


def assert_cause(rec: Recorded, cause: str, phase=None, attempts: int = 1):
    """Asserts `cause` on every failed attempt, the call, the error points and (with a phase) the timeouts."""
    spans = rec.attempt_spans()
    assert len(spans) == attempts, [s.attributes for s in spans]
    assert [s.attributes.get(CAUSE) for s in spans] == [cause] * attempts
    [op] = rec.operation_spans()
    assert op.attributes[CAUSE] == cause
    assert op.status.status_code.name == "ERROR"
    [point] = rec.points("gen_ai.client.operation.duration")
    assert point.attrs[CAUSE] == cause and point.count == 1 and "error.type" in point.attrs
    points = rec.points("anthropic.client.attempt.duration")
    assert {p.attrs.get(CAUSE) for p in points} == {cause} and sum(p.count for p in points) == attempts
    timeouts = [(p.attrs[semconv.TIMEOUT_PHASE], p.attrs[CAUSE], p.value) for p in rec.points("anthropic.client.timeouts")]
    assert timeouts == ([(phase, cause, attempts)] if phase else [])
    assert cause in semconv.FAILURE_CAUSES
    return spans[-1], op


# -- the proxy idle cut rule, by itself -------------------------------------------------------------------------

@pytest.mark.parametrize("silence, declared, expected", [
    # declared: at least 0.9x the declared idle timeout
    (54.0, 60.0, True), (53.9, 60.0, False), (75.0, 60.0, True), (0.9, 1.0, True), (0.89, 1.0, False),
    # undeclared: within 5 % of 30, 60, 100, 120 or 300 s
    (28.5, None, True), (28.4, None, False), (31.5, None, True), (31.6, None, False), (57.0, None, True),
    (63.0, None, True), (63.1, None, False), (95.0, None, True), (105.0, None, True), (114.0, None, True),
    (126.0, None, True), (126.1, None, False), (285.0, None, True), (315.0, None, True), (200.0, None, False),
    (45.0, None, False), (1.0, None, False), (0.0, None, False),
    (None, 60.0, False), (None, None, False), (-1.0, None, False),
])
def test_proxy_idle_cut_rule(silence, declared, expected):
    assert errors.is_proxy_idle_cut(silence, declared) is expected


def _peer_closed():
    """Returns a peer-close exception chain as the SDK raises it (APIConnectionError from RemoteProtocolError)."""
    inner = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    outer = anthropic.APIConnectionError(request=httpx.Request("POST", "http://x/v1/messages"))
    outer.__cause__ = inner
    return outer


def test_a_peer_close_is_a_proxy_cut_only_after_a_matching_silence():
    exc = _peer_closed()
    assert errors.failure_cause(exc, 60.4, None) == "proxy_idle_cut"  # Cloudflare-, ALB-, nginx-like
    assert errors.failure_cause(exc, 45.0, None) == "connection_reset"
    assert errors.failure_cause(exc, 45.0, 50.0) == "proxy_idle_cut"  # 45 >= 0.9 x 50
    assert errors.failure_cause(exc, 44.9, 50.0) == "connection_reset"
    assert errors.failure_cause(exc, None, None) == "connection_reset"


def test_constructed_chains_name_their_cause_and_nothing_raises():
    write = httpx.WriteTimeout("timed out")
    wrapped = anthropic.APITimeoutError(request=httpx.Request("POST", "http://x/v1/messages"))
    wrapped.__cause__ = write
    assert errors.failure_cause(wrapped) == "client_write_timeout"
    bare = anthropic.APITimeoutError(request=httpx.Request("POST", "http://x/v1/messages"))
    assert errors.failure_cause(bare) == "client_read_timeout"  # the SDK's own deadline, phase unknown
    assert errors.failure_cause(asyncio.CancelledError()) == "app_cancelled"
    assert errors.failure_cause(ValueError("Streaming is required for operations that may take longer than "
                                           "10 minutes.")) == "sdk_nonstreaming_limit"
    assert errors.failure_cause(ValueError("bad")) == "other"
    assert errors.failure_cause(None) == "api_error"
    assert errors.failure_cause(socket.gaierror(-2, "Name or service not known")) == "dns"

    class Hostile(OSError):
        def __str__(self):
            raise RuntimeError("no text for you")

        @property
        def __cause__(self):
            raise RuntimeError("no cause either")

    assert errors.failure_cause(Hostile(), 60.0, None) in semconv.FAILURE_CAUSES
    looped = httpx.ReadError("reset")
    looped.__context__ = looped  # a cycle must not hang the classifier
    assert errors.failure_cause(looped, 1.0, None) == "connection_reset"


def test_hints_are_read_from_the_transport_errors_text_not_the_sdks_wrapper():
    # no socket or ssl error in the chain (a transport that kept only the text): the text names the cause
    assert errors.failure_cause(httpx.ConnectError("[Errno -2] Name or service not known")) == "dns"
    assert errors.failure_cause(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number")) == "tls"
    # the SDK's wrapper is transparent: its own message is not a hint, the reset it wraps decides
    wrapper = anthropic.APIConnectionError(message="certificate verify failed",
                                           request=httpx.Request("POST", "http://x/v1/messages"))
    wrapper.__cause__ = httpx.ReadError("Connection reset by peer")
    assert errors.failure_cause(wrapper, 1.0, None) == "connection_reset"


# -- a proxy that cuts idle connections (the simulator plays it) --------------------------------------------------

def test_proxy_cut_before_the_response_with_the_setting_is_a_proxy_idle_cut(sim, agent):
    rec = agent(proxy_idle_timeout=CUT)
    with pytest.raises(anthropic.APIConnectionError):
        create(client(sim.base_url), headers=faults(proxy_idle_timeout=CUT, headers_delay=5))
    attempt, op = assert_cause(rec, "proxy_idle_cut")
    between(attempt.attributes[semconv.SILENCE_BEFORE_DROP], CUT - 0.05, CUT + SLACK)


def test_proxy_cut_mid_stream_with_the_setting_is_a_proxy_idle_cut(sim, agent):
    rec = agent(proxy_idle_timeout=CUT)
    seen = 0
    with pytest.raises(PEER_CLOSED):
        for event in create(client(sim.base_url), stream=True,
                            headers=faults(proxy_idle_timeout=CUT, stall_at=3, stall=5, token_delay=0.01)):
            seen += event.type == "content_block_delta"
    assert seen == 3
    attempt, op = assert_cause(rec, "proxy_idle_cut")
    between(attempt.attributes[semconv.SILENCE_BEFORE_DROP], CUT - 0.05, CUT + SLACK)


def test_a_cut_after_a_shorter_silence_than_the_declared_proxy_is_a_connection_reset(sim, agent):
    rec = agent(proxy_idle_timeout=3.0)  # 0.8 s of silence is well under 0.9 x 3 s: not that proxy
    with pytest.raises(anthropic.APIConnectionError):
        create(client(sim.base_url), headers=faults(proxy_idle_timeout=CUT, headers_delay=5))
    attempt, op = assert_cause(rec, "connection_reset")
    between(attempt.attributes[semconv.SILENCE_BEFORE_DROP], CUT - 0.05, CUT + SLACK)


def test_without_the_setting_a_cut_far_from_every_common_limit_is_a_connection_reset(sim, agent):
    rec = agent()
    with pytest.raises(PEER_CLOSED):
        for _ in create(client(sim.base_url), stream=True, headers=faults(drop_after=2, token_delay=0.01)):
            pass
    attempt, op = assert_cause(rec, "connection_reset")
    between(attempt.attributes[semconv.SILENCE_BEFORE_DROP], 0.0, 0.01 + SLACK)


def test_retried_cuts_give_every_attempt_its_cause(sim, agent):
    rec = agent(proxy_idle_timeout=CUT)
    with pytest.raises(anthropic.APIConnectionError):
        create(client(sim.base_url, max_retries=1), headers=faults(proxy_idle_timeout=CUT, headers_delay=5))
    attempt, op = assert_cause(rec, "proxy_idle_cut", attempts=2)
    assert rec.total("anthropic.client.retries", anthropic__retry__reason="connection_error") == 1


# -- the client's own timeouts, phase by phase ------------------------------------------------------------------

def test_read_timeout_before_the_headers(sim, agent):
    rec = agent()
    with pytest.raises(anthropic.APITimeoutError):
        create(client(sim.base_url, timeout=0.4), headers=faults(headers_delay=5))
    attempt, op = assert_cause(rec, "client_read_timeout", phase="read")
    assert semconv.SILENCE_BEFORE_DROP not in attempt.attributes


def test_read_timeout_mid_stream(sim, agent):
    rec = agent()
    with pytest.raises(READ_TIMEOUT):
        for _ in create(client(sim.base_url, timeout=0.5), stream=True, headers=faults(stall_at=2, stall=5)):
            pass
    assert_cause(rec, "client_read_timeout", phase="read")


@pytest.fixture
def unaccepting():
    """A loopback listener whose accept queue is full: a new connect gets no SYN-ACK and hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in fillers + [listener]:
            s.close()


def test_connect_timeout(unaccepting, agent):
    rec = agent()
    started = time.perf_counter()
    with pytest.raises(anthropic.APITimeoutError):
        create(client(unaccepting, timeout=httpx.Timeout(5.0, connect=0.4)))
    between(time.perf_counter() - started, 0.35, 0.4 + SLACK)  # the connect timeout fired, not the read one
    attempt, op = assert_cause(rec, "client_connect_timeout", phase="connect")
    assert semconv.SILENCE_BEFORE_DROP not in attempt.attributes


@pytest.fixture
def not_reading():
    """A loopback server that accepts connections and never reads them: a big request body stops being sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for s in held + [listener]:
            s.close()


def test_write_timeout(not_reading, agent):
    rec = agent()
    body = "x" * (48 * 1024 * 1024)  # far above loopback socket buffers, so the upload blocks
    with pytest.raises(anthropic.APITimeoutError):
        create(client(not_reading, timeout=httpx.Timeout(5.0, write=0.3)),
               messages=[{"role": "user", "content": body}])
    assert_cause(rec, "client_write_timeout", phase="write")


def test_pool_exhausted_by_max_connections_1_under_concurrency(sim, agent):
    rec = agent()
    http_client = anthropic.DefaultHttpxClient(limits=httpx.Limits(max_connections=1))
    c = client(sim.base_url, timeout=httpx.Timeout(10.0, pool=0.3), http_client=http_client)
    holder = threading.Thread(target=create, args=(c,), kwargs={"headers": faults(headers_delay=2)})
    holder.start()
    time.sleep(0.3)  # the holder has the only connection
    try:
        with pytest.raises(anthropic.APITimeoutError):
            create(c)
    finally:
        holder.join()
    failed = [s for s in rec.attempt_spans() if s.attributes.get(CAUSE)]
    assert [s.attributes[CAUSE] for s in failed] == ["pool_timeout"]
    assert "max_connections" in failed[0].status.description
    ops = [s for s in rec.operation_spans() if s.attributes.get(CAUSE)]
    assert [s.attributes[CAUSE] for s in ops] == ["pool_timeout"]
    assert "max_connections" in ops[0].status.description and "not" in ops[0].status.description
    assert [(p.attrs[semconv.TIMEOUT_PHASE], p.attrs[CAUSE], p.value)
            for p in rec.points("anthropic.client.timeouts")] == [("pool", "pool_timeout", 1)]
    errors_ = [p for p in rec.points("gen_ai.client.operation.duration") if "error.type" in p.attrs]
    assert [(p.attrs[CAUSE], p.count) for p in errors_] == [("pool_timeout", 1)]
    ok = [p for p in rec.points("gen_ai.client.operation.duration") if "error.type" not in p.attrs]
    assert [(CAUSE in p.attrs, p.count) for p in ok] == [(False, 1)]  # success points carry no cause


# -- the network below HTTP ----------------------------------------------------------------------------------

def test_dns_failure(agent):
    rec = agent()
    started = time.perf_counter()
    with pytest.raises(anthropic.APIConnectionError):
        create(client("http://nonexistent.invalid"))
    assert time.perf_counter() - started < 10  # .invalid never resolves (RFC 6761); no network needed
    assert_cause(rec, "dns")


@pytest.fixture
def plain_http():
    """A loopback server that answers anything (a TLS ClientHello included) with a plain HTTP 400 and closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn = listener.accept()[0]
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_tls_failure_https_to_a_plain_http_port(plain_http, agent):
    rec = agent()
    with pytest.raises(anthropic.APIConnectionError):
        create(client(f"https://127.0.0.1:{plain_http}"))
    assert_cause(rec, "tls")


# -- the application, the SDK and the API ------------------------------------------------------------------------

def test_task_cancelled_mid_call(sim, agent):
    rec = agent()

    async def main():
        task = asyncio.ensure_future(create(aclient(sim.base_url), headers=faults(headers_delay=3)))
        await asyncio.sleep(0.4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert_cause(rec, "app_cancelled")


def test_app_deadline_with_wait_for(sim, agent):
    rec = agent()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(create(aclient(sim.base_url), headers=faults(headers_delay=3)), 0.4)

    asyncio.run(main())
    assert_cause(rec, "app_cancelled")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is Python >= 3.11")
def test_app_deadline_with_asyncio_timeout_mid_stream(sim, agent):
    rec = agent()

    async def main():
        stream = await create(aclient(sim.base_url), stream=True, headers=faults(stall_at=2, stall=3))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.6):
                async for _ in stream:
                    pass

    asyncio.run(main())
    attempt, op = assert_cause(rec, "app_cancelled")
    assert semconv.SILENCE_BEFORE_DROP not in attempt.attributes


def test_non_streamed_max_tokens_the_sdk_refuses(sim, agent):
    rec = agent()
    if not hasattr(anthropic._base_client.BaseClient, "_calculate_nonstreaming_timeout"):
        # This SDK sends any max_tokens non-streamed: nothing refused, nothing failed.
        create(client(sim.base_url), max_tokens=100_000)
        assert [CAUSE in s.attributes for s in rec.operation_spans()] == [False]
        return
    with pytest.raises(ValueError, match="Streaming is required"):
        client(sim.base_url).messages.create(model="claude-opus-4-1", max_tokens=100_000, messages=MESSAGES)
    assert sim.requests == []  # refused before any HTTP
    [op] = rec.operation_spans()
    assert op.name == "chat claude-opus-4-1" and op.attributes[CAUSE] == "sdk_nonstreaming_limit"
    assert rec.attempt_spans() == []
    [point] = rec.points("gen_ai.client.operation.duration")
    assert point.attrs[CAUSE] == "sdk_nonstreaming_limit"
    assert point.attrs["gen_ai.request.model"] == "claude-opus-4-1" and point.attrs["error.type"] == "ValueError"
    assert rec.points("anthropic.client.timeouts") == []
    [active] = rec.points("anthropic.client.active_requests")
    assert active.value == 0


@pytest.mark.parametrize("status", [400, 500, 529])
def test_an_error_status_is_an_api_error(sim, agent, status):
    rec = agent()
    with pytest.raises(anthropic.APIStatusError) as raised:
        create(client(sim.base_url), headers=faults(fail_attempts=5, fail_status=status))
    assert raised.value.status_code == status
    assert_cause(rec, "api_error")


def test_retried_error_statuses_then_an_error_event_in_the_stream(sim, agent):
    rec = agent()
    stream = create(client(sim.base_url, max_retries=2), stream=True,
                    headers=faults(fail_attempts=2, fail_status=529, retry_after_ms=10, error_after=2))
    with pytest.raises(anthropic.APIStatusError):
        for _ in stream:
            pass
    assert_cause(rec, "api_error", attempts=3)


def test_a_timeout_then_success_records_no_cause_on_the_call(sim, agent):
    rec = agent()
    c = client(sim.base_url, max_retries=1, timeout=0.5)
    # x-sim-fail-attempts answers the first attempt with 529; the retry succeeds.
    create(c, headers=faults(fail_attempts=1, fail_status=529, retry_after_ms=10))
    [op] = rec.operation_spans()
    assert CAUSE not in op.attributes and op.status.status_code.name != "ERROR"
    assert [s.attributes.get(CAUSE) for s in rec.attempt_spans()] == ["api_error", None]
    [point] = rec.points("gen_ai.client.operation.duration")
    assert CAUSE not in point.attrs


def test_async_proxy_cut_mid_stream_with_the_setting(sim, agent):
    rec = agent(proxy_idle_timeout=CUT)

    async def main():
        stream = await create(aclient(sim.base_url), stream=True,
                              headers=faults(proxy_idle_timeout=CUT, stall_at=2, stall=5, token_delay=0.01))
        with pytest.raises(PEER_CLOSED):
            async for _ in stream:
                pass

    asyncio.run(main())
    attempt, op = assert_cause(rec, "proxy_idle_cut")
    between(attempt.attributes[semconv.SILENCE_BEFORE_DROP], CUT - 0.05, CUT + SLACK)
    # the declared proxy governs the utilization too: the cut used all of it
    [util] = rec.points("anthropic.client.timeout.utilization")
    assert util.attrs[semconv.TIMEOUT_KIND] == "proxy_idle"
    between(util.max, (CUT - 0.05) / CUT, (CUT + SLACK) / CUT)


def test_the_sdks_own_span_gets_the_cause(sim, agent, monkeypatch):
    from opentelemetry import trace


    if sdk_version() < (1, 14):
        pytest.skip("the SDK's own call span exists from anthropic 1.14")
    rec = agent()
    monkeypatch.delenv("ANTHROPIC_OPEN_TELEMETRY", raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", rec.tracer_provider)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", trace.Once())
    trace._TRACER_PROVIDER_SET_ONCE._done = True
    with pytest.raises(anthropic.APITimeoutError):
        create(client(sim.base_url, timeout=0.4), headers=faults(headers_delay=5))
    sdk_spans = [s for s in rec.spans() if s.instrumentation_scope.name != "claude_otel"]
    assert [s.attributes.get(CAUSE) for s in sdk_spans] == ["client_read_timeout"]
    assert [s.attributes.get(CAUSE) for s in rec.attempt_spans()] == ["client_read_timeout"]
    [point] = rec.points("gen_ai.client.operation.duration")
    assert point.attrs[CAUSE] == "client_read_timeout"
