"""Every place the agent patches, gathered in one table, and the wrappers installed there.

Patch points (class attributes, so clients created before or after
`instrument()` are covered, platform clients included):

- `SyncAPIClient.request` / `AsyncAPIClient.request` — one call (operation),
  entered once per SDK method call, around the SDK's own retry loop;
- `httpx.Client.send` / `AsyncClient.send` (and the httpx2 twins) — one HTTP
  attempt; only requests sent from inside a patched `request()` are observed;
- `BaseClient._calculate_nonstreaming_timeout` — where `messages.create()` refuses, before `request()`, a
  non-streamed `max_tokens` that implies more than 10 minutes (recorded as a failed call);
- `SyncAPIClient._read` / `AsyncAPIClient._read` (anthropic >= 2.17) — a non-streamed body read after
  `send()` returned; the attempt ends when that read does;
- `Stream._iter_events` / `AsyncStream._iter_events` — the events of a stream;
- `Stream.__stream__` / `AsyncStream.__stream__` — errors raised while parsing them;
- `Stream.close` / `AsyncStream.close` (and the helper streams' own `close`,
  which in older SDKs closed the response directly) — a stream closed early.

The SDK's public per-attempt Middleware API (>= 0.108) is not used: it runs
above the transport, so it cannot see connection phases, and clients built
before instrument() would not get it.  Every wrapper catches the agent's own
errors and logs them once; the application's exceptions pass through as they
are.
"""

from __future__ import annotations

import importlib
import logging
import sys
from time import perf_counter
from types import SimpleNamespace
from typing import Callable, List, Optional, Tuple

import wrapt
from opentelemetry import context as otel_context

from . import phases, streams
from .guard import CURRENT, STATE, report, suppressed
from .operation import Operation

logger = logging.getLogger(__name__)

# -- one call ------------------------------------------------------------------------------------------------

def _begin(instance, args, kwargs) -> Optional[Operation]:
    """Returns a started Operation for a request() call, or None when not instrumenting it; never raises."""
    tel = STATE.telemetry
    if tel is None or CURRENT.get() is not None or suppressed():
        return None
    try:
        options = args[1] if len(args) > 1 else kwargs.get("options")
        return Operation(tel, instance, options, bool(kwargs.get("stream", False)))
    except Exception:
        report("request start")
        return None


def _detach(tokens) -> None:
    """Restores the contexts a request wrapper replaced; never raises."""
    token, ctx_token = tokens
    try:
        if ctx_token is not None:
            otel_context.detach(ctx_token)
        CURRENT.reset(token)
    except Exception:
        report("context restore")


def _failed(op: Operation, exc: BaseException) -> None:
    try:
        op.failed(exc)
    except Exception:
        report("request failure")


# The success path of the wrappers below is written out (no helper calls: one Python call saved per step on
# every SDK call); the failure paths use the helpers.

def sync_request(wrapped, instance, args, kwargs):
    op = _begin(instance, args, kwargs)
    if op is None:
        return wrapped(*args, **kwargs)
    token = CURRENT.set(op)
    ctx_token = otel_context.attach(op.ctx) if op.own_span else None
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _detach((token, ctx_token))
        _failed(op, exc)
        raise
    try:
        if ctx_token is not None:
            otel_context.detach(ctx_token)
        CURRENT.reset(token)
    except Exception:
        report("context restore")
    try:
        op.returned(result)
    except Exception:
        report("request end")
    return result


async def async_request(wrapped, instance, args, kwargs):
    op = _begin(instance, args, kwargs)
    if op is None:
        return await wrapped(*args, **kwargs)
    token = CURRENT.set(op)
    ctx_token = otel_context.attach(op.ctx) if op.own_span else None
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _detach((token, ctx_token))
        _failed(op, exc)
        raise
    try:
        if ctx_token is not None:
            otel_context.detach(ctx_token)
        CURRENT.reset(token)
    except Exception:
        report("context restore")
    try:
        op.returned(result)
    except Exception:
        report("request end")
    return result


# -- a call the SDK refuses before sending it -----------------------------------------------------------------

def _caller_model(depth: int = 6) -> Optional[str]:
    """Returns the `model` argument of the SDK method that asked for the non-streaming timeout, or None."""
    frame = sys._getframe(2)
    while frame is not None and depth > 0:
        local = frame.f_locals
        if "max_tokens" in local and isinstance(local.get("model"), str):
            return local["model"]
        frame = frame.f_back
        depth -= 1
    return None


def _refused(client, args, kwargs, exc: BaseException) -> None:
    """Records a call the SDK refused before any HTTP attempt (non-streamed max_tokens over its 10-minute limit)."""
    tel = STATE.telemetry
    if tel is None or CURRENT.get() is not None or suppressed():
        return
    try:
        max_tokens = args[0] if args else kwargs.get("max_tokens")
        options = SimpleNamespace(method="post", url="/v1/messages",
                                  json_data={"model": _caller_model(), "max_tokens": max_tokens})
        op = Operation(tel, client, options, False)
        if op.span is None:
            op.own_span_start()
        op.failed(exc)
    except Exception:
        report("refused request")


