"""A local Anthropic API simulator: real HTTP/1.1 on asyncio, SSE streaming the SDK parses, injectable faults.

One event loop in one thread serves every connection, so a thousand concurrent
streams cost a thousand small coroutines, not a thousand threads.  Each write is
drained before the next pause, so the client sees every event when it is sent
and can measure time to first token and the gaps between tokens.

h11 speaks the protocol (parsing requests, framing responses, keep-alive); the
simulator keeps the socket, so the faults stay its own: when bytes are written,
how a body is cut short (h11 never sees the end of such a message) and when the
connection is aborted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import h11

from . import responses
from .faults import PROFILES, Fault, FaultError, parse_value, resolve

log = logging.getLogger(__name__)

_MAX_HEAD = 256 * 1024  # a request's head (or a chunk header) larger than this is refused with 431
_READ = 64 * 1024
_REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
            431: "Request Header Fields Too Large",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 529: "Overloaded"}
_BAD_JSON_EVENT = b"event: content_block_delta\ndata: {not json\n\n"
_GARBAGE_LINE = b"this line is not server-sent events\n\n"
_HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"


class _Dropped(Exception):
    """The simulated network or proxy cut the connection, or the client went away."""


@dataclass
class RequestRecord:
    """One HTTP request the simulator received, and what it served."""

    method: str
    path: str
    headers: Dict[str, str]
    body: object
    retry_count: int
    model: Optional[str]
    stream: bool
    status: Optional[int] = None
    output_tokens_served: int = 0
    input_tokens: int = 0
    fault: Fault = field(default_factory=Fault)
    started: float = field(default_factory=time.monotonic)
    finished: Optional[float] = None


@dataclass
class _Request:
    """A parsed HTTP request."""

    method: str
    path: str
    headers: Dict[str, str]
    raw: bytes
    keep_alive: bool


class _Exchange:
    """Writes one response: paces writes and plays the proxy that cuts connections idle for too long."""

    __slots__ = ("conn", "reader", "writer", "record", "sim", "last_write", "keep_alive", "tokens")

    def __init__(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 record: RequestRecord, sim: "Simulator", keep_alive: bool) -> None:
        self.conn = conn
        self.reader = reader
        self.writer = writer
        self.record = record
        self.sim = sim
        self.last_write = time.monotonic()  # the request was just read: idle from here
        self.keep_alive = keep_alive
        self.tokens = (0, 0)  # (input, output) to charge to the rate-limit headers

    async def pause(self, delay: float) -> None:
        """Returns after `delay` seconds, or cuts the connection where a proxy's idle timeout would."""
        idle = self.record.fault.proxy_idle_timeout
        if idle is not None:
            waited = time.monotonic() - self.last_write
            if waited + delay > idle:
                await asyncio.sleep(max(idle - waited, 0.0))
                self.drop()
        if delay > 0:
            await asyncio.sleep(delay)
            if self.reader.at_eof():  # the client gave up (e.g. its timeout): do not record a response it never saw
                self.writer.transport.abort()
                raise _Dropped()

    def drop(self) -> None:
        """Aborts the TCP connection with no goodbye (no status, no last chunk); raises _Dropped."""
        self.writer.transport.abort()
        raise _Dropped()

    async def head(self, status: int, headers: Dict[str, str], length: Optional[int] = None) -> None:
        """Returns once the status line and headers are sent; length None means a chunked body follows."""
        self.record.status = status
        fields = [("request-id", self.sim._new_id("req"))]
        fields += self.sim._ratelimit_headers(*self.tokens).items()
        fields += headers.items()
        if length is not None:  # without one, h11 frames the body as chunked (close-delimited for HTTP/1.0)
            fields.append(("content-length", str(length)))
        fields.append(("connection", "keep-alive" if self.keep_alive else "close"))
        reason = _REASONS.get(status, "Status").encode("ascii")
        await self.write(self.conn.send(h11.Response(status_code=status, headers=fields, reason=reason)))

    async def send(self, data: bytes) -> None:
        """Returns once body bytes are sent (as one chunk of a chunked body)."""
        if data:
            await self.write(self.conn.send(h11.Data(data=data)))

    async def end(self) -> None:
        """Returns once the body is complete (the last chunk of a chunked one is sent)."""
        await self.write(self.conn.send(h11.EndOfMessage()))

    async def whole(self, status: int, headers: Dict[str, str], data: bytes) -> None:
        """Returns once a complete response with a body of known length is sent."""
        await self.head(status, headers, length=len(data))
        await self.send(data)
        await self.end()

    async def json(self, status: int, body, extra: Optional[Dict[str, str]] = None) -> None:
        """Returns once a complete JSON response is sent."""
        await self.whole(status, {"content-type": "application/json", **(extra or {})}, responses.dumps(body))

    async def write(self, data: Optional[bytes]) -> None:
        """Returns once data is handed to the socket (drained), so the client gets it now."""
        if data:
            self.writer.write(data)
            await self.writer.drain()
        self.last_write = time.monotonic()


