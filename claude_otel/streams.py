"""Watching a streamed response's server-sent events: first token, read waits, usage, errors, the end; and the
link from a streamed HTTP response back to the attempt that received it.

The SDK's `Stream._iter_events` (every SDK version, every stream class, helper
streams included) yields one ServerSentEvent per event.  The agent wraps that
generator: the per-event work is two clock reads, a few comparisons and
attribute stores; it parses JSON only for message_start, message_delta and
error events.  Read waits are measured from the moment the application asks for
the next event to the moment it arrives, so a slow consumer is not mistaken for
a slow server (httpx's read timeout, too, only runs while a read is waiting).
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING

from . import errors, semconv
from .errors import error_type
from .guard import report
from .spans import token_count

if TYPE_CHECKING:  # operation imports this module
    from .operation import Attempt, Operation

RESPONSE_ATTR = "_claude_otel_attempt"
_FIRST = frozenset({"content_block_delta", "completion"})
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error", "completion"})


def link(response, attempt: "Attempt", spliced: bool) -> bool:
    """Returns whether the attempt could be attached to its streamed response, for the stream patches to find;
    with `spliced`, to its request too (the refusal fallback splices streams into a new response on it)."""
    try:
        setattr(response, RESPONSE_ATTR, attempt)
        if spliced:
            setattr(response.request, RESPONSE_ATTR, attempt)
        return True
    except Exception:
        return False


def attempt_of(stream) -> "Attempt | None":
    """Returns the Attempt the agent attached to a stream's HTTP response, or None; never raises."""
    try:
        response = stream.response
        found = getattr(response, RESPONSE_ATTR, None)
        if found is None:
            # Middleware that splices streams (the SDK's refusal fallback) builds a new response on the same request.
            found = getattr(getattr(response, "_request", None), RESPONSE_ATTR, None)
        return found
    except Exception:
        return None


def read_event(op: "Operation", event: str, sse, now: float) -> None:
    """Reads usage, ids and errors from the few non-delta events of a stream (parses only those)."""
    if event == "message_start":
        span = op.span
        if span is not None and span.is_recording():
            span.add_event(semconv.EVENT_MESSAGE_START)
        data = sse.json()
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(message, dict):
            op.response_id = message.get("id")
            op.response_model = message.get("model")
            _usage(op, message.get("usage"), placeholder_output=True)
        op.open_message = True
    elif event == "message_delta":
        data = sse.json()
        if isinstance(data, dict):
            _usage(op, data.get("usage"), placeholder_output=False)
            delta = data.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                op.finish_reason = delta.get("stop_reason")
    elif event == "message_stop":
        # The SDK's own span ends when the body ends, just after this event: enrich it before that.
        op.finish(now)
    elif event == "completion":
        data = sse.json()
        if isinstance(data, dict) and data.get("stop_reason"):
            op.finish_reason = data.get("stop_reason")
            op.response_model = data.get("model") or op.response_model
    elif event == "error":
        try:
            api_error = errors.api_error_type(sse.json())
        except Exception:
            api_error = None
        op.finish(now, error_type=api_error or "error", description="error event in stream")


def read_text(op: "Operation", sse) -> None:
    """Collects delta text for opt-in content capture (only called when capture is on)."""
    parts = op.output_parts
    if parts is None or len(parts) > 10000:
        return
    data = sse.json()
    delta = data.get("delta") if isinstance(data, dict) else None
    if isinstance(delta, dict) and isinstance(delta.get("text"), str):
        parts.append(delta["text"])
    elif isinstance(data, dict) and isinstance(data.get("completion"), str):
        parts.append(data["completion"])


