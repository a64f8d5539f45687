"""Attribute sets of one call, drawn only from small closed sets so metric cardinality stays bounded."""

from __future__ import annotations

import re
import threading
from typing import Dict, Tuple

from . import semconv

OTHER = "_OTHER"
_OPERATIONS = (
    # (path suffix pattern, gen_ai.operation.name); first match wins.
    (re.compile(r"/messages/count_tokens$"), "count_tokens"),
    (re.compile(r"/messages/batches(/|$)"), "batches"),
    (re.compile(r"/messages$"), "chat"),
    (re.compile(r"/invoke(-with-response-stream)?$|:(stream)?raw[pP]redict$"), "chat"),
    (re.compile(r"/complete$"), "text_completion"),
    (re.compile(r"/models(/|$)"), "models"),
    (re.compile(r"/files(/|$)"), "files"),
)
_ID_SEGMENT = re.compile(r"/[A-Za-z]+_[A-Za-z0-9_-]{8,}|/[0-9a-f-]{16,}")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,99}$")


_OPERATION_CACHE: Dict[str, str] = {}


def operation_name(path: str) -> str:
    """Returns gen_ai.operation.name for an API path (chat, count_tokens, batches, ...); never raises."""
    found = _OPERATION_CACHE.get(path)
    if found is not None:
        return found
    bare = path.split("?", 1)[0]
    found = "other"
    for pattern, name in _OPERATIONS:
        if pattern.search(bare):
            found = name
            break
    if len(_OPERATION_CACHE) < 1024:  # paths with ids (batches/<id>) must not grow it without bound
        _OPERATION_CACHE[path] = found
    return found


_ROUTE_CACHE: Dict[str, str] = {}


def route(path: str) -> str:
    """Returns the path with ids replaced by {id}, for low-cardinality span names."""
    found = _ROUTE_CACHE.get(path)
    if found is None:
        found = _ID_SEGMENT.sub("/{id}", path.split("?", 1)[0])
        if len(_ROUTE_CACHE) < 1024:  # paths with ids must not grow it without bound
            _ROUTE_CACHE[path] = found
    return found


class ModelGuard:
    """Caps how many distinct model names reach metric attributes; the rest become _OTHER."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: Dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, model: object) -> str:
        """Returns the model name to record: itself while under the cap, else _OTHER; never raises."""
        if not isinstance(model, str):
            return OTHER if model is not None else "unknown"
        known = self._seen.get(model)
        if known is not None:
            return known
        with self._lock:
            if model in self._seen:
                return self._seen[model]
            value = model if _MODEL_NAME.match(model) and len(self._seen) < self._limit else OTHER
            self._seen[model] = value if len(self._seen) < self._limit * 4 else OTHER
            return value


_SERVERS: Dict[str, Tuple[str, int]] = {}
# By identity first: formatting an httpx URL as a string costs more than the rest of this lookup.  The entry keeps
# the (immutable) URL object alive, so its id cannot be reused by another object while it is cached.
_SERVERS_BY_ID: Dict[int, Tuple[object, Tuple[str, int]]] = {}


def server_of(base_url: object) -> Tuple[str, int]:
    """Returns (server.address, server.port) of a client's base URL, cached; never raises."""
    entry = _SERVERS_BY_ID.get(id(base_url))
    if entry is not None and entry[0] is base_url:
        return entry[1]
    key = str(base_url)
    found = _SERVERS.get(key)
    if found is not None:
        _remember(base_url, found)
        return found
    try:
        host = getattr(base_url, "host", None) or "unknown"
        port = getattr(base_url, "port", None)
        scheme = getattr(base_url, "scheme", "https")
        if port is None:
            port = 80 if scheme == "http" else 443
        found = (str(host), int(port))
    except Exception:
        found = ("unknown", 0)
    if len(_SERVERS) < 256:
        _SERVERS[key] = found
        _remember(base_url, found)
    return found


def _remember(base_url: object, server: Tuple[str, int]) -> None:
    """Caches server_of's answer by identity for an (immutable) httpx URL."""
    if len(_SERVERS_BY_ID) < 256 and type(base_url).__name__ == "URL":
        _SERVERS_BY_ID[id(base_url)] = (base_url, server)


_BASE_CACHE: Dict[tuple, Dict[str, object]] = {}
_VARIANT_CACHE: Dict[tuple, Dict[str, object]] = {}


def base(operation: str, model: str, server: Tuple[str, int], stream: bool,
         stream_attribute: str = semconv.REQUEST_STREAM) -> Tuple[tuple, Dict[str, object]]:
    """Returns (key, attributes) every metric of a call carries; the dict is cached, so never mutate it."""
    key = (operation, model, server, stream, stream_attribute)
    attrs = _BASE_CACHE.get(key)
    if attrs is None:
        attrs = {
            semconv.OPERATION_NAME: operation,
            semconv.PROVIDER_NAME: semconv.PROVIDER,
            semconv.REQUEST_MODEL: model,
            semconv.SERVER_ADDRESS: server[0],
            semconv.SERVER_PORT: server[1],
            stream_attribute: stream,  # anthropic.request.stream, or gen_ai.request.stream in the latest set
        }
        if len(_BASE_CACHE) < 4096:
            _BASE_CACHE[key] = attrs
    return key, attrs


def variant(key: tuple, attrs: Dict[str, object], *pairs: Tuple[str, object]) -> Dict[str, object]:
    """Returns the base attributes plus (name, value) pairs whose value is not None; cached, never mutate it."""
    cache_key = key + pairs
    found = _VARIANT_CACHE.get(cache_key)
    if found is None:
        found = dict(attrs)
        for name, value in pairs:
            if value is not None:
                found[name] = value
        if len(_VARIANT_CACHE) < 16384:
            _VARIANT_CACHE[cache_key] = found
    return found
