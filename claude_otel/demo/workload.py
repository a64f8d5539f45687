"""The demo's mixed workload: real SDK calls against the simulator, covering every signal in seconds.

Each Scenario is one kind of call an application makes (sync or async, streamed
or not, the `messages.stream()` helper), with simulator faults chosen per
request by `x-sim-*` headers.  The header values are absolute seconds, so the
mix shows a retry, a near-timeout, a timeout, a mid-stream stall and a
mid-stream error within its first few seconds whatever the simulator's time
scale.  With a simulator profile instead of the mix every call asks for that
profile (`x-sim-profile`), whose durations the simulator scales.

The workload is a demo *application*: it catches the SDK's exceptions and only
tallies them by type; every figure the demo shows comes from the agent's metrics.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional

import anthropic

MESSAGES = [{"role": "user", "content": "Summarise the incident timeline in three bullet points."}]
SONNET, HAIKU, OPUS = "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"
MODELS = (SONNET, HAIKU, OPUS)
API_KEY = "sk-ant-demo-not-a-real-key"
DEFAULT_TIMEOUT = 8.0
MAX_TOKENS = 256


def faults(**values) -> Dict[str, str]:
    """Returns the simulator's x-sim-* headers for the given fault fields (retry_after_ms=300 → x-sim-retry-after-ms)."""
    return {f"x-sim-{k.replace('_', '-')}": str(v) for k, v in values.items()}


@dataclass
class Scenario:
    """One kind of call the demo makes, and what it shows on the dashboards."""

    name: str
    shows: str
    run: Callable[["Clients"], object]
    is_async: bool = False


class Clients:
    """SDK clients pointed at the simulator, built once; timeouts and retries vary per call via with_options."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT, max_retries: int = 2) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.max_retries = max_retries
        self.sync = anthropic.Anthropic(base_url=base_url, api_key=API_KEY, max_retries=max_retries, timeout=timeout)
        self._async: Optional[anthropic.AsyncAnthropic] = None

    def async_client(self) -> anthropic.AsyncAnthropic:
        """Returns the AsyncAnthropic client; built on the workload's event loop on first use."""
        if self._async is None:
            self._async = anthropic.AsyncAnthropic(base_url=self.base_url, api_key=API_KEY,
                                                   max_retries=self.max_retries, timeout=self.timeout)
        return self._async

    def options(self, timeout: Optional[float], max_retries: Optional[int]) -> dict:
        found = {}
        if timeout is not None:
            found["timeout"] = timeout
        if max_retries is not None:
            found["max_retries"] = max_retries
        return found


# The call shapes.  Every one consumes the whole response, as an application would.

def create(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
           headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """A sync non-streamed messages.create()."""
    c.sync.with_options(**c.options(timeout, max_retries)).messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers={**faults(**fault), **(headers or {})})


def stream(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
           headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """A sync messages.create(stream=True), iterated to the end."""
    events = c.sync.with_options(**c.options(timeout, max_retries)).messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True,
        extra_headers={**faults(**fault), **(headers or {})})
    with events:
        for _ in events:
            pass


