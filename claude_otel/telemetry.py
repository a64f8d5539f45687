"""What the patched SDK records into: a tracer, the instruments and the settings, built by instrument()."""

from __future__ import annotations

from typing import Optional

from opentelemetry import metrics, trace

from .attributes import ModelGuard
from .metrics import Instruments
from .settings import Settings
from .version import __version__

SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"


class Telemetry:
    """The tracer, instruments and settings that every patched call records into."""

    def __init__(self, tracer_provider=None, meter_provider=None, settings: Optional[Settings] = None) -> None:
        self.settings = settings or Settings.from_env()
        self.tracer = trace.get_tracer("claude_otel", __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = metrics.get_meter("claude_otel", __version__, meter_provider, schema_url=SCHEMA_URL)
        self.instruments = Instruments(meter, chunk_metrics=self.settings.chunk_metrics)
        self.models = ModelGuard(self.settings.max_models)
        self.proxy_idle_timeout = self.settings.proxy_idle_timeout
        self.capture_content = self.settings.capture_content
        self.every_attempt_span = self.settings.attempt_spans == "all"
        self.content_max_chars = self.settings.content_max_chars
        self.ratelimit_seen: dict = {}  # attribute key -> when the rate-limit gauge was last set
