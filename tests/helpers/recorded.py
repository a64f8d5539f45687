"""What the agent recorded, read back from in-memory exporters: spans, and metric points as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Point:
    name: str
    attrs: Dict[str, object]
    value: Optional[float] = None
    count: int = 0
    sum: float = 0.0
    bounds: tuple = ()
    counts: tuple = ()
    min: float = 0.0
    max: float = 0.0


@dataclass
class Recorded:
    """What the agent recorded, read back from in-memory exporters."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    points_cache: List[Point] = field(default_factory=list)

    def spans(self, name_prefix: str = ""):
        return [s for s in self.spans_exporter.get_finished_spans() if s.name.startswith(name_prefix)]

    def operation_spans(self):
        return [s for s in self.spans_exporter.get_finished_spans() if not s.name.startswith(("POST", "GET"))]

    def attempt_spans(self):
        return [s for s in self.spans_exporter.get_finished_spans() if s.name.startswith(("POST", "GET"))]

    def points(self, name: str, **match) -> List[Point]:
        found = []
        data = self.reader.get_metrics_data()
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    for p in metric.data.data_points:
                        attrs = dict(p.attributes)
                        if any(attrs.get(k.replace("__", ".")) != v for k, v in match.items()):
                            continue
                        if hasattr(p, "bucket_counts"):
                            found.append(Point(name, attrs, count=p.count, sum=p.sum,
                                               bounds=tuple(p.explicit_bounds), counts=tuple(p.bucket_counts),
                                               min=p.min, max=p.max))
                        else:
                            found.append(Point(name, attrs, value=p.value))
        return found

    def exemplar_traces(self) -> Dict[str, set]:
        """Returns, from one collection (the SDK hands an exemplar to one collection only), each metric's exemplar
        trace ids."""
        found: Dict[str, set] = {}
        data = self.reader.get_metrics_data()
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    traces = found.setdefault(metric.name, set())
                    for p in metric.data.data_points:
                        traces.update(e.trace_id for e in (getattr(p, "exemplars", None) or ()) if e.trace_id)
        return found

    def total(self, name: str, **match) -> float:
        """Returns the sum of counter values, or of histogram counts, over matching points."""
        return sum(p.value if p.value is not None else p.count for p in self.points(name, **match))

    def hist_sum(self, name: str, **match) -> float:
        return sum(p.sum for p in self.points(name, **match))

    def hist_max(self, name: str, **match) -> float:
        return max((p.max for p in self.points(name, **match)), default=0.0)

    def clear(self):
        self.spans_exporter.clear()
