"""Span names, attributes and content capture for operation and attempt spans."""

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


def start_attempt_span(tracer, method: str, path: str, context, attributes: Mapping[str, object]):
    """Returns a new CLIENT span `{method} {route}` for one HTTP attempt, child of `context`."""
    return tracer.start_span(f"{method} {route(path)}", context=context, kind=SpanKind.CLIENT, attributes=attributes)


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
