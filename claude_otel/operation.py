"""The state machine of one SDK call (an operation) and of every HTTP attempt inside it.

An operation starts when the SDK's `request()` is entered and ends when it
returns, raises, or — for a stream — when the stream ends, fails, is closed or
is garbage-collected.  Attempts start and end around the HTTP client's `send`
(and, for a stream, the reading of its body).  This module keeps the state and
decides when things happen; what is written on spans is in `spans`, what is
recorded in metrics in `metrics`, how a stream's events are read in `streams`.
Every method here is called from a patch point that catches and logs its
errors, so none of this can raise into the application; methods that run at
garbage collection guard themselves.
"""

from __future__ import annotations

import json
from time import perf_counter, time_ns
from typing import Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import attributes, errors, headers, semconv, spans, streams, timeouts
from .phases import BODY_SENT, CONNECT_END, CONNECT_START, HEADERS

RATELIMIT_EVERY = 1.0  # seconds between updates of the rate-limit gauge per attribute set


class Attempt:
    """One HTTP request inside an operation: its phases, outcome and, for a stream, its read waits."""

    __slots__ = (
        "op", "index", "start", "start_ns", "end_ns", "read_timeout", "connect_timeout", "backoff", "phase_times",
        "headers_at", "end", "status", "error_type", "headers_wait", "pre_wait", "max_gap", "first_chunk_at",
        "last_at", "last_chunk_at", "chunks", "request_id", "cause", "model", "key", "attrs",
    )

    def __init__(self, op: "Operation", index: int, start: float, start_ns: int, read_timeout, connect_timeout,
                 backoff) -> None:
        self.op = op
        self.index = index
        self.start = start
        # The attempt's span is written when it ends, with these wall-clock times (the operation span's clock).
        self.start_ns = start_ns
        self.end_ns = None
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff
        self.phase_times = [None, None, None, None]
        self.headers_at = None
        self.end = None
        self.status = None
        self.error_type = None
        self.headers_wait = None
        self.pre_wait = 0.0
        self.max_gap = 0.0
        self.first_chunk_at = None
        self.last_at = None
        self.last_chunk_at = None
        self.chunks = 0
        self.request_id = None
        self.cause = None
        # The model this request asked for, and its metric attributes: the operation's unless middleware changed it.
        self.model = op.model
        self.key = op.key
        self.attrs = op.attrs

    def body_sent_at(self) -> float:
        """Returns when the request body was fully sent (the attempt's start if the transport did not say)."""
        return self.phase_times[BODY_SENT] or self.phase_times[CONNECT_END] or self.start

    def connect_time(self, now: Optional[float] = None) -> Optional[float]:
        """Returns the connect (+TLS) time of a new connection, the elapsed part if it failed, or None."""
        start, end = self.phase_times[CONNECT_START], self.phase_times[CONNECT_END]
        if start is None:
            return None
        if end is None:
            return (now - start) if now is not None else None
        return end - start

    def silence(self, now: float) -> Optional[float]:
        """Returns seconds since the last byte arrived (or the request was sent), None if it never connected."""
        times = self.phase_times
        if times[CONNECT_START] is not None and times[CONNECT_END] is None:
            return None
        last = self.last_at or self.headers_at or times[HEADERS] or self.body_sent_at()
        return max(now - last, 0.0)

    def read_wait(self) -> Optional[float]:
        """Returns the longest single wait for bytes this attempt saw, or None before any response."""
        if self.headers_wait is None:
            return None
        return max(self.headers_wait, self.pre_wait, self.max_gap)


