"""A local Anthropic API simulator: real HTTP/1.1 on asyncio, SSE streaming the SDK parses, injectable faults.

One event loop in one thread serves every connection, so a thousand concurrent
streams cost a thousand small coroutines, not a thousand threads.  Each write is
drained before the next pause, so the client sees every event when it is sent.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import responses
from .faults import Fault, resolve

_MAX_HEAD = 256 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}


class _Dropped(Exception):
    """The simulated network or proxy cut the connection."""


@dataclass
class RequestRecord:
    """One HTTP request the simulator received, and what it served."""

    method: str
    path: str
    headers: Dict[str, str]
    body: Optional[dict]
    retry_count: int
    model: Optional[str]
    stream: bool
    fault: Fault
    started: float = field(default_factory=time.monotonic)
    status: Optional[int] = None
    output_tokens_served: int = 0
    input_tokens: int = 0
    finished: Optional[float] = None


class _Exchange:
    """Writes one response, pacing writes and enforcing the proxy idle timeout."""

    def __init__(self, writer: asyncio.StreamWriter, record: RequestRecord, sim: "Simulator") -> None:
        self.writer = writer
        self.record = record
        self.sim = sim
        self.last_write = time.monotonic()
        self.chunked = False

    async def pause(self, delay: float) -> None:
        """Waits `delay` seconds, or — past the proxy idle timeout — cuts the connection as a proxy would."""
        if delay <= 0:
            return
        idle = self.record.fault.proxy_idle_timeout
        if idle is not None:
            waited = time.monotonic() - self.last_write
            if waited + delay > idle:
                await asyncio.sleep(max(idle - waited, 0.0))
                self.drop()
        await asyncio.sleep(delay)

    def drop(self) -> None:
        """Aborts the TCP connection without a goodbye, and raises _Dropped."""
        self.writer.transport.abort()
        raise _Dropped()

    async def head(self, status: int, headers: Dict[str, str], chunked: bool = False, length: int = 0) -> None:
        """Sends the status line and headers (with request-id and rate-limit headers)."""
        self.record.status = status
        n = self.sim._next_id()
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"request-id: req_sim_{n:06d}"]
        lines += [f"{k}: {v}" for k, v in self.sim._ratelimit_headers().items()]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if chunked:
            lines.append("transfer-encoding: chunked")
            self.chunked = True
        else:
            lines.append(f"content-length: {length}")
        lines.append("connection: keep-alive")
        await self._write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def send(self, data: bytes) -> None:
        """Sends body bytes (as one chunk when chunked)."""
        if self.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        if data:
            await self._write(data)

    async def end(self) -> None:
        """Ends a chunked body."""
        if self.chunked:
            await self._write(b"0\r\n\r\n")

    async def json(self, status: int, body, extra: Optional[Dict[str, str]] = None) -> None:
        """Sends a complete JSON response."""
        data = json.dumps(body, separators=(",", ":")).encode()
        await self.head(status, {"content-type": "application/json", **(extra or {})}, length=len(data))
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.last_write = time.monotonic()


class Simulator:
    """A local Anthropic Messages API with fault injection, served from a background thread or the foreground."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, profile: str = "normal", time_scale: float = 1.0,
                 proxy_idle_timeout: Optional[float] = None) -> None:
        self.host = host
        self.port = port
        self.profile = profile
        self.time_scale = time_scale
        self.proxy_idle_timeout = proxy_idle_timeout
        self.requests: List[RequestRecord] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._served = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._stopped: Optional[asyncio.Event] = None
        self._writers: set = set()
        self._error: Optional[BaseException] = None

    @property
    def base_url(self) -> str:
        """Returns the URL to give the SDK as base_url."""
        return f"http://{self.host}:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> "Simulator":
        """Starts serving in a daemon thread and returns self once listening."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="claude-otel-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def serve_forever(self) -> None:
        """Serves in the calling thread until stop() or KeyboardInterrupt."""
        try:
            self._run()
        except KeyboardInterrupt:
            pass

    def stop(self) -> None:
        """Stops listening, cuts open connections and joins the thread; safe to call twice."""
        loop = self._loop
        if loop is not None and self._stopped is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        self._thread = None

    def reset(self) -> None:
        """Forgets the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._ready.set()
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=2048,
                                                  limit=_MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # -- HTTP ----------------------------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                if not await self._serve(writer, *request):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _Dropped, ValueError):
            pass
        except asyncio.CancelledError:
            # stop(): end quietly (a connection task that ends cancelled is logged as an error by asyncio).
            pass
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:
                pass

    async def _read_request(self, reader: asyncio.StreamReader):
        """Returns (method, path, headers, body bytes) of the next request, or None at end of stream."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = b""
        length = int(headers.get("content-length", "0") or 0)
        if length:
            body = await reader.readexactly(length)
        return method.upper(), path, headers, body

    async def _serve(self, writer, method: str, path: str, headers: Dict[str, str], raw: bytes) -> bool:
        """Serves one request; returns whether the connection stays open."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        fault = resolve(headers, model, self.profile, self.time_scale, self.proxy_idle_timeout)
        try:
            retry_count = int(headers.get("x-stainless-retry-count", "0"))
        except ValueError:
            retry_count = 0
        record = RequestRecord(method, path, headers, body if isinstance(body, dict) else None, retry_count, model,
                               stream, fault)
        with self._lock:
            self.requests.append(record)
        exchange = _Exchange(writer, record, self)
        try:
            await self._dispatch(exchange, method, path, record)
        except _Dropped:
            return False
        finally:
            record.finished = time.monotonic()
        return headers.get("connection", "").lower() != "close"

    async def _dispatch(self, ex: _Exchange, method: str, path: str, record: RequestRecord) -> None:
        fault = record.fault
        endpoint, item_id = responses.route(method, path)
        if endpoint == "unknown":
            await ex.json(404, responses.error_body("not_found_error", f"{method} {path} is not simulated"))
            return
        if record.retry_count < fault.fail_attempts:
            await self._fail(ex, fault)
            return
        if endpoint == "messages":
            await (self._message_stream(ex, record) if record.stream else self._message(ex, record))
        elif endpoint == "complete":
            await self._complete(ex, record)
        elif endpoint == "count_tokens":
            await ex.pause(fault.headers_delay)
            record.input_tokens = responses.input_tokens_of(record.body, fault.input_tokens)
            await ex.json(200, {"input_tokens": record.input_tokens})
        elif endpoint == "batch_create":
            count = len((record.body or {}).get("requests") or []) or 1
            await ex.json(200, responses.batch(f"msgbatch_sim{self._next_id():010d}", count=count))
        elif endpoint == "batch_get":
            await ex.json(200, responses.batch(item_id or "msgbatch_sim", status="ended"))
        elif endpoint == "batch_cancel":
            await ex.json(200, responses.batch(item_id or "msgbatch_sim", status="canceling"))
        elif endpoint == "batch_list":
            await ex.json(200, responses.page([responses.batch(f"msgbatch_sim{i:010d}", "ended") for i in (1, 2)]))
        elif endpoint == "models":
            await ex.json(200, responses.models_page())

    async def _fail(self, ex: _Exchange, fault: Fault) -> None:
        status = fault.fail_status
        extra = {}
        if fault.retry_after_ms is not None:
            extra["retry-after-ms"] = str(fault.retry_after_ms)
        if fault.retry_after is not None:
            extra["retry-after"] = f"{fault.retry_after:g}"
        error_type = responses.ERROR_TYPES.get(status, "api_error")
        await ex.json(status, responses.error_body(error_type, f"simulated {status}"), extra)

    def _tokens(self, record: RequestRecord) -> int:
        max_tokens = (record.body or {}).get("max_tokens") or (record.body or {}).get("max_tokens_to_sample")
        n = record.fault.output_tokens
        if isinstance(max_tokens, int) and max_tokens > 0:
            n = min(n, max_tokens)
        return max(n, 0)

    async def _message(self, ex: _Exchange, record: RequestRecord) -> None:
        fault = record.fault
        n = self._tokens(record)
        stall = fault.stall if fault.stall_at is not None and fault.stall_at < n else 0.0
        wait = fault.headers_delay + fault.prefill_delay + n * fault.token_delay + stall
        if fault.drop_after == 0:
            await ex.pause(fault.headers_delay)
            ex.drop()
        await ex.pause(wait)
        record.input_tokens = responses.input_tokens_of(record.body, fault.input_tokens)
        record.output_tokens_served = n
        if fault.malformed == "content-type":
            html = b"<html><body>502 Bad Gateway</body></html>"
            await ex.head(200, {"content-type": "text/html"}, length=len(html))
            await ex._write(html)
            return
        extra = {"x-sim-padding": "p" * 65536} if fault.malformed == "huge-header" else {}
        text = "".join(responses.word(i) for i in range(n))
        stop = "max_tokens" if n < fault.output_tokens else "end_turn"
        use = responses.usage(record.input_tokens, n, fault.cache_read_tokens, fault.cache_creation_tokens)
        await ex.json(200, responses.message(f"msg_sim{self._next_id():08d}", record.model or "claude", text, stop,
                                             use), extra)

    async def _message_stream(self, ex: _Exchange, record: RequestRecord) -> None:
        fault = record.fault
        n = self._tokens(record)
        await ex.pause(fault.headers_delay)
        record.input_tokens = responses.input_tokens_of(record.body, fault.input_tokens)
        use = responses.usage(record.input_tokens, n, fault.cache_read_tokens, fault.cache_creation_tokens)
        headers = {"content-type": "text/event-stream", "cache-control": "no-cache"}
        if fault.malformed == "huge-header":
            headers["x-sim-padding"] = "p" * 65536
        await ex.head(200, headers, chunked=True)
        for event in responses.stream_head(f"msg_sim{self._next_id():08d}", record.model or "claude", use):
            await ex.send(event)
        if fault.malformed == "sse-line":
            await ex.send(b"this line is not server-sent events\n\n")
        for i in range(n):
            delay = fault.prefill_delay if i == 0 else fault.token_delay
            if fault.stall_at is not None and i == fault.stall_at:
                delay += fault.stall
            await ex.pause(delay)
            if fault.error_after is not None and i == fault.error_after:
                await ex.send(responses.sse("error", responses.error_body(fault.error_type, "Overloaded")))
                await ex.end()
                return
            if fault.drop_after is not None and i == fault.drop_after:
                ex.drop()
            if fault.malformed == "json" and i == 1:
                await ex.send(b"event: content_block_delta\ndata: {not json\n\n")
            await ex.send(responses.delta(i))
            record.output_tokens_served = i + 1
        stop = "max_tokens" if n < fault.output_tokens else "end_turn"
        for event in responses.stream_tail(stop, n):
            await ex.send(event)
        await ex.end()

    async def _complete(self, ex: _Exchange, record: RequestRecord) -> None:
        fault = record.fault
        n = self._tokens(record)
        model = record.model or "claude-2.1"
        comp_id = f"compl_sim{self._next_id():08d}"
        if not record.stream:
            await ex.pause(fault.headers_delay + fault.prefill_delay + n * fault.token_delay)
            record.output_tokens_served = n
            text = "".join(responses.word(i) for i in range(n))
            await ex.json(200, responses.completion(comp_id, model, text, "stop_sequence"))
            return
        await ex.pause(fault.headers_delay)
        await ex.head(200, {"content-type": "text/event-stream"}, chunked=True)
        for i in range(n):
            await ex.pause(fault.prefill_delay if i == 0 else fault.token_delay)
            await ex.send(responses.sse("completion", responses.completion(comp_id, model, responses.word(i), None)))
            record.output_tokens_served = i + 1
        await ex.send(responses.sse("completion", responses.completion(comp_id, model, "", "stop_sequence")))
        await ex.end()

    # -- bookkeeping ---------------------------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _ratelimit_headers(self) -> Dict[str, str]:
        with self._lock:
            self._served += 1
            served = self._served
        headers = {}
        for kind, limit in (("requests", 4000), ("tokens", 2_000_000), ("input-tokens", 1_600_000),
                            ("output-tokens", 400_000)):
            used = served if kind == "requests" else served * 50
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(max(limit - used % limit, 0))
            headers[f"anthropic-ratelimit-{kind}-reset"] = "2026-01-01T00:01:00Z"
        return headers
