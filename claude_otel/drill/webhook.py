"""The drill's pager and ticket system: an in-process HTTP server Alertmanager's webhooks post to.

Alertmanager sends one notification per group (here per job and model) holding every alert of the group, again
at each group interval while any is firing; the webhook keeps the first arrival of each alert, which is when a
human would have been paged or ticketed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional

RECEIVERS = ("pager", "tickets")  # the receivers of examples/alertmanager/alertmanager.yml, one path each


@dataclass
class Arrival:
    """One alert as it first reached the webhook."""

    at: float  # drill time (seconds) of its first arrival
    receiver: str  # pager or tickets: the path Alertmanager posted to
    labels: Dict[str, str]
    annotations: Dict[str, str]
    starts_at: str
    resolved_at: Optional[float] = None  # drill time a "resolved" notification for it arrived, if one did

    @property
    def name(self) -> str:
        """Returns the alert's name."""
        return self.labels.get("alertname", "?")

    @property
    def severity(self) -> str:
        """Returns the alert's severity label (critical pages, warning tickets)."""
        return self.labels.get("severity", "?")


@dataclass
class Webhook:
    """Receives Alertmanager notifications on 127.0.0.1 (port chosen by the system) until stop()."""

    clock: Callable[[], float]  # returns the drill time
    on_arrival: Optional[Callable[[Arrival], None]] = None
    arrivals: List[Arrival] = field(default_factory=list)
    notifications: int = 0
    problems: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: Dict[str, Arrival] = {}
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                """Records a notification and answers 200 (anything else makes Alertmanager retry)."""
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                webhook._receive(self.path.strip("/").split("?")[0], body)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                """Returns without logging: the drill prints its own timeline."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="claude-otel-drill-webhook",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Returns the base URL; Alertmanager posts to URL/pager and URL/tickets."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _receive(self, receiver: str, body: bytes) -> None:
        """Records the first arrival of each firing alert of one notification (and resolutions)."""
        now = self.clock()
        try:
            payload = json.loads(body)
            alerts = payload.get("alerts") or []
        except (ValueError, AttributeError) as exc:
            with self._lock:
                self.problems.append(f"a notification to /{receiver} was not Alertmanager's JSON: {exc}")
            return
        new = []
        with self._lock:
            self.notifications += 1
            for alert in alerts:
                labels = alert.get("labels") or {}
                key = alert.get("fingerprint") or json.dumps(labels, sort_keys=True)
                seen = self._by_key.get(key)
                if alert.get("status") == "resolved":
                    if seen is not None and seen.resolved_at is None:
                        seen.resolved_at = now
                    continue
                if seen is None:
                    seen = self._by_key[key] = Arrival(now, receiver, dict(labels),
                                                       dict(alert.get("annotations") or {}),
                                                       alert.get("startsAt", ""))
                    self.arrivals.append(seen)
                    new.append(seen)
        for arrival in new:
            if self.on_arrival is not None:
                self.on_arrival(arrival)

    def first(self, predicate: Callable[[Arrival], bool]) -> Optional[Arrival]:
        """Returns the earliest arrival for which predicate holds, or None."""
        with self._lock:
            found = [a for a in self.arrivals if predicate(a)]
        return min(found, key=lambda a: a.at) if found else None

    def snapshot(self) -> List[Arrival]:
        """Returns the arrivals so far, earliest first."""
        with self._lock:
            return sorted(self.arrivals, key=lambda a: a.at)

    def stop(self) -> None:
        """Stops serving and joins the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

