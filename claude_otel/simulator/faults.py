"""What a simulated request suffers: the Fault parameters, the named profiles, and reading them from headers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, NamedTuple, Optional

HEADER_PREFIX = "x-sim-"
PROFILE_HEADER = "x-sim-profile"
MODEL_PREFIX = "sim-"
MALFORMED = ("sse-line", "json", "content-type", "huge-header")


@dataclass(frozen=True)
class Fault:
    """Injected behaviour of one request; durations in seconds, token positions count content deltas."""

    headers_delay: float = 0.0
    prefill_delay: float = 0.0
    token_delay: float = 0.0
    output_tokens: int = 12
    input_tokens: Optional[int] = None
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    stall_at: Optional[int] = None
    stall: float = 0.0
    fail_attempts: int = 0
    fail_status: int = 529
    retry_after: Optional[float] = None
    retry_after_ms: Optional[int] = None
    error_after: Optional[int] = None
    error_type: str = "overloaded_error"
    drop_after: Optional[int] = None
    proxy_idle_timeout: Optional[float] = None
    malformed: Optional[str] = None
    tool_use: bool = False
    refuse_model: Optional[str] = None
    text: Optional[str] = None
    no_message_stop: bool = False

    def scaled(self, factor: float) -> "Fault":
        """Returns this fault with every duration multiplied by factor (profiles are written at real-world scale)."""
        if factor == 1.0:
            return self
        changes = {name: getattr(self, name) * factor for name in DURATIONS if getattr(self, name) is not None}
        if self.retry_after_ms is not None:
            changes["retry_after_ms"] = int(round(self.retry_after_ms * factor))
        return dataclasses.replace(self, **changes)

    def changed(self) -> Dict[str, object]:
        """Returns the fields that differ from the defaults, and the status of injected failures (for listings)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default or (f.name == "fail_status" and self.fail_attempts)}


DURATIONS = ("headers_delay", "prefill_delay", "token_delay", "stall", "retry_after", "proxy_idle_timeout")


def _malformed(raw: str) -> str:
    """Returns raw if it names a malformed mode; raises ValueError otherwise."""
    if raw not in MALFORMED:
        raise ValueError(f"must be one of {', '.join(MALFORMED)}")
    return raw


def _flag(raw: str) -> bool:
    """Returns a boolean parsed from raw (1/true/yes or 0/false/no)."""
    value = raw.lower()
    if value not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError("must be true or false")
    return value in ("1", "true", "yes")


def _count(raw: str) -> int:
    """Returns a non-negative integer parsed from raw ("3" or "3.0")."""
    value = int(float(raw))
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _seconds(raw: str) -> float:
    """Returns a non-negative number of seconds parsed from raw."""
    value = float(raw)
    if not value >= 0:  # also rejects nan
        raise ValueError("must be a non-negative number")
    return value


# The parser of each field's values; the Optional ones also accept "none" to switch a profile's value off.
PARSERS: Dict[str, Callable[[str], object]] = {
    "headers_delay": _seconds, "prefill_delay": _seconds, "token_delay": _seconds, "output_tokens": _count,
    "input_tokens": _count, "cache_read_tokens": _count, "cache_creation_tokens": _count, "stall_at": _count,
    "stall": _seconds, "fail_attempts": _count, "fail_status": _count, "retry_after": _seconds,
    "retry_after_ms": _count, "error_after": _count, "error_type": str, "drop_after": _count,
    "proxy_idle_timeout": _seconds, "malformed": _malformed, "tool_use": _flag, "refuse_model": str, "text": str,
    "no_message_stop": _flag,
}
FIELD_HELP: Dict[str, str] = {
    "headers_delay": "seconds before the status line (streaming: queueing; non-streaming: part of generation)",
    "prefill_delay": "seconds from message_start to the first token (non-streaming: added before the headers)",
    "token_delay": "seconds between tokens (non-streaming: N times this before the headers)",
    "output_tokens": "tokens to generate, capped by the request's max_tokens (default 12)",
    "input_tokens": "input tokens to report (default: prompt characters / 4)",
    "cache_read_tokens": "cache_read_input_tokens to report",
    "cache_creation_tokens": "cache_creation_input_tokens to report",
    "stall_at": "token index before which the stream goes silent for --stall seconds",
    "stall": "seconds of the stall at --stall-at",
    "fail_attempts": "answer the first N attempts (x-stainless-retry-count < N) with --fail-status",
    "fail_status": "HTTP status of injected failures (429, 500, 503, 529...; default 529)",
    "retry_after": "retry-after header of injected failures, in seconds",
    "retry_after_ms": "retry-after-ms header of injected failures, in milliseconds",
    "error_after": "streaming: send an error event after N tokens and end the stream",
    "error_type": "API error type of the error event (default overloaded_error)",
    "drop_after": "streaming: cut the connection after N tokens; 0 on non-streaming: no response at all",
    "proxy_idle_timeout": "cut the connection instead of writing after this many idle seconds",
    "malformed": "serve broken output: " + ", ".join(MALFORMED),
    "tool_use": "answer with a tool_use block calling the request's first tool, unless the last message holds a "
                "tool_result (the tool runner's loop)",
    "refuse_model": "requests for this model end with stop_reason refusal and a fallback credit token",
    "text": "the output text to serve instead of the simulated words (e.g. JSON for structured outputs)",
    "no_message_stop": "streaming: end the stream after message_delta without message_stop",
}
OPTIONAL = frozenset(f.name for f in dataclasses.fields(Fault) if f.default is None)
assert set(PARSERS) == set(FIELD_HELP) == {f.name for f in dataclasses.fields(Fault)}  # a new field needs both


