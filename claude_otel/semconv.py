"""Names of every metric, attribute and span event claude-otel emits.

These names are a public interface: dashboards, alert rules and users' own
alerts depend on them.  Change one only with a deprecation note.
"""

# Metric instruments (OpenTelemetry names).  Prometheus names follow the
# OpenTelemetry-to-Prometheus rules: dots become underscores, the unit "s"
# becomes the suffix "_seconds", counters get "_total", unit "1" and "{...}"
# annotations add no suffix.
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
TIME_PER_OUTPUT_CHUNK = "gen_ai.client.operation.time_per_output_chunk"
STREAM_MAX_GAP = "anthropic.client.stream.max_gap"
PREFILL_DURATION = "anthropic.client.prefill.duration"
ATTEMPT_DURATION = "anthropic.client.attempt.duration"
RETRIES = "anthropic.client.retries"
RETRY_BACKOFF = "anthropic.client.retry.backoff"
TIMEOUTS = "anthropic.client.timeouts"
TIMEOUT_UTILIZATION = "anthropic.client.timeout.utilization"
ACTIVE_REQUESTS = "anthropic.client.active_requests"
RATELIMIT_REMAINING = "anthropic.ratelimit.remaining"
EXPORTER_DROPPED = "claude_otel.exporter.dropped"

# Attributes shared by every metric of one call.
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
REQUEST_STREAM = "anthropic.request.stream"
ERROR_TYPE = "error.type"

# Attributes of single metrics.
TOKEN_TYPE = "gen_ai.token.type"
RETRY_REASON = "anthropic.retry.reason"
TIMEOUT_PHASE = "anthropic.timeout.phase"
TIMEOUT_KIND = "anthropic.timeout.kind"
RATELIMIT_KIND = "anthropic.ratelimit.kind"
# Why a failed attempt or call failed: one of FAILURE_CAUSES (on spans, anthropic.client.timeouts and the error
# points of the duration histograms).  The rule for each value is in errors.failure_cause and the README.
FAILURE_CAUSE = "anthropic.failure.cause"

PROVIDER = "anthropic"

# Span attributes.
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_TOP_K = "gen_ai.request.top_k"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
USAGE_CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
RESPONSE_TTFC = "gen_ai.response.time_to_first_chunk"
PREFILL = "anthropic.prefill.duration"
TIMEOUT_READ = "anthropic.timeout.read"
TIMEOUT_CONNECT = "anthropic.timeout.connect"
TIMEOUT_PROXY_IDLE = "anthropic.timeout.proxy_idle"
UTILIZATION = "anthropic.timeout.utilization"
RETRY_COUNT = "anthropic.retry.count"
ATTEMPT_COUNT = "anthropic.attempt.count"
STREAM_GAP = "anthropic.stream.max_gap"
STREAM_CLOSED_EARLY = "anthropic.stream.closed_early"
REQUEST_ID = "anthropic.request.id"
SILENCE_BEFORE_DROP = "anthropic.connection.silence_before_drop"
BACKOFF = "anthropic.retry.backoff"
HTTP_METHOD = "http.request.method"
HTTP_STATUS = "http.response.status_code"
HTTP_RESEND_COUNT = "http.request.resend_count"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"

# Span events, in the order one streamed call emits them.
EVENT_RETRY = "anthropic.retry"
EVENT_RESPONSE_HEADERS = "anthropic.response.headers"
EVENT_MESSAGE_START = "anthropic.message_start"
EVENT_FIRST_TOKEN = "anthropic.first_token"

# Values of error.type besides API error types (overloaded_error, ...) and status codes.
ERROR_TIMEOUT = "timeout"
ERROR_CONNECTION = "connection_error"
ERROR_CANCELLED = "cancelled"

