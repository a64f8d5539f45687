"""Connection phases of one HTTP attempt, from the httpcore `trace` request extension.

httpx and httpx2 pass the callback down to httpcore/httpcore2, which report
connect, TLS, request upload and response-header events.  Transports that do
not support the extension (custom ones, aiohttp) simply never call it, and the
attempt falls back to the times the agent sees around `send`.
"""

from __future__ import annotations

from time import perf_counter

# Indexes into Attempt.phase_times.
CONNECT_START, CONNECT_END, BODY_SENT, HEADERS = 0, 1, 2, 3

_EVENTS = {
    "connection.connect_tcp.started": (CONNECT_START, True),
    "connection.connect_unix_socket.started": (CONNECT_START, True),
    "connection.connect_tcp.complete": (CONNECT_END, False),
    "connection.connect_unix_socket.complete": (CONNECT_END, False),
    "connection.start_tls.complete": (CONNECT_END, False),
    "http_proxy.start_tls.complete": (CONNECT_END, False),
    "http11.send_request_body.complete": (BODY_SENT, False),
    "http2.send_request_body.complete": (BODY_SENT, False),
    "http11.receive_response_headers.complete": (HEADERS, False),
    "http2.receive_response_headers.complete": (HEADERS, False),
}


def make_sync_callback(times: list, user_callback=None):
    """Returns a sync trace callback storing phase times into `times` and then calling the user's own callback."""
    events = _EVENTS

    def trace(name, info):
        slot = events.get(name)
        if slot is not None:
            index, first_only = slot
            if not first_only or times[index] is None:
                times[index] = perf_counter()
        if user_callback is not None:
            user_callback(name, info)

    return trace


def make_async_callback(times: list, user_callback=None):
    """Returns an async trace callback storing phase times into `times` and then awaiting the user's own callback."""
    events = _EVENTS

    async def trace(name, info):
        slot = events.get(name)
        if slot is not None:
            index, first_only = slot
            if not first_only or times[index] is None:
                times[index] = perf_counter()
        if user_callback is not None:
            await user_callback(name, info)

    return trace
