"""The tracer and meter providers configure() records into: the application's own, or built here.

An SDK (or any real) tracer provider the application already set globally is
used as it is (its own exporters; claude-otel adds none).  A meter provider's
readers are fixed when it is built, so:

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

import logging
import uuid
from dataclasses import dataclass, field
from typing import Mapping, Optional

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

from ..exporters import otlp
from ..exporters.dropped import DropCounter
from ..exporters.prometheus import PrometheusReader
from ..settings import SettingError, exemplar_filter, resource_attributes
from .handle import Problems

logger = logging.getLogger(__name__)

# The providers configure() set globally: a global can be set once per process, so a configure() after shutdown()
# builds fresh providers but cannot install them, and treats these as its own.
INSTALLED: list = []


def resource(service_name: Optional[str], service_version: Optional[str], env: Mapping[str, str]) -> Resource:
    """Returns the resource: service name and version, a per-process instance id, telemetry.sdk.*, and
    OTEL_RESOURCE_ATTRIBUTES.

    The operator's OTEL_SERVICE_NAME (or service.name / service.version in OTEL_RESOURCE_ATTRIBUTES) wins over
    the values given in code, which are defaults; without either the SDK's "unknown_service:<executable>".
    """
    from_env = resource_attributes(env)
    attrs = {}
    if service_name and not (env.get("OTEL_SERVICE_NAME", "").strip() or "service.name" in from_env):
        attrs["service.name"] = service_name
    if service_version and "service.version" not in from_env:
        attrs["service.version"] = service_version
    created = Resource.create(attrs)
    if "service.instance.id" not in created.attributes:
        created = created.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    return created


def is_default(provider) -> bool:
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


@dataclass
class TracerSetup:
    """The tracer provider to record into, whether configure() built it, and its OTLP span processors."""

    provider: object
    owned: bool
    processors: list = field(default_factory=list)


def tracer_provider(res: Resource, env: Mapping[str, str], otlp_traces: bool, drops: DropCounter,
                    problems: Problems) -> TracerSetup:
    """Returns the application's tracer provider, or one built (with OTLP if asked) and set globally."""
    current = trace.get_tracer_provider()
    if not (is_default(current) or current in INSTALLED):
        if otlp_traces:
            logger.info("claude-otel: the application set its own tracer provider; spans go to its exporters "
                        "(claude-otel adds no OTLP exporter to it)")
        return TracerSetup(current, owned=False)
    built = TracerSetup(SdkTracerProvider(resource=res, shutdown_on_exit=False), owned=True)
    if otlp_traces:
        try:
            processor = otlp.span_processor(env, drops)
            built.provider.add_span_processor(processor)
            built.processors.append(processor)
        except Exception as exc:
            problems.say(f"OTLP trace export is off: {type(exc).__name__}: {exc}")
    if current not in INSTALLED:
        trace.set_tracer_provider(built.provider)
        INSTALLED.append(built.provider)
    return built


@dataclass
class MeterSetup:
    """The meter provider to record into, whether configure() built it, its Prometheus reader and OTLP exporters."""

    provider: object
    owned: bool
    prometheus_reader: Optional[PrometheusReader] = None
    exporters: list = field(default_factory=list)


def meter_provider(res: Resource, env: Mapping[str, str], otlp_metrics: bool, want_prometheus: bool,
                   drops: DropCounter, problems: Problems) -> MeterSetup:
    """Returns the application's meter provider, or one built with the readers asked for (set globally if none)."""
    current = metrics.get_meter_provider()
    ours_before = current in INSTALLED
    app_has_one = not (is_default(current) or ours_before)
    if app_has_one and not want_prometheus:
        return MeterSetup(current, owned=False)
    readers = []
    exporters = []
    if otlp_metrics:
        try:
            periodic = otlp.metric_reader(env, drops)
            readers.append(periodic)
            exporters.append(periodic._exporter)
        except Exception as exc:
            problems.say(f"OTLP metric export is off: {type(exc).__name__}: {exc}")
    reader = PrometheusReader() if want_prometheus else None
    if reader is not None:
        readers.append(reader)
    built = MeterSetup(_sdk_meter_provider(res, readers, env, problems), True, reader, exporters)
    if app_has_one:
        logger.info("claude-otel: the application set its own MeterProvider; claude-otel's metrics use a "
                    "provider of their own so that /metrics can serve them")
    elif not ours_before:
        metrics.set_meter_provider(built.provider)
        INSTALLED.append(built.provider)
    return built


def _sdk_meter_provider(res: Resource, readers: list, env: Mapping[str, str], problems: Problems) -> SdkMeterProvider:
    """Returns an SDK MeterProvider with these readers; an invalid exemplar filter falls back to trace_based."""
    kwargs = {}
    try:
        exemplar_filter(env)  # a valid one the SDK reads from the environment itself
    except SettingError as exc:
        from opentelemetry.sdk.metrics import TraceBasedExemplarFilter

        problems.say(f"{exc}; using trace_based")
        kwargs["exemplar_filter"] = TraceBasedExemplarFilter()
    return SdkMeterProvider(metric_readers=readers, resource=res, shutdown_on_exit=False, **kwargs)