class Operation:
    """One SDK method call, including all its retries and the reading of its stream."""

    __slots__ = (
        "tel", "start", "stream", "name", "model", "key", "attrs", "span", "own_span", "ctx", "expects_sdk_span",
        "method", "path", "attempt", "attempts", "last_end", "last_reason", "max_util", "util_kind",
        "input_tokens", "output_tokens", "cache_read", "cache_creation", "response_id", "response_model",
        "finish_reason", "finished", "output_parts", "body", "read_timeout", "connect_timeout", "__weakref__",
        "rewrites", "open_message", "first_attempt", "retries", "unwritten",
    )

    def __init__(self, tel, client, options, stream: bool) -> None:
        self.tel = tel
        self.start = perf_counter()
        self.stream = stream
        self.finished = False
        self.method = str(getattr(options, "method", "post")).upper()
        self.path = str(getattr(options, "url", "") or "")
        body = getattr(options, "json_data", None)
        body = body if isinstance(body, dict) else None
        self.name = attributes.operation_name(self.path)
        self.model = tel.models(body.get("model") if body else None)
        self.key, self.attrs = attributes.base(
            self.name, self.model, attributes.server_of(getattr(client, "base_url", None)), stream,
            tel.instruments.stream_attribute)
        self.attempt = None
        self.attempts = 0
        self.last_end = None
        self.last_reason = None
        self.max_util = None
        self.util_kind = None
        self.input_tokens = self.output_tokens = self.cache_read = self.cache_creation = None
        self.response_id = self.response_model = self.finish_reason = None
        self.read_timeout = self.connect_timeout = None
        self.output_parts = [] if (stream and tel.capture_content) else None
        # The SDK (>= 1.14) starts its own call span inside request() when its tracing is on; then the agent
        # enriches that span instead of starting a second one.
        self.expects_sdk_span = getattr(client, "_tracer", None) is not None
        self.span = None
        self.own_span = False
        self.ctx = None
        self.body = body
        # Middleware (the SDK's refusal fallback, >= 2.x) may send requests of its own, to other models, inside
        # one call: then each attempt's model is read from its own body.
        self.rewrites = bool(getattr(client, "_middleware", None))
        self.open_message = False
        self.first_attempt = None
        self.retries = 0
        # With CLAUDE_OTEL_ATTEMPT_SPANS=retries: the first attempt, ended well, whose span is written only if
        # another attempt follows (with its utilization and kind).
        self.unwritten = None
        if not self.expects_sdk_span:
            self.own_span_start()
        tel.instruments.in_flight.add(self.key, self.attrs, 1)

    def own_span_start(self, now: Optional[float] = None) -> None:
        """Starts the agent's own operation span (backdated to the call's start when started late)."""
        tel = self.tel
        body = self.body
        span_attrs = spans.request_attributes(self.attrs, body)
        if tel.capture_content:
            text = spans.input_content(body, tel.content_max_chars)
            if text:
                span_attrs[semconv.INPUT_MESSAGES] = text
        start_ns = None
        if now is not None:
            start_ns = time_ns() - int((now - self.start) * 1e9)
        self.span = spans.start_operation_span(tel.tracer, self.name, self.model, span_attrs, start_ns)
        self.own_span = True
        self.ctx = trace.set_span_in_context(self.span)

    # -- attempts -------------------------------------------------------------------------------------------

    def begin_attempt(self, request, make_callback) -> Attempt:
        """Returns a started Attempt for an HTTP request, after recording the retry that led to it."""
        tel = self.tel
        now = perf_counter()
        start_ns = time_ns()
        index = self.attempts
        self.attempts = index + 1
        backoff = None
        if index == 0:
            if self.expects_sdk_span and self.span is None:
                self._adopt_sdk_span(now)
        else:
            hop = self._hop_after(self.attempt, now)
            if self.unwritten is not None:  # more than one attempt after all: the first one gets its span too
                first, value, kind = self.unwritten
                self.unwritten = None
                spans.end_attempt(first, value, kind, None, None, None)
            if not hop:
                self.retries += 1
                reason = self.last_reason or semconv.ERROR_CONNECTION
                backoff = max(now - self.last_end, 0.0) if self.last_end is not None else None
                tel.instruments.record_retry(self.key, self.attrs, reason, backoff)
                spans.add_retry(self, reason, index, backoff)
        read_timeout, connect_timeout = timeouts.applied_timeouts(
            getattr(request, "extensions", None), getattr(request, "headers", None))
        attempt = Attempt(self, index, now, start_ns, read_timeout, connect_timeout, backoff)
        if self.rewrites:
            self._attempt_model(attempt, request)
        if index == 0:
            self.read_timeout, self.connect_timeout = read_timeout, connect_timeout
        extensions = getattr(request, "extensions", None)
        if isinstance(extensions, dict):
            extensions["trace"] = make_callback(attempt.phase_times, extensions.get("trace"))
        self.attempt = attempt
        return attempt

    def _adopt_sdk_span(self, now: float) -> None:
        """Takes the SDK's own call span, current inside its request(), as the operation span; starts the agent's
        own when the SDK's tracing found no tracer provider after all."""
        current = trace.get_current_span()
        if current.is_recording():
            self.span = current
            self.ctx = otel_context.get_current()
            if self.tel.capture_content:
                spans.add_prompt(current, self.body, self.tel.content_max_chars)
        else:
            self.own_span_start(now)

    def _hop_after(self, previous: Optional[Attempt], now: float) -> bool:
        """Returns whether a new attempt is middleware's next hop after a successful response (not a retry),
        ending that response's attempt if its stream is still open."""
        if previous is None or previous.error_type is not None or previous.status is None or previous.status >= 400:
            return False
        if previous.end is None:
            self.end_attempt(previous, now, None)
        return True

    def _attempt_model(self, attempt: Attempt, request) -> None:
        """Gives the attempt the model its request body names, when middleware changed it; never raises."""
        try:
            model = json.loads(request.content).get("model")
        except Exception:
            return
        model = self.tel.models(model)
        if model != self.model:
            attempt.model = model
            attempt.key, attempt.attrs = attributes.base(
                self.name, model, (self.attrs[semconv.SERVER_ADDRESS], self.attrs[semconv.SERVER_PORT]), self.stream,
                self.tel.instruments.stream_attribute)

    def attempt_responded(self, attempt: Attempt, response) -> None:
        """Records response headers; ends the attempt unless its body is a stream still to be read."""
        now = perf_counter()
        headers_at = attempt.phase_times[HEADERS] or now
        attempt.headers_at = headers_at
        attempt.headers_wait = max(headers_at - attempt.body_sent_at(), 0.0)
        status = response.status_code
        attempt.status = status
        response_headers = response.headers
        attempt.request_id = headers.request_id(response_headers)
        # A gauge is read at scrape time: setting it on every response of a busy client is wasted work.
        seen = self.tel.ratelimit_seen
        last = seen.get(self.key)
        if last is None or now - last >= RATELIMIT_EVERY:
            seen[self.key] = now
            self.tel.instruments.record_ratelimits(self.key, self.attrs, response_headers)
        if self.span is not None and self.span.is_recording():
            self.span.add_event(semconv.EVENT_RESPONSE_HEADERS, {semconv.HTTP_STATUS: status})
        if status >= 400:
            self.last_reason = str(status)
            self.end_attempt(attempt, now, errors.response_error_type(response, status))
        elif self.stream:
            # The body is an event stream read later; the stream patches find this attempt on the response.
            if not streams.link(response, attempt, self.rewrites and self.attempts == 1):
                self.end_attempt(attempt, now, None)
        elif (getattr(response, "is_stream_consumed", False) or hasattr(response, "_content")
              or not streams.link(response, attempt, False)):
            self.body_read(attempt, response, now)
        # else: the SDK (>= 2.17) reads the body after send(); the attempt ends when that read does (patches).

    def body_read(self, attempt: Attempt, response, now: float) -> None:
        """Ends the attempt of a non-streamed response whose body has been read."""
        if self.tel.capture_content and not self.own_span:
            # The SDK ends its own span before request() returns: its completion is read from the body here.
            spans.add_completion(self.span, response, self.tel.content_max_chars)
        self.end_attempt(attempt, now, None)

    def attempt_failed(self, attempt: Attempt, exc: BaseException) -> None:
        """Records an attempt that raised (timeout, connection error, cancellation) and ends it."""
        now = perf_counter()
        error_type = errors.error_type(exc)
        if errors.timeout_phase(exc) == "read" and attempt.headers_wait is None:
            attempt.headers_wait = max(now - attempt.body_sent_at(), 0.0)
        self.last_reason = errors.attempt_outcome(exc)
        self.end_attempt(attempt, now, error_type, exc)

    def end_attempt(self, attempt: Attempt, now: float, error_type: Optional[str], exc=None) -> None:
        """Ends an attempt (once): works out why it failed, records it, ends its span and tells the call."""
        if attempt.end is not None:
            return
        attempt.end = now
        attempt.end_ns = time_ns()
        attempt.error_type = error_type
        self.last_end = now
        tel = self.tel
        silence = phase = None
        if error_type:
            # The cause is worked out only on failure: a successful attempt pays one truth test for it.
            silence = attempt.silence(now) if exc is not None else None
            attempt.cause = errors.failure_cause(exc, silence, tel.proxy_idle_timeout)
            if not errors.is_peer_close(attempt.cause):
                silence = None
            phase = errors.timeout_phase(exc) if exc is not None else None
        value, kind = tel.instruments.record_attempt(attempt, now, phase, tel.proxy_idle_timeout, self.ctx)
        if value is not None and (self.max_util is None or value > self.max_util):
            self.max_util, self.util_kind = value, kind
        if tel.every_attempt_span or error_type or attempt.index:
            spans.end_attempt(attempt, value, kind, silence, exc, errors.DESCRIPTIONS.get(attempt.cause))
        else:
            self.unwritten = (attempt, value, kind)
        spans.attempt_ended(self, attempt)

    def first_chunk(self, attempt: Attempt, now: float) -> None:
        """Records the stream's first content delta: the attempt that carried it, and the span event."""
        attempt.first_chunk_at = now
        if self.first_attempt is None:
            self.first_attempt = attempt
        spans.first_chunk(self, attempt, now)

    # -- the end --------------------------------------------------------------------------------------------

    def returned(self, result) -> None:
        """Ends a call whose request() returned, unless its result is a stream still to be read."""
        attempt = self.attempt
        if self.stream and attempt is not None and attempt.end is None and attempt.status is not None:
            return
        usage = getattr(result, "usage", None)
        # Counts that are not whole numbers (a mock's, a raw response's) are left out rather than recorded wrong.
        count = spans.token_count
        if usage is not None:
            self.input_tokens = count(getattr(usage, "input_tokens", None))
            self.output_tokens = count(getattr(usage, "output_tokens", None))
            self.cache_read = count(getattr(usage, "cache_read_input_tokens", None))
            self.cache_creation = count(getattr(usage, "cache_creation_input_tokens", None))
        elif self.name == "count_tokens":
            self.input_tokens = count(getattr(result, "input_tokens", None))
        self.response_id = getattr(result, "id", None)
        self.response_model = getattr(result, "model", None)
        self.finish_reason = getattr(result, "stop_reason", None)
        if self.tel.capture_content and self.span is not None:
            text = spans.output_text_of(result)
            if text:
                self.output_parts = [text]
        self.finish(perf_counter())

    def failed(self, exc: BaseException) -> None:
        """Ends the call with the exception the application is about to receive."""
        self.finish(perf_counter(), error_type=errors.error_type(exc), exc=exc)

    def body_ended(self, now: float) -> None:
        """Ends a call whose stream body ended; a message stream that ended without message_stop was cut short by
        the server: an api_error, as the SDK's own span records it (the application sees no exception)."""
        if self.open_message and not self.finished:
            self.finish(now, error_type="api_error", description="The stream ended before its end event.")
        else:
            self.finish(now)

    def abandon(self) -> None:
        """Ends a stream that was closed or dropped before its end; not an error."""
        attempt = self.attempt
        end = perf_counter()
        if attempt is not None:
            end = attempt.last_at or attempt.headers_at or end
        self.finish(end, closed_early=True)

    def finish(self, now: float, error_type: Optional[str] = None, exc: Optional[BaseException] = None,
               description: Optional[str] = None, closed_early: bool = False) -> None:
        """Ends the call (once): its last attempt, its metrics and its span."""
        if self.finished:
            return
        self.finished = True
        tel = self.tel
        ins = tel.instruments
        attempt = self.attempt
        if attempt is not None and attempt.end is None:
            self.end_attempt(attempt, now, error_type, exc)
        ins.in_flight.add(self.key, self.attrs, -1)
        cause = None
        if error_type:
            cause = self._cause(exc, attempt)
            attrs = attributes.variant(
                self.key, self.attrs, (semconv.ERROR_TYPE, error_type), (semconv.FAILURE_CAUSE, cause))
        else:
            attrs = self.attrs
        # The attempt whose body held the first chunk: with middleware hops, not always the last one.
        chunked = self.first_attempt
        ins.record_call(self, now, attrs, chunked, error_type is not None, self.ctx)
        spans.describe(self, chunked, closed_early)
        if error_type is not None:
            spans.call_failed(self, error_type, cause, exc, description or errors.DESCRIPTIONS.get(cause))
        if self.own_span and self.span is not None:
            self.span.end()

    def _cause(self, exc: Optional[BaseException], attempt: Optional[Attempt]) -> str:
        """Returns the failed call's cause: its last attempt's (which knows the silence) unless the call itself
        was cancelled, refused by the SDK or failed on an API error."""
        own = errors.failure_cause(exc, None, self.tel.proxy_idle_timeout)
        if attempt is not None and attempt.cause is not None and own not in errors.CALL_LEVEL_CAUSES:
            return attempt.cause
        return own

    def __del__(self) -> None:
        # A stream dropped without being read to its end or closed still ends its spans, at garbage collection.
        try:
            if not self.finished:
                self.abandon()
        except Exception:
            pass