class Simulator:
    """A local Anthropic Messages API with fault injection, served from a background thread or the foreground.

    `overrides` sets Fault fields (absolute values, not scaled) on the default profile, i.e. for requests that
    name no profile; the `claude-otel simulate` fault flags use it.  `max_requests` bounds `requests` to the
    most recent ones for long runs (None: keep all); `requests_total` counts every request regardless.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, profile: str = "normal", time_scale: float = 1.0,
                 proxy_idle_timeout: Optional[float] = None, overrides: Optional[Dict[str, object]] = None,
                 max_requests: Optional[int] = None) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
        if not time_scale >= 0:
            raise ValueError("time_scale must be >= 0")
        self.host = host
        self.port = port
        self.profile = profile
        self.time_scale = time_scale
        self.proxy_idle_timeout = proxy_idle_timeout
        values = {k: parse_value(k, v) if isinstance(v, str) else v for k, v in (overrides or {}).items()}
        self.default_fault = dataclasses.replace(PROFILES[profile].fault.scaled(time_scale), **values)
        self.requests: List[RequestRecord] = []
        self.requests_total = 0
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._window = (0, 0, 0, 0, 0)  # minute, requests, tokens, input tokens, output tokens
        self._batches: Dict[str, dict] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._stopping: Optional[asyncio.Event] = None
        self._writers: set = set()
        self._error: Optional[BaseException] = None

    @property
    def base_url(self) -> str:
        """Returns the URL to give the SDK as base_url (ANTHROPIC_BASE_URL)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self) -> "Simulator":
        """Returns self once listening, serving from a daemon thread with its own event loop."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="claude-otel-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the simulator did not start listening within 30 s")
        if self._error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._error
        return self

    def serve_forever(self) -> None:
        """Returns when stop() is called or on KeyboardInterrupt (Ctrl-C), having served in the meantime."""
        self.start()
        try:
            thread = self._thread
            while thread is not None and thread.is_alive():
                thread.join(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Returns once the listener and every connection are closed and the thread is joined; idempotent."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop is already closed
                pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
            self._thread = None

    def reset(self) -> None:
        """Forgets the requests (and batches) recorded so far."""
        with self._lock:
            self.requests.clear()
            self._batches.clear()

    def __enter__(self) -> "Simulator":
        """Returns self, started."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stops the simulator."""
        self.stop()

    def _run(self) -> None:
        """Runs the event loop of the serving thread until stop()."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to start(), e.g. the port is taken
            self._error = exc
        finally:
            self._ready.set()
            self._loop = None
            loop.close()

    async def _main(self) -> None:
        """Listens until stop(), then cuts every connection."""
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, self.port, backlog=4096, limit=_MAX_HEAD)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- HTTP ----------------------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serves the requests of one connection, one after the other (keep-alive)."""
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                try:
                    request = await self._read_request(conn, reader, writer)
                except h11.RemoteProtocolError as exc:
                    if not reader.at_eof():  # a client that hung up mid-request gets no answer
                        await self._refuse(conn, reader, writer, exc)
                    break
                if request is None or not await self._serve(conn, reader, writer, request):
                    break
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break  # MUST_CLOSE: h11 saw a reason not to reuse the connection
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, _Dropped):
            pass
        except asyncio.CancelledError:
            pass  # stop(): a connection task that ends cancelled would be logged as an error by asyncio
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:  # the transport is already gone
                pass

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> Optional[_Request]:
        """Returns the next request on the connection, body and all, or None when the client closed it.

        Raises h11.RemoteProtocolError when the bytes are not an HTTP/1.1 request.
        """
        start: Optional[h11.Request] = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:  # curl asks before sending a body over 1 KiB
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[],
                                                                     reason=b"Continue")))
                conn.receive_data(await reader.read(_READ))  # b"" at EOF, which h11 turns into ConnectionClosed
            elif isinstance(event, h11.Request):
                # h11 enforces its limit only on a head still arriving, not on one that came in a single read
                if len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers) > _MAX_HEAD:
                    raise h11.RemoteProtocolError("request head larger than 256 KiB", error_status_hint=431)
                start = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # ConnectionClosed (PAUSED cannot come: the cycle is restarted before each request)
                return None
        headers: Dict[str, str] = {}
        for raw_name, raw_value in start.headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        target = start.target.decode("latin-1")
        if target.startswith(("http://", "https://")):  # absolute form, as sent to a proxy
            parts = urlsplit(target)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and start.http_version == b"1.1"  # h11 closes HTTP/1.0 anyway
        return _Request(start.method.decode("latin-1").upper(), target, headers, bytes(body), keep_alive)

    @staticmethod
    async def _refuse(conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      exc: h11.RemoteProtocolError) -> None:
        """Returns once a request that does not parse is answered with 400 (431: head too large), if still possible."""
        if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint if exc.error_status_hint in _REASONS else 400
        body = responses.dumps(responses.error_body("invalid_request_error", str(exc)))
        fields = [("content-type", "application/json"), ("content-length", str(len(body))), ("connection", "close")]
        data = conn.send(h11.Response(status_code=status, headers=fields, reason=_REASONS[status].encode("ascii")))
        writer.write(data + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
        await writer.drain()
        # A lingering close: closing with the rest of the request unread would send an RST that can reach the
        # client before the answer, so say we are done and read what is still coming, for a second at most.
        writer.write_eof()
        try:
            await asyncio.wait_for(_discard(reader), 1.0)
        except asyncio.TimeoutError:
            pass

    async def _serve(self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     request: _Request) -> bool:
        """Serves one request; returns whether the connection stays open for the next one."""
        try:
            body = json.loads(request.raw) if request.raw else None
        except ValueError:
            body = ValueError
        fields = body if isinstance(body, dict) else {}
        model = fields.get("model") if isinstance(fields.get("model"), str) else None
        try:
            retry_count = int(request.headers.get("x-stainless-retry-count", "0"))
        except ValueError:
            retry_count = 0
        problem = None
        try:
            fault = resolve(request.headers, model, self.default_fault, self.time_scale, self.proxy_idle_timeout)
        except FaultError as exc:
            fault, problem = self.default_fault, str(exc)
        record = RequestRecord(request.method, request.path, request.headers, None if body is ValueError else body,
                               retry_count, model, bool(fields.get("stream")), fault=fault)
        with self._lock:
            self.requests.append(record)
            self.requests_total += 1
            if self.max_requests is not None and len(self.requests) > 2 * self.max_requests:  # trim in batches
                del self.requests[:len(self.requests) - self.max_requests]
        ex = _Exchange(conn, reader, writer, record, self, request.keep_alive)
        try:
            endpoint, item_id = responses.route(request.method, request.path)
            if problem is None and body is ValueError:
                problem = "the request body is not valid JSON"
            elif problem is None and endpoint in ("messages", "complete", "count_tokens", "batch_create") \
                    and not isinstance(body, dict):
                problem = "the request body must be a JSON object"
            if problem is not None and endpoint != "unknown":
                await ex.json(400, responses.error_body("invalid_request_error", problem))
            else:
                await self._dispatch(ex, endpoint, item_id, request)
        except _Dropped:
            return False
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a simulator bug: answer like the API would rather than hang the client
            log.exception("simulator error serving %s %s", request.method, request.path)
            if record.status is not None:
                return False
            await ex.json(500, responses.error_body("api_error", f"simulator error: {exc!r}"))
        finally:
            record.finished = time.monotonic()
        return request.keep_alive

    async def _dispatch(self, ex: _Exchange, endpoint: str, item_id: Optional[str], request: _Request) -> None:
        """Returns once the endpoint's response (or the injected failure) is served."""
        record = ex.record
        if endpoint == "unknown":
            text = f"{request.method} {request.path.split('?')[0]} is not simulated"
            await ex.json(404, responses.error_body("not_found_error", text))
        elif record.retry_count < record.fault.fail_attempts:
            await self._fail(ex)
        elif endpoint == "messages":
            await (self._message_stream(ex) if record.stream else self._message(ex))
        elif endpoint == "complete":
            await self._complete(ex)
        elif endpoint == "count_tokens":
            await ex.pause(record.fault.headers_delay)
            record.input_tokens = responses.input_tokens_of(record.body, record.fault.input_tokens)
            ex.tokens = (record.input_tokens, 0)
            await ex.json(200, {"input_tokens": record.input_tokens})
        elif endpoint == "models":
            await ex.json(200, responses.page([responses.model_info(m) for m in responses.MODELS], _query(request)))
        elif endpoint == "model_get":
            await ex.json(200, responses.model_info(item_id or "claude"))
        else:
            await self._batch(ex, endpoint, item_id, request)

    async def _fail(self, ex: _Exchange) -> None:
        """Returns once the fault's error status (with its retry-after headers) is served."""
        fault = ex.record.fault
        extra = {}
        if fault.retry_after_ms is not None:
            extra["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.retry_after is not None:
            extra["retry-after"] = f"{fault.retry_after:g}"
        error_type = responses.ERROR_TYPES.get(fault.fail_status, "api_error")
        await ex.json(fault.fail_status, responses.error_body(error_type), extra)

    # -- generation ----------------------------------------------------------------------------------------------

    def _plan(self, record: RequestRecord) -> Tuple[int, str]:
        """Returns (output tokens N = min(fault, max_tokens), stop reason) and records the input tokens."""
        body = record.body if isinstance(record.body, dict) else {}
        limit = body.get("max_tokens", body.get("max_tokens_to_sample"))
        n = record.fault.output_tokens
        capped = isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit <= n
        if capped:
            n = limit
        record.input_tokens = responses.input_tokens_of(body, record.fault.input_tokens)
        return n, "max_tokens" if capped else "end_turn"

    @staticmethod
    def _generation_time(fault: Fault, n: int) -> float:
        """Returns how long a non-streamed response of n tokens takes before its headers."""
        stall = fault.stall if fault.stall_at is not None and fault.stall_at <= n else 0.0
        return fault.headers_delay + fault.prefill_delay + n * fault.token_delay + stall

    @staticmethod
    def _extra_headers(fault: Fault) -> Dict[str, str]:
        """Returns headers a malformed mode adds."""
        return {"x-sim-padding": "p" * 65536} if fault.malformed == "huge-header" else {}

    async def _whole(self, ex: _Exchange, n: int, body: Dict) -> None:
        """Returns once a non-streamed generation is served, after its generation time, with its faults."""
        fault = ex.record.fault
        if fault.drop_after == 0:
            await ex.pause(fault.headers_delay)
            ex.drop()
        await ex.pause(self._generation_time(fault, n))
        ex.tokens = (ex.record.input_tokens, n)
        if fault.malformed == "content-type":
            await ex.whole(200, {"content-type": "text/html; charset=utf-8"}, _HTML)
            return
        data = responses.dumps(body)
        if fault.malformed == "json":
            data = data[:len(data) // 2]
        headers = {"content-type": "application/json", **self._extra_headers(fault)}
        if fault.drop_after is not None:  # a truncated body: the length promises more than ever arrives
            await ex.head(200, headers, length=len(data))
            await ex.send(data[:len(data) // 2])
            ex.drop()
        await ex.whole(200, headers, data)
        ex.record.output_tokens_served = n

    async def _stream(self, ex: _Exchange, n: int, head: List[bytes], render: Callable[[int], bytes],
                      tail: List[bytes]) -> None:
        """Returns once an SSE stream of n deltas is served, paced and broken as the fault says."""
        fault = ex.record.fault
        await ex.pause(fault.headers_delay)
        ex.tokens = (ex.record.input_tokens, n)
        if fault.malformed == "content-type":
            await ex.whole(200, {"content-type": "text/html; charset=utf-8"}, _HTML)
            return
        await ex.head(200, {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                            **self._extra_headers(fault)})
        for event in head:
            await ex.send(event)
        if fault.malformed == "sse-line":
            await ex.send(_GARBAGE_LINE)
        for i in range(n + 1):  # index n: just before the tail
            delay = fault.prefill_delay if i == 0 else fault.token_delay if i < n else 0.0
            if fault.stall_at == i:
                delay += fault.stall
            await ex.pause(delay)
            if fault.error_after == i:
                await ex.send(responses.sse("error", responses.error_body(fault.error_type)))
                await ex.end()
                return
            if fault.drop_after == i:
                ex.drop()
            if fault.malformed == "json" and i == min(1, n):
                await ex.send(_BAD_JSON_EVENT)
            if i < n:
                await ex.send(render(i))
                ex.record.output_tokens_served = i + 1
        for event in tail:
            await ex.send(event)
        await ex.end()

    async def _message(self, ex: _Exchange) -> None:
        """Returns once a non-streamed Messages API response is served."""
        record, fault = ex.record, ex.record.fault
        n, stop = self._plan(record)
        use = responses.usage(record.input_tokens, n, fault.cache_read_tokens, fault.cache_creation_tokens)
        body = responses.answer(self._new_id("msg"), record.model or "claude", record.body, fault, n, stop, use)
        await self._whole(ex, n, body)

    async def _message_stream(self, ex: _Exchange) -> None:
        """Returns once a streamed Messages API response is served."""
        record, fault = ex.record, ex.record.fault
        n, stop = self._plan(record)
        use = responses.usage(record.input_tokens, n, fault.cache_read_tokens, fault.cache_creation_tokens)
        head, render, tail = responses.answer_stream(self._new_id("msg"), record.model or "claude", record.body,
                                                     fault, n, stop, use)
        await self._stream(ex, n, head, render, tail)

    async def _complete(self, ex: _Exchange) -> None:
        """Returns once a legacy Text Completions response (streamed or not) is served."""
        record = ex.record
        n, stop = self._plan(record)
        stop = "max_tokens" if stop == "max_tokens" else "stop_sequence"
        model, comp_id = record.model or "claude-2.1", self._new_id("compl")
        if not record.stream:
            await self._whole(ex, n, responses.completion(comp_id, model, responses.text_of(n), stop))
            return

        def render(i: int) -> bytes:
            return responses.sse("completion", responses.completion(comp_id, model, responses.word(i), None))

        tail = [responses.sse("completion", responses.completion(comp_id, model, "", stop))]
        await self._stream(ex, n, [responses.sse("ping", {"type": "ping"})], render, tail)

    # -- batches -------------------------------------------------------------------------------------------------

    async def _batch(self, ex: _Exchange, endpoint: str, batch_id: Optional[str], request: _Request) -> None:
        """Returns once a Message Batches response is served (batches end as soon as they are retrieved)."""
        body = ex.record.body if isinstance(ex.record.body, dict) else {}
        base = f"http://{request.headers.get('host') or f'{self.host}:{self.port}'}"
        with self._lock:
            if endpoint == "batch_create":
                batch_id = self._new_id("msgbatch")
                items = [r for r in body.get("requests") or [] if isinstance(r, dict)]
                self._batches[batch_id] = {"requests": [(str(r.get("custom_id")), _model_of(r)) for r in items],
                                           "created": time.time(), "status": "in_progress"}
            state = self._batches.get(batch_id or "")
            listing = [(k, dict(v)) for k, v in reversed(self._batches.items())]
            if state is not None and endpoint == "batch_get":
                state["status"] = "ended" if state["status"] == "in_progress" else state["status"]
            if state is not None and endpoint == "batch_cancel" and state["status"] != "ended":
                state["status"] = "canceling"
            if state is not None and endpoint == "batch_delete":
                del self._batches[batch_id]
            state = dict(state) if state is not None else None

        def render(key: str, value: dict) -> Dict:
            url = f"{base}{responses.BATCHES}/{key}/results"
            return responses.batch(key, value["status"], len(value["requests"]), value["created"], url)

        if endpoint == "batch_list":
            await ex.json(200, responses.page([render(k, v) for k, v in listing], _query(request)))
        elif state is None:
            await ex.json(404, responses.error_body("not_found_error", f"no batch {batch_id}"))
        elif endpoint == "batch_delete":
            await ex.json(200, {"id": batch_id, "type": "message_batch_deleted"})
        elif endpoint == "batch_results":
            data = responses.batch_results(state["requests"])
            await ex.whole(200, {"content-type": "application/binary"}, data)
        else:
            await ex.json(200, render(batch_id, state))

    # -- bookkeeping ---------------------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        """Returns a new id such as req_sim_0000000042: padded, so it is as long as a real one."""
        return f"{prefix}_sim_{next(self._ids):010d}"

    def _ratelimit_headers(self, input_tokens: int, output_tokens: int) -> Dict[str, str]:
        """Returns rate-limit headers that count this response against the current one-minute window."""
        now = time.time()
        minute = int(now // 60)
        with self._lock:
            window = self._window if self._window[0] == minute else (minute, 0, 0, 0, 0)
            window = (minute, window[1] + 1, window[2] + input_tokens + output_tokens, window[3] + input_tokens,
                      window[4] + output_tokens)
            self._window = window
        return responses.ratelimit_headers(window[1], window[2], window[3], window[4],
                                           responses.rfc3339((minute + 1) * 60))


def _model_of(batch_request: dict) -> str:
    """Returns the model a batch request asks for."""
    params = batch_request.get("params")
    model = params.get("model") if isinstance(params, dict) else None
    return model if isinstance(model, str) else "claude"


async def _discard(reader: asyncio.StreamReader) -> None:
    """Returns at EOF, having read and dropped everything until then."""
    while await reader.read(_READ):
        pass


def _query(request: _Request) -> str:
    """Returns the query string of a request's path."""
    return request.path.partition("?")[2]
