"""Sharing metric snapshots between worker processes (gunicorn, uvicorn --workers) through a directory.

Each process writes its cumulative snapshot to `<dir>/claude_otel_<pid>.json`
every `interval` seconds (1 s), at fork-free exit and on `Handle.shutdown()`
(write to a temporary file, then `os.replace`, so a reader never sees half a
file).  The scraped process merges its own live snapshot with every other
file:

- counters and histograms are summed over every process, exited ones included
  (as in prometheus_client's multiprocess mode), so totals never go backwards
  when a worker is recycled;
- gauges that sum (in-flight requests) count live processes only: the file of
  an exited process (`os.kill(pid, 0)` fails) contributes none;
- last-value gauges (rate-limit remaining) take the value that changed most
  recently in any process.

Staleness: another worker's figures are at most `interval` seconds old (plus
the time to write one small JSON file); the scraped process's own are live.

The files of exited processes are folded into one archive file
(`claude_otel_exited.json`, counters and histograms only) under an exclusive
`flock`, so the directory holds one file per live worker plus one, however
many workers come and go.  Readers hold a shared lock while reading, so they
never count an exited worker twice (once in the archive, once in its file).

Clear the directory when the whole service (re)starts, as with
PROMETHEUS_MULTIPROC_DIR: files left by an earlier run would otherwise be
added to this run's totals.  `clear(directory)` does it (gunicorn: call it in
the `on_starting` hook, which runs in the master before any worker exists).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import weakref
from typing import Callable, Dict, List

from ..fork import at_fork_in_child
from ..guard import run_with_deadline
from .prometheus.snapshots import encode, merge, read_file, write_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no archive
    fcntl = None

logger = logging.getLogger(__name__)

PREFIX = "claude_otel_"
ARCHIVE = PREFIX + "exited.json"
LOCK = PREFIX + "lock"


def clear(directory: str) -> int:
    """Removes claude-otel's files (and only those) from a multi-process directory; returns how many; never raises."""
    removed = 0
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    for name in names:
        if name.startswith((PREFIX, "." + PREFIX)):
            try:
                os.remove(os.path.join(directory, name))
                removed += 1
            except OSError:
                logger.debug("claude-otel: could not remove %s from %s", name, directory, exc_info=True)
    return removed


def alive(pid: int) -> bool:
    """Returns whether a process with that pid exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def without_live_gauges(snap: Dict[str, dict]) -> Dict[str, dict]:
    """Returns a snapshot without the gauges that only live processes contribute (summed gauges)."""
    return {n: fam for n, fam in snap.items() if not (fam["type"] == "gauge" and fam["agg"] == "sum")}


EXIT_TIMEOUT = 2.0


class SharedSnapshots:
    """Writes this process's snapshot to the shared directory and reads the other processes' snapshots."""

    def __init__(self, directory: str, take: Callable[[], Dict[str, dict]], interval: float = 1.0) -> None:
        self.directory = directory
        self._take = take
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None
        self._written = None
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".{PREFIX}probe_{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
        self._start()
        me = weakref.ref(self)
        atexit.register(lambda: me() is not None and me().write_bounded(EXIT_TIMEOUT))
        at_fork_in_child(self._after_fork)

    def _start(self) -> None:
        """Starts the thread that writes this process's snapshot every interval."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="claude-otel-multiproc", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child: restarts the writer, which then writes the child's own file."""
        # Only the forking thread survives fork.  The parent's file stays the parent's (and the child's metric
        # state starts empty, see claude_otel.fork).
        self._written = None
        if not self._stop.is_set():
            self._start()

    def _loop(self) -> None:
        """Writes the snapshot every interval until stopped."""
        while not self._stop.wait(self._interval):
            self.write()

    def path(self, pid: int) -> str:
        """Returns the snapshot file of a process."""
        return os.path.join(self.directory, f"{PREFIX}{pid}.json")

    def write(self) -> None:
        """Writes this process's snapshot atomically (skipped when unchanged); never raises."""
        try:
            snap = self._take()
            pid = os.getpid()
            text = json.dumps(encode(snap), sort_keys=True)
            if text == self._written and os.path.exists(self.path(pid)):
                return
            write_file(self.path(pid), snap, pid)
            self._written = text
        except Exception:
            logger.debug("claude-otel: could not write the multi-process snapshot", exc_info=True)

    @contextlib.contextmanager
    def _locked(self, exclusive: bool, wait: bool = True):
        """Yields whether the directory's flock was taken (True where there is no flock to take)."""
        if fcntl is None:
            yield True
            return
        try:
            fd = os.open(os.path.join(self.directory, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield True
            return
        try:
            flags = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
            try:
                fcntl.flock(fd, flags if wait else flags | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _files(self) -> Dict[int, str]:
        """Returns {pid: path} of the per-process snapshot files in the directory."""
        found = {}
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            if not (name.startswith(PREFIX) and name.endswith(".json")) or name == ARCHIVE:
                continue
            try:
                found[int(name[len(PREFIX):-len(".json")])] = os.path.join(self.directory, name)
            except ValueError:
                continue
        return found

    def others(self) -> List[Dict[str, dict]]:
        """Returns the snapshots of every other process (exited ones without their summed gauges)."""
        found = []
        me = os.getpid()
        exited = 0
        with self._locked(exclusive=False):
            archive = os.path.join(self.directory, ARCHIVE)
            if os.path.exists(archive):
                with contextlib.suppress(Exception):
                    found.append(read_file(archive))
            for pid, path in self._files().items():
                if pid == me:
                    continue
                try:
                    snap = read_file(path)
                except Exception:
                    continue
                if not alive(pid):
                    exited += 1
                    snap = without_live_gauges(snap)
                found.append(snap)
        if exited:
            self.compact()
        return found

    def compact(self) -> int:
        """Folds the files of exited processes into the archive; returns how many; never raises."""
        try:
            with self._locked(exclusive=True, wait=False) as got:
                if not got or fcntl is None:
                    return 0
                dead = {pid: path for pid, path in self._files().items() if pid != os.getpid() and not alive(pid)}
                if not dead:
                    return 0
                archive = os.path.join(self.directory, ARCHIVE)
                parts = []
                if os.path.exists(archive):
                    parts.append(read_file(archive))
                for path in dead.values():
                    try:
                        parts.append(without_live_gauges(read_file(path)))
                    except Exception:
                        continue
                write_file(archive, merge(parts), os.getpid())
                for path in dead.values():
                    with contextlib.suppress(OSError):
                        os.remove(path)
                return len(dead)
        except Exception:
            logger.debug("claude-otel: could not compact the multi-process directory", exc_info=True)
            return 0

    def write_bounded(self, timeout: float) -> bool:
        """Writes this process's snapshot, waiting at most `timeout` seconds; returns whether it finished."""
        # At exit: a process that cannot collect its metrics (a lock some thread held when it was forked) must
        # still exit, without its last snapshot, rather than hang its server's shutdown.
        if run_with_deadline(self.write, timeout, "claude-otel-multiproc-exit"):
            return True
        logger.warning("claude-otel: the last multi-process snapshot was not written within %.0f s", timeout)
        return False

    def stop(self, timeout: float = EXIT_TIMEOUT) -> None:
        """Stops the writer thread after one last write (waiting at most `timeout` seconds)."""
        self._stop.set()
        self.write_bounded(timeout)
