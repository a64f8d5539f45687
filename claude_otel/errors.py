"""Classifying exceptions into the closed sets of `error.type`, timeout-phase and failure-cause values."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
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


# The API's documented error type of each HTTP status: the error.type of a failed response whose body is not read
# (the SDK >= 2.17 reads an error body only when it stops retrying; before, send() had read it).
STATUS_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
    504: "timeout_error", 529: "overloaded_error",
}


def response_error_type(response, status: int) -> str:
    """Returns the error.type of a failed response: the type in its body when already read, else the API's
    documented type of its status, else the status code; never raises and never reads the body."""
    if getattr(response, "is_stream_consumed", False) or hasattr(response, "_content"):
        try:
            found = api_error_type(response.json())
        except Exception:
            found = None
        if found:
            return found
    return STATUS_ERROR_TYPES.get(status) or str(status)


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


# -- anthropic.failure.cause ---------------------------------------------------------------------------------------

# Idle limits proxies and load balancers commonly run with (nginx proxy_read_timeout and AWS ALB 60 s, Google Cloud
# load balancers 30 s, Cloudflare 100 s; 120 and 300 s are frequent settings); documented in the README.
COMMON_PROXY_IDLE_LIMITS = (30.0, 60.0, 100.0, 120.0, 300.0)
COMMON_LIMIT_TOLERANCE = 0.05  # a silence within 5 % of a common limit, when no proxy idle timeout is declared
DECLARED_LIMIT_SHARE = 0.9  # a silence of at least 0.9x the declared CLAUDE_OTEL_PROXY_IDLE_TIMEOUT

_CAUSE_OF_PHASE = {
    "connect": semconv.CAUSE_CONNECT_TIMEOUT,
    "read": semconv.CAUSE_READ_TIMEOUT,
    "write": semconv.CAUSE_WRITE_TIMEOUT,
    "pool": semconv.CAUSE_POOL_TIMEOUT,
}
_PEER_CLOSED = "peer_closed"  # internal: decided by the silence before it (proxy_idle_cut or connection_reset)
_DNS_HINTS = ("name or service not known", "nodename nor servname", "temporary failure in name resolution",
              "no address associated", "getaddrinfo failed", "name resolution")
_TLS_HINTS = ("[ssl", "ssl:", "certificate verify", "tlsv1", "wrong version number")
_NONSTREAMING_HINTS = ("streaming is required", "streaming is strongly recommended")
# The SDK's own outcome exceptions: transparent, the cause is in what they wrap.
_WRAPPERS = frozenset({"APIConnectionError", "APITimeoutError"})


def is_proxy_idle_cut(silence: Optional[float], declared: Optional[float]) -> bool:
    """Returns whether a peer close/reset after `silence` seconds looks like a proxy's idle timeout.

    With a declared proxy idle timeout: a silence of at least 0.9x it.  Without one: a silence within 5 % of a
    common proxy idle limit (30, 60, 100, 120 or 300 s).
    """
    if silence is None or silence < 0:
        return False
    if declared:
        return silence >= DECLARED_LIMIT_SHARE * declared
    return any(abs(silence - limit) <= COMMON_LIMIT_TOLERANCE * limit for limit in COMMON_PROXY_IDLE_LIMITS)


def _chain(exc: Optional[BaseException], depth: int = 8):
    """Yields the exception and those it was raised from (__cause__, else __context__), at most depth."""
    while exc is not None and depth > 0:
        yield exc
        exc = exc.__cause__ or exc.__context__
        depth -= 1


def _base_cause(exc: BaseException) -> str:
    """Returns the cause an exception's chain names, with peer closes as _PEER_CLOSED; never raises."""
    transport = False
    texts = []
    for item in _chain(exc):
        if isinstance(item, (asyncio.CancelledError, KeyboardInterrupt)) or type(item).__name__ == "Cancelled":
            return semconv.CAUSE_APP_CANCELLED
        names = _mro_names(item)
        for name in names:
            phase = _TIMEOUT_PHASES.get(name)
            if phase is not None:
                return _CAUSE_OF_PHASE[phase]
        if isinstance(item, (socket.gaierror, socket.herror)):
            return semconv.CAUSE_DNS
        if isinstance(item, (ssl.SSLError, ssl.CertificateError)):
            return semconv.CAUSE_TLS
        if isinstance(getattr(item, "status_code", None), int):
            return semconv.CAUSE_API_ERROR
        if isinstance(item, ValueError) and any(h in str(item).lower() for h in _NONSTREAMING_HINTS):
            return semconv.CAUSE_SDK_NONSTREAMING_LIMIT
        if "TimeoutException" in names or "APITimeoutError" in names:
            transport = True  # a timeout without its phase: decided below
            texts.append("timeout")
        elif _CONNECTION_ERRORS.intersection(names) or isinstance(item, OSError):
            transport = True
            if names[0] not in _WRAPPERS:
                texts.append(str(item).lower())
    if not transport:
        return semconv.CAUSE_OTHER
    text = " ".join(texts)
    if any(h in text for h in _DNS_HINTS):
        return semconv.CAUSE_DNS
    if any(h in text for h in _TLS_HINTS):
        return semconv.CAUSE_TLS
    if "timeout" in texts:
        return semconv.CAUSE_READ_TIMEOUT  # APITimeoutError raised without its cause: the SDK's read timeout
    return _PEER_CLOSED


def failure_cause(exc: Optional[BaseException], silence: Optional[float] = None,
                  declared_proxy_idle: Optional[float] = None) -> str:
    """Returns the anthropic.failure.cause of a failure (api_error when there is no exception); never raises.

    `silence` is how long the connection had been quiet when it failed; a peer close or reset after a silence
    matching a proxy's idle timeout (is_proxy_idle_cut) is proxy_idle_cut, any other is connection_reset.
    """
    if exc is None:
        return semconv.CAUSE_API_ERROR  # an error response or an error event in the stream
    try:
        cause = _base_cause(exc)
        if cause == _PEER_CLOSED:
            return semconv.CAUSE_PROXY_IDLE_CUT if is_proxy_idle_cut(silence, declared_proxy_idle) \
                else semconv.CAUSE_CONNECTION_RESET
        return cause
    except Exception:  # pragma: no cover - classification must never fail the call
        return semconv.CAUSE_OTHER


# Span status descriptions for causes whose fix is not what the exception suggests.
DESCRIPTIONS = {
    semconv.CAUSE_POOL_TIMEOUT: "connection pool exhausted (httpx PoolTimeout): every connection of this client was "
                                "busy; raise httpx.Limits(max_connections=...) or share the load across clients, "
                                "not the timeout (a longer one only queues longer)",
}


def is_peer_close(cause: str) -> bool:
    """Returns whether a cause is a connection the peer dropped (the ones that get silence_before_drop)."""
    return cause == semconv.CAUSE_PROXY_IDLE_CUT or cause == semconv.CAUSE_CONNECTION_RESET


# Causes an operation takes from its own exception even when its last attempt has one: they end the call itself.
CALL_LEVEL_CAUSES = frozenset({semconv.CAUSE_APP_CANCELLED, semconv.CAUSE_SDK_NONSTREAMING_LIMIT,
                               semconv.CAUSE_API_ERROR, semconv.CAUSE_OTHER})
