"""Watching a streamed response's server-sent events: first token, read waits, usage, errors, the end.

The SDK's `Stream._iter_events` (every SDK version, every stream class, helper
streams included) yields one ServerSentEvent per event.  The agent wraps that
generator: the per-event work is two clock reads, a few comparisons and
attribute stores; it parses JSON only for message_start, message_delta and
error events.  Read waits are measured from the moment the application asks for
the next event to the moment it arrives, so a slow consumer is not mistaken for
a slow server (httpx's read timeout, too, only runs while a read is waiting).
"""

from __future__ import annotations

import logging
from time import perf_counter

from .errors import error_type
from .operation import RESPONSE_ATTR, Attempt

logger = logging.getLogger("claude_otel")

_FIRST = frozenset({"content_block_delta", "completion"})
_WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error", "completion"})


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


def _safe(method, *args) -> None:
    """Calls an Operation method, logging instead of raising."""
    try:
        method(*args)
    except Exception:
        logger.debug("claude-otel: stream bookkeeping failed", exc_info=True)


def _failed(attempt: Attempt, exc: BaseException, resumed: float, seen_first: bool) -> None:
    """Records the wait that ended in an exception, then ends the call with it."""
    now = perf_counter()
    wait = now - resumed
    if seen_first:
        if wait > attempt.max_gap:
            attempt.max_gap = wait
    elif wait > attempt.pre_wait:
        attempt.pre_wait = wait
    attempt.op.finish(now, error_type=error_type(exc), exc=exc)


def observe(events, attempt: Attempt, chunk_histogram, capture: bool):
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
                _safe(op.stream_event, attempt, event, sse, now)
            elif capture and event == "content_block_delta":
                _safe(op.stream_text, sse)
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


async def observe_async(events, attempt: Attempt, chunk_histogram, capture: bool):
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
                _safe(op.stream_event, attempt, event, sse, now)
            elif capture and event == "content_block_delta":
                _safe(op.stream_text, sse)
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
