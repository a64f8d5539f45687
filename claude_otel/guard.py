"""The agent's state shared by its patches, and running its own code so that it never raises into the application,
and never hangs it.

- `STATE.telemetry`: what instrument() set up (None while not instrumented);
- `CURRENT`: the operation (SDK call) in progress in this context;
- `suppressed()`: whether OpenTelemetry's suppress_instrumentation() is on;
- `report(where)`: inside an `except`, logs an instrumentation error once as a
  warning with its traceback, later ones at debug level (a bug hit on every
  call must not flood the application's log);
- `quietly(fn)`: fn wrapped so that an exception is logged at debug level and
  swallowed;
- `Background` / `run_with_deadline()`: fn on a daemon thread that the caller
  waits for at most a deadline (a collector that does not answer, a lock held
  since a fork), so exit and shutdown stay bounded.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from typing import Callable

from opentelemetry import context as otel_context

logger = logging.getLogger(__name__)


class _State:
    """What instrument() set up, and whether the first instrumentation error was logged as a warning."""

    telemetry = None
    warned = False


STATE = _State()

CURRENT: contextvars.ContextVar = contextvars.ContextVar("claude_otel_operation", default=None)

# OpenTelemetry's suppress_instrumentation() sets both keys; exporters and other libraries often set only the first.
_SUPPRESS_KEY = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", "suppress_instrumentation")
_SUPPRESS_PLAIN = "suppress_instrumentation"


def suppressed() -> bool:
    """Returns whether the current context asks instrumentation to stay silent (one context read); never raises."""
    ctx = otel_context.get_current()
    return bool(ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_PLAIN))


def report(where: str) -> None:
    """Logs the current instrumentation error: once as a warning with its traceback, later ones at debug level."""
    if not STATE.warned:
        STATE.warned = True
        logger.warning("claude-otel: instrumentation error in %s (the call itself is unaffected)", where,
                       exc_info=True)
    else:
        logger.debug("claude-otel: instrumentation error in %s", where, exc_info=True)


def quietly(fn: Callable) -> Callable:
    """Returns fn wrapped to return None instead of raising (the exception is logged at debug level)."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        """Returns fn's result, or None when it raised."""
        try:
            return fn(*args, **kwargs)
        except Exception:
            logger.debug("claude-otel: %s failed", getattr(fn, "__qualname__", fn), exc_info=True)
            return None

    return run


class Background:
    """fn started on a daemon thread, so that the caller can stop waiting for it at a deadline.

    A daemon thread that is still running when the deadline passes is left behind: it cannot hold up the
    interpreter's exit.
    """

    def __init__(self, fn: Callable[[], object], name: str = "claude-otel") -> None:
        self._fn = fn
        self._value: object = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Keeps fn's result or exception for result()."""
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to whoever asks for the result
            self._error = exc

    def wait(self, timeout: float) -> bool:
        """Returns whether fn has finished, after waiting for it at most `timeout` seconds."""
        self._thread.join(max(0.0, timeout))
        return not self._thread.is_alive()

    def result(self) -> object:
        """Returns what fn returned, or raises what it raised (call after wait() returned True)."""
        if self._error is not None:
            raise self._error
        return self._value


def run_with_deadline(fn: Callable[[], object], timeout: float, name: str = "claude-otel") -> bool:
    """Returns whether fn finished within `timeout` seconds (it runs on a daemon thread, quietly); never raises."""
    return Background(quietly(fn), name).wait(timeout)
