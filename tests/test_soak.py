"""A soak of 100,000 calls (streaming and not, mixed, short delays): flat memory, steady per-call cost.

Marked `soak`: excluded from the default run, run by .ci/run as its own step
(`.venv/bin/python -m pytest -m soak -s`), which prints the figures per 10,000 calls.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

import anthropic
import pytest

CALLS = int(os.environ.get("CLAUDE_OTEL_SOAK_CALLS", "100000"))
SEGMENT = CALLS // 10
FAST = {"x-sim-prefill-delay": "0", "x-sim-token-delay": "0", "x-sim-output-tokens": "3"}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.soak
def test_soak_flat_memory_and_steady_overhead(sim, recorded):
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="k", max_retries=0)
    messages = [{"role": "user", "content": "hi"}]
    segments = []
    rss = []
    for segment in range(10):
        start = time.process_time()
        for i in range(SEGMENT):
            if i % 2:
                client.messages.create(model="claude-x", max_tokens=3, messages=messages, extra_headers=FAST)
            else:
                for _ in client.messages.create(model="claude-x", max_tokens=3, messages=messages, stream=True,
                                                extra_headers=FAST):
                    pass
            if i % 1000 == 999:
                recorded.clear()  # the in-memory span exporter would otherwise hold every span
        sim.reset()  # the simulator's own request log, likewise
        gc.collect()
        segments.append((time.process_time() - start) / SEGMENT * 1e6)
        rss.append(rss_mib())
        print(f"calls {(segment + 1) * SEGMENT:>7}: {segments[-1]:7.1f} µs CPU/call (client+server), "
              f"RSS {rss[-1]:7.1f} MiB", flush=True)
    assert recorded.total("gen_ai.client.operation.duration") == SEGMENT * 10
    growth = rss[-1] - rss[1]
    print(f"RSS growth after warm-up: {growth:.1f} MiB; CPU per call first/last segment: "
          f"{segments[1]:.0f}/{segments[-1]:.0f} µs")
    assert growth < 16, f"memory grew {growth:.1f} MiB over {CALLS} calls"
    assert statistics.median(segments[-3:]) < 1.5 * statistics.median(segments[1:4])