def helper(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
           headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """A sync messages.stream() helper stream, read through text_stream."""
    with c.sync.with_options(**c.options(timeout, max_retries)).messages.stream(
            model=model, max_tokens=MAX_TOKENS, messages=MESSAGES,
            extra_headers={**faults(**fault), **(headers or {})}) as s:
        for _ in s.text_stream:
            pass


async def async_create(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
                       headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """An AsyncAnthropic non-streamed messages.create()."""
    await c.async_client().with_options(**c.options(timeout, max_retries)).messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, extra_headers={**faults(**fault), **(headers or {})})


async def async_stream(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
                       headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """An AsyncAnthropic messages.create(stream=True), iterated to the end."""
    events = await c.async_client().with_options(**c.options(timeout, max_retries)).messages.create(
        model=model, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True,
        extra_headers={**faults(**fault), **(headers or {})})
    async with events:
        async for _ in events:
            pass


async def async_helper(c: Clients, model: str, timeout: Optional[float] = None, max_retries: Optional[int] = None,
                       headers: Optional[Dict[str, str]] = None, **fault) -> None:
    """An AsyncAnthropic messages.stream() helper stream, read through text_stream."""
    async with c.async_client().with_options(**c.options(timeout, max_retries)).messages.stream(
            model=model, max_tokens=MAX_TOKENS, messages=MESSAGES,
            extra_headers={**faults(**fault), **(headers or {})}) as s:
        async for _ in s.text_stream:
            pass


SHAPES = (create, stream, helper, async_create, async_stream, async_helper)

# The mix, in dispatch order: at the default 4 calls/s the first round takes 3.5 s, so one of each has started
# (and, the slowest included, finished) well within the first 8 s.
SCENARIOS: List[Scenario] = [
    Scenario("stream", "TTFT, prefill and stream gaps of a healthy stream",
             lambda c: stream(c, SONNET, prefill_delay=0.3, token_delay=0.02, output_tokens=30)),
    Scenario("retry-429", "a 429 with retry-after-ms: 300, retried by the SDK (retries, backoff)",
             lambda c: create(c, HAIKU, fail_attempts=1, fail_status=429, retry_after_ms=300)),
    Scenario("helper-stream", "the messages.stream() helper",
             lambda c: helper(c, HAIKU, prefill_delay=0.2, token_delay=0.01)),
    Scenario("near-timeout", "a non-streamed call waiting 1.6 s of its 2 s timeout (80% utilization)",
             lambda c: create(c, OPUS, timeout=2.0, headers_delay=1.6)),
    Scenario("headers-timeout", "no response headers within the 1 s timeout, twice: APITimeoutError",
             lambda c: create(c, OPUS, timeout=1.0, max_retries=1, headers_delay=3)),
    Scenario("async-stream", "an AsyncAnthropic stream",
             lambda c: async_stream(c, SONNET, prefill_delay=0.4, token_delay=0.02), True),
    Scenario("stall-timeout", "a stream silent for 2 s after 3 tokens, past its 1 s read timeout",
             lambda c: stream(c, SONNET, timeout=1.0, stall_at=3, stall=2)),
    Scenario("overloaded", "529 overloaded_error twice (retry-after-ms: 200), then success",
             lambda c: create(c, SONNET, fail_attempts=2, fail_status=529, retry_after_ms=200)),
    Scenario("async-helper", "an AsyncAnthropic messages.stream() helper",
             lambda c: async_helper(c, OPUS, prefill_delay=0.5, token_delay=0.01), True),
    Scenario("slow-prefill", "1.5 s to the first token of a stream with a 2 s read timeout (75%)",
             lambda c: stream(c, SONNET, timeout=2.0, prefill_delay=1.5)),
    Scenario("mid-stream-error", "an overloaded_error event after 4 tokens",
             lambda c: stream(c, HAIKU, error_after=4)),
    Scenario("async-retry", "an AsyncAnthropic call retried after a 529",
             lambda c: async_create(c, HAIKU, fail_attempts=1, fail_status=529, retry_after_ms=250), True),
    Scenario("dropped", "the connection cut after 3 tokens of a stream",
             lambda c: stream(c, OPUS, drop_after=3)),
    Scenario("non-stream", "plain non-streamed calls",
             lambda c: create(c, HAIKU, headers_delay=0.2)),
]


def profile_scenarios(profile: str) -> List[Scenario]:
    """Returns scenarios that ask the simulator for one profile, rotating call shapes and models."""
    headers = {"x-sim-profile": profile}
    found = []
    for i in range(len(SHAPES) * len(MODELS)):  # every shape with every model, consecutive calls differing in both
        shape, model = SHAPES[i % len(SHAPES)], MODELS[(i + i // len(SHAPES)) % len(MODELS)]
        found.append(Scenario(f"{profile}/{shape.__name__}/{model}", f"{shape.__name__} with the {profile} profile",
                              lambda c, shape=shape, model=model: shape(c, model, headers=headers),
                              asyncio.iscoroutinefunction(shape)))
    return found


class Workload:
    """Starts calls at a given rate on worker threads (async ones on one event loop) until stopped.

    `only` is "mix" (or None) for the mixed scenarios, a simulator profile name, or one scenario's name.
    """

    def __init__(self, base_url: str, rate: float = 4.0, only: Optional[str] = None, workers: int = 16,
                 timeout: float = DEFAULT_TIMEOUT, max_retries: int = 2) -> None:
        self.clients = Clients(base_url, timeout, max_retries)
        self.rate = max(rate, 0.1)
        self.scenarios = self.choose(only)
        self._cycle: Iterator[Scenario] = itertools.cycle(self.scenarios)
        self._stop = threading.Event()
        self._workers = workers
        self._slots = threading.BoundedSemaphore(workers)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="claude-otel-demo-async",
                                             daemon=True)
        self._futures: Dict[int, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self.started = 0
        self.finished = 0
        self.caught: Dict[str, int] = {}

    @staticmethod
    def choose(only: Optional[str]) -> List[Scenario]:
        """Returns the scenarios for `only` (see the class); raises ValueError for an unknown name."""
        from ..simulator.faults import PROFILES

        if only in (None, "", "mix"):
            return list(SCENARIOS)
        if only in PROFILES:
            return profile_scenarios(only)
        chosen = [s for s in SCENARIOS if s.name == only]
        if not chosen:
            raise ValueError(f"unknown profile {only!r}: use mix, a simulator profile ({', '.join(sorted(PROFILES))})"
                             f" or a scenario ({', '.join(s.name for s in SCENARIOS)})")
        return chosen

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self.started - self.finished

    def run(self, duration: float, drain: float = 5.0) -> None:
        """Starts calls at the rate until `duration` seconds (0 = until stop()) have passed, then lets the calls in
        flight finish for at most `drain` seconds and cancels the async ones still running."""
        self._loop_thread.start()
        start = time.monotonic()
        tick = 1.0 / self.rate
        next_at = start
        try:
            while not self._stop.is_set() and (duration <= 0 or time.monotonic() - start < duration):
                if not self._slots.acquire(timeout=0.2):  # every worker busy: wait, and skip no scenario
                    continue
                scenario = next(self._cycle)
                with self._lock:
                    self.started += 1
                threading.Thread(target=self._one, args=(scenario,), name=f"demo-{scenario.name}",
                                 daemon=True).start()
                next_at = max(next_at + tick, time.monotonic())  # no burst after a wait
                self._stop.wait(max(next_at - time.monotonic(), 0.0))
            deadline = time.monotonic() + drain
            while self.in_flight and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            self._close_loop()

    def stop(self) -> None:
        """Stops starting calls (run() then drains and returns)."""
        self._stop.set()

    def _close_loop(self) -> None:
        with self._lock:
            pending = list(self._futures.values())
        for future in pending:
            future.cancel()

        async def close():
            if self.clients._async is not None:
                await self.clients._async.close()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(2)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(2)

    def _one(self, scenario: Scenario) -> None:
        try:
            if scenario.is_async:
                future = asyncio.run_coroutine_threadsafe(scenario.run(self.clients), self._loop)
                with self._lock:
                    self._futures[id(future)] = future
                try:
                    future.result()
                finally:
                    with self._lock:
                        self._futures.pop(id(future), None)
            else:
                scenario.run(self.clients)
        except (anthropic.AnthropicError, concurrent.futures.CancelledError, ValueError) as exc:
            # A demo application: the SDK's exceptions are expected here, so they are counted, not raised.
            self._tally(type(exc).__name__)
        except Exception as exc:  # anything else the SDK or the transport raises
            self._tally(type(exc).__name__)
        finally:
            with self._lock:
                self.finished += 1
            self._slots.release()

    def _tally(self, name: str) -> None:
        with self._lock:
            self.caught[name] = self.caught.get(name, 0) + 1
