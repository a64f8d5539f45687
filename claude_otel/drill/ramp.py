"""The incident the drill plays: two kinds of call, four phases, and what the simulator serves each call when.

The application calls one model streamed with a short read timeout ("chat") and another non-streamed with a long
timeout ("report"); a proxy that cuts connections idle for PROXY_IDLE seconds sits in front of both, as a load
balancer does.  The proxy's idle timeout lies between the two client timeouts, so the same proxy cuts the reports
(their 15 s timeout never governs) while the chats time out first (their 5 s read timeout is the shorter limit):
one incident shows both failure causes, each on its own model.

Waits are absolute seconds, sent per request as x-sim-* headers, so the ramp does not depend on the simulator's
time scale.  The margins to the limits (0.4 s and more during the warning phases) absorb the scheduling jitter
of a busy two-core machine: a call that times out before phase 4 would make the warnings' lead time a lie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..demo.workload import OPUS, SONNET

PROXY_IDLE = 6.0  # the proxy's idle timeout, served by the simulator and declared to the agent


@dataclass(frozen=True)
class CallKind:
    """One kind of call the drill's application makes."""

    name: str
    model: str
    stream: bool
    timeout: float  # the client timeout given to the SDK (read timeout included)
    rate: float  # calls started per second


CHAT = CallKind("chat", SONNET, True, 5.0, 2.0)
REPORT = CallKind("report", OPUS, False, 15.0, 1.0)
KINDS = (CHAT, REPORT)
TAIL_EVERY = 4  # every 4th chat call is one of the slow tail: closer to the limit than the others


@dataclass(frozen=True)
class Phase:
    """A stretch of the incident: how long the chats' prefill and the reports' wait for a response last."""

    name: str
    title: str
    duration: float  # seconds; the last phase's is the most it lasts (the drill ends it once the page is in)
    chat_wait: Tuple[float, float]  # chat prefill at the phase's start and end (linear ramp over `ramp` s)
    report_wait: Tuple[float, float]  # report wait for the response, likewise
    ramp: float = 0.0  # seconds over which the waits move from their start to their end value
    tail_extra: float = 0.0  # extra prefill of the tail chat calls
    injects: Optional[str] = None  # the failure cause this phase adds (anthropic.failure.cause)

    def waits(self, elapsed: float, tail: bool = False) -> Tuple[float, float]:
        """Returns (chat prefill, report wait) in seconds for a call started `elapsed` s into the phase."""
        share = 1.0 if self.ramp <= 0 else min(max(elapsed / self.ramp, 0.0), 1.0)
        chat = self.chat_wait[0] + (self.chat_wait[1] - self.chat_wait[0]) * share
        report = self.report_wait[0] + (self.report_wait[1] - self.report_wait[0]) * share
        return chat + (self.tail_extra * share if tail else 0.0), report


HEALTHY_CHAT, HEALTHY_REPORT = 0.6, 1.5  # 12% of the chat read timeout, 25% of the proxy idle timeout
# The chats hold at 85% of their 5 s read timeout (the tail at 92%), the reports at 88% of the 6 s proxy idle
# timeout that governs them: ClaudeRequestsNearTimeout (>10% of attempts over 80%, 15 s `for` once scaled) and
# ClaudeRequestsVeryNearTimeout (>2% over 90%, 10 s) fire during phase 2, before anything has failed.
NEAR_CHAT, NEAR_REPORT, TAIL_EXTRA = 4.25, 5.3, 0.35

INCIDENT: List[Phase] = [
    Phase("healthy", "healthy traffic", 15.0, (HEALTHY_CHAT, HEALTHY_CHAT), (HEALTHY_REPORT, HEALTHY_REPORT)),
    Phase("prefill-grows", "prefill grows: read waits approach the limits", 30.0,
          (HEALTHY_CHAT, NEAR_CHAT), (HEALTHY_REPORT, NEAR_REPORT), ramp=10.0, tail_extra=TAIL_EXTRA),
    Phase("proxy-cuts", "the reports outgrow the proxy's idle timeout: the proxy cuts them", 20.0,
          (NEAR_CHAT, NEAR_CHAT), (8.0, 8.0), tail_extra=TAIL_EXTRA, injects="proxy_idle_cut"),
    Phase("timeouts", "the chats' prefill outgrows their read timeout: timeouts", 40.0,
          (7.0, 7.0), (8.0, 8.0), injects="client_read_timeout"),
]
PAGE_SETTLE = 5.0  # the last phase ends this long after the first page reached the webhook


def healthy(duration: float) -> List[Phase]:
    """Returns the healthy mode's single phase: the incident's first phase for `duration` seconds."""
    first = INCIDENT[0]
    return [Phase(first.name, first.title, duration, first.chat_wait, first.report_wait)]


class Ramp:
    """The phases laid end to end: which phase (and which waits) a call started at drill time t gets."""

    def __init__(self, phases: List[Phase]) -> None:
        self.phases = list(phases)
        self.starts = []
        t = 0.0
        for phase in self.phases:
            self.starts.append(t)
            t += phase.duration
        self.length = t

    def index_at(self, t: float) -> int:
        """Returns the index of the phase running at drill time t (the last one from its start on)."""
        for i in range(len(self.phases) - 1, -1, -1):
            if t >= self.starts[i]:
                return i
        return 0

    def waits(self, t: float, tail: bool = False) -> Tuple[float, float]:
        """Returns (chat prefill, report wait) in seconds for a call started at drill time t."""
        i = self.index_at(t)
        return self.phases[i].waits(t - self.starts[i], tail)

    def start_of(self, injects: str) -> Optional[float]:
        """Returns the drill time at which the phase injecting this cause starts, or None if none does."""
        for phase, start in zip(self.phases, self.starts):
            if phase.injects == injects:
                return start
        return None
