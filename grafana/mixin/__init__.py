"""claude-otel's monitoring mixin, generated from one THRESHOLDS table (config.py); grafana/build.py runs it.

One module per job: config (what to tune), promql (metric names and PromQL helpers), recording (recording
rules), alerts (Prometheus and Grafana-managed alerts), dashboards, unit_tests (promtool tests), readme
(grafana/README.md), timescale (the drill's time-scaled rules), outputs (every file, written or checked)."""
