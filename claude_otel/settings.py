"""Settings read from the environment, each with one clear message when invalid.

An invalid value never stops the application: the setting falls back to its
default and a single warning names the variable and the value.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

logger = logging.getLogger("claude_otel")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A setting's value that cannot be used; the message names the setting and the value."""


def parse_bool(name: str, raw: str) -> bool:
    """Returns the boolean a setting spells; raises SettingError naming the setting."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean (use true or false)")


def parse_seconds(name: str, raw: str) -> float:
    """Returns a positive finite number of seconds; raises SettingError naming the setting."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def parse_port(name: str, raw: str) -> int:
    """Returns a TCP port (0-65535); raises SettingError naming the setting."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise SettingError(f"{name}={raw!r} is not a port number (0-65535)")
    return value


def parse_positive_int(name: str, raw: str) -> int:
    """Returns a positive integer; raises SettingError naming the setting."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise SettingError(f"{name}={raw!r} must be a positive whole number")
    return value


# OpenTelemetry's GenAI utilities spell content capture as a boolean or, under the latest conventions, as where
# content goes; the agent records content on spans only, so only the span modes turn it on.
_CONTENT_MODES = {"span_only": True, "span_and_event": True, "no_content": False, "event_only": False}


def parse_content_mode(name: str, raw: str) -> bool:
    """Returns whether content goes on spans for a boolean or an OpenTelemetry content mode; raises SettingError."""
    value = raw.strip().lower()
    if value in _CONTENT_MODES:
        return _CONTENT_MODES[value]
    try:
        return parse_bool(name, raw)
    except SettingError:
        raise SettingError(f"{name}={raw!r} is neither a boolean nor one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, "
                           "SPAN_AND_EVENT") from None


def parse_text(name: str, raw: str) -> str:
    """Returns the stripped text of a setting; raises SettingError when it is empty."""
    value = raw.strip()
    if not value:
        raise SettingError(f"{name} is set but empty")
    return value


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default, parser and meaning (the README's settings table)."""

    name: str
    default: object
    parse: Callable[[str, str], object]
    meaning: str
    key: str = ""  # the Settings field, when the name is not CLAUDE_OTEL_ + the field in capitals


SETTINGS = (
    Setting("CLAUDE_OTEL_ENABLED", True, parse_bool,
            "Set to false to turn the agent off without removing it (instrument() then does nothing)."),
    Setting("CLAUDE_OTEL_PROXY_IDLE_TIMEOUT", None, parse_seconds,
            "Idle timeout in seconds of a proxy or load balancer between you and the API (e.g. nginx "
            "proxy_read_timeout). When smaller than the SDK's read timeout it governs timeout utilization."),
    Setting("CLAUDE_OTEL_CHUNK_METRICS", False, parse_bool,
            "Record gen_ai.client.operation.time_per_output_chunk for every streamed chunk (costs one "
            "histogram record per chunk)."),
    Setting("CLAUDE_OTEL_CAPTURE_CONTENT", False, parse_bool,
            "Record prompt and completion text on spans (gen_ai.input.messages / gen_ai.output.messages). "
            "Off by default: content may hold personal data. When set (to a valid value) it wins over "
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT."),
    Setting("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None, parse_content_mode,
            "OpenTelemetry's GenAI content switch, honoured when CLAUDE_OTEL_CAPTURE_CONTENT is not set: true or "
            "SPAN_ONLY / SPAN_AND_EVENT turn capture on, false or NO_CONTENT / EVENT_ONLY leave it off (the agent "
            "emits no content events).", key="otel_capture_content"),
    Setting("CLAUDE_OTEL_CONTENT_MAX_CHARS", 4096, parse_positive_int,
            "With content capture on, the longest text recorded per attribute; longer text is truncated."),
    Setting("CLAUDE_OTEL_MAX_MODELS", 50, parse_positive_int,
            "Distinct model names kept as metric attribute values; further names are recorded as _OTHER "
            "so a typo loop cannot explode cardinality."),
    Setting("CLAUDE_OTEL_PROMETHEUS_PORT", None, parse_port,
            "Serve Prometheus /metrics on this port (configure() and claude-otel run)."),
    Setting("CLAUDE_OTEL_PROMETHEUS_ADDR", "0.0.0.0", parse_text,
            "Address the /metrics server binds; all interfaces by default because scrapers run elsewhere."),
    Setting("CLAUDE_OTEL_MULTIPROC_DIR", None, parse_text,
            "Directory where forked workers (gunicorn, uvicorn --workers) share metrics so /metrics reports "
            "their totals; defaults to PROMETHEUS_MULTIPROC_DIR when that is set."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    """The agent's settings, resolved from the environment and keyword overrides."""

    enabled: bool = True
    proxy_idle_timeout: Optional[float] = None
    chunk_metrics: bool = False
    capture_content: bool = False
    content_max_chars: int = 4096
    max_models: int = 50
    prometheus_port: Optional[int] = None
    prometheus_addr: str = "0.0.0.0"
    multiproc_dir: Optional[str] = None
    problems: tuple = field(default=(), compare=False)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: object) -> "Settings":
        """Returns settings from the environment; invalid values fall back to defaults and are logged once."""
        env = os.environ if environ is None else environ
        values: dict = {}
        problems = []
        for setting in SETTINGS:
            key = setting.key or setting.name[len("CLAUDE_OTEL_"):].lower()
            raw = env.get(setting.name)
            value = setting.default
            if raw is not None:
                try:
                    value = setting.parse(setting.name, raw)
                except SettingError as exc:
                    problems.append(str(exc))
            values[key] = value
        # claude-otel's own switch wins when it is set to a valid value; otherwise OpenTelemetry's is honoured.
        otel_capture = values.pop("otel_capture_content")
        own_valid = env.get("CLAUDE_OTEL_CAPTURE_CONTENT") is not None and not any(
            p.startswith("CLAUDE_OTEL_CAPTURE_CONTENT=") for p in problems)
        if otel_capture is not None and not own_valid:
            values["capture_content"] = otel_capture
        if values["multiproc_dir"] is None and env.get("PROMETHEUS_MULTIPROC_DIR"):
            values["multiproc_dir"] = env["PROMETHEUS_MULTIPROC_DIR"]
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        for message in problems:
            logger.warning("claude-otel: %s; using the default instead", message)
        return cls(problems=tuple(problems), **values)


def setting(name: str) -> Setting:
    """Returns the declared setting of that name; raises KeyError for an unknown one."""
    return _BY_NAME[name]
