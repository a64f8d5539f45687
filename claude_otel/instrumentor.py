"""ClaudeInstrumentor: turns the agent on and off for the Anthropic SDK."""

from __future__ import annotations

import logging
import threading
from typing import Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

from . import patches
from .settings import INSTRUMENT_KEYS, Settings, split_overrides
from .telemetry import Telemetry

logger = logging.getLogger(__name__)

_instruments = ("anthropic >= 0.40.0",)
_lock = threading.Lock()


class ClaudeInstrumentor(BaseInstrumentor):
    """An OpenTelemetry instrumentor for the official `anthropic` SDK (every version from 0.40).

    `ClaudeInstrumentor().instrument(tracer_provider=..., meter_provider=...)` patches the SDK's classes,
    so clients created before and after are covered; `uninstrument()` restores every original.
    Keyword settings override the CLAUDE_OTEL_* environment (see `claude_otel.settings`).
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """Returns the SDK requirement that must be installed for instrument() to act."""
        return _instruments

    def _instrument(self, **kwargs) -> None:
        """Patches the SDK to record into the given (or global) providers; logs instead of raising."""
        settings = kwargs.get("settings")
        if not isinstance(settings, Settings):
            overrides, _ = split_overrides(kwargs, INSTRUMENT_KEYS)
            settings = Settings.from_env(**overrides)
        if not settings.enabled:
            logger.info("claude-otel: CLAUDE_OTEL_ENABLED=false, not instrumenting the Anthropic SDK")
            return
        with _lock:
            try:
                patches.STATE.telemetry = Telemetry(
                    kwargs.get("tracer_provider"), kwargs.get("meter_provider"), settings)
                patched = patches.apply()
                logger.debug("claude-otel: patched %s", ", ".join(patched))
            except Exception:
                patches.STATE.telemetry = None
                patches.remove()
                logger.warning("claude-otel: could not instrument the Anthropic SDK", exc_info=True)

    def _uninstrument(self, **kwargs) -> None:
        """Restores every patched original."""
        with _lock:
            patches.remove()
            patches.STATE.telemetry = None
