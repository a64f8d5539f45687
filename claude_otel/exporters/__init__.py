"""Where the agent's telemetry goes: OTLP (gRPC or HTTP/protobuf) and Prometheus (/metrics, multi-process)."""
