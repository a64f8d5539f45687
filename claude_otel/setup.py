"""`claude_otel.configure()`: providers, exporters and instrumentation from one call.

Reads the standard OTEL_* variables and the CLAUDE_OTEL_* settings.  Nothing
here raises into the application: a setting that cannot be used produces one
message naming it and its value, and the rest still starts.

Providers: an SDK (or any real) tracer provider the application already set
globally is used as it is (its own exporters; claude-otel adds none).  A
meter provider's readers are fixed when it is built, so:

- the application set one and no Prometheus exposition is asked for: it is
  used as it is, and claude-otel's metrics go wherever the application sends
  its own;
- Prometheus is asked for (a port, `prometheus=True`, or a multi-process
  directory): claude-otel's instruments live on a meter provider of their own
  with the Prometheus reader (and OTLP, when an OTLP endpoint variable is
  set), beside the application's, so /metrics works either way;
- no global provider yet: claude-otel builds them and sets them globally, so
  the application's own instruments and other instrumentations share them.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import List, Mapping, Optional

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from . import fork
from .exporters import otlp
from .exporters.dropped import EXPORTER_LOGS, DropCounter, quiet_exporter_logs
from .exporters.prometheus import PrometheusReader, Server, expose
from .settings import Settings, otlp_signals
from .version import __version__

logger = logging.getLogger("claude_otel")

EXIT_TIMEOUT = 5.0
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")

_lock = threading.Lock()
_handle: Optional["Handle"] = None
_INSTALLED: list = []  # the providers configure() set globally (a later configure() after shutdown() replaces them)


@dataclass
class Handle:
    """What configure() set up; shutdown() flushes and stops it within a bounded time.

    `registry` is the dedicated prometheus_client CollectorRegistry (None without Prometheus); `collector`
    the collector in it, which can also be registered elsewhere: `prometheus_client.REGISTRY.register(
    handle.collector)`.  `reader.snapshot()` returns this process's metrics as plain data.
    """

    tracer_provider: object
    meter_provider: object
    prometheus_url: Optional[str] = None
    registry: object = None
    collector: object = None
    reader: object = None
    problems: List[str] = field(default_factory=list)
    drops: Optional[DropCounter] = None
    _owned_tracer: bool = False
    _owned_meter: bool = False
    _instrumented: bool = False
    _server: Optional[Server] = None
    _shared: object = None
    _processors: list = field(default_factory=list)
    _metric_exporters: list = field(default_factory=list)
    _instance_id: object = None
    _done: bool = False

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Exports what is pending now, waiting at most about `timeout` seconds; never raises."""
        done = []

        def flush():
            for owned, provider in ((self._owned_tracer, self.tracer_provider),
                                    (self._owned_meter, self.meter_provider)):
                if owned:
                    provider.force_flush(int(timeout * 1000))
            done.append(True)

        return _bounded(flush, timeout) and bool(done)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flushes pending telemetry and stops exporters, returning within about `timeout` seconds; never raises.

        If the collector does not take the last batch in time, the exporters are told to stop (cutting any retry
        backoff short) and the spans still queued are counted as dropped.
        """
        global _handle
        if self._done:
            return
        self._done = True
        deadline = time.monotonic() + max(timeout, 0.1)
        try:
            if self._instrumented:
                from .instrumentor import ClaudeInstrumentor

                ClaudeInstrumentor().uninstrument()
        except Exception:
            logger.debug("claude-otel: uninstrument failed", exc_info=True)
        if self._shared is not None:
            self._shared.stop()
        if self.drops is not None:
            # A collector that failed the last export is very likely still down: do not spend the budget on it.
            for signal, exporters in (("traces", self._processors), ("metrics", self._metric_exporters)):
                if self.drops.failing(signal):
                    for exporter in exporters:
                        _quietly(exporter.abort)()
        threads = []
        for owned, provider in ((self._owned_tracer, self.tracer_provider), (self._owned_meter, self.meter_provider)):
            if owned:
                thread = threading.Thread(target=_quietly(provider.shutdown), name="claude-otel-shutdown",
                                          daemon=True)
                thread.start()
                threads.append(thread)
        # Most of the budget for an orderly flush; then stop exporters mid-retry and give them the rest.
        soft = deadline - min(1.0, timeout * 0.25)
        for thread in threads:
            thread.join(max(0.0, soft - time.monotonic()))
        if any(t.is_alive() for t in threads):
            for exporter in self._processors + self._metric_exporters:
                _quietly(exporter.abort)()
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        lost = sum(p.unexported() for p in self._processors)
        if lost and self.drops is not None:
            self.drops.add(lost, "traces", "not exported before shutdown's deadline")
        if self._server is not None:
            self._server.close()
        with _lock:
            if _handle is self:
                _handle = None

    def _after_fork(self) -> None:
        """In a forked child: a fresh service.instance.id and metric state; let go of the parent's /metrics port."""
        if self._done:
            return
        if self._owned_meter:
            fork.reset_metric_state(self.meter_provider)
        if self.reader is not None:
            self.reader.after_fork()
        if self.drops is not None:
            self.drops.after_fork()
        renewed = None
        for owned, provider in ((self._owned_tracer, self.tracer_provider), (self._owned_meter, self.meter_provider)):
            if owned:
                renewed = fork.renew_instance_id(provider, self._instance_id) or renewed
        self._instance_id = renewed or self._instance_id
        if self._server is not None:
            self._server.forget()  # the parent keeps serving /metrics; the child must not hold its socket


