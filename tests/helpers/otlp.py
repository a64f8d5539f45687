"""A real OTLP receiver for tests: gRPC (grpcio) and HTTP/protobuf on 127.0.0.1, decoding what it receives.

Modes (`receiver.received.mode`): "ok"; "slow" (accepts the request, then hangs `slow_seconds` before
answering); "error" (answers UNAVAILABLE / 503).  A collector that is down: `closed_endpoint()`.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Optional

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.helpers.ports import closed_endpoint  # noqa: F401  (a collector that is down)


def attrs(pb_attributes) -> dict:
    """Returns a dict of OTLP KeyValue attributes (string, bool, int and double values)."""
    found = {}
    for kv in pb_attributes:
        kind = kv.value.WhichOneof("value")
        found[kv.key] = getattr(kv.value, kind) if kind else None
    return found


class Received:
    """What a receiver decoded; `mode` makes it behave like a healthy, slow or failing collector."""

    def __init__(self) -> None:
        self.traces: List[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: List[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.headers: List[dict] = []
        self.mode = "ok"  # ok | slow | error
        self.slow_seconds = 30.0
        self.requests = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def spans(self):
        return [span for req in self.traces for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def span_resources(self):
        """Returns (resource attributes, span) for every span received."""
        return [(attrs(rs.resource.attributes), span) for req in self.traces for rs in req.resource_spans
                for ss in rs.scope_spans for span in ss.spans]

    def resources(self):
        return [rs.resource for req in self.traces for rs in req.resource_spans]

    def metric_points(self, name: str, instance_id: Optional[str] = None):
        """Returns the data points of the newest export of a metric (cumulative), with their metric's unit.

        With instance_id: only from the resource with that service.instance.id (one process).
        """
        for req in reversed(self.metrics):
            found = []
            for rm in req.resource_metrics:
                if instance_id is not None and attrs(rm.resource.attributes).get("service.instance.id") != instance_id:
                    continue
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name:
                            kind = m.WhichOneof("data")
                            found.extend((m.unit, kind, p) for p in getattr(m, kind).data_points)
            if found:
                return found
        return []

    def metric_names(self):
        return {m.name for req in self.metrics for rm in req.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics}

    def metric_instance_ids(self):
        return {attrs(rm.resource.attributes).get("service.instance.id") for req in self.metrics
                for rm in req.resource_metrics}

    def wait_for(self, predicate, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    def _behave(self) -> bool:
        """Returns False when the request should fail; hangs when slow (until the receiver stops)."""
        with self.lock:
            self.requests += 1
        if self.mode == "slow":
            self.stopping.wait(self.slow_seconds)
        return self.mode != "error"


class GrpcReceiver:
    """OTLP/gRPC TraceService and MetricsService on an ephemeral 127.0.0.1 port."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                if not received._behave():
                    context.abort(grpc.StatusCode.UNAVAILABLE, "collector says no")
                with received.lock:
                    received.traces.append(request)
                    received.headers.append(dict(context.invocation_metadata()))
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request, context):
                if not received._behave():
                    context.abort(grpc.StatusCode.UNAVAILABLE, "collector says no")
                with received.lock:
                    received.metrics.append(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.received.stopping.set()
        self.server.stop(0)


class HttpReceiver:
    """OTLP/HTTP protobuf receiver (/v1/traces, /v1/metrics) on an ephemeral 127.0.0.1 port."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not received._behave():
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                with received.lock:
                    if self.path == "/v1/traces":
                        received.traces.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                        received.headers.append({k.lower(): v for k, v in self.headers.items()})
                    elif self.path == "/v1/metrics":
                        received.metrics.append(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.received.stopping.set()
        self.server.shutdown()
        self.server.server_close()
