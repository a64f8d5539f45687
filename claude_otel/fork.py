"""What a forked worker (gunicorn --preload, multiprocessing 'fork') must not inherit from its parent.

`at_fork_in_child(callback)` is the agent's one fork hook: a single
`os.register_at_fork` site runs, in the child, every callback registered here
(in registration order, each quietly).  Callbacks are bound methods held
weakly, so registering never keeps an object alive.

The SDK restarts its own threads in a forked child; it does not give the child
an identity or counts of its own.  Two things are fixed here, for providers
configure() built:

- `service.instance.id`: a child that kept its parent's id would export
  cumulative OTLP series that collide with its parent's and siblings'
  (recent OpenTelemetry SDKs renew it themselves; older ones do not).
- metric state: the child starts from zero.  Otherwise counts the parent made
  before forking would be reported twice: by the parent and by every child
  (in the multi-process directory and in OTLP).

Both touch SDK internals, guarded: when they are missing (an SDK that changed
them) the child keeps the inherited state and a debug line says so.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
import weakref
from typing import Callable, List

from .guard import quietly

logger = logging.getLogger(__name__)

INSTANCE_ID = "service.instance.id"

_callbacks: List[weakref.WeakMethod] = []
_registered = False
_lock = threading.Lock()


def at_fork_in_child(callback: Callable[[], None]) -> None:
    """Runs the bound method `callback` in every forked child while its object lives (no-op without fork)."""
    global _registered
    with _lock:
        _callbacks.append(weakref.WeakMethod(callback))
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_in_child)
            _registered = True


def _in_child() -> None:
    """Runs the live callbacks and forgets the dead ones; never raises."""
    global _lock
    _lock = threading.Lock()  # another parent thread may have held it at fork time
    alive = []
    for ref in _callbacks:
        callback = ref()
        if callback is not None:
            alive.append(ref)
            quietly(callback)()
    _callbacks[:] = alive


def reset_metric_state(meter_provider) -> bool:
    """Returns whether every aggregation of an SDK MeterProvider was emptied (call in a forked child only).

    Also replaces the storage locks: a lock some other thread of the parent held at fork time would
    otherwise stay locked forever in the child.
    """
    try:
        consumer = meter_provider._measurement_consumer
        consumer._lock = threading.Lock()
        for storage in consumer._reader_storages.values():
            storage._lock = threading.RLock()
            for matches in storage._instrument_view_instrument_matches.values():
                for match in matches:
                    match._lock = threading.Lock()
                    match._attributes_aggregation = {}
        return True
    except Exception:
        logger.debug("claude-otel: could not reset the metric state in a forked child", exc_info=True)
        return False


def instance_id(provider) -> object:
    """Returns the service.instance.id of a tracer or meter provider's resource (None if unknown)."""
    resource = _resource(provider)
    return resource.attributes.get(INSTANCE_ID) if resource is not None else None


def _resource(provider):
    """Returns a tracer or meter provider's Resource (None if it has none the agent can find)."""
    config = getattr(provider, "_sdk_config", None)
    if config is not None:
        return config.resource
    return getattr(provider, "_resource", None)


def renew_instance_id(provider, inherited: object) -> object:
    """Returns the provider's service.instance.id, a fresh one if it still had the inherited one; never raises."""
    current = instance_id(provider)
    if current is None or current != inherited:
        return current  # the SDK renewed it already (or there is none to renew)
    fresh = str(uuid.uuid4())
    try:
        from opentelemetry.sdk.resources import Resource

        update = getattr(provider, "_update_resource", None)
        if update is not None:  # recent SDKs: providers pass a merged resource on to their tracers
            update(Resource({INSTANCE_ID: fresh}))
        else:  # older: providers and tracers share one Resource object; give it the fresh id in place
            from opentelemetry.attributes import BoundedAttributes

            resource = _resource(provider)
            attributes = dict(resource.attributes)
            attributes[INSTANCE_ID] = fresh
            resource._attributes = BoundedAttributes(attributes=attributes)
        return fresh
    except Exception:
        logger.debug("claude-otel: could not renew service.instance.id in a forked child", exc_info=True)
        return current
