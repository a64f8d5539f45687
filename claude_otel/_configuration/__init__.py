"""`claude_otel.configure()`: providers, exporters and instrumentation from one call.

Reads the standard OTEL_* variables and the CLAUDE_OTEL_* settings (both parsed
in `claude_otel.settings`).  Nothing here raises into the application: a
setting that cannot be used produces one message naming it and its value, and
the rest still starts.

- `handle`: what configure() returns, flushing and shutting down within a deadline, renewal in a forked child;
- `providers`: the application's tracer and meter providers or ones built here (resource, exemplar filter).

The exporters themselves are in `claude_otel.exporters` (OTLP, Prometheus exposition, multi-process sharing).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from typing import Mapping, Optional

from opentelemetry import metrics, trace

from ..exporters import otlp
from ..exporters.dropped import EXPORTER_LOGS, DropCounter, quiet_exporter_logs
from ..exporters.prometheus import expose
from ..fork import at_fork_in_child
from ..settings import CONFIGURE_KEYS, Settings, multiproc_setting, otlp_signals, split_overrides
from ..version import __version__
from .handle import Handle, Problems
from .providers import meter_provider, resource, tracer_provider

__all__ = ["Handle", "configure"]

logger = logging.getLogger(__name__)

EXIT_TIMEOUT = 5.0

_lock = threading.Lock()
_handle: Optional[Handle] = None  # the handle configure() returned; a configure() after its shutdown() starts anew


def configure(service_name: Optional[str] = None, *, service_version: Optional[str] = None,
              prometheus_port: Optional[int] = None, prometheus_addr: Optional[str] = None,
              prometheus: Optional[bool] = None, otlp: Optional[bool] = None, instrument: bool = True,
              environ: Optional[Mapping[str, str]] = None, **instrumentor_kwargs) -> Handle:
    """Returns the handle of the agent's providers and exporters after setting them up once (idempotent).

    Prometheus: `prometheus_port` (or CLAUDE_OTEL_PROMETHEUS_PORT; 0 = any free port) serves /metrics on
    `prometheus_addr` (or CLAUDE_OTEL_PROMETHEUS_ADDR, all interfaces by default); `prometheus=True` (implied by
    a multi-process directory) only prepares the exposition for make_wsgi_app()/make_asgi_app() on your server.
    OTLP: on for each signal whose OTEL_EXPORTER_OTLP_[<SIGNAL>_]ENDPOINT is set, or with `otlp=True` (SDK
    default endpoints); `otlp=False` turns it off.
    Other keyword arguments go to ClaudeInstrumentor().instrument() (proxy_idle_timeout, capture_content, ...).
    `environ` replaces os.environ for the settings read here (tests); the OTLP exporters read os.environ.
    Never raises: problems are logged once each and listed in `handle.problems`.
    """
    global _handle
    with _lock:
        if _handle is not None and not _handle._done:
            logger.debug("claude-otel: configure() called again; keeping the first configuration")
            return _handle
        try:
            handle = _configure(service_name, service_version, prometheus_port, prometheus_addr, prometheus, otlp,
                                instrument, environ, instrumentor_kwargs)
        except Exception as exc:
            problems = Problems()
            problems.say(f"configure() failed ({type(exc).__name__}: {exc}); the application runs without "
                         "claude-otel's exporters")
            logger.debug("claude-otel: configure() failure", exc_info=True)
            handle = Handle(trace.get_tracer_provider(), metrics.get_meter_provider(), problems=problems)
        _handle = handle
        return handle


def _configure(service_name, service_version, prometheus_port, prometheus_addr, prometheus, use_otlp, instrument,
               environ, instrumentor_kwargs) -> Handle:
    """Returns the handle after building providers and exporters and instrumenting the SDK (may raise)."""
    env = os.environ if environ is None else environ
    overrides, instrumentor_kwargs = split_overrides(instrumentor_kwargs, CONFIGURE_KEYS)
    settings = Settings.from_env(env, **overrides)  # logs each invalid CLAUDE_OTEL_* value once
    problems = Problems(settings.problems)
    if not settings.enabled:
        logger.info("claude-otel: CLAUDE_OTEL_ENABLED=false: no providers, exporters or instrumentation")
        return Handle(trace.get_tracer_provider(), metrics.get_meter_provider(), problems=problems)
    drops = DropCounter(exporter_logs=EXPORTER_LOGS)
    res = resource(service_name, service_version, env)

    wanted, otlp_problems = otlp.usable_signals(env, otlp_signals(env, use_otlp))
    for message in otlp_problems:
        problems.say(message)
    if any(wanted.values()):
        quiet_exporter_logs()

    tracing = tracer_provider(res, env, wanted["traces"], drops, problems)
    port = prometheus_port if prometheus_port is not None else settings.prometheus_port
    port_setting = "prometheus_port" if prometheus_port is not None else "CLAUDE_OTEL_PROMETHEUS_PORT"
    want_prometheus = port is not None or bool(prometheus) or bool(settings.multiproc_dir)
    metering = meter_provider(res, env, wanted["metrics"], want_prometheus, drops, problems)
    drops.bind(metering.provider.get_meter("claude_otel", __version__))

    handle = Handle(tracing.provider, metering.provider, problems=problems, drops=drops,
                    _owned_tracer=tracing.owned, _owned_meter=metering.owned, _processors=tracing.processors,
                    _metric_exporters=metering.exporters)
    handle._instance_id = res.attributes.get("service.instance.id")
    if metering.prometheus_reader is not None:
        exposition = expose(metering.prometheus_reader, settings.multiproc_dir, multiproc_setting(env), port,
                            port_setting, prometheus_addr or settings.prometheus_addr)
        for message in exposition.problems:
            problems.say(message)
        handle.reader, handle.collector, handle.registry = \
            metering.prometheus_reader, exposition.collector, exposition.registry
        handle._shared, handle._server = exposition.shared, exposition.server
        if exposition.server is not None:
            handle.prometheus_url = exposition.server.url

    if instrument:
        from ..instrumentor import ClaudeInstrumentor

        ClaudeInstrumentor().instrument(tracer_provider=tracing.provider, meter_provider=metering.provider,
                                        settings=settings, **instrumentor_kwargs)
        handle._instrumented = True

    at_fork_in_child(handle._after_fork)
    me = weakref.ref(handle)
    atexit.register(lambda: me() is not None and me().shutdown(EXIT_TIMEOUT))
    return handle