def _usage(op: "Operation", usage, placeholder_output: bool) -> None:
    """Copies token counts from a stream's usage dict; message_start's output count is only a placeholder."""
    if not isinstance(usage, dict):
        return
    # Only whole, non-negative counts (spans.token_count), as for a returned Message: a gateway's or a mock's usage
    # may hold strings, floats, booleans or negatives, which are left out rather than recorded wrong.
    count = token_count
    value = count(usage.get("input_tokens"))
    if value:
        op.input_tokens = value
    value = count(usage.get("cache_read_input_tokens"))
    if value is not None:
        op.cache_read = value
    value = count(usage.get("cache_creation_input_tokens"))
    if value is not None:
        op.cache_creation = value
    value = count(usage.get("output_tokens"))
    if value is not None and not placeholder_output:
        op.output_tokens = value


def _safe(method, *args) -> None:
    """Calls a bookkeeping function of a stream, reporting instead of raising."""
    try:
        method(*args)
    except Exception:
        report("stream event")


def _failed(attempt: "Attempt", exc: BaseException, resumed: float, seen_first: bool) -> None:
    """Records the wait that ended in an exception, then ends the call with it."""
    now = perf_counter()
    wait = now - resumed
    if seen_first:
        if wait > attempt.max_gap:
            attempt.max_gap = wait
    elif wait > attempt.pre_wait:
        attempt.pre_wait = wait
    attempt.op.finish(now, error_type=error_type(exc), exc=exc)


def observe(events, attempt: "Attempt", chunk_histogram, capture: bool):
    """Yields the SSE events unchanged while timing them into the attempt and its operation."""
    op = attempt.op
    clock = perf_counter
    seen_first = False
    resumed = clock()
    try:
        for sse in events:
            now = clock()
            wait = now - resumed
            event = sse.event
            if seen_first:
                if wait > attempt.max_gap:
                    attempt.max_gap = wait
                if chunk_histogram is not None and event == "content_block_delta":
                    chunk_histogram.record(now - attempt.last_chunk_at, op.attrs)
                    attempt.last_chunk_at = now
            else:
                if wait > attempt.pre_wait:
                    attempt.pre_wait = wait
                if event in _FIRST:
                    seen_first = True
                    attempt.last_chunk_at = now
                    _safe(op.first_chunk, attempt, now)
            if event in _WATCHED:
                _safe(read_event, op, event, sse, now)
            elif capture and event == "content_block_delta":
                _safe(read_text, op, sse)
            attempt.last_at = now
            yield sse
            resumed = clock()
    except GeneratorExit:
        # Closed before its end: a break, close() or garbage collection — not an error.
        _safe(op.abandon)
        raise
    except BaseException as exc:
        _safe(_failed, attempt, exc, resumed, seen_first)
        raise
    _safe(op.body_ended, clock())


async def observe_async(events, attempt: "Attempt", chunk_histogram, capture: bool):
    """Yields the SSE events of an async stream unchanged while timing them (see `observe`).

    The loop body repeats `observe`'s on purpose: a shared helper would cost a function call per event.
    """
    op = attempt.op
    clock = perf_counter
    seen_first = False
    resumed = clock()
    try:
        async for sse in events:
            now = clock()
            wait = now - resumed
            event = sse.event
            if seen_first:
                if wait > attempt.max_gap:
                    attempt.max_gap = wait
                if chunk_histogram is not None and event == "content_block_delta":
                    chunk_histogram.record(now - attempt.last_chunk_at, op.attrs)
                    attempt.last_chunk_at = now
            else:
                if wait > attempt.pre_wait:
                    attempt.pre_wait = wait
                if event in _FIRST:
                    seen_first = True
                    attempt.last_chunk_at = now
                    _safe(op.first_chunk, attempt, now)
            if event in _WATCHED:
                _safe(read_event, op, event, sse, now)
            elif capture and event == "content_block_delta":
                _safe(read_text, op, sse)
            attempt.last_at = now
            yield sse
            resumed = clock()
    except GeneratorExit:
        _safe(op.abandon)
        raise
    except BaseException as exc:
        _safe(_failed, attempt, exc, resumed, seen_first)
        raise
    _safe(op.body_ended, clock())
