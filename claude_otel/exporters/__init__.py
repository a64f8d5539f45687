"""Where the agent's telemetry goes: OTLP (gRPC or HTTP/protobuf) and Prometheus (/metrics, multi-process).

- `otlp`: exporters and processors from the standard OTEL_EXPORTER_OTLP_* variables, bounded and counting drops;
- `prometheus`: the pull reader, the OpenTelemetry-to-Prometheus conversion (exemplars), `make_wsgi_app()` and
  `make_asgi_app()`;
- `multiprocess`: worker processes sharing snapshots through CLAUDE_OTEL_MULTIPROC_DIR;
- `dropped`: the `claude_otel.exporter.dropped` self-metric and the one-warning policy;
- `fork`: what a forked worker must not inherit (instance id, metric state).

`claude_otel.configure()` (in `claude_otel.setup`) wires them.
"""
