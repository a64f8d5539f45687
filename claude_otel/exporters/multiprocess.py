"""Sharing metric snapshots between worker processes (gunicorn, uvicorn --workers) through a directory.

Each process writes its cumulative snapshot to `<dir>/claude_otel_<pid>.json`
every `interval` seconds and at exit (write to a temporary file, then rename,
so a reader never sees half a file).  The scraped worker merges its own live
snapshot with every other file: counters and histograms of exited workers stay
in the totals (as in prometheus_client's multiprocess mode); gauges that sum
(in-flight requests) count live workers only.  Other workers' figures are at
most `interval` seconds old.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from typing import Callable, Dict, List

logger = logging.getLogger("claude_otel")

PREFIX = "claude_otel_"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _encode(snap: Dict[str, dict]) -> dict:
    return {name: dict(family, samples=[[list(map(list, key)), sample] for key, sample in family["samples"].items()])
            for name, family in snap.items()}


def _decode(data: dict) -> Dict[str, dict]:
    return {name: dict(family, samples={tuple(tuple(p) for p in key): sample for key, sample in family["samples"]})
            for name, family in data.items()}


class SharedSnapshots:
    """Writes this process's snapshot to the shared directory and reads the other processes' snapshots."""

    def __init__(self, directory: str, take: Callable[[], Dict[str, dict]], interval: float = 1.0) -> None:
        self.directory = directory
        self._take = take
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None
        os.makedirs(directory, exist_ok=True)
        self._start()
        atexit.register(self.write)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="claude-otel-multiproc", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        # The child's threads did not survive the fork; its snapshot goes under its own pid.
        self._start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.write()

    def path(self, pid: int) -> str:
        """Returns the snapshot file of a process."""
        return os.path.join(self.directory, f"{PREFIX}{pid}.json")

    def write(self) -> None:
        """Writes this process's snapshot atomically; never raises."""
        try:
            snap = self._take()
            pid = os.getpid()
            tmp = self.path(pid) + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"pid": pid, "families": _encode(snap)}, f)
            os.replace(tmp, self.path(pid))
        except Exception:
            logger.debug("claude-otel: could not write the multi-process snapshot", exc_info=True)

    def others(self) -> List[Dict[str, dict]]:
        """Returns the snapshots of every other process (exited ones without their summed gauges)."""
        found = []
        me = os.getpid()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            if not (name.startswith(PREFIX) and name.endswith(".json")):
                continue
            try:
                pid = int(name[len(PREFIX):-len(".json")])
            except ValueError:
                continue
            if pid == me:
                continue
            try:
                with open(os.path.join(self.directory, name)) as f:
                    snap = _decode(json.load(f)["families"])
            except Exception:
                continue
            if not _alive(pid):
                snap = {n: fam for n, fam in snap.items() if not (fam["type"] == "gauge" and fam["agg"] == "sum")}
            found.append(snap)
        return found

    def stop(self) -> None:
        """Stops the writer thread after one last write."""
        self._stop.set()
        self.write()
