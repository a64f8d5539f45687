"""Child processes with a deadline on every read and wait, killed (with their process group) when a test ends.

A test that waits on a child without a deadline hangs CI when the child hangs; these helpers turn that into a
failure that names what was awaited.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import threading
import time
import urllib.request
from typing import Callable, List, Optional, TypeVar

T = TypeVar("T")

_EOF = object()


class _LineReader:
    """Reads a pipe's lines in a daemon thread so a reader can wait for one with a timeout."""

    def __init__(self, stream) -> None:
        self.lines: "queue.Queue" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._run, args=(stream,), daemon=True).start()

    def _run(self, stream) -> None:
        try:
            for line in stream:
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        self.lines.put(_EOF)


_READERS_LOCK = threading.Lock()


def _reader(proc: subprocess.Popen) -> _LineReader:
    """Returns the reader that owns this child's stdout, started on first use.

    Kept on the Popen object itself: a table keyed by id(proc.stdout) handed a new child the reader of an earlier,
    garbage-collected one whose pipe object had the same id (and so that child's old lines)."""
    with _READERS_LOCK:
        reader = getattr(proc, "_claude_otel_reader", None)
        if reader is None:
            reader = proc._claude_otel_reader = _LineReader(proc.stdout)
        return reader


def read_line(proc: subprocess.Popen, timeout: float = 30.0, what: str = "a line") -> str:
    """Returns the next line of `proc.stdout` (a pipe), waiting at most `timeout` seconds; raises AssertionError
    naming `what` and the lines read so far when none comes in time or the child closes its stdout first.

    Once used on a child, read its stdout only through this function (a thread owns the pipe)."""
    reader = _reader(proc)
    try:
        line = reader.lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no {what} from pid {proc.pid} within {timeout} s; read so far: "
                             f"{''.join(map(str, reader.seen))[-2000:]!r}") from None
    if line is _EOF:
        reader.lines.put(_EOF)  # later reads see the end too
        raise AssertionError(f"pid {proc.pid} closed its stdout (exit code {proc.poll()}) before {what}; "
                             f"read so far: {''.join(map(str, reader.seen))[-2000:]!r}")
    reader.seen.append(line)
    return line


def read_rest(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """Returns the rest of `proc.stdout` once the child closed it, waiting at most `timeout` seconds; raises
    AssertionError when it is still open then (for a child already read with read_line)."""
    reader = _reader(proc)
    deadline = time.monotonic() + timeout
    rest = []
    while True:
        try:
            line = reader.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"pid {proc.pid} still writes after {timeout} s; last: {''.join(rest)[-2000:]!r}") \
                from None
        if line is _EOF:
            reader.lines.put(_EOF)
            return "".join(rest)
        reader.seen.append(line)
        rest.append(line)


def read_until(proc: subprocess.Popen, predicate: Callable[[str], bool], timeout: float = 30.0,
               what: str = "the expected line") -> str:
    """Returns the first line of `proc.stdout` for which `predicate` holds, all within `timeout` seconds; raises
    AssertionError (see read_line) otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        line = read_line(proc, max(0.0, deadline - time.monotonic()), what)
        if predicate(line):
            return line


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0, group: bool = False) -> int:
    """Sends `sig` to the child (or its process group), waits `timeout` seconds, then SIGKILLs it; returns its exit
    code. Never raises for a child that is already gone."""
    if proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc, group)
    return proc.wait(10)


def kill(proc: subprocess.Popen, group: bool = False) -> None:
    """SIGKILLs the child (and its process group when `group`); never raises."""
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        pass


class Children:
    """Starts children for one test and kills every one still running (process group included) at its end."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def popen(self, args, **kwargs) -> subprocess.Popen:
        """Returns a started Popen in a new session (so its whole group can be killed), tracked for clean-up."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(args, **kwargs)
        self.procs.append(proc)
        return proc

    def track(self, proc: subprocess.Popen) -> subprocess.Popen:
        """Returns `proc`, now killed at the end of the test if still running."""
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        """SIGKILLs every tracked child still running (and its group when it leads one); never raises."""
        for proc in self.procs:
            if proc.poll() is None:
                leads_group = _leads_group(proc.pid)
                kill(proc, group=leads_group)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def wait_pid(pid: int, timeout: float = 30.0) -> int:
    """Returns the wait status of forked child `pid` once it exits; SIGKILLs it and raises AssertionError if it
    has not exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return status
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except OSError:
                pass
            raise AssertionError(f"forked child {pid} did not exit within {timeout} s (killed)")
        time.sleep(0.01)


def read_fd(fd: int, size: int, timeout: float = 30.0, what: str = "data") -> bytes:
    """Returns up to `size` bytes read from file descriptor `fd` (b"" at end of file) once readable within
    `timeout` seconds; raises AssertionError naming `what` otherwise."""
    readable, _, _ = select.select([fd], [], [], timeout)
    if not readable:
        raise AssertionError(f"no {what} on fd {fd} within {timeout} s")
    return os.read(fd, size)


def poll(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "the condition"
         ) -> T:
    """Returns the first truthy value of `predicate()`, called every `interval` seconds for up to `timeout`
    seconds; raises AssertionError naming `what` (and the last value) otherwise. Exceptions of OSError kind
    from `predicate` count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except OSError as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s (last: {last!r})"[:3000])
        time.sleep(interval)


def get(url: str, timeout: float = 20.0, headers: Optional[dict] = None) -> str:
    """Returns the body of a GET of `url` as text; raises on an HTTP error or after `timeout` seconds."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return r.read().decode()


def wait_http(url: str, timeout: float = 30.0, proc: Optional[subprocess.Popen] = None) -> str:
    """Returns the body of `url` once it answers, polling for up to `timeout` seconds; raises AssertionError
    when it does not answer by then or child `proc` exits first."""
    def answer():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"pid {proc.pid} exited with {proc.returncode} before {url} answered")
        return get(url, timeout=5) or " "
    return poll(answer, timeout=timeout, interval=0.1, what=f"{url} answering")