def nonstreaming_timeout(wrapped, instance, args, kwargs):
    # messages.create()/parse() ask the client for a non-streaming timeout before request(): the SDK's
    # ValueError('Streaming is required ...') would otherwise leave no trace of the call.
    try:
        return wrapped(*args, **kwargs)
    except ValueError as exc:
        _refused(instance, args, kwargs, exc)
        raise


# -- one attempt ---------------------------------------------------------------------------------------------

def _begin_attempt(op: Operation, args, kwargs, make_callback):
    """Returns a started Attempt for a send() call, or None; never raises."""
    try:
        request = args[0] if args else kwargs.get("request")
        return op.begin_attempt(request, make_callback)
    except Exception:
        report("attempt start")
        return None


def _attempt_failed(op, attempt, exc) -> None:
    try:
        op.attempt_failed(attempt, exc)
    except Exception:
        report("attempt failure")


def sync_send(wrapped, instance, args, kwargs):
    op = CURRENT.get()
    if op is None or op.finished:
        return wrapped(*args, **kwargs)
    attempt = _begin_attempt(op, args, kwargs, phases.make_sync_callback)
    if attempt is None:
        return wrapped(*args, **kwargs)
    try:
        response = wrapped(*args, **kwargs)
    except BaseException as exc:
        _attempt_failed(op, attempt, exc)
        raise
    try:
        op.attempt_responded(attempt, response)
    except Exception:
        report("attempt response")
    return response


async def async_send(wrapped, instance, args, kwargs):
    op = CURRENT.get()
    if op is None or op.finished:
        return await wrapped(*args, **kwargs)
    attempt = _begin_attempt(op, args, kwargs, phases.make_async_callback)
    if attempt is None:
        return await wrapped(*args, **kwargs)
    try:
        response = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _attempt_failed(op, attempt, exc)
        raise
    try:
        op.attempt_responded(attempt, response)
    except Exception:
        report("attempt response")
    return response


# -- a non-streamed body read after send() (anthropic >= 2.17) ----------------------------------------------------

def _body_attempt(args, kwargs):
    """Returns the response a body read is for and its unfinished Attempt (None when not observed)."""
    response = args[0] if args else kwargs.get("response")
    attempt = getattr(response, streams.RESPONSE_ATTR, None)
    if attempt is None or attempt.end is not None:
        return response, None
    return response, attempt


def _body_read(attempt, response) -> None:
    try:
        attempt.op.body_read(attempt, response, perf_counter())
    except Exception:
        report("body read")


def sync_read(wrapped, instance, args, kwargs):
    response, attempt = _body_attempt(args, kwargs)
    if attempt is None:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _attempt_failed(attempt.op, attempt, exc)
        raise
    _body_read(attempt, response)
    return result


async def async_read(wrapped, instance, args, kwargs):
    response, attempt = _body_attempt(args, kwargs)
    if attempt is None:
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _attempt_failed(attempt.op, attempt, exc)
        raise
    _body_read(attempt, response)
    return result


# -- streams -------------------------------------------------------------------------------------------------

def _stream_attempt(instance):
    """Returns the unfinished Attempt behind a stream, or None."""
    attempt = streams.attempt_of(instance)
    if attempt is None or attempt.op.finished or STATE.telemetry is None:
        return None
    return attempt


def _in_call(events, op):
    """Yields a stream's events with the call current while each is read: middleware (the refusal fallback)
    sends its next request from inside the stream, and that attempt belongs to this call."""
    while True:
        token = CURRENT.set(op)
        try:
            sse = next(events)
        except StopIteration:
            return
        finally:
            CURRENT.reset(token)
        yield sse


async def _in_call_async(events, op):
    """Async twin of _in_call."""
    while True:
        token = CURRENT.set(op)
        try:
            sse = await events.__anext__()
        except StopAsyncIteration:
            return
        finally:
            CURRENT.reset(token)
        yield sse


def sync_iter_events(wrapped, instance, args, kwargs):
    events = wrapped(*args, **kwargs)
    attempt = _stream_attempt(instance)
    if attempt is None:
        return events
    tel = attempt.op.tel
    if attempt.op.rewrites:  # only clients with middleware pay for this
        events = _in_call(iter(events), attempt.op)
    return streams.observe(events, attempt, tel.instruments.time_per_output_chunk, tel.capture_content)


def async_iter_events(wrapped, instance, args, kwargs):
    events = wrapped(*args, **kwargs)
    attempt = _stream_attempt(instance)
    if attempt is None:
        return events
    tel = attempt.op.tel
    if attempt.op.rewrites:  # only clients with middleware pay for this
        events = _in_call_async(events.__aiter__(), attempt.op)
    return streams.observe_async(events, attempt, tel.instruments.time_per_output_chunk, tel.capture_content)