# Values of anthropic.failure.cause: a closed set.
CAUSE_READ_TIMEOUT = "client_read_timeout"
CAUSE_CONNECT_TIMEOUT = "client_connect_timeout"
CAUSE_WRITE_TIMEOUT = "client_write_timeout"
CAUSE_POOL_TIMEOUT = "pool_timeout"
CAUSE_PROXY_IDLE_CUT = "proxy_idle_cut"
CAUSE_CONNECTION_RESET = "connection_reset"
CAUSE_DNS = "dns"
CAUSE_TLS = "tls"
CAUSE_APP_CANCELLED = "app_cancelled"
CAUSE_SDK_NONSTREAMING_LIMIT = "sdk_nonstreaming_limit"
CAUSE_API_ERROR = "api_error"
CAUSE_OTHER = "other"
FAILURE_CAUSES = (
    CAUSE_READ_TIMEOUT, CAUSE_CONNECT_TIMEOUT, CAUSE_WRITE_TIMEOUT, CAUSE_POOL_TIMEOUT, CAUSE_PROXY_IDLE_CUT,
    CAUSE_CONNECTION_RESET, CAUSE_DNS, CAUSE_TLS, CAUSE_APP_CANCELLED, CAUSE_SDK_NONSTREAMING_LIMIT,
    CAUSE_API_ERROR, CAUSE_OTHER,
)

# Histogram bucket boundaries.  The semantic-convention duration buckets stop
# at 81.92 s; the SDK's default timeout is 600 s, so three more doublings keep
# long generations out of +Inf.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
    10.24, 20.48, 40.96, 81.92, 163.84, 327.68, 655.36,
)
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
    16777216, 67108864,
)
CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
UTILIZATION_BUCKETS = (0.1, 0.25, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)

# -- the latest GenAI conventions, behind OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental --------------
# Names, units, instruments and buckets as open-telemetry/semantic-conventions-genai defines them
# (docs/gen-ai/client-inference.md and docs/gen-ai/gen-ai-token-metrics.md, 2026).  The default above stays the
# public contract; anthropic.* instruments keep their names in both sets (the conventions have no counterpart).
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_OPT_IN = "gen_ai_latest_experimental"

INFERENCE_DURATION = "gen_ai.client.inference.duration"
INFERENCE_TIME_TO_FIRST_CHUNK = "gen_ai.client.inference.time_to_first_chunk"
INFERENCE_TIME_PER_OUTPUT_CHUNK = "gen_ai.client.inference.time_per_output_chunk"
# Counters ({token}), on every inference call including failed ones (0 when no usage arrived).  The input
# counter includes cached tokens; cache_read and cache_write are subsets of it.
USAGE_INPUT_COUNTER = "gen_ai.client.inference.usage.input_tokens"
USAGE_OUTPUT_COUNTER = "gen_ai.client.inference.usage.output_tokens"
USAGE_CACHE_READ_COUNTER = "gen_ai.client.inference.usage.cache_read.input_tokens"
USAGE_CACHE_WRITE_COUNTER = "gen_ai.client.inference.usage.cache_write.input_tokens"
# Per-call token histograms ({token}), with error.type on failed calls and no modality.
OPERATION_INPUT_TOKENS = "gen_ai.client.inference.operation.input_tokens"
OPERATION_OUTPUT_TOKENS = "gen_ai.client.inference.operation.output_tokens"

GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"  # replaces anthropic.request.stream on every metric
TOKEN_MODALITY = "gen_ai.token.modality"  # required on the usage counters
# Anthropic's usage has no per-modality breakdown, and the spec says to report such tokens as "unknown".
MODALITY_UNKNOWN = "unknown"
USAGE_CACHE_WRITE = "gen_ai.usage.cache_write.input_tokens"  # span attribute replacing ..cache_creation..
# Operations the inference token metrics are recorded for (the spec defines them for inference only).
INFERENCE_OPERATIONS = ("chat", "text_completion")

# The spec's ExplicitBucketBoundaries advice, exactly.
SPEC_DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
SPEC_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)


def latest_opted_in(value: object) -> bool:
    """Returns whether an OTEL_SEMCONV_STABILITY_OPT_IN value (comma-separated) opts into the latest GenAI
    conventions, parsed as opentelemetry-instrumentation's _semconv does; never raises."""
    if not isinstance(value, str):
        return False
    return LATEST_OPT_IN in (part.strip() for part in value.split(","))
