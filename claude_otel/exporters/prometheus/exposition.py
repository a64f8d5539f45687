"""Serving the agent's metrics: the /metrics server, and WSGI/ASGI apps to mount on the application's own server.

`make_wsgi_app()` / `make_asgi_app()` serve configure()'s registry, looked up
at each scrape, so they can be mounted before configure() runs.  `expose()`
is what configure() calls: the collector, its dedicated registry, sharing with
other worker processes (see `..multiprocess`) and the server when a port is
set, each problem as one message naming the setting.
"""

from __future__ import annotations

import errno
import logging
import socket
from dataclasses import dataclass, field
from typing import List, Optional

from prometheus_client.core import CollectorRegistry

from ...guard import quietly
from .collector import PrometheusCollector, PrometheusReader

logger = logging.getLogger(__name__)


class Server:
    """The /metrics HTTP server (prometheus_client's), on a daemon thread."""

    def __init__(self, registry: CollectorRegistry, port: int, addr: str) -> None:
        from prometheus_client import start_http_server

        result = start_http_server(port, addr=addr, registry=registry)
        self._server = result[0] if isinstance(result, tuple) else None
        self.port = self._server.server_address[1] if self._server is not None else port
        host = addr if addr not in ("0.0.0.0", "", "::") else "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        self.url = f"http://{host}:{self.port}/metrics"

    @quietly
    def close(self) -> None:
        """Stops serving; never raises."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @quietly
    def forget(self) -> None:
        """In a forked child: closes its copy of the listening socket (the parent keeps serving); never raises."""
        server, self._server = self._server, None
        if server is not None:
            server.socket.close()


def _unserved(exc: Exception, port: int, addr: str, port_setting: str, shared: bool) -> str:
    """Returns the message saying why /metrics cannot be served on addr:port, naming the setting to change."""
    if not isinstance(exc, OSError):
        return f"{port_setting}={port} on {addr} cannot be served ({exc}); /metrics is not served"
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        extra = " by this process (with several workers, the one that bound it serves every worker's totals)" \
            if shared else ""
        return f"{port_setting}={port} is already in use on {addr} ({reason}); /metrics is not served{extra}"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return f"CLAUDE_OTEL_PROMETHEUS_ADDR={addr!r} cannot be listened on ({reason}); /metrics is not served"
    if exc.errno == errno.EACCES:
        return (f"{port_setting}={port} needs privileges this process lacks ({reason}); use a port above 1023; "
                "/metrics is not served")
    return f"{port_setting}={port} on {addr} cannot be served ({reason}); /metrics is not served"


@dataclass
class Exposition:
    """What expose() set up: the collector and its registry, the multi-process sharing, the server if any."""

    collector: PrometheusCollector
    registry: CollectorRegistry
    shared: object = None
    server: Optional[Server] = None
    problems: List[str] = field(default_factory=list)


def expose(reader: PrometheusReader, multiproc_dir: Optional[str], multiproc_setting: str, port: Optional[int],
           port_setting: str, addr: str) -> Exposition:
    """Returns the exposition of the reader's metrics, made the default of make_wsgi_app()/make_asgi_app().

    With a multi-process directory, every worker's totals; with a port, a /metrics server on addr.  A problem
    (a directory that cannot be written, a port in use) is listed in `problems` and the rest still works.
    """
    problems = []
    shared = None
    if multiproc_dir:
        from ..multiprocess import SharedSnapshots

        try:
            shared = SharedSnapshots(multiproc_dir, reader.snapshot)
        except OSError as exc:
            problems.append(f"{multiproc_setting}={multiproc_dir!r} is not usable ({exc}); /metrics reports this "
                            "process only")
    collector = PrometheusCollector(reader, shared)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    set_default_registry(registry)
    server = None
    if port is not None:
        try:
            server = Server(registry, port, addr)
        except Exception as exc:
            problems.append(_unserved(exc, port, addr, port_setting, shared is not None))
    return Exposition(collector, registry, shared, server, problems)


class _Configured:
    """What make_wsgi_app()/make_asgi_app() serve by default: configure()'s registry, looked up at each scrape.

    So the app may be mounted before configure() runs (module import order does not matter); until then it
    serves an empty exposition and logs one warning.
    """

    def __init__(self) -> None:
        self.registry: Optional[CollectorRegistry] = None
        self._warned = False

    def describe(self):
        """Returns no names up front, so registering never triggers a collection."""
        return []

    def collect(self):
        """Returns configure()'s metric families, or none (with one warning) before configure() has run."""
        registry = self.registry
        if registry is None:
            if not self._warned:
                self._warned = True
                logger.warning("claude-otel: /metrics is mounted but claude_otel.configure(prometheus=True) has not "
                               "run (or CLAUDE_OTEL_MULTIPROC_DIR / CLAUDE_OTEL_PROMETHEUS_PORT is unset); it serves "
                               "nothing yet")
            return []
        return list(registry.collect())


_CONFIGURED = _Configured()
_DEFAULT_REGISTRY = CollectorRegistry(auto_describe=False)
_DEFAULT_REGISTRY.register(_CONFIGURED)


def make_wsgi_app(registry: Optional[CollectorRegistry] = None):
    """Returns a WSGI app serving configure()'s metrics (or the registry given) in Prometheus or OpenMetrics."""
    from prometheus_client import make_wsgi_app as _make

    return _make(registry or _DEFAULT_REGISTRY)


def make_asgi_app(registry: Optional[CollectorRegistry] = None):
    """Returns an ASGI app serving configure()'s metrics (or the registry given) in Prometheus or OpenMetrics."""
    from prometheus_client import make_asgi_app as _make

    return _make(registry or _DEFAULT_REGISTRY)


def set_default_registry(registry: Optional[CollectorRegistry]) -> None:
    """Makes registry the one make_wsgi_app()/make_asgi_app() serve by default (configure() calls this)."""
    _CONFIGURED.registry = registry
