"""Reading the response headers the agent records: retry hints, rate limits, request ids."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Iterator, Mapping, Optional, Tuple

RATELIMIT_KINDS = ("requests", "tokens", "input_tokens", "output_tokens")
_RATELIMIT_HEADERS = tuple(
    (kind, f"anthropic-ratelimit-{kind.replace('_', '-')}-remaining") for kind in RATELIMIT_KINDS
)
_MAX_REQUEST_ID = 128


def retry_after(headers: Optional[Mapping]) -> Optional[float]:
    """Returns the server's retry hint in seconds from retry-after-ms or retry-after, else None; never raises."""
    if headers is None:
        return None
    try:
        raw_ms = headers.get("retry-after-ms")
        if raw_ms is not None:
            value = float(raw_ms) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        raw = headers.get("retry-after")
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            parsed = email.utils.parsedate_tz(raw)
            if parsed is None:
                return None
            value = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(value):
            return max(value, 0.0)
    except Exception:
        return None
    return None


def ratelimit_remaining(headers: Optional[Mapping]) -> Iterator[Tuple[str, float]]:
    """Yields (kind, remaining) for each anthropic-ratelimit-*-remaining header that holds a number."""
    if headers is None:
        return
    for kind, name in _RATELIMIT_HEADERS:
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value >= 0:
            yield kind, value


def request_id(headers: Optional[Mapping]) -> Optional[str]:
    """Returns the API's request-id header (bounded length), else None; never raises."""
    try:
        value = headers.get("request-id") if headers is not None else None
    except Exception:
        return None
    if isinstance(value, str) and value:
        return value[:_MAX_REQUEST_ID]
    return None