class Profile(NamedTuple):
    """A named fault and the one line that describes it."""

    fault: Fault
    description: str


PROFILES: Dict[str, Profile] = {
    "normal": Profile(Fault(prefill_delay=0.02, token_delay=0.005),
                      "fast, healthy responses (20 ms to the first token, 5 ms per token)"),
    "slow-prefill": Profile(Fault(prefill_delay=8.0, token_delay=0.02),
                            "8 s from message_start to the first token, as for a 100k-token prompt"),
    "slow-generation": Profile(Fault(token_delay=0.2, output_tokens=200, prefill_delay=0.3),
                               "200 tokens at 5 tokens/s (40 s of streaming)"),
    "long-nonstream": Profile(Fault(headers_delay=40.0, output_tokens=400),
                              "a generation of 40 s before the first byte: what a non-streamed call waits for"),
    "idle-stall": Profile(Fault(stall_at=5, stall=20.0, prefill_delay=0.1, token_delay=0.02),
                          "the stream goes silent for 20 s before token 5"),
    "rate-limited": Profile(Fault(fail_attempts=1, fail_status=429, retry_after_ms=500),
                            "one 429 rate_limit_error with retry-after-ms: 500, then success"),
    "overloaded": Profile(Fault(fail_attempts=2, fail_status=529, retry_after=1.0),
                          "two 529 overloaded_error with retry-after: 1, then success"),
    "mid-stream-error": Profile(Fault(error_after=5, prefill_delay=0.1, token_delay=0.02),
                                "an overloaded_error event after 5 tokens ends the stream"),
    "dropped-connection": Profile(Fault(drop_after=3, prefill_delay=0.1, token_delay=0.02),
                                  "the TCP connection is cut after 3 tokens"),
    "proxy-idle": Profile(Fault(proxy_idle_timeout=30.0, prefill_delay=45.0),
                          "a proxy that cuts connections idle for 30 s, in front of a 45 s prefill"),
}


class FaultError(ValueError):
    """A request named an unknown profile or gave an x-sim-* header a value that does not parse."""


def parse_value(name: str, raw: str) -> object:
    """Returns raw (a header or flag value) parsed for Fault field `name`; raises FaultError when it does not fit."""
    raw = raw.strip()
    if name in OPTIONAL and raw.lower() in ("", "none", "null"):
        return None
    try:
        return PARSERS[name](raw)
    except (ValueError, OverflowError) as exc:
        raise FaultError(f"{HEADER_PREFIX}{name.replace('_', '-')}: {raw!r} {exc}") from None


def overrides_from(headers: Mapping[str, str]) -> Dict[str, object]:
    """Returns the Fault fields set by x-sim-<field> headers (dashes or underscores); unknown names are ignored."""
    found: Dict[str, object] = {}
    for key, raw in headers.items():
        if key.startswith(HEADER_PREFIX) and key != PROFILE_HEADER:
            name = key[len(HEADER_PREFIX):].replace("-", "_")
            if name in PARSERS:
                found[name] = parse_value(name, raw)
    return found


def profile_named(headers: Mapping[str, str], model: Optional[str]) -> Optional[str]:
    """Returns the profile a request names (x-sim-profile, else a model sim-<profile>), or None."""
    name = headers.get(PROFILE_HEADER, "").strip()
    if name:
        if name not in PROFILES:
            raise FaultError(f"{PROFILE_HEADER}: unknown profile {name!r}; known: {', '.join(PROFILES)}")
        return name
    if isinstance(model, str) and model.startswith(MODEL_PREFIX) and model[len(MODEL_PREFIX):] in PROFILES:
        return model[len(MODEL_PREFIX):]
    return None


def resolve(headers: Mapping[str, str], model: Optional[str], default: Fault, time_scale: float,
            proxy_idle_timeout: Optional[float]) -> Fault:
    """Returns a request's fault: the named profile scaled (else `default`), then its x-sim-* header overrides.

    A server-wide proxy idle timeout applies on top of the profile's (the smaller wins, as with two proxies in
    a row); header values are absolute seconds and win over everything.  Raises FaultError for bad headers.
    """
    name = profile_named(headers, model)
    fault = PROFILES[name].fault.scaled(time_scale) if name else default
    if proxy_idle_timeout is not None:
        own = fault.proxy_idle_timeout
        fault = dataclasses.replace(fault, proxy_idle_timeout=proxy_idle_timeout if own is None
                                    else min(own, proxy_idle_timeout))
    values = overrides_from(headers)
    return dataclasses.replace(fault, **values) if values else fault
