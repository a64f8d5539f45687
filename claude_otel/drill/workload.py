"""The drill's application: the demo's Workload, its calls shaped by the ramp, and when each outcome first came.

The calls go through the real SDK with claude-otel configured; like the demo's, this application only catches
the SDK's exceptions.  It also notes the drill time of the first timeout and of the first connection cut, the
zero of the timeline, and counts outcomes per phase and kind for the report.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, List, Optional

import anthropic

from ..demo.workload import Scenario, Workload, create, stream
from .ramp import CHAT, KINDS, REPORT, TAIL_EVERY, CallKind, Ramp

OUTPUT_TOKENS = 20


class Outcomes:
    """What the application saw: per phase and kind the count of each outcome, and the first failures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Dict[int, Dict[str, Dict[str, int]]] = {}
        self.first: Dict[str, float] = {}  # outcome -> drill time it was first seen (timeout, connection_error)
        self.first_detail: Dict[str, str] = {}

    def note(self, phase: int, kind: CallKind, outcome: str, at: float, detail: str = "") -> bool:
        """Counts one call's outcome (ok, timeout, connection_error, other) ending at drill time `at`; returns
        whether it is the first failure of its kind."""
        with self._lock:
            per_kind = self.counts.setdefault(phase, {}).setdefault(kind.name, {})
            per_kind[outcome] = per_kind.get(outcome, 0) + 1
            if outcome != "ok" and outcome not in self.first:
                self.first[outcome] = at
                self.first_detail[outcome] = detail
                return True
            return False

    def snapshot(self) -> Dict[int, Dict[str, Dict[str, int]]]:
        """Returns a copy of the counts: {phase index: {kind: {outcome: calls}}}."""
        with self._lock:
            return {p: {k: dict(v) for k, v in kinds.items()} for p, kinds in self.counts.items()}


def outcome_of(exc: BaseException) -> str:
    """Returns how the application names a call's failure: timeout, connection_error or other."""
    if isinstance(exc, anthropic.APITimeoutError):  # a subclass of APIConnectionError: test it first
        return "timeout"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection_error"
    return "other"


class DrillWorkload(Workload):
    """The demo's Workload with the drill's scenarios: chats and reports whose waits follow the ramp.

    max_retries is 0, so each call is one attempt and the first timeout the application sees is the first one
    any attempt had (with retries the SDK would hide the first ones for a while).
    """

    def __init__(self, base_url: str, ramp: Ramp, started_at: float, on_failure=None) -> None:
        self.ramp = ramp
        self.started_at = started_at  # time.monotonic() of drill time 0
        self.outcomes = Outcomes()
        self.on_failure = on_failure  # called (outcome, kind, drill time, detail) for each first failure
        self._chats = 0
        self._chats_lock = threading.Lock()
        super().__init__(base_url, rate=sum(k.rate for k in KINDS), only="drill", workers=64, timeout=CHAT.timeout,
                         max_retries=0)

    def choose(self, only: Optional[str]) -> List[Scenario]:
        """Returns the dispatch order: two chats for each report, as the kinds' rates say (2/s and 1/s)."""
        chat = Scenario("chat", "a streamed chat call", lambda c: self._call(CHAT, c))
        report = Scenario("report", "a non-streamed report call", lambda c: self._call(REPORT, c))
        return [chat, report, chat]

    def now(self) -> float:
        """Returns the drill time: seconds since drill time 0."""
        return time.monotonic() - self.started_at

    def _call(self, kind: CallKind, clients) -> None:
        """Makes one call of `kind` with the waits the ramp gives for now; re-raises its exception (the demo's
        Workload tallies it)."""
        start = self.now()
        phase = self.ramp.index_at(start)
        if kind is CHAT:
            with self._chats_lock:
                self._chats += 1
                tail = self._chats % TAIL_EVERY == 0
        else:
            tail = False
        chat_wait, report_wait = self.ramp.waits(start, tail)
        try:
            if kind.stream:
                stream(clients, kind.model, timeout=kind.timeout, max_retries=0, prefill_delay=f"{chat_wait:.3f}",
                       token_delay=0.02, output_tokens=OUTPUT_TOKENS)
            else:
                create(clients, kind.model, timeout=kind.timeout, max_retries=0, headers_delay=f"{report_wait:.3f}",
                       prefill_delay=0, token_delay=0, output_tokens=OUTPUT_TOKENS)
        except Exception as exc:
            outcome, at = outcome_of(exc), self.now()
            detail = f"{kind.name} ({kind.model}, {'streamed' if kind.stream else 'non-streamed'}): " \
                     f"{type(exc).__name__}: {exc}"
            if self.outcomes.note(phase, kind, outcome, at, detail) and self.on_failure is not None:
                self.on_failure(outcome, kind, at, detail)
            raise
        self.outcomes.note(phase, kind, "ok", self.now())


__all__ = ["DrillWorkload", "Outcomes", "outcome_of"]
