"""Settings read from the environment, each with one clear message when invalid.

An invalid value never stops the application: the setting falls back to its
default and a single warning names the variable and the value.

Every variable the agent reads is parsed here: its own CLAUDE_OTEL_* settings
(`Settings`, documented by `SETTINGS`), and the standard OTEL_* variables that
configure() looks at before handing them to the SDK and its exporters (OTLP
signals, protocol and timeout, the exemplar filter, resource attributes).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple

logger = logging.getLogger(__name__)

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


ATTEMPT_SPAN_MODES = ("all", "retries")


def parse_attempt_spans(name: str, raw: str) -> str:
    """Returns an attempt-span mode (all, retries); raises SettingError naming the setting."""
    value = raw.strip().lower()
    if value not in ATTEMPT_SPAN_MODES:
        raise SettingError(f"{name}={raw!r} is not one of {', '.join(ATTEMPT_SPAN_MODES)}")
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
    Setting("CLAUDE_OTEL_ATTEMPT_SPANS", "all", parse_attempt_spans,
            "all: one span per HTTP attempt. retries: attempt spans only for calls that made more than one attempt "
            "and for failed attempts; a call's single successful attempt is described on the operation span "
            "instead (status, request id; ≈ 14 % less overhead per call)."),
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

# Keyword overrides: instrument() takes the settings that shape what is recorded; configure() also takes the on/off
# switch and the multi-process directory (the port and address are parameters of their own).
INSTRUMENT_KEYS = ("proxy_idle_timeout", "chunk_metrics", "capture_content", "content_max_chars", "max_models",
                   "attempt_spans")
CONFIGURE_KEYS = INSTRUMENT_KEYS + ("enabled", "multiproc_dir")


def split_overrides(kwargs: Mapping[str, object], keys: Tuple[str, ...]) -> Tuple[dict, dict]:
    """Returns (the setting overrides among kwargs, limited to keys; the other keyword arguments)."""
    overrides = {k: v for k, v in kwargs.items() if k in keys}
    rest = {k: v for k, v in kwargs.items() if k not in keys}
    return overrides, rest


@dataclass(frozen=True)
class Settings:
    """The agent's settings, resolved from the environment and keyword overrides."""

    enabled: bool = True
    proxy_idle_timeout: Optional[float] = None
    chunk_metrics: bool = False
    attempt_spans: str = "all"
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


def multiproc_setting(env: Mapping[str, str]) -> str:
    """Returns the variable the multi-process directory comes from (the agent's own wins over Prometheus')."""
    return "CLAUDE_OTEL_MULTIPROC_DIR" if env.get("CLAUDE_OTEL_MULTIPROC_DIR") else "PROMETHEUS_MULTIPROC_DIR"


# -- the standard OTEL_* variables configure() reads --------------------------------------------------------------

OTLP_SIGNALS = ("traces", "metrics")
OTLP_PROTOCOLS = ("grpc", "http/protobuf")
OTLP_DEFAULT_PROTOCOL = "http/protobuf"
# The exporters' own default is 10 s per export (retries included), which also holds the flush at exit.
OTLP_DEFAULT_TIMEOUT = 5.0
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")


def otlp_signals(env: Mapping[str, str], explicit: Optional[bool] = None) -> Dict[str, bool]:
    """Returns which signals go to OTLP: all with explicit=True, none with False, else per endpoint variable.

    A signal is on when OTEL_EXPORTER_OTLP_ENDPOINT or its own OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is set, or
    when OTEL_<SIGNAL>_EXPORTER names "otlp" (then the SDK's default endpoint, localhost); it is off when
    OTEL_<SIGNAL>_EXPORTER is set without "otlp" in it (e.g. "none").
    """
    if explicit is not None:
        return {s: bool(explicit) for s in OTLP_SIGNALS}
    on = {}
    for signal in OTLP_SIGNALS:
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        chosen = env.get(f"OTEL_{signal.upper()}_EXPORTER")
        if chosen is not None and chosen.strip():
            on[signal] = "otlp" in [part.strip().lower() for part in chosen.split(",")]
        else:
            on[signal] = bool(endpoint and endpoint.strip())
    return on


def _otlp_variable(env: Mapping[str, str], signal: str, what: str) -> Tuple[Optional[str], Optional[str]]:
    """Returns (name, value) of the first set one of OTEL_EXPORTER_OTLP_<SIGNAL>_<WHAT> and OTEL_EXPORTER_OTLP_<WHAT>."""
    for name in (f"OTEL_EXPORTER_OTLP_{signal.upper()}_{what}", f"OTEL_EXPORTER_OTLP_{what}"):
        raw = env.get(name)
        if raw is not None and raw.strip():
            return name, raw
    return None, None


def otlp_protocol(env: Mapping[str, str], signal: str) -> str:
    """Returns the OTLP protocol for a signal (traces, metrics); raises SettingError for an unknown one."""
    name, raw = _otlp_variable(env, signal, "PROTOCOL")
    if raw is None:
        return OTLP_DEFAULT_PROTOCOL
    value = raw.strip().lower()
    if value not in OTLP_PROTOCOLS:
        raise SettingError(f"{name}={raw!r} is not an OTLP protocol (use grpc or http/protobuf)")
    return value


def otlp_timeout(env: Mapping[str, str], signal: str) -> Optional[float]:
    """Returns the export timeout to pass to the exporter: None when a variable sets it, else OTLP_DEFAULT_TIMEOUT.

    Raises SettingError when OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT is not a positive number (the Python
    exporters read it as seconds).
    """
    name, raw = _otlp_variable(env, signal, "TIMEOUT")
    if raw is None:
        return OTLP_DEFAULT_TIMEOUT
    parse_seconds(name, raw)
    return None


def exemplar_filter(env: Mapping[str, str]) -> Optional[str]:
    """Returns OTEL_METRICS_EXEMPLAR_FILTER in lower case (None when unset); raises SettingError for an unknown one."""
    raw = env.get("OTEL_METRICS_EXEMPLAR_FILTER")
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in EXEMPLAR_FILTERS:
        raise SettingError(f"OTEL_METRICS_EXEMPLAR_FILTER={raw!r} is not an exemplar filter (use trace_based, "
                           "always_on or always_off)")
    return value


def resource_attributes(env: Mapping[str, str]) -> Dict[str, str]:
    """Returns the key=value pairs of OTEL_RESOURCE_ATTRIBUTES (malformed parts skipped, as the SDK does)."""
    found = {}
    for part in (env.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found
