"""Everything written on spans: the operation span (the agent's own, or the SDK's own call span it enriches), one
span per HTTP attempt, their attributes, events, status and opt-in content."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from opentelemetry.trace import SpanKind, Status, StatusCode

from . import semconv
from .attributes import route

_REQUEST_PARAMS = (
    ("max_tokens", semconv.REQUEST_MAX_TOKENS),
    ("temperature", semconv.REQUEST_TEMPERATURE),
    ("top_p", semconv.REQUEST_TOP_P),
    ("top_k", semconv.REQUEST_TOP_K),
)


def request_attributes(attrs: Mapping[str, object], body: Optional[Mapping]) -> Dict[str, object]:
    """Returns operation-span attributes from the call's metric attributes and request parameters (no content)."""
    result = dict(attrs)
    if body:
        for key, name in _REQUEST_PARAMS:
            value = body.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                result[name] = value
    return result


def token_count(value: object) -> Optional[int]:
    """Returns a token count given as a whole number, else None (a mock's or an old SDK's other shapes)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def total_input(input_tokens: object, cache_read: object, cache_creation: object) -> Optional[int]:
    """Returns gen_ai.usage.input_tokens for Anthropic: input + cache read + cache write, or None without input.

    The conventions' Anthropic page: Anthropic's input_tokens excludes cached tokens, and both cache counts MUST be
    added to it; the SDK's own span computes the same sum.
    """
    base = token_count(input_tokens)
    if base is None:
        return None
    return base + (token_count(cache_read) or 0) + (token_count(cache_creation) or 0)


def truncate(text: str, limit: int) -> str:
    """Returns text cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def input_content(body: Optional[Mapping], limit: int) -> Optional[str]:
    """Returns the request's system prompt and messages as truncated JSON, or None; never raises."""
    if not body:
        return None
    try:
        content: Dict[str, Any] = {}
        if body.get("system") is not None:
            content["system"] = body.get("system")
        if body.get("messages") is not None:
            content["messages"] = body.get("messages")
        elif body.get("prompt") is not None:
            content["prompt"] = body.get("prompt")
        return truncate(json.dumps(content, default=str, ensure_ascii=False), limit) if content else None
    except Exception:
        return None


def attributes_of(span) -> Mapping[str, object]:
    """Returns the attributes a live span already has (empty for a span that does not show them); never raises."""
    try:
        found = getattr(span, "attributes", None)
        return found if isinstance(found, Mapping) else {}
    except Exception:
        return {}


def add_prompt(span, body: Optional[Mapping], limit: int) -> None:
    """Records the request's prompt on the SDK's own span, as on the agent's, unless the SDK recorded one."""
    if semconv.INPUT_MESSAGES in attributes_of(span):
        return  # the SDK's content mode recorded its own
    text = input_content(body, limit)
    if text:
        span.set_attribute(semconv.INPUT_MESSAGES, text)


def add_completion(span, response, limit: int) -> None:
    """Records a read non-streamed response's text on the SDK's own live span, unless it has some; never raises."""
    try:
        if span is None or not span.is_recording() or semconv.OUTPUT_MESSAGES in attributes_of(span):
            return
        if not hasattr(response, "_content"):
            return  # a body not read yet: reading it here would change what the application sees
        data = response.json()
        blocks = data.get("content") if isinstance(data, dict) else None
        if isinstance(blocks, list):
            text = "".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))
            if text:
                span.set_attribute(semconv.OUTPUT_MESSAGES, truncate(text, limit))
    except Exception:
        pass


def output_text_of(result: object) -> Optional[str]:
    """Returns the text blocks of a Message (or a legacy Completion) joined, or None; never raises."""
    try:
        blocks = getattr(result, "content", None)
        if isinstance(blocks, list):
            return "".join(getattr(b, "text", "") or "" for b in blocks)
        completion = getattr(result, "completion", None)
        return completion if isinstance(completion, str) else None
    except Exception:
        return None


def start_operation_span(tracer, operation: str, model: str, attributes: Mapping[str, object], start_ns=None):
    """Returns a new CLIENT span `{operation} {model}` under the current context."""
    return tracer.start_span(f"{operation} {model}", kind=SpanKind.CLIENT, attributes=attributes,
                             start_time=start_ns)


def start_attempt_span(tracer, method: str, path: str, context, attributes: Mapping[str, object], start_ns: int):
    """Returns a new CLIENT span `{method} {route}` for one HTTP attempt, child of `context`, started at `start_ns`."""
    return tracer.start_span(f"{method} {route(path)}", context=context, kind=SpanKind.CLIENT, attributes=attributes,
                             start_time=start_ns)


