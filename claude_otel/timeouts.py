"""The timeouts an attempt ran under, and how much of them it used."""

from __future__ import annotations

import math
from typing import Mapping, Optional, Tuple


def _seconds(value: object) -> Optional[float]:
    """Returns a positive finite float from a timeout value, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    return number


def applied_timeouts(extensions: Optional[Mapping], headers: Optional[Mapping]) -> Tuple[Optional[float], Optional[float]]:
    """Returns (read, connect) seconds httpx will apply to a request; (None, None) when unknown; never raises."""
    read = connect = None
    try:
        timeout = extensions.get("timeout") if extensions is not None else None
        if isinstance(timeout, Mapping):
            read = _seconds(timeout.get("read"))
            connect = _seconds(timeout.get("connect"))
        if read is None and headers is not None:
            # The SDK announces the read timeout it applied; older SDKs do not.
            read = _seconds(headers.get("x-stainless-read-timeout"))
    except Exception:
        return None, None
    return read, connect


def from_client_value(timeout: object) -> Tuple[Optional[float], Optional[float]]:
    """Returns (read, connect) seconds from a float, an httpx(2).Timeout or None as given to the SDK; never raises."""
    if timeout is None:
        return None, None
    single = _seconds(timeout)
    if single is not None:
        return single, single
    try:
        return _seconds(getattr(timeout, "read", None)), _seconds(getattr(timeout, "connect", None))
    except Exception:
        return None, None


def utilization(
    connect_time: Optional[float],
    read_wait: Optional[float],
    read_timeout: Optional[float],
    connect_timeout: Optional[float],
    proxy_idle_timeout: Optional[float] = None,
) -> Tuple[Optional[float], Optional[str]]:
    """Returns (fraction, kind) of the governing timeout an attempt used most, or (None, None); never NaN or negative."""
    best = None
    kind = None
    try:
        if connect_time is not None and connect_timeout:
            value = connect_time / connect_timeout
            if math.isfinite(value):
                best, kind = max(value, 0.0), "connect"
        if read_wait is not None:
            governing, governing_kind = read_timeout, "read"
            if proxy_idle_timeout and (governing is None or proxy_idle_timeout < governing):
                governing, governing_kind = proxy_idle_timeout, "proxy_idle"
            if governing:
                value = read_wait / governing
                if math.isfinite(value) and (best is None or value > best):
                    best, kind = max(value, 0.0), governing_kind
    except Exception:
        return None, None
    return best, kind
