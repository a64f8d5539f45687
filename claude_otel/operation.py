"""Timing of one SDK call (an operation) and of every HTTP attempt inside it.

An operation starts when the SDK's `request()` is entered and ends when it
returns, raises, or — for a stream — when the stream ends, fails, is closed or
is garbage-collected.  Attempts start and end around the HTTP client's `send`
(and, for a stream, the reading of its body).  Every method here is called from
a patch point that catches and logs its errors, so none of this can raise into
the application; methods that run at garbage collection guard themselves.
"""

from __future__ import annotations

import json
import logging
from time import perf_counter, time_ns
from typing import Optional

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from . import attributes, errors, headers, semconv, spans, timeouts
from .phases import BODY_SENT, CONNECT_END, CONNECT_START, HEADERS

logger = logging.getLogger("claude_otel")

RESPONSE_ATTR = "_claude_otel_attempt"
RATELIMIT_EVERY = 1.0  # seconds between updates of the rate-limit gauge per attribute set


class Attempt:
    """One HTTP request inside an operation: its phases, outcome and, for a stream, its read waits."""

    __slots__ = (
        "op", "index", "start", "span", "read_timeout", "connect_timeout", "backoff", "phase_times",
        "headers_at", "end", "status", "error_type", "headers_wait", "pre_wait", "max_gap", "first_chunk_at",
        "last_at", "last_chunk_at", "chunks", "request_id", "cause", "model", "key", "attrs",
    )

    def __init__(self, op: "Operation", index: int, start: float, read_timeout, connect_timeout, backoff) -> None:
        self.op = op
        self.index = index
        self.start = start
        self.span = None
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
        "rewrites", "open_message", "first_attempt", "retries",
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
        if not self.expects_sdk_span:
            self._own_span()
        tel.instruments.in_flight.add(self.key, self.attrs, 1)

    def _own_span(self, request=None, now: Optional[float] = None) -> None:
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
        index = self.attempts
        self.attempts = index + 1
        backoff = None
        if index == 0:
            if self.expects_sdk_span and self.span is None:
                current = trace.get_current_span()
                if current.is_recording():
                    self.span = current
                    self.ctx = otel_context.get_current()
                    if tel.capture_content:
                        spans.add_prompt(current, self.body, tel.content_max_chars)
                else:
                    # The SDK's tracing found no tracer provider: the agent's own span after all.
                    self._own_span(request, now)
        elif self._hop_after(self.attempt, now):
            pass
        else:
            self.retries += 1
            reason = self.last_reason or semconv.ERROR_CONNECTION
            backoff = max(now - self.last_end, 0.0) if self.last_end is not None else None
            retry_attrs = attributes.variant(self.key, self.attrs, (semconv.RETRY_REASON, reason))
            tel.instruments.retries.add(1, retry_attrs)
            if backoff is not None:
                tel.instruments.retry_backoff.record(backoff, retry_attrs, self.ctx)
            if self.span is not None and self.span.is_recording():
                event = {semconv.RETRY_REASON: reason, semconv.HTTP_RESEND_COUNT: index}
                if backoff is not None:
                    event[semconv.BACKOFF] = backoff
                self.span.add_event(semconv.EVENT_RETRY, event)
                if not self.own_span:
                    self.span.set_attribute(semconv.RETRY_COUNT, self.retries)
        read_timeout, connect_timeout = timeouts.applied_timeouts(
            getattr(request, "extensions", None), getattr(request, "headers", None))
        attempt = Attempt(self, index, now, read_timeout, connect_timeout, backoff)
        if self.rewrites:
            self._attempt_model(attempt, request)
        span_attrs = {
            semconv.REQUEST_MODEL: attempt.model,
            semconv.HTTP_METHOD: self.method,
            semconv.SERVER_ADDRESS: self.attrs[semconv.SERVER_ADDRESS],
            semconv.SERVER_PORT: self.attrs[semconv.SERVER_PORT],
        }
        if index:
            span_attrs[semconv.HTTP_RESEND_COUNT] = index
            if backoff is not None:
                span_attrs[semconv.BACKOFF] = backoff
        attempt.span = spans.start_attempt_span(tel.tracer, self.method, self.path, self.ctx, span_attrs)
        if index == 0:
            self.read_timeout, self.connect_timeout = read_timeout, connect_timeout
            if not self.own_span and self.span is not None and self.span.is_recording():
                # The SDK ends its own span before request() returns: enrich it as facts arrive.
                self.span.set_attributes(self._timeout_attributes())
        extensions = getattr(request, "extensions", None)
        if isinstance(extensions, dict):
            extensions["trace"] = make_callback(attempt.phase_times, extensions.get("trace"))
        self.attempt = attempt
        return attempt

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
            gauge = self.tel.instruments.ratelimit_remaining
            for kind, value in headers.ratelimit_remaining(response_headers):
                gauge.set(value, attributes.variant(self.key, self.attrs, (semconv.RATELIMIT_KIND, kind)))
        if self.span is not None and self.span.is_recording():
            self.span.add_event(semconv.EVENT_RESPONSE_HEADERS, {semconv.HTTP_STATUS: status})
        if status >= 400:
            error_type = None
            if getattr(response, "is_stream_consumed", False) or hasattr(response, "_content"):
                try:
                    error_type = errors.api_error_type(response.json())
                except Exception:
                    error_type = None
            self.last_reason = str(status)
            self.end_attempt(attempt, now, error_type or str(status))
        elif self.stream:
            # The body is an event stream read later; the stream patch finds this attempt on the response.
            try:
                setattr(response, RESPONSE_ATTR, attempt)
                if self.rewrites and self.attempts == 1:
                    # Spliced streams (refusal fallback) are read through a new response on this request.
                    setattr(response.request, RESPONSE_ATTR, attempt)
            except Exception:
                self.end_attempt(attempt, now, None)
        else:
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
        """Records an attempt's duration and timeout utilization and ends its span (once)."""
        if attempt.end is not None:
            return
        attempt.end = now
        attempt.error_type = error_type
        self.last_end = now
        tel = self.tel
        ins = tel.instruments
        key, base = attempt.key, attempt.attrs
        silence = None
        if error_type:
            # The cause is worked out only on failure: a successful attempt pays one truth test for it.
            silence = attempt.silence(now) if exc is not None else None
            cause = attempt.cause = errors.failure_cause(exc, silence, tel.proxy_idle_timeout)
            if not errors.is_peer_close(cause):
                silence = None
            attrs = attributes.variant(
                key, base, (semconv.ERROR_TYPE, error_type), (semconv.FAILURE_CAUSE, cause))
            phase = errors.timeout_phase(exc) if exc is not None else None
            if phase is not None:
                ins.timeouts.add(1, attributes.variant(
                    key, base, (semconv.TIMEOUT_PHASE, phase), (semconv.FAILURE_CAUSE, cause)))
        else:
            attrs = base
        ins.attempt_duration.record(now - attempt.start, attrs, self.ctx)
        value, kind = timeouts.utilization(
            attempt.connect_time(now), attempt.read_wait(), attempt.read_timeout, attempt.connect_timeout,
            tel.proxy_idle_timeout)
        if value is not None:
            ins.timeout_utilization.record(
                value, attributes.variant(key, base, (semconv.TIMEOUT_KIND, kind)), self.ctx)
            if self.max_util is None or value > self.max_util:
                self.max_util, self.util_kind = value, kind
        span = attempt.span
        if span is not None:
            done = {}
            if attempt.status is not None:
                done[semconv.HTTP_STATUS] = attempt.status
            if attempt.request_id:
                done[semconv.REQUEST_ID] = attempt.request_id
            if value is not None:
                done[semconv.UTILIZATION] = value
                done[semconv.TIMEOUT_KIND] = kind
            if attempt.first_chunk_at is not None:
                done[semconv.RESPONSE_TTFC] = attempt.first_chunk_at - attempt.start
                done[semconv.PREFILL] = attempt.first_chunk_at - attempt.body_sent_at()
                done[semconv.STREAM_GAP] = attempt.max_gap
            if error_type:
                done[semconv.FAILURE_CAUSE] = attempt.cause
                if silence is not None:
                    done[semconv.SILENCE_BEFORE_DROP] = silence
            span.set_attributes(done)
            if error_type:
                spans.set_error(span, error_type, exc, errors.DESCRIPTIONS.get(attempt.cause))
            span.end()
        if not self.own_span and self.span is not None and self.span.is_recording():
            enrich = {semconv.ATTEMPT_COUNT: self.attempts}
            if self.max_util is not None:
                enrich[semconv.UTILIZATION] = self.max_util
                enrich[semconv.TIMEOUT_KIND] = self.util_kind
            if error_type:  # the SDK's span may end before the call's own failure is seen
                enrich[semconv.FAILURE_CAUSE] = attempt.cause
            self.span.set_attributes(enrich)

    # -- streams --------------------------------------------------------------------------------------------

    def first_chunk(self, attempt: Attempt, now: float) -> None:
        """Records the first content delta of the stream: time to first chunk and prefill, as span events too."""
        attempt.first_chunk_at = now
        if self.first_attempt is None:
            self.first_attempt = attempt
        span = self.span
        if span is not None and span.is_recording():
            span.add_event(semconv.EVENT_FIRST_TOKEN)
            if not self.own_span:
                span.set_attributes({semconv.RESPONSE_TTFC: now - self.start,
                                     semconv.PREFILL: now - attempt.body_sent_at(),
                                     semconv.ATTEMPT_COUNT: self.attempts})

    def stream_event(self, attempt: Attempt, event: str, sse, now: float) -> None:
        """Reads usage, ids and errors from the few non-delta events of a stream (parses only those)."""
        if event == "message_start":
            if self.span is not None and self.span.is_recording():
                self.span.add_event(semconv.EVENT_MESSAGE_START)
            data = sse.json()
            message = data.get("message") if isinstance(data, dict) else None
            if isinstance(message, dict):
                self.response_id = message.get("id")
                self.response_model = message.get("model")
                self._usage(message.get("usage"), placeholder_output=True)
            self.open_message = True
        elif event == "message_delta":
            data = sse.json()
            if isinstance(data, dict):
                self._usage(data.get("usage"), placeholder_output=False)
                delta = data.get("delta")
                if isinstance(delta, dict) and delta.get("stop_reason"):
                    self.finish_reason = delta.get("stop_reason")
        elif event == "message_stop":
            # The SDK's own span ends when the body ends, just after this event: enrich it before that.
            self.finish(now)
        elif event == "completion":
            data = sse.json()
            if isinstance(data, dict) and data.get("stop_reason"):
                self.finish_reason = data.get("stop_reason")
                self.response_model = data.get("model") or self.response_model
        elif event == "error":
            try:
                error_type = errors.api_error_type(sse.json())
            except Exception:
                error_type = None
            self.finish(now, error_type=error_type or "error", description="error event in stream")

    def stream_text(self, sse) -> None:
        """Collects delta text for opt-in content capture (only called when capture is on)."""
        if self.output_parts is None or len(self.output_parts) > 10000:
            return
        data = sse.json()
        delta = data.get("delta") if isinstance(data, dict) else None
        if isinstance(delta, dict) and isinstance(delta.get("text"), str):
            self.output_parts.append(delta["text"])
        elif isinstance(data, dict) and isinstance(data.get("completion"), str):
            self.output_parts.append(data["completion"])

    def _usage(self, usage, placeholder_output: bool) -> None:
        """Copies token counts from a usage dict; message_start's output count is only a placeholder."""
        if not isinstance(usage, dict):
            return
        # Only whole, non-negative counts (spans.token_count), as for a returned Message: a gateway's or a mock's
        # usage may hold strings, floats, booleans or negatives, which are left out rather than recorded wrong.
        count = spans.token_count
        value = count(usage.get("input_tokens"))
        if value:
            self.input_tokens = value
        value = count(usage.get("cache_read_input_tokens"))
        if value is not None:
            self.cache_read = value
        value = count(usage.get("cache_creation_input_tokens"))
        if value is not None:
            self.cache_creation = value
        value = count(usage.get("output_tokens"))
        if value is not None and not placeholder_output:
            self.output_tokens = value

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

    def finish(self, now: float, error_type: Optional[str] = None, exc: Optional[BaseException] = None,
               description: Optional[str] = None, closed_early: bool = False) -> None:
        """Records the call's metrics and ends its span; later calls do nothing."""
        if self.finished:
            return
        self.finished = True
        tel = self.tel
        ins = tel.instruments
        attempt = self.attempt
        if attempt is not None and attempt.end is None:
            self.end_attempt(attempt, now, error_type, exc)
        ctx = self.ctx
        ins.in_flight.add(self.key, self.attrs, -1)
        cause = None
        if error_type:
            cause = self._cause(exc, attempt)
            attrs = attributes.variant(
                self.key, self.attrs, (semconv.ERROR_TYPE, error_type), (semconv.FAILURE_CAUSE, cause))
        else:
            attrs = self.attrs
        ins.operation_duration.record(now - self.start, attrs, ctx)
        # The attempt whose body held the first chunk: with middleware hops, not always the last one.
        chunked = self.first_attempt
        first = chunked.first_chunk_at if chunked is not None else None
        if first is not None:
            ins.time_to_first_chunk.record(first - self.start, attrs, ctx)
            ins.prefill_duration.record(first - chunked.body_sent_at(), attrs, ctx)
            ins.stream_max_gap.record(chunked.max_gap, attrs, ctx)
        ins.record_tokens(self, attrs, ctx, error_type is not None)  # the name set's own rule, chosen once
        span = self.span
        if span is not None and span.is_recording():
            self._describe(span, first, chunked, closed_early)
            if error_type is not None:
                span.set_attribute(semconv.FAILURE_CAUSE, cause)
                spans.set_error(span, error_type, exc, description or errors.DESCRIPTIONS.get(cause))
        if span is not None and self.own_span:
            span.end()

    def _cause(self, exc: Optional[BaseException], attempt: Optional[Attempt]) -> str:
        """Returns the failed call's cause: its last attempt's (which knows the silence) unless the call itself
        was cancelled, refused by the SDK or failed on an API error."""
        own = errors.failure_cause(exc, None, self.tel.proxy_idle_timeout)
        if attempt is not None and attempt.cause is not None and own not in errors.CALL_LEVEL_CAUSES:
            return attempt.cause
        return own

    def _timeout_attributes(self) -> dict:
        """Returns the applied timeouts as operation-span attributes."""
        found = {}
        if self.read_timeout is not None:
            found[semconv.TIMEOUT_READ] = self.read_timeout
        if self.connect_timeout is not None:
            found[semconv.TIMEOUT_CONNECT] = self.connect_timeout
        if self.tel.proxy_idle_timeout is not None:
            found[semconv.TIMEOUT_PROXY_IDLE] = self.tel.proxy_idle_timeout
        return found

    def _describe(self, span, first, attempt, closed_early: bool) -> None:
        """Sets the response, usage and timing attributes on the operation span, in one call."""
        values = (
            (semconv.RESPONSE_ID, self.response_id),
            (semconv.RESPONSE_MODEL, self.response_model),
            (semconv.USAGE_INPUT_TOKENS, spans.total_input(self.input_tokens, self.cache_read, self.cache_creation)),
            (semconv.USAGE_OUTPUT_TOKENS, self.output_tokens),
            (semconv.USAGE_CACHE_READ, self.cache_read),
            (self.tel.instruments.cache_write_attribute, self.cache_creation),
            (semconv.RETRY_COUNT, self.retries),
            (semconv.ATTEMPT_COUNT, self.attempts),
            (semconv.UTILIZATION, self.max_util),
            (semconv.TIMEOUT_KIND, self.util_kind),
        )
        done = self._timeout_attributes()
        for name, value in values:
            if isinstance(value, (str, int, float)):
                done[name] = value
        if self.finish_reason:
            done[semconv.RESPONSE_FINISH_REASONS] = [str(self.finish_reason)]
        if first is not None:
            done[semconv.RESPONSE_TTFC] = first - self.start
            done[semconv.PREFILL] = first - attempt.body_sent_at()
            done[semconv.STREAM_GAP] = attempt.max_gap
        if closed_early:
            done[semconv.STREAM_CLOSED_EARLY] = True
        if self.output_parts:
            done[semconv.OUTPUT_MESSAGES] = spans.truncate("".join(self.output_parts), self.tel.content_max_chars)
        if not self.own_span:
            # The SDK's own span: add only what it lacks.  It reads the response's id, model, usage and stop
            # reason itself (as gen_ai.response.*, gen_ai.usage.* and anthropic.message.stop_reason), and leaves
            # out on purpose what it cannot trust (a stream cut before message_delta); no duplicate under our names.
            for name in (semconv.RESPONSE_ID, semconv.RESPONSE_MODEL, semconv.USAGE_INPUT_TOKENS,
                         semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHE_READ,
                         self.tel.instruments.cache_write_attribute, semconv.RESPONSE_FINISH_REASONS,
                         *spans.attributes_of(span)):
                done.pop(name, None)
        span.set_attributes(done)

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

    def __del__(self) -> None:
        # A stream dropped without being read to its end or closed still ends its spans, at garbage collection.
        try:
            if not self.finished:
                self.abandon()
        except Exception:
            pass