def set_error(span, error_type: str, exc: Optional[BaseException] = None, description: Optional[str] = None) -> None:
    """Marks a live span failed with error.type, the exception recorded when given; never raises."""
    try:
        if not span.is_recording():
            return
        span.set_attribute(semconv.ERROR_TYPE, error_type)
        if exc is not None:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, description or (f"{type(exc).__name__}" if exc else error_type)))
    except Exception:
        pass


# -- attempt spans ---------------------------------------------------------------------------------------------

def timing(start: float, first_chunk_at: float, attempt, gap: bool = True) -> Dict[str, float]:
    """Returns the time-to-first-chunk (from `start`), prefill (from the attempt's body sent) and, with `gap`,
    longest stream gap attributes of a streamed attempt."""
    found = {semconv.RESPONSE_TTFC: first_chunk_at - start, semconv.PREFILL: first_chunk_at - attempt.body_sent_at()}
    if gap:
        found[semconv.STREAM_GAP] = attempt.max_gap
    return found


def end_attempt(attempt, utilization: Optional[float], kind: Optional[str], silence: Optional[float],
                exc: Optional[BaseException], description: Optional[str]) -> None:
    """Records an ended attempt's span (`{method} {route}`, child of the operation's context): its request, outcome,
    headroom and stream timing, started at the attempt's start and ended now.

    The span is written in one go when the attempt ends (nothing is ever parented to it): one attribute set
    instead of a start set and a later update, about 30 kIr per attempt less.
    """
    op = attempt.op
    attrs = op.attrs
    done = {
        semconv.REQUEST_MODEL: attempt.model,
        semconv.HTTP_METHOD: op.method,
        semconv.SERVER_ADDRESS: attrs[semconv.SERVER_ADDRESS],
        semconv.SERVER_PORT: attrs[semconv.SERVER_PORT],
    }
    if attempt.index:
        done[semconv.HTTP_RESEND_COUNT] = attempt.index
        if attempt.backoff is not None:
            done[semconv.BACKOFF] = attempt.backoff
    if attempt.status is not None:
        done[semconv.HTTP_STATUS] = attempt.status
    if attempt.request_id:
        done[semconv.REQUEST_ID] = attempt.request_id
    if utilization is not None:
        done[semconv.UTILIZATION] = utilization
        done[semconv.TIMEOUT_KIND] = kind
    if attempt.first_chunk_at is not None:
        done.update(timing(attempt.start, attempt.first_chunk_at, attempt))
    if attempt.error_type:
        done[semconv.FAILURE_CAUSE] = attempt.cause
        if silence is not None:
            done[semconv.SILENCE_BEFORE_DROP] = silence
    span = start_attempt_span(op.tel.tracer, op.method, op.path, op.ctx, done, attempt.start_ns)
    if attempt.error_type:
        set_error(span, attempt.error_type, exc, description)
    span.end(attempt.end_ns)


# -- the operation span ----------------------------------------------------------------------------------------

def add_retry(op, reason: str, index: int, backoff: Optional[float]) -> None:
    """Adds a retry event to the live operation span (and, on the SDK's span, the retry count so far)."""
    span = op.span
    if span is None or not span.is_recording():
        return
    event = {semconv.RETRY_REASON: reason, semconv.HTTP_RESEND_COUNT: index}
    if backoff is not None:
        event[semconv.BACKOFF] = backoff
    span.add_event(semconv.EVENT_RETRY, event)
    if not op.own_span:
        span.set_attribute(semconv.RETRY_COUNT, op.retries)


def timeout_attributes(op) -> Dict[str, float]:
    """Returns the call's applied timeouts (and the declared proxy idle timeout) as span attributes."""
    found = {}
    if op.read_timeout is not None:
        found[semconv.TIMEOUT_READ] = op.read_timeout
    if op.connect_timeout is not None:
        found[semconv.TIMEOUT_CONNECT] = op.connect_timeout
    if op.tel.proxy_idle_timeout is not None:
        found[semconv.TIMEOUT_PROXY_IDLE] = op.tel.proxy_idle_timeout
    return found


def enrich(op, values: Mapping[str, object]) -> None:
    """Sets attributes on the SDK's own call span while it is live (it ends before request() returns, so facts are
    added as they arrive); does nothing on the agent's own span, which is described once at the end."""
    span = op.span
    if not op.own_span and span is not None and span.is_recording():
        span.set_attributes(values)


