"""The agent's metric instruments, created once per meter provider from the names in semconv, and every metric
record of a call: retries, one ended attempt, rate limits, the ended call."""

from __future__ import annotations

import os
import threading
from typing import Dict, Iterable, List, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from . import attributes, headers, semconv, timeouts
from .fork import at_fork_in_child


# Exemplars link a histogram bucket to a trace; dashboards link them only from the duration-like histograms and
# timeout utilization.  Token counts and backoff get a context without a span: no exemplar is offered (≈ 15 kIr per
# record saved), and not an empty one, which the SDK would replace with the current context.
NO_EXEMPLAR = otel_context.set_value("claude_otel.no_exemplar", True, otel_context.Context())


def _histogram(meter: Meter, name: str, unit: str, description: str, buckets):
    """Returns a histogram with advisory bucket boundaries (plain histogram on older OTel APIs)."""
    try:
        return meter.create_histogram(
            name, unit=unit, description=description, explicit_bucket_boundaries_advisory=list(buckets)
        )
    except TypeError:  # opentelemetry-api before advisory parameters
        return meter.create_histogram(name, unit=unit, description=description)


class Instruments:
    """Every instrument the agent records, named exactly as the public contract says."""

    def __init__(self, meter: Meter, chunk_metrics: bool = False, latest: Optional[bool] = None) -> None:
        d = semconv.DURATION_BUCKETS
        if latest is None:
            latest = semconv.latest_opted_in(os.environ.get(semconv.OPT_IN_ENV))
        # The name set is chosen here, once: the hot path only reads these attributes.
        self.latest = latest
        self.stream_attribute = semconv.GEN_AI_REQUEST_STREAM if latest else semconv.REQUEST_STREAM
        self.cache_write_attribute = semconv.USAGE_CACHE_WRITE if latest else semconv.USAGE_CACHE_CREATION
        names = (semconv.INFERENCE_DURATION, semconv.INFERENCE_TIME_TO_FIRST_CHUNK,
                 semconv.INFERENCE_TIME_PER_OUTPUT_CHUNK) if latest else (
            semconv.OPERATION_DURATION, semconv.TIME_TO_FIRST_CHUNK, semconv.TIME_PER_OUTPUT_CHUNK)
        spec = semconv.SPEC_DURATION_BUCKETS
        self.operation_duration = _histogram(
            meter, names[0], "s",
            "Duration of one Anthropic SDK call, including retries, backoff and reading its stream.",
            spec if latest else d)
        self.time_to_first_chunk = _histogram(
            meter, names[1], "s",
            "Streamed calls: from the call's start (incl. earlier attempts and backoff) to the first content delta.",
            spec if latest else d)
        self.time_per_output_chunk = _histogram(
            meter, names[2], "s",
            "Streamed calls: time between content deltas after the first one.",
            spec if latest else semconv.CHUNK_BUCKETS) if chunk_metrics else None
        self.token_usage = self.usage_input = self.usage_output = self.usage_cache_read = None
        self.usage_cache_write = self.operation_input_tokens = self.operation_output_tokens = None
        if latest:
            self.usage_input = meter.create_counter(
                semconv.USAGE_INPUT_COUNTER, unit="{token}",
                description="Input tokens used, including cached tokens (every inference call, failed ones too).")
            self.usage_output = meter.create_counter(
                semconv.USAGE_OUTPUT_COUNTER, unit="{token}",
                description="Output tokens used (every inference call, failed ones too).")
            self.usage_cache_read = meter.create_counter(
                semconv.USAGE_CACHE_READ_COUNTER, unit="{token}",
                description="Input tokens served from the prompt cache (a subset of the input tokens).")
            self.usage_cache_write = meter.create_counter(
                semconv.USAGE_CACHE_WRITE_COUNTER, unit="{token}",
                description="Input tokens written to the prompt cache (a subset of the input tokens).")
            self.operation_input_tokens = _histogram(
                meter, semconv.OPERATION_INPUT_TOKENS, "{token}",
                "Input tokens per inference call, including cached tokens.", semconv.SPEC_TOKEN_BUCKETS)
            self.operation_output_tokens = _histogram(
                meter, semconv.OPERATION_OUTPUT_TOKENS, "{token}",
                "Output tokens per inference call.", semconv.SPEC_TOKEN_BUCKETS)
            self.record_tokens = self._latest_tokens
        else:
            self.token_usage = _histogram(
                meter, semconv.TOKEN_USAGE, "{token}",
                "Tokens used per call, by gen_ai.token.type (input, output, cache_read, cache_creation); input is "
                "Anthropic's input_tokens, without the cached tokens (the span's gen_ai.usage.input_tokens has them).",
                semconv.TOKEN_BUCKETS)
            self.record_tokens = self._default_tokens
        self.stream_max_gap = _histogram(
            meter, semconv.STREAM_MAX_GAP, "s",
            "Streamed calls: the longest wait for the next event after the first token; what a read or proxy idle "
            "timeout kills.", d)
        self.prefill_duration = _histogram(
            meter, semconv.PREFILL_DURATION, "s",
            "Streamed calls: from the final attempt's request body sent to its first content delta (queueing, "
            "prefill and network as the client observes them).", d)
        self.attempt_duration = _histogram(
            meter, semconv.ATTEMPT_DURATION, "s", "Duration of one HTTP attempt within a call.", d)
        self.retries = meter.create_counter(
            semconv.RETRIES, unit="{retry}", description="Retries the SDK made, by anthropic.retry.reason.")
        self.retry_backoff = _histogram(
            meter, semconv.RETRY_BACKOFF, "s", "The wait before each retry, by anthropic.retry.reason.", d)
        self.timeouts = meter.create_counter(
            semconv.TIMEOUTS, unit="{timeout}",
            description="Attempts that hit a client timeout, by anthropic.timeout.phase (connect, read, write, pool).")
        self.timeout_utilization = _histogram(
            meter, semconv.TIMEOUT_UTILIZATION, "1",
            "Per attempt, the largest fraction of its governing timeout it used (1 = timed out).",
            semconv.UTILIZATION_BUCKETS)
        # Observed at collection time from a plain counter: two synchronous records per call saved.  One
        # counter per meter: a meter keeps the first callback of an instrument name, however often instrumented.
        in_flight = getattr(meter, "_claude_otel_in_flight", None)
        if in_flight is None:
            in_flight = InFlight()
            meter.create_observable_up_down_counter(
                semconv.ACTIVE_REQUESTS, callbacks=[in_flight.observe], unit="{request}",
                description="Anthropic SDK calls in flight.")
            try:
                meter._claude_otel_in_flight = in_flight
            except AttributeError:  # a meter that takes no attributes: one counter per Instruments then
                pass
        self.in_flight = in_flight
        self.ratelimit_remaining = meter.create_gauge(
            semconv.RATELIMIT_REMAINING, unit="{unit}",
            description="Remaining rate limit from anthropic-ratelimit-*-remaining headers, by anthropic.ratelimit.kind.")


    # -- what one call records --------------------------------------------------------------------------------

    def record_retry(self, key: tuple, base: dict, reason: str, backoff: Optional[float]) -> None:
        """Counts one retry by reason and records the backoff that preceded it."""
        attrs = attributes.variant(key, base, (semconv.RETRY_REASON, reason))
        self.retries.add(1, attrs, NO_EXEMPLAR)
        if backoff is not None:
            self.retry_backoff.record(backoff, attrs, NO_EXEMPLAR)

    def record_ratelimits(self, key: tuple, base: dict, response_headers) -> None:
        """Sets the rate-limit gauge from a response's anthropic-ratelimit-*-remaining headers."""
        gauge = self.ratelimit_remaining
        for kind, value in headers.ratelimit_remaining(response_headers):
            gauge.set(value, attributes.variant(key, base, (semconv.RATELIMIT_KIND, kind)))

    def record_attempt(self, attempt, now: float, phase: Optional[str],
                       proxy_idle_timeout: Optional[float], ctx) -> Tuple[Optional[float], Optional[str]]:
        """Records an ended attempt's duration, its timeout (the only place timeouts are counted) and its timeout
        utilization; returns the utilization and its kind (None, None when there was nothing to measure)."""
        key, base = attempt.key, attempt.attrs
        error_type = attempt.error_type
        if error_type:
            cause = attempt.cause
            attrs = attributes.variant(key, base, (semconv.ERROR_TYPE, error_type), (semconv.FAILURE_CAUSE, cause))
            if phase is not None:
                self.timeouts.add(1, attributes.variant(
                    key, base, (semconv.TIMEOUT_PHASE, phase), (semconv.FAILURE_CAUSE, cause)))
        else:
            attrs = base
        self.attempt_duration.record(now - attempt.start, attrs, ctx)
        value, kind = timeouts.utilization(
            attempt.connect_time(now), attempt.read_wait(), attempt.read_timeout, attempt.connect_timeout,
            proxy_idle_timeout)
        if value is not None:
            self.timeout_utilization.record(value, attributes.variant(key, base, (semconv.TIMEOUT_KIND, kind)), ctx)
        return value, kind

    def record_call(self, op, now: float, attrs: dict, chunked, failed: bool, ctx) -> None:
        """Records an ended call: its duration, and for a stream the first chunk, prefill and longest gap of the
        attempt that carried it, then its tokens by the name set's own rule."""
        self.operation_duration.record(now - op.start, attrs, ctx)
        if chunked is not None:
            first = chunked.first_chunk_at
            self.time_to_first_chunk.record(first - op.start, attrs, ctx)
            self.prefill_duration.record(first - chunked.body_sent_at(), attrs, ctx)
            self.stream_max_gap.record(chunked.max_gap, attrs, ctx)
        self.record_tokens(op, attrs, failed)  # chosen once, when the instruments were built

    def _default_tokens(self, op, attrs: dict, failed: bool) -> None:
        """Records gen_ai.client.token.usage by gen_ai.token.type, for successful calls only (today's contract)."""
        if failed:
            return
        usage = self.token_usage
        key, base = op.key, op.attrs
        ctx = NO_EXEMPLAR
        if op.input_tokens is not None:
            # Today's contract: input without the cached tokens, which have their own token types here (the mixin's
            # recording rules turn the latest conventions' inclusive count into this one).
            usage.record(op.input_tokens, attributes.variant(key, base, (semconv.TOKEN_TYPE, "input")), ctx)
        if op.output_tokens is not None:
            usage.record(op.output_tokens, attributes.variant(key, base, (semconv.TOKEN_TYPE, "output")), ctx)
        if op.cache_read:
            usage.record(op.cache_read, attributes.variant(key, base, (semconv.TOKEN_TYPE, "cache_read")), ctx)
        if op.cache_creation:
            usage.record(op.cache_creation,
                         attributes.variant(key, base, (semconv.TOKEN_TYPE, "cache_creation")), ctx)

    def _latest_tokens(self, op, attrs: dict, failed: bool) -> None:
        """Records the latest conventions' usage counters and per-call histograms for every inference call,
        failed ones included (0 where no usage arrived); `attrs` carry error.type when it failed."""
        if op.name not in semconv.INFERENCE_OPERATIONS:
            return
        cache_read = op.cache_read or 0
        cache_write = op.cache_creation or 0
        # Anthropic's input_tokens leaves out cached tokens; the conventions' input count includes them.
        inputs = (op.input_tokens or 0) + cache_read + cache_write
        outputs = op.output_tokens or 0
        counted = attributes.variant(op.key, op.attrs, (semconv.TOKEN_MODALITY, semconv.MODALITY_UNKNOWN))
        ctx = NO_EXEMPLAR
        self.usage_input.add(inputs, counted, ctx)
        self.usage_output.add(outputs, counted, ctx)
        self.usage_cache_read.add(cache_read, counted, ctx)
        self.usage_cache_write.add(cache_write, counted, ctx)
        self.operation_input_tokens.record(inputs, attrs, ctx)
        self.operation_output_tokens.record(outputs, attrs, ctx)


class InFlight:
    """Counts calls in flight per attribute set; read by the active_requests instrument when collected."""

    def __init__(self) -> None:
        self._counts: Dict[tuple, List] = {}
        self._lock = threading.Lock()
        at_fork_in_child(self._after_fork)

    def _after_fork(self) -> None:
        # The parent's calls are not the child's, and a lock another parent thread held at fork time would
        # stay held forever in the child.
        self._counts = {}
        self._lock = threading.Lock()

    def add(self, key: tuple, attrs: dict, delta: int) -> None:
        """Adds delta to the count of an attribute set."""
        with self._lock:
            entry = self._counts.get(key)
            if entry is None:
                self._counts[key] = [delta, attrs]
            else:
                entry[0] += delta

    def value(self, key: tuple) -> int:
        """Returns the count of an attribute set (0 when unknown)."""
        entry = self._counts.get(key)
        return entry[0] if entry is not None else 0

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        """Yields one observation per attribute set seen (zeros included, so a series goes back to 0)."""
        with self._lock:
            items = [(count, attrs) for count, attrs in self._counts.values()]
        for count, attrs in items:
            yield Observation(count, attrs)