def _stream_failed(attempt, exc: BaseException) -> None:
    try:
        if not attempt.op.finished:
            attempt.op.failed(exc)
    except Exception:
        report("stream failure")


def _guard(items, attempt):
    """Yields a stream's parsed items; an exception the SDK raises while parsing ends the call with it."""
    try:
        yield from items
    except GeneratorExit:
        raise
    except BaseException as exc:
        _stream_failed(attempt, exc)
        raise


async def _guard_async(items, attempt):
    """Async twin of _guard."""
    try:
        async for item in items:
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        _stream_failed(attempt, exc)
        raise


def sync_stream_body(wrapped, instance, args, kwargs):
    items = wrapped(*args, **kwargs)
    attempt = _stream_attempt(instance)
    return items if attempt is None else _guard(items, attempt)


def async_stream_body(wrapped, instance, args, kwargs):
    items = wrapped(*args, **kwargs)
    attempt = _stream_attempt(instance)
    return items if attempt is None else _guard_async(items, attempt)


def _closing(instance) -> None:
    attempt = streams.attempt_of(instance)
    if attempt is not None and not attempt.op.finished:
        try:
            attempt.op.abandon()
        except Exception:
            report("stream close")


def sync_close(wrapped, instance, args, kwargs):
    _closing(instance)
    return wrapped(*args, **kwargs)


async def async_close(wrapped, instance, args, kwargs):
    _closing(instance)
    return await wrapped(*args, **kwargs)


# -- the table -----------------------------------------------------------------------------------------------

PATCHES: Tuple[Tuple[str, str, str, Callable], ...] = (
    ("anthropic._base_client", "SyncAPIClient", "request", sync_request),
    ("anthropic._base_client", "AsyncAPIClient", "request", async_request),
    # Refuses non-streamed requests whose max_tokens implies more than 10 minutes (not in every SDK, e.g. 0.40).
    ("anthropic._base_client", "BaseClient", "_calculate_nonstreaming_timeout", nonstreaming_timeout),
    # Reads a non-streamed body after send() (anthropic >= 2.17; before, send() read it).
    ("anthropic._base_client", "SyncAPIClient", "_read", sync_read),
    ("anthropic._base_client", "AsyncAPIClient", "_read", async_read),
    ("anthropic._streaming", "Stream", "_iter_events", sync_iter_events),
    ("anthropic._streaming", "AsyncStream", "_iter_events", async_iter_events),
    # Errors the SDK raises while parsing events (invalid JSON, ...) surface in __stream__, above _iter_events.
    ("anthropic._streaming", "Stream", "__stream__", sync_stream_body),
    ("anthropic._streaming", "AsyncStream", "__stream__", async_stream_body),
    ("anthropic._streaming", "Stream", "close", sync_close),
    ("anthropic._streaming", "AsyncStream", "close", async_close),
    # Before 0.4x-era helpers delegated to Stream.close, MessageStream closed the response itself.
    ("anthropic.lib.streaming._messages", "MessageStream", "close", sync_close),
    ("anthropic.lib.streaming._messages", "AsyncMessageStream", "close", async_close),
    ("anthropic.lib.streaming._beta_messages", "BetaMessageStream", "close", sync_close),
    ("anthropic.lib.streaming._beta_messages", "BetaAsyncMessageStream", "close", async_close),
    ("httpx", "Client", "send", sync_send),
    ("httpx", "AsyncClient", "send", async_send),
    ("httpx2", "Client", "send", sync_send),
    ("httpx2", "AsyncClient", "send", async_send),
)

_applied: List[Tuple[type, str, object, object]] = []


def apply() -> List[str]:
    """Installs every patch whose module is importable (once); returns the dotted names patched."""
    if _applied:
        return []
    done = []
    for module_name, class_name, attr, wrapper in PATCHES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, class_name, None)
        if cls is None or attr not in cls.__dict__:
            continue
        if any(seen is cls and seen_attr == attr for seen, seen_attr, _, _ in _applied):
            continue  # one class under two module names (httpx2.alias_httpx() makes `httpx` be httpx2): patch once
        original = cls.__dict__[attr]
        wrapt.wrap_function_wrapper(cls, attr, wrapper)
        _applied.append((cls, attr, original, cls.__dict__[attr]))
        done.append(f"{module_name}.{class_name}.{attr}")
    return done


def remove() -> None:
    """Restores every original the agent replaced (leaving alone any patch another library put on top)."""
    while _applied:
        cls, attr, original, installed = _applied.pop()
        if cls.__dict__.get(attr) is installed:
            setattr(cls, attr, original)
        else:
            logger.warning("claude-otel: %s.%s was patched again by someone else; leaving it in place",
                           cls.__name__, attr)
