"""What a simulated request should suffer: the Fault parameters, named profiles, and reading them from headers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Dict, Mapping, Optional

HEADER_PREFIX = "x-sim-"


@dataclass(frozen=True)
class Fault:
    """Injected behaviour of one request; durations in seconds."""

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

    def scaled(self, factor: float) -> "Fault":
        """Returns the fault with its durations multiplied by factor (profiles are written at real-world scale)."""
        if factor == 1.0:
            return self
        return dataclasses.replace(
            self,
            headers_delay=self.headers_delay * factor,
            prefill_delay=self.prefill_delay * factor,
            token_delay=self.token_delay * factor,
            stall=self.stall * factor,
            retry_after=None if self.retry_after is None else self.retry_after * factor,
            retry_after_ms=None if self.retry_after_ms is None else int(self.retry_after_ms * factor),
            proxy_idle_timeout=None if self.proxy_idle_timeout is None else self.proxy_idle_timeout * factor,
        )


MALFORMED = ("sse-line", "json", "content-type", "huge-header")

PROFILES: Dict[str, tuple] = {
    "normal": (Fault(prefill_delay=0.02, token_delay=0.005), "fast, healthy responses"),
    "slow-prefill": (Fault(prefill_delay=8.0, token_delay=0.02), "8 s before the first token, as for a 100k-token prompt"),
    "slow-generation": (Fault(token_delay=0.2, output_tokens=200), "200 tokens at 5 tokens/s"),
    "long-nonstream": (Fault(headers_delay=40.0, output_tokens=400),
                       "a non-streamed generation that takes 40 s before any byte arrives"),
    "idle-stall": (Fault(stall_at=5, stall=20.0, token_delay=0.02), "the stream goes silent for 20 s at token 5"),
    "rate-limited": (Fault(fail_attempts=1, fail_status=429, retry_after_ms=500),
                     "one 429 with retry-after-ms: 500, then success"),
    "overloaded": (Fault(fail_attempts=2, fail_status=529, retry_after=1.0),
                   "two 529 overloaded_error with retry-after: 1, then success"),
    "mid-stream-error": (Fault(error_after=5), "an overloaded_error event after 5 tokens"),
    "dropped-connection": (Fault(drop_after=3), "the connection is cut after 3 tokens"),
    "proxy-idle": (Fault(proxy_idle_timeout=30.0, prefill_delay=45.0),
                   "a proxy that closes connections idle for 30 s, in front of a 45 s prefill"),
}

_TYPES = {f.name: f.type for f in fields(Fault)}


def _convert(name: str, raw: str):
    """Returns a header value converted to the Fault field's type; raises ValueError when it does not fit."""
    kind = str(_TYPES[name])
    if "float" in kind:
        return float(raw)
    if "int" in kind:
        return int(float(raw))
    if name == "malformed" and raw not in MALFORMED:
        raise ValueError(f"malformed must be one of {', '.join(MALFORMED)}")
    return raw


def overrides_from(headers: Mapping[str, str]) -> Dict[str, object]:
    """Returns the Fault fields set by x-sim-<field> headers (dashes or underscores); bad values are ignored."""
    found: Dict[str, object] = {}
    for key, raw in headers.items():
        if not key.startswith(HEADER_PREFIX):
            continue
        name = key[len(HEADER_PREFIX):].replace("-", "_")
        if name in _TYPES:
            try:
                found[name] = _convert(name, raw.strip())
            except ValueError:
                continue
    return found


def resolve(headers: Mapping[str, str], model: Optional[str], default_profile: str, time_scale: float,
            server_proxy_idle: Optional[float]) -> Fault:
    """Returns the request's fault: its profile (header, model sim-<name>, or default) scaled, then header overrides."""
    name = headers.get("x-sim-profile")
    if not name and isinstance(model, str) and model.startswith("sim-") and model[4:] in PROFILES:
        name = model[4:]
    fault = PROFILES.get(name or default_profile, PROFILES["normal"])[0].scaled(time_scale)
    if server_proxy_idle is not None and fault.proxy_idle_timeout is None:
        fault = dataclasses.replace(fault, proxy_idle_timeout=server_proxy_idle)
    values = overrides_from(headers)
    return dataclasses.replace(fault, **values) if values else fault
