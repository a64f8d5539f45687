"""The demo's mixed workload: real SDK calls against the simulator, covering every signal in seconds."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import anthropic

MESSAGES = [{"role": "user", "content": "Summarise the incident timeline in three bullet points."}]
SONNET, HAIKU, OPUS = "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"


def faults(**values) -> Dict[str, str]:
    """Returns the simulator's x-sim-* headers for the given fault fields."""
    return {f"x-sim-{k.replace('_', '-')}": str(v) for k, v in values.items()}


@dataclass
class Scenario:
    """One kind of call the demo makes, and what it shows on the dashboards."""

    name: str
    shows: str
    run: Callable[["Clients"], None]
    is_async: bool = False


class Clients:
    """SDK clients pointed at the simulator, built once (timeouts differ per scenario via with_options)."""

    def __init__(self, base_url: str) -> None:
        self.sync = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-demo", max_retries=2, timeout=8.0)
        self.base_url = base_url
        self._async: Optional[anthropic.AsyncAnthropic] = None

    def async_client(self) -> anthropic.AsyncAnthropic:
        if self._async is None:
            self._async = anthropic.AsyncAnthropic(base_url=self.base_url, api_key="sk-ant-demo", max_retries=2,
                                                   timeout=8.0)
        return self._async


def _stream(c: Clients, model: str, timeout: float = 8.0, **fault) -> None:
    for _ in c.sync.with_options(timeout=timeout).messages.create(
            model=model, max_tokens=256, messages=MESSAGES, stream=True, extra_headers=faults(**fault)):
        pass


def _create(c: Clients, model: str, timeout: float = 8.0, max_retries: int = 2, **fault) -> None:
    c.sync.with_options(timeout=timeout, max_retries=max_retries).messages.create(
        model=model, max_tokens=256, messages=MESSAGES, extra_headers=faults(**fault))


def _helper(c: Clients, model: str, **fault) -> None:
    with c.sync.messages.stream(model=model, max_tokens=256, messages=MESSAGES,
                                extra_headers=faults(**fault)) as stream:
        for _ in stream.text_stream:
            pass


async def _async_stream(c: Clients, model: str, **fault) -> None:
    stream = await c.async_client().messages.create(model=model, max_tokens=256, messages=MESSAGES, stream=True,
                                                    extra_headers=faults(**fault))
    async for _ in stream:
        pass


SCENARIOS: List[Scenario] = [
    Scenario("stream", "TTFT, prefill, stream gaps", lambda c: _stream(c, SONNET, prefill_delay=0.3, token_delay=0.02,
                                                                       output_tokens=30)),
    Scenario("retry-429", "retries by reason, backoff", lambda c: _create(
        c, HAIKU, fail_attempts=1, fail_status=429, retry_after_ms=300)),
    Scenario("helper-stream", "messages.stream() helper", lambda c: _helper(c, HAIKU, prefill_delay=0.2,
                                                                            token_delay=0.01)),
    Scenario("near-timeout", "a non-streamed call using 80% of a 2 s timeout", lambda c: _create(
        c, OPUS, timeout=2.0, headers_delay=1.6)),
    Scenario("timeout", "APITimeoutError after a retry", lambda c: _create(
        c, OPUS, timeout=1.0, max_retries=1, headers_delay=3)),
    Scenario("async-stream", "AsyncAnthropic stream", lambda c: _async_stream(c, SONNET, prefill_delay=0.4,
                                                                              token_delay=0.02), True),
    Scenario("stall-timeout", "a mid-stream stall past the read timeout (httpx ReadTimeout)", lambda c: _stream(
        c, SONNET, timeout=1.0, stall_at=3, stall=2)),
    Scenario("overloaded", "529 overloaded_error twice, then success", lambda c: _create(
        c, SONNET, fail_attempts=2, fail_status=529, retry_after_ms=200)),
    Scenario("slow-prefill", "prefill using 75% of the read timeout", lambda c: _stream(
        c, SONNET, timeout=2.0, prefill_delay=1.5)),
    Scenario("mid-stream-error", "an error event in the stream", lambda c: _stream(c, HAIKU, error_after=4)),
    Scenario("non-stream", "plain calls", lambda c: _create(c, HAIKU, headers_delay=0.2)),
    Scenario("stream-2", "TTFT, prefill, stream gaps", lambda c: _stream(c, HAIKU, prefill_delay=0.15,
                                                                         token_delay=0.01)),
]


class Workload:
    """Runs scenarios in rotation at a given rate on worker threads (and one asyncio loop) until stopped."""

    def __init__(self, base_url: str, rate: float, only: Optional[str] = None, workers: int = 6) -> None:
        self.clients = Clients(base_url)
        self.rate = max(rate, 0.1)
        chosen = [s for s in SCENARIOS if only in (None, "mix") or s.name == only] or SCENARIOS
        self._cycle = itertools.cycle(chosen)
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(workers)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="demo-async", daemon=True)
        self.started = 0
        self.failed: Dict[str, int] = {}
        self._lock = threading.Lock()

    def run(self, duration: float) -> None:
        """Dispatches calls at the rate until duration (0 = until stop()) has passed, then waits for them."""
        self._loop_thread.start()
        start = time.monotonic()
        tick = 1.0 / self.rate
        next_at = start
        while not self._stop.is_set() and (duration <= 0 or time.monotonic() - start < duration):
            scenario = next(self._cycle)
            if self._slots.acquire(timeout=0.5):
                threading.Thread(target=self._one, args=(scenario,), daemon=True).start()
                self.started += 1
            next_at += tick
            self._stop.wait(max(next_at - time.monotonic(), 0))
        for _ in range(20):  # let calls in flight finish, briefly
            if self._slots._value == self._slots._initial_value:  # type: ignore[attr-defined]
                break
            time.sleep(0.25)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def stop(self) -> None:
        self._stop.set()

    def _one(self, scenario: Scenario) -> None:
        try:
            if scenario.is_async:
                asyncio.run_coroutine_threadsafe(scenario.run(self.clients), self._loop).result(30)
            else:
                scenario.run(self.clients)
        except Exception as exc:  # a demo app handles the SDK's exceptions
            with self._lock:
                key = type(exc).__name__
                self.failed[key] = self.failed.get(key, 0) + 1
        finally:
            self._slots.release()