def attempt_ended(op, attempt) -> None:
    """Adds what an ended attempt taught to the SDK's own call span: attempts so far, headroom, failure cause, and
    with the first attempt the applied timeouts (one attribute update per attempt)."""
    if op.own_span:
        return
    values = timeout_attributes(op) if attempt.index == 0 else {}
    values[semconv.ATTEMPT_COUNT] = op.attempts
    if op.unwritten is not None:
        values.update(single_attempt(attempt))
    if op.max_util is not None:
        values[semconv.UTILIZATION] = op.max_util
        values[semconv.TIMEOUT_KIND] = op.util_kind
    if attempt.error_type:  # the SDK's span may end before the call's own failure is seen
        values[semconv.FAILURE_CAUSE] = attempt.cause
    enrich(op, values)


def single_attempt(attempt) -> Dict[str, object]:
    """Returns the response status and request id of a call's only attempt, for the operation span when that attempt
    has no span of its own (CLAUDE_OTEL_ATTEMPT_SPANS=retries)."""
    found: Dict[str, object] = {}
    if attempt.status is not None:
        found[semconv.HTTP_STATUS] = attempt.status
    if attempt.request_id:
        found[semconv.REQUEST_ID] = attempt.request_id
    return found


def first_chunk(op, attempt, now: float) -> None:
    """Marks the first content delta on the operation span (an event; on the SDK's span also the timing so far)."""
    span = op.span
    if span is None or not span.is_recording():
        return
    span.add_event(semconv.EVENT_FIRST_TOKEN)
    if not op.own_span:
        values = timing(op.start, now, attempt, gap=False)
        values[semconv.ATTEMPT_COUNT] = op.attempts
        span.set_attributes(values)


def describe(op, chunked, closed_early: bool) -> None:
    """Sets the response, usage, headroom and timing attributes on the live operation span, in one call."""
    span = op.span
    if span is None or not span.is_recording():
        return
    values = (
        (semconv.RESPONSE_ID, op.response_id),
        (semconv.RESPONSE_MODEL, op.response_model),
        (semconv.USAGE_INPUT_TOKENS, total_input(op.input_tokens, op.cache_read, op.cache_creation)),
        (semconv.USAGE_OUTPUT_TOKENS, op.output_tokens),
        (semconv.USAGE_CACHE_READ, op.cache_read),
        (op.tel.instruments.cache_write_attribute, op.cache_creation),
        (semconv.RETRY_COUNT, op.retries),
        (semconv.ATTEMPT_COUNT, op.attempts),
        (semconv.UTILIZATION, op.max_util),
        (semconv.TIMEOUT_KIND, op.util_kind),
    )
    done = timeout_attributes(op)
    for name, value in values:
        if isinstance(value, (str, int, float)):
            done[name] = value
    if op.finish_reason:
        done[semconv.RESPONSE_FINISH_REASONS] = [str(op.finish_reason)]
    if chunked is not None and chunked.first_chunk_at is not None:
        done.update(timing(op.start, chunked.first_chunk_at, chunked))
    if closed_early:
        done[semconv.STREAM_CLOSED_EARLY] = True
    if op.unwritten is not None:
        done.update(single_attempt(op.unwritten[0]))
    if op.output_parts:
        done[semconv.OUTPUT_MESSAGES] = truncate("".join(op.output_parts), op.tel.content_max_chars)
    if not op.own_span:
        # The SDK's own span: add only what it lacks.  It reads the response's id, model, usage and stop reason
        # itself (as gen_ai.response.*, gen_ai.usage.* and anthropic.message.stop_reason), and leaves out on purpose
        # what it cannot trust (a stream cut before message_delta); no duplicate under our names.
        for name in (semconv.RESPONSE_ID, semconv.RESPONSE_MODEL, semconv.USAGE_INPUT_TOKENS,
                     semconv.USAGE_OUTPUT_TOKENS, semconv.USAGE_CACHE_READ, op.tel.instruments.cache_write_attribute,
                     semconv.RESPONSE_FINISH_REASONS, *attributes_of(span)):
            done.pop(name, None)
    span.set_attributes(done)


def call_failed(op, error_type: str, cause: str, exc: Optional[BaseException], description: Optional[str]) -> None:
    """Marks the live operation span failed, with its failure cause."""
    span = op.span
    if span is None or not span.is_recording():
        return
    span.set_attribute(semconv.FAILURE_CAUSE, cause)
    set_error(span, error_type, exc, description)
