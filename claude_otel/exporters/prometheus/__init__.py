"""Prometheus exposition of the agent's metrics, with exemplars and multi-process totals.

Laid out as prometheus_client is:

- `naming`: OpenTelemetry metric and attribute names to Prometheus names;
- `snapshots`: the metrics as plain data, merged across worker processes, and their file format;
- `collector`: the pull reader on the SDK's aggregation and the prometheus_client collector over it;
- `exposition`: the /metrics server, `make_wsgi_app()` / `make_asgi_app()`, and `expose()` (configure()'s wiring).

The public names are importable from here.
"""

from .collector import PrometheusCollector, PrometheusReader, families, registry_for, target_info
from .exposition import Exposition, Server, expose, make_asgi_app, make_wsgi_app, set_default_registry
from .naming import exposition_name, label_name, label_value, metric_name
from .snapshots import decode, encode, merge, read_file, snapshot, write_file

__all__ = [
    "Exposition", "PrometheusCollector", "PrometheusReader", "Server", "decode", "encode", "expose",
    "exposition_name", "families", "label_name", "label_value", "make_asgi_app", "make_wsgi_app", "merge",
    "metric_name", "read_file", "registry_for", "set_default_registry", "snapshot", "target_info", "write_file",
]
