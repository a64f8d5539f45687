"""Classifying exceptions into the closed set of `error.type` and timeout-phase values."""

from __future__ import annotations

import asyncio
import re
from typing import Optional

from . import semconv

_TIMEOUT_PHASES = {
    "ConnectTimeout": "connect",
    "ReadTimeout": "read",
    "WriteTimeout": "write",
    "PoolTimeout": "pool",
}
# httpx and httpx2 share these class names; matching by name covers both and
# needs neither imported.
_CONNECTION_ERRORS = frozenset({
    "APIConnectionError", "ConnectError", "RemoteProtocolError", "ReadError", "WriteError",
    "NetworkError", "TransportError", "ProtocolError", "LocalProtocolError", "CloseError",
    "ProxyError", "UnsupportedProtocol", "StreamClosed", "ClientConnectionError",
    "ServerDisconnectedError", "ClientPayloadError",
})
_API_ERROR_TYPE = re.compile(r"^[a-z][a-z_]{0,39}$")


def _mro_names(exc: BaseException) -> tuple:
    """Returns the class names of the exception's type and its bases."""
    return tuple(cls.__name__ for cls in type(exc).__mro__)


def timeout_phase(exc: Optional[BaseException]) -> Optional[str]:
    """Returns connect/read/write/pool for a timeout (or an SDK error caused by one), else None; never raises."""
    seen = 0
    while exc is not None and seen < 4:
        for name in _mro_names(exc):
            phase = _TIMEOUT_PHASES.get(name)
            if phase is not None:
                return phase
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def is_timeout(exc: BaseException) -> bool:
    """Returns whether the exception is a client-side timeout of any phase; never raises."""
    names = _mro_names(exc)
    return "TimeoutException" in names or "APITimeoutError" in names or timeout_phase(exc) is not None


def api_error_type(body: object) -> Optional[str]:
    """Returns the API's error type (e.g. overloaded_error) from an error body, if it is a plain identifier."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            value = inner.get("type")
            if isinstance(value, str) and _API_ERROR_TYPE.match(value) and value != "error":
                return value
    return None


def error_type(exc: BaseException) -> str:
    """Returns the bounded error.type value for an exception that ended a call or attempt; never raises."""
    try:
        if isinstance(exc, asyncio.CancelledError):
            return semconv.ERROR_CANCELLED
        if is_timeout(exc):
            return semconv.ERROR_TIMEOUT
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            return api_error_type(getattr(exc, "body", None)) or str(status)
        names = _mro_names(exc)
        if _CONNECTION_ERRORS.intersection(names) or isinstance(exc, (ConnectionError, OSError)):
            return semconv.ERROR_CONNECTION
        return names[0]
    except Exception:  # pragma: no cover - classification must never fail the call
        return "_OTHER"


def attempt_outcome(exc: BaseException) -> str:
    """Returns the retry reason an attempt that raised gives its successor: timeout or connection_error."""
    return semconv.ERROR_TIMEOUT if is_timeout(exc) else semconv.ERROR_CONNECTION
