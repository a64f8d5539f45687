"""`claude_otel.configure()`: providers, exporters and instrumentation from one call.

Reads the standard OTEL_* variables and the CLAUDE_OTEL_* settings.  Nothing
here raises into the application: a setting that cannot be used produces one
message naming it, and the rest still starts.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import List, Optional

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from .exporters import otlp
from .exporters.dropped import DropCounter, quiet_exporter_logs
from .exporters.prometheus import PrometheusReader, Server, registry_for, set_default_registry
from .instrumentor import ClaudeInstrumentor
from .settings import Settings
from .version import __version__

logger = logging.getLogger("claude_otel")

_lock = threading.Lock()
_handle: Optional["Handle"] = None


@dataclass
class Handle:
    """What configure() set up; shutdown() flushes and stops it within a bounded time."""

    tracer_provider: object
    meter_provider: object
    prometheus_url: Optional[str] = None
    registry: object = None
    reader: object = None
    problems: List[str] = field(default_factory=list)
    drops: Optional[DropCounter] = None
    _owned_tracer: bool = False
    _owned_meter: bool = False
    _server: Optional[Server] = None
    _shared: object = None
    _done: bool = False

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flushes pending telemetry and stops exporters, waiting at most about `timeout` seconds; never raises."""
        global _handle
        if self._done:
            return
        self._done = True
        try:
            ClaudeInstrumentor().uninstrument()
        except Exception:
            pass
        for owned, provider in ((self._owned_tracer, self.tracer_provider), (self._owned_meter, self.meter_provider)):
            if not owned:
                continue
            try:
                flushed = threading.Thread(target=provider.shutdown, daemon=True)
                flushed.start()
                flushed.join(timeout / 2)
            except Exception:
                logger.debug("claude-otel: provider shutdown failed", exc_info=True)
        if self._shared is not None:
            self._shared.stop()
        if self._server is not None:
            self._server.close()
        with _lock:
            if _handle is self:
                _handle = None


def _resource(service_name: Optional[str], service_version: Optional[str], env) -> Resource:
    """Returns the resource: service name and version, a per-process instance id, and OTEL_RESOURCE_ATTRIBUTES.

    The operator's OTEL_SERVICE_NAME wins over the name given in code, which is the default.
    """
    attrs = {"service.instance.id": str(uuid.uuid4())}
    if service_name and not env.get("OTEL_SERVICE_NAME"):
        attrs["service.name"] = service_name
    if service_version:
        attrs["service.version"] = service_version
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; explicit arguments win.
    return Resource.create(attrs)


def configure(service_name: Optional[str] = None, *, service_version: Optional[str] = None,
              prometheus_port: Optional[int] = None, prometheus_addr: Optional[str] = None,
              prometheus: Optional[bool] = None, otlp_export: Optional[bool] = None, instrument: bool = True,
              environ=None,
              **instrumentor_kwargs) -> Handle:
    """Returns the handle of the agent's providers and exporters after setting them up once (idempotent).

    Prometheus: `prometheus_port` (or CLAUDE_OTEL_PROMETHEUS_PORT; 0 = any free port) serves /metrics;
    `prometheus=True` only prepares the registry for make_wsgi_app()/make_asgi_app() on your own server.
    OTLP: on when an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set, or with `otlp_export=True`.
    """
    global _handle
    with _lock:
        if _handle is not None:
            logger.debug("claude-otel: configure() called again; keeping the first configuration")
            return _handle
        env = os.environ if environ is None else environ
        settings = Settings.from_env(env)
        problems = list(settings.problems)
        quiet_exporter_logs()
        resource = _resource(service_name, service_version, env)
        drops = DropCounter()
        use_otlp = otlp.enabled(env, otlp_export)
        if use_otlp:
            try:
                otlp.protocol(env, "traces")
                otlp.protocol(env, "metrics")
            except otlp.OTLPSettingError as exc:
                problems.append(_say(f"{exc}; OTLP export is off"))
                use_otlp = False

        tracer_provider = trace.get_tracer_provider()
        owned_tracer = not isinstance(tracer_provider, SdkTracerProvider)
        if owned_tracer:
            tracer_provider = SdkTracerProvider(resource=resource)
            if use_otlp:
                try:
                    tracer_provider.add_span_processor(otlp.span_processor(env, drops))
                except Exception as exc:
                    problems.append(_say(f"OTLP trace export is off: {exc}"))
            trace.set_tracer_provider(tracer_provider)

        readers = []
        if use_otlp:
            try:
                readers.append(otlp.metric_reader(env, drops))
            except Exception as exc:
                problems.append(_say(f"OTLP metric export is off: {exc}"))
        port = prometheus_port if prometheus_port is not None else settings.prometheus_port
        reader = PrometheusReader() if (port is not None or prometheus) else None
        if reader is not None:
            readers.append(reader)
        owned_meter = True
        # A provider's readers are fixed at construction: if the application already set a global one, the agent
        # keeps its instruments on a provider of its own, exported the same way, so /metrics works beside it.
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=readers)
        if not isinstance(metrics.get_meter_provider(), SdkMeterProvider):
            metrics.set_meter_provider(meter_provider)
        drops.bind(meter_provider.get_meter("claude_otel", __version__))

        handle = Handle(tracer_provider, meter_provider, problems=problems, drops=drops,
                        _owned_tracer=owned_tracer, _owned_meter=owned_meter)
        if reader is not None:
            shared = None
            if settings.multiproc_dir:
                from .exporters.multiprocess import SharedSnapshots

                try:
                    shared = SharedSnapshots(settings.multiproc_dir, reader.snapshot)
                except OSError as exc:
                    problems.append(_say(f"CLAUDE_OTEL_MULTIPROC_DIR={settings.multiproc_dir!r} is not usable "
                                         f"({exc}); /metrics reports this process only"))
            registry = registry_for(reader, shared)
            handle.registry = registry
            handle.reader = reader
            handle._shared = shared
            set_default_registry(registry)
            addr = prometheus_addr or settings.prometheus_addr
            if port is not None:
                try:
                    handle._server = Server(registry, port, addr)
                    handle.prometheus_url = handle._server.url
                except OSError as exc:
                    problems.append(_say(f"CLAUDE_OTEL_PROMETHEUS_PORT={port} on {addr} cannot be served ({exc}); "
                                         "/metrics is not served"))
        if instrument:
            ClaudeInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                            settings=settings if not instrumentor_kwargs else None,
                                            **instrumentor_kwargs)
        atexit.register(handle.shutdown, 5.0)
        _handle = handle
        return handle


def _say(message: str) -> str:
    logger.warning("claude-otel: %s", message)
    return message