def _quietly(fn):
    def run(*args, **kwargs):
        try:
            fn(*args, **kwargs)
        except Exception:
            logger.debug("claude-otel: %s failed", getattr(fn, "__qualname__", fn), exc_info=True)

    return run


def _bounded(fn, timeout: float) -> bool:
    thread = threading.Thread(target=_quietly(fn), name="claude-otel-flush", daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def _say(message: str) -> str:
    logger.warning("claude-otel: %s", message)
    return message


def _resource_attributes(raw: str) -> dict:
    found = {}
    for part in (raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            found[key.strip()] = value.strip()
    return found


def resource(service_name: Optional[str], service_version: Optional[str], env: Mapping[str, str]) -> Resource:
    """Returns the resource: service name and version, a per-process instance id, telemetry.sdk.*, and
    OTEL_RESOURCE_ATTRIBUTES.

    The operator's OTEL_SERVICE_NAME (or service.name / service.version in OTEL_RESOURCE_ATTRIBUTES) wins over
    the values given in code, which are defaults; without either the SDK's "unknown_service:<executable>".
    """
    from_env = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    attrs = {}
    if service_name and not (env.get("OTEL_SERVICE_NAME", "").strip() or "service.name" in from_env):
        attrs["service.name"] = service_name
    if service_version and "service.version" not in from_env:
        attrs["service.version"] = service_version
    created = Resource.create(attrs)
    if "service.instance.id" not in created.attributes:
        created = created.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    return created


def _is_default(provider) -> bool:
    """Returns whether a global provider is the API's placeholder (proxy or no-op), not one the app set."""
    from opentelemetry.metrics import NoOpMeterProvider
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    defaults = [ProxyTracerProvider, NoOpTracerProvider, NoOpMeterProvider]
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        defaults.append(_ProxyMeterProvider)
    except ImportError:  # pragma: no cover
        pass
    return isinstance(provider, tuple(defaults))


def configure(service_name: Optional[str] = None, *, service_version: Optional[str] = None,
              prometheus_port: Optional[int] = None, prometheus_addr: Optional[str] = None,
              prometheus: Optional[bool] = None, otlp: Optional[bool] = None, instrument: bool = True,
              environ: Optional[Mapping[str, str]] = None, otlp_export: Optional[bool] = None,
              **instrumentor_kwargs) -> Handle:
    """Returns the handle of the agent's providers and exporters after setting them up once (idempotent).

    Prometheus: `prometheus_port` (or CLAUDE_OTEL_PROMETHEUS_PORT; 0 = any free port) serves /metrics on
    `prometheus_addr` (or CLAUDE_OTEL_PROMETHEUS_ADDR, all interfaces by default); `prometheus=True` (implied by
    a multi-process directory) only prepares the exposition for make_wsgi_app()/make_asgi_app() on your server.
    OTLP: on for each signal whose OTEL_EXPORTER_OTLP_[<SIGNAL>_]ENDPOINT is set, or with `otlp=True` (SDK
    default endpoints); `otlp=False` turns it off.  `otlp_export` is an older spelling of `otlp`.
    Other keyword arguments go to ClaudeInstrumentor().instrument() (proxy_idle_timeout, capture_content, ...).
    `environ` replaces os.environ for the settings read here (tests); the OTLP exporters read os.environ.
    Never raises: problems are logged once each and listed in `handle.problems`.
    """
    global _handle
    with _lock:
        if _handle is not None:
            logger.debug("claude-otel: configure() called again; keeping the first configuration")
            return _handle
        try:
            handle = _configure(service_name, service_version, prometheus_port, prometheus_addr, prometheus,
                                otlp if otlp is not None else otlp_export, instrument, environ, instrumentor_kwargs)
        except Exception as exc:
            message = _say(f"configure() failed ({type(exc).__name__}: {exc}); the application runs without "
                           "claude-otel's exporters")
            logger.debug("claude-otel: configure() failure", exc_info=True)
            handle = Handle(trace.get_tracer_provider(), metrics.get_meter_provider(), problems=[message])
        _handle = handle
        return handle


def _configure(service_name, service_version, prometheus_port, prometheus_addr, prometheus, use_otlp, instrument,
               environ, instrumentor_kwargs) -> Handle:
    env = os.environ if environ is None else environ
    known = {f.name for f in dataclasses.fields(Settings)} - {"problems", "prometheus_port", "prometheus_addr"}
    overrides = {k: v for k, v in instrumentor_kwargs.items() if k in known}
    instrumentor_kwargs = {k: v for k, v in instrumentor_kwargs.items() if k not in known}
    settings = Settings.from_env(env, **overrides)  # logs each invalid CLAUDE_OTEL_* value once
    problems = list(settings.problems)
    if not settings.enabled:
        logger.info("claude-otel: CLAUDE_OTEL_ENABLED=false: no providers, exporters or instrumentation")
        return Handle(trace.get_tracer_provider(), metrics.get_meter_provider(), problems=problems)
    drops = DropCounter(exporter_logs=EXPORTER_LOGS)
    res = resource(service_name, service_version, env)

    wanted, otlp_problems = otlp.usable_signals(env, otlp_signals(env, use_otlp))
    problems.extend(_say(message) for message in otlp_problems)
    if any(wanted.values()):
        quiet_exporter_logs()

    tracer_provider = trace.get_tracer_provider()
    owned_tracer = _is_default(tracer_provider) or tracer_provider in _INSTALLED
    processors = []
    if owned_tracer:
        set_global = tracer_provider not in _INSTALLED  # a global can be set once; ours from an earlier configure()
        tracer_provider = SdkTracerProvider(resource=res, shutdown_on_exit=False)
        if wanted["traces"]:
            try:
                processor = otlp.span_processor(env, drops)
                tracer_provider.add_span_processor(processor)
                processors.append(processor)
            except Exception as exc:
                problems.append(_say(f"OTLP trace export is off: {type(exc).__name__}: {exc}"))
        if set_global:
            trace.set_tracer_provider(tracer_provider)
            _INSTALLED.append(tracer_provider)
    elif wanted["traces"]:
        logger.info("claude-otel: the application set its own tracer provider; spans go to its exporters "
                    "(claude-otel adds no OTLP exporter to it)")

    port = prometheus_port if prometheus_port is not None else settings.prometheus_port
    port_setting = "prometheus_port" if prometheus_port is not None else "CLAUDE_OTEL_PROMETHEUS_PORT"
    want_prometheus = port is not None or bool(prometheus) or bool(settings.multiproc_dir)
    app_meter_provider = metrics.get_meter_provider()
    ours_before = app_meter_provider in _INSTALLED
    app_has_meter_provider = not (_is_default(app_meter_provider) or ours_before)
    reader = None
    metric_exporters = []
    if app_has_meter_provider and not want_prometheus:
        meter_provider, owned_meter = app_meter_provider, False
    else:
        readers = []
        if wanted["metrics"]:
            try:
                periodic = otlp.metric_reader(env, drops)
                readers.append(periodic)
                metric_exporters.append(periodic._exporter)
            except Exception as exc:
                problems.append(_say(f"OTLP metric export is off: {type(exc).__name__}: {exc}"))
        if want_prometheus:
            reader = PrometheusReader()
            readers.append(reader)
        meter_provider, owned_meter = _meter_provider(res, readers, env, problems), True
        if app_has_meter_provider:
            logger.info("claude-otel: the application set its own MeterProvider; claude-otel's metrics use a "
                        "provider of their own so that /metrics can serve them")
        elif not ours_before:
            metrics.set_meter_provider(meter_provider)
            _INSTALLED.append(meter_provider)
    drops.bind(meter_provider.get_meter("claude_otel", __version__))

    handle = Handle(tracer_provider, meter_provider, problems=problems, drops=drops, _owned_tracer=owned_tracer,
                    _owned_meter=owned_meter, _processors=processors, _metric_exporters=metric_exporters)
    handle._instance_id = res.attributes.get("service.instance.id")
    if reader is not None:
        name = "CLAUDE_OTEL_MULTIPROC_DIR" if env.get("CLAUDE_OTEL_MULTIPROC_DIR") else "PROMETHEUS_MULTIPROC_DIR"
        exposition = expose(reader, settings.multiproc_dir, name, port, port_setting,
                            prometheus_addr or settings.prometheus_addr)
        problems.extend(_say(message) for message in exposition.problems)
        handle.reader, handle.collector, handle.registry = reader, exposition.collector, exposition.registry
        handle._shared, handle._server = exposition.shared, exposition.server
        if exposition.server is not None:
            handle.prometheus_url = exposition.server.url

    if instrument:
        from .instrumentor import ClaudeInstrumentor

        ClaudeInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider,
                                        settings=settings, **instrumentor_kwargs)
        handle._instrumented = True

    fork.at_fork_in_child(handle._after_fork)
    me = weakref.ref(handle)
    atexit.register(lambda: me() is not None and me().shutdown(EXIT_TIMEOUT))
    return handle


def _meter_provider(res: Resource, readers: list, env: Mapping[str, str], problems: List[str]) -> SdkMeterProvider:
    kwargs = {}
    raw = env.get("OTEL_METRICS_EXEMPLAR_FILTER")
    if raw is not None and raw.strip() and raw.strip().lower() not in EXEMPLAR_FILTERS:
        from opentelemetry.sdk.metrics import TraceBasedExemplarFilter

        problems.append(_say(f"OTEL_METRICS_EXEMPLAR_FILTER={raw!r} is not an exemplar filter (use trace_based, "
                             "always_on or always_off); using trace_based"))
        kwargs["exemplar_filter"] = TraceBasedExemplarFilter()
    return SdkMeterProvider(metric_readers=readers, resource=res, shutdown_on_exit=False, **kwargs)
