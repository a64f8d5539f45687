"""Bodies the simulator serves: Messages API JSON, SSE event sequences, legacy completions, batches, models."""

from __future__ import annotations

import json
import time
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

# One simulated token each: short words, so a delta is one token as in the real API.
WORDS = ("The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")
MODELS = ("claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5")
CREATED = "2025-01-01T00:00:00Z"
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 408: "timeout_error", 413: "request_too_large", 429: "rate_limit_error",
               500: "api_error", 502: "api_error", 503: "api_error", 504: "timeout_error", 529: "overloaded_error"}
ERROR_MESSAGES = {"overloaded_error": "Overloaded", "api_error": "Internal server error",
                  "rate_limit_error": "Number of requests has exceeded your rate limit",
                  "timeout_error": "Request timed out"}


def word(i: int) -> str:
    """Returns the i-th simulated output token."""
    return WORDS[i % len(WORDS)]


def text_of(n: int) -> str:
    """Returns the text of n output tokens."""
    return "".join(word(i) for i in range(n))


def input_tokens_of(body: Optional[dict], override: Optional[int]) -> int:
    """Returns the input token count to report: the override, else about one token per 4 prompt characters."""
    if override is not None:
        return override
    if not isinstance(body, dict):
        return 1
    parts = [body.get(key) for key in ("system", "messages", "prompt", "tools") if body.get(key) is not None]
    return max(len(json.dumps(parts, default=str)) // 4, 1)


def usage(input_tokens: int, output_tokens: int, cache_read: int, cache_creation: int) -> Dict[str, int]:
    """Returns a Messages API usage object."""
    return {"input_tokens": input_tokens, "output_tokens": output_tokens,
            "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_creation}


def message(msg_id: str, model: str, text: str, stop_reason: Optional[str], use: Dict[str, int]) -> Dict:
    """Returns a complete Messages API `message` object."""
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason, "stop_sequence": None, "usage": use}


def dumps(data) -> bytes:
    """Returns data as compact JSON bytes."""
    return json.dumps(data, separators=(",", ":")).encode()


def sse(event: str, data) -> bytes:
    """Returns one server-sent event, encoded."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def stream_head(msg_id: str, model: str, use: Dict[str, int]) -> List[bytes]:
    """Returns the events a message stream starts with: message_start (output_tokens 1, a placeholder), block, ping."""
    return [
        sse("message_start", {"type": "message_start",
                              "message": message(msg_id, model, "", None, dict(use, output_tokens=1))}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("ping", {"type": "ping"}),
    ]


def delta(i: int) -> bytes:
    """Returns the content_block_delta event of output token i."""
    return sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": word(i)}})


def stream_tail(stop_reason: str, output_tokens: int) -> List[bytes]:
    """Returns the events that end a message stream; message_delta carries the final output token count."""
    return [
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                              "usage": {"output_tokens": output_tokens}}),
        sse("message_stop", {"type": "message_stop"}),
    ]


def error_body(error_type: str, message_text: Optional[str] = None) -> Dict:
    """Returns an API error body."""
    text = message_text or ERROR_MESSAGES.get(error_type, error_type.replace("_", " "))
    return {"type": "error", "error": {"type": error_type, "message": text}}


def completion(comp_id: str, model: str, text: str, stop_reason: Optional[str]) -> Dict:
    """Returns a legacy Text Completions object (also the data of each streamed `completion` event)."""
    return {"type": "completion", "id": comp_id, "completion": text, "stop_reason": stop_reason, "model": model,
            "stop": None, "log_id": comp_id}


def rfc3339(epoch: float) -> str:
    """Returns a UTC timestamp as the API writes them."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def batch(batch_id: str, status: str, count: int, created: float, results_url: Optional[str]) -> Dict:
    """Returns a message_batch object: in_progress, canceling, or ended with every request succeeded/canceled."""
    ended = status == "ended"
    counts = {"processing": 0 if ended else count, "succeeded": count if ended else 0,
              "errored": 0, "canceled": 0, "expired": 0}
    return {
        "id": batch_id, "type": "message_batch", "processing_status": status, "request_counts": counts,
        "created_at": rfc3339(created), "expires_at": rfc3339(created + 86400),
        "ended_at": rfc3339(created + 1) if ended else None, "archived_at": None,
        "cancel_initiated_at": rfc3339(created + 1) if status == "canceling" else None,
        "results_url": results_url if ended else None,
    }


def batch_results(requests: List[Tuple[str, str]]) -> bytes:
    """Returns the JSONL results of a batch whose (custom_id, model) requests all succeeded."""
    lines = []
    for i, (custom_id, model) in enumerate(requests):
        msg = message(f"msg_sim_batch_{i:010d}", model, text_of(3), "end_turn", usage(10, 3, 0, 0))
        lines.append(dumps({"custom_id": custom_id, "result": {"type": "succeeded", "message": msg}}))
    return b"\n".join(lines) + b"\n"


def page(items: List[Dict], query: str = "") -> Dict:
    """Returns the list page a query (limit, after_id, before_id) selects, as the SDK's paginators expect.

    Old SDKs (0.40) page on until a page comes back empty, so after_id must really move past the items.
    """
    params = parse_qs(query)
    ids = [item["id"] for item in items]
    try:
        limit = max(1, min(int(params.get("limit", ["20"])[0]), 1000))
    except ValueError:
        limit = 20
    if "after_id" in params:
        after = params["after_id"][0]
        start = ids.index(after) + 1 if after in ids else len(ids)
        chosen, more = items[start:start + limit], start + limit < len(items)
    elif "before_id" in params:
        before = params["before_id"][0]
        end = ids.index(before) if before in ids else 0
        chosen, more = items[max(end - limit, 0):end], end - limit > 0
    else:
        chosen, more = items[:limit], limit < len(items)
    return {"data": chosen, "has_more": more, "first_id": chosen[0]["id"] if chosen else None,
            "last_id": chosen[-1]["id"] if chosen else None}


def model_info(model_id: str) -> Dict:
    """Returns a /v1/models entry."""
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": CREATED}


def ratelimit_headers(requests_used: int, tokens_used: int, input_used: int, output_used: int,
                      reset: str) -> Dict[str, str]:
    """Returns the anthropic-ratelimit-* headers for what was used in the current window (remaining decreases)."""
    headers = {}
    for kind, limit, used in (("requests", 50_000, requests_used), ("tokens", 20_000_000, tokens_used),
                              ("input-tokens", 16_000_000, input_used), ("output-tokens", 4_000_000, output_used)):
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        # A very long run wraps around instead of reaching 0, which would look like real throttling.
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(limit - used % limit)
        headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return headers


BATCHES = "/v1/messages/batches"


def route(method: str, path: str) -> Tuple[str, Optional[str]]:
    """Returns (endpoint name, id in the path) for a request; endpoint "unknown" for anything not simulated."""
    path = path.split("?", 1)[0].rstrip("/")
    if method == "POST" and path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/complete"):
        return {"/v1/messages": "messages", "/v1/messages/count_tokens": "count_tokens",
                "/v1/complete": "complete"}[path], None
    if path == BATCHES and method in ("POST", "GET"):
        return ("batch_create" if method == "POST" else "batch_list"), None
    if path.startswith(BATCHES + "/"):
        rest = path[len(BATCHES) + 1:].split("/")
        if len(rest) == 1 and method in ("GET", "DELETE"):
            return ("batch_get" if method == "GET" else "batch_delete"), rest[0]
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            return "batch_cancel", rest[0]
        if len(rest) == 2 and rest[1] == "results" and method == "GET":
            return "batch_results", rest[0]
    if method == "GET" and path == "/v1/models":
        return "models", None
    if method == "GET" and path.startswith("/v1/models/") and path.count("/") == 3:
        return "model_get", path.rsplit("/", 1)[1]
    return "unknown", None


# -- answers shaped by the fault: tool calls, refusals, given text ------------------------------------------------

_SAMPLE_VALUES = {"string": "sim", "integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}


def tool_to_call(body: Optional[dict], fault) -> Optional[Dict]:
    """Returns the tool a request is answered by calling (fault.tool_use, the first tool, no tool_result yet), or None."""
    if not fault.tool_use or not isinstance(body, dict):
        return None
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    content = last.get("content") if isinstance(last, dict) else None
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return None
    return tools[0]


def tool_input(tool: Dict) -> Dict:
    """Returns arguments for a tool call: a sample value for every required property of its input schema."""
    schema = tool.get("input_schema") if isinstance(tool.get("input_schema"), dict) else {}
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else list(props)
    return {name: _SAMPLE_VALUES.get((props.get(name) or {}).get("type"), "sim") for name in required}


def pieces(text: str, n: int) -> List[str]:
    """Returns text cut into n consecutive pieces (n >= 1) that join back to it."""
    n = max(n, 1)
    size = -(-len(text) // n) if text else 0
    return [text[i * size:(i + 1) * size] for i in range(n)]


def refusal_details(msg_id: str) -> Dict:
    """Returns the stop_details of a refusal, with a fallback credit token as the beta API mints one."""
    return {"type": "refusal", "category": "cyber", "explanation": None,
            "fallback_credit_token": "fct_sim_" + msg_id.rsplit("_", 1)[-1]}


def answer(msg_id: str, model: str, body: Optional[dict], fault, n: int, stop: str, use: Dict[str, int]) -> Dict:
    """Returns the non-streamed message a request is answered with: words, the fault's text, a tool call or a refusal."""
    tool = tool_to_call(body, fault)
    if tool is not None:
        block = {"type": "tool_use", "id": "toolu_sim_" + msg_id.rsplit("_", 1)[-1], "name": tool.get("name"),
                 "input": tool_input(tool)}
        return dict(message(msg_id, model, "", "tool_use", use), content=[block])
    text = fault.text if fault.text is not None else text_of(n)
    if fault.refuse_model is not None and model == fault.refuse_model:
        return dict(message(msg_id, model, text, "refusal", use), stop_details=refusal_details(msg_id))
    return message(msg_id, model, text, stop, use)


def answer_stream(msg_id: str, model: str, body: Optional[dict], fault, n: int, stop: str,
                  use: Dict[str, int]) -> Tuple[List[bytes], Callable[[int], bytes], List[bytes]]:
    """Returns (head events, render(i) of delta i, tail events) of the stream a request is answered with."""
    head = stream_head(msg_id, model, use)
    tail = stream_tail(stop, n)
    render: Callable[[int], bytes] = delta
    tool = tool_to_call(body, fault)
    if tool is not None:
        block = {"type": "tool_use", "id": "toolu_sim_" + msg_id.rsplit("_", 1)[-1], "name": tool.get("name"),
                 "input": {}}
        head[1] = sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block})
        parts = pieces(json.dumps(tool_input(tool)), n)
        render = lambda i: sse("content_block_delta", {  # noqa: E731
            "type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": parts[i]}})
        tail = stream_tail("tool_use", n)
    elif fault.text is not None:
        parts = pieces(fault.text, n)
        render = lambda i: sse("content_block_delta", {  # noqa: E731
            "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": parts[i]}})
    if tool is None and fault.refuse_model is not None and model == fault.refuse_model:
        tail[1] = sse("message_delta", {"type": "message_delta",
                                        "delta": {"stop_reason": "refusal", "stop_sequence": None,
                                                  "stop_details": refusal_details(msg_id)},
                                        "usage": {"output_tokens": n}})
    if fault.no_message_stop:
        tail = tail[:-1]
    return head, render, tail
