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
