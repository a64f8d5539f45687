"""Bodies the simulator serves: Messages API JSON, SSE event sequences, legacy completions, batches, models."""

from __future__ import annotations

import json
from typing import Dict, List, Optional, Tuple

WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")


def word(i: int) -> str:
    """Returns the i-th simulated output token."""
    return WORDS[i % len(WORDS)]


def input_tokens_of(body: Optional[dict], override: Optional[int]) -> int:
    """Returns the input token count to report: the override, else about one token per 4 prompt characters."""
    if override is not None:
        return max(int(override), 0)
    if not isinstance(body, dict):
        return 1
    text = json.dumps([body.get("system"), body.get("messages"), body.get("prompt")], default=str)
    return max(len(text) // 4, 1)


def usage(input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int) -> Dict[str, int]:
    """Returns a Messages API usage object."""
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": cache_read,
        "cache_creation_input_tokens": cache_creation,
    }


def message(msg_id: str, model: str, text: str, stop_reason: Optional[str], use: Dict[str, int]) -> Dict:
    """Returns a complete Messages API `message` object."""
    return {
        "id": msg_id, "type": "message", "role": "assistant", "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason, "stop_sequence": None, "usage": use,
    }


def sse(event: str, data) -> bytes:
    """Returns one server-sent event, encoded."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stream_head(msg_id: str, model: str, use: Dict[str, int]) -> List[bytes]:
    """Returns the events a message stream starts with: message_start (output 1 placeholder), block start, ping."""
    start_usage = dict(use, output_tokens=1)
    return [
        sse("message_start", {"type": "message_start", "message": message(msg_id, model, "", None, start_usage)}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("ping", {"type": "ping"}),
    ]


def delta(i: int) -> bytes:
    """Returns the content_block_delta event of output token i."""
    return sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": word(i)}})


def stream_tail(stop_reason: str, output_tokens: int) -> List[bytes]:
    """Returns the events that end a message stream, with the final output token count in message_delta."""
    return [
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                              "usage": {"output_tokens": output_tokens}}),
        sse("message_stop", {"type": "message_stop"}),
    ]


def error_body(error_type: str, message_text: str) -> Dict:
    """Returns an API error body."""
    return {"type": "error", "error": {"type": error_type, "message": message_text}}


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "api_error", 529: "overloaded_error"}


def completion(comp_id: str, model: str, text: str, stop_reason: Optional[str]) -> Dict:
    """Returns a legacy Text Completions object (or stream event)."""
    return {"type": "completion", "id": comp_id, "completion": text, "stop_reason": stop_reason, "model": model}


def batch(batch_id: str, status: str = "in_progress", count: int = 1) -> Dict:
    """Returns a message_batch object."""
    ended = status == "ended"
    return {
        "id": batch_id, "type": "message_batch", "processing_status": status,
        "request_counts": {"processing": 0 if ended else count, "succeeded": count if ended else 0,
                           "errored": 0, "canceled": 0, "expired": 0},
        "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-02T00:00:00Z",
        "ended_at": "2026-01-01T00:05:00Z" if ended else None, "archived_at": None,
        "cancel_initiated_at": "2026-01-01T00:01:00Z" if status == "canceling" else None,
        "results_url": None,
    }


def page(items: List[Dict]) -> Dict:
    """Returns a list page the SDK's paginators accept."""
    return {"data": items, "has_more": False, "first_id": items[0]["id"] if items else None,
            "last_id": items[-1]["id"] if items else None}


MODELS = ("claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5")


def models_page() -> Dict:
    """Returns the /v1/models list page."""
    return page([{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in MODELS])


def route(method: str, path: str) -> Tuple[str, Optional[str]]:
    """Returns (endpoint name, id) for a request path; endpoint 'unknown' for anything else."""
    path = path.split("?", 1)[0].rstrip("/")
    parts = path.split("/")
    if method == "POST" and path == "/v1/messages":
        return "messages", None
    if method == "POST" and path == "/v1/messages/count_tokens":
        return "count_tokens", None
    if method == "POST" and path == "/v1/complete":
        return "complete", None
    if path == "/v1/messages/batches":
        return ("batch_create" if method == "POST" else "batch_list"), None
    if len(parts) == 5 and parts[:4] == ["", "v1", "messages", "batches"] and method == "GET":
        return "batch_get", parts[4]
    if len(parts) == 6 and parts[:4] == ["", "v1", "messages", "batches"] and parts[5] == "cancel":
        return "batch_cancel", parts[4]
    if method == "GET" and path == "/v1/models":
        return "models", None
    return "unknown", None
