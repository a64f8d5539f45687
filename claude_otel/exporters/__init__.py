"""Where the agent's telemetry goes: OTLP (gRPC or HTTP/protobuf) and Prometheus (/metrics, multi-process).

- `otlp`: exporters and processors from the standard OTEL_EXPORTER_OTLP_* variables, bounded and counting drops;
- `prometheus/`: naming, snapshots (merged across workers), the collector (exemplars), the exposition (/metrics
  server, `make_wsgi_app()` and `make_asgi_app()`);
- `multiprocess`: worker processes sharing snapshots through CLAUDE_OTEL_MULTIPROC_DIR;
- `dropped`: the `claude_otel.exporter.dropped` self-metric and the one-warning policy.

`claude_otel.configure()` (in `claude_otel._configuration`) wires them.
"""
