"""Ports: every server a test starts binds port 0 itself and the test reads the bound port back, so no other
process can take a port between a test choosing it and a server binding it (the race of bind-then-close).

For a child process that cannot report its port, `listening_port` reads it from /proc: the TCP sockets in LISTEN
state whose inodes are among the child's open file descriptors.
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import List, Optional, Set

_LISTEN = "0A"
_RESERVED: List[socket.socket] = []  # kept open for the life of the test process


def closed_endpoint() -> str:
    """Returns an http://127.0.0.1:<port> endpoint that refuses connections (a collector that is down).

    The port stays bound (but not listening) by this process, so nothing else can start listening on it."""
    return f"http://127.0.0.1:{closed_port()}"


def closed_port() -> int:
    """Returns a 127.0.0.1 port that refuses connections for the rest of the session (bound, never listening)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _RESERVED.append(s)
    return s.getsockname()[1]


def _socket_inodes(pid: int) -> Set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            match = re.fullmatch(r"socket:\[(\d+)\]", target)
            if match:
                inodes.add(match.group(1))
    except OSError:
        pass
    return inodes


def listening_ports(pid: int) -> List[int]:
    """Returns the TCP ports process `pid` listens on (IPv4 and IPv6), sorted; empty if it has none (yet)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def listening_port(proc, timeout: float = 30.0, exclude: Set[int] = frozenset()) -> int:
    """Returns the one TCP port child `proc` (a Popen) listens on, not counting `exclude`, waiting up to `timeout`
    seconds; raises AssertionError if it exits first or has none by then, or listens on several."""
    deadline = time.monotonic() + timeout
    while True:
        ports = [p for p in listening_ports(proc.pid) if p not in exclude]
        if len(ports) == 1:
            return ports[0]
        if len(ports) > 1:
            raise AssertionError(f"pid {proc.pid} listens on several ports: {ports}")
        if proc.poll() is not None:
            raise AssertionError(f"pid {proc.pid} exited with {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {proc.pid} listened on no port within {timeout} s")
        time.sleep(0.05)


def port_in_log(read, pattern: str, timeout: float = 30.0, proc=None) -> int:
    """Returns the port captured by regex `pattern` (group 1) in the text `read()` returns, polled until it shows
    up within `timeout` seconds; raises AssertionError with the text otherwise (or when `proc` exits first)."""
    deadline = time.monotonic() + timeout
    compiled = re.compile(pattern)
    while True:
        text = read()
        match = compiled.search(text)
        if match:
            return int(match.group(1))
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before logging a port:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {pattern!r} within {timeout} s:\n{text[-3000:]}")
        time.sleep(0.05)


def read_text(path) -> str:
    """Returns the text of file `path`, or "" when it cannot be read (yet); never raises."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def bound_port_of(url: Optional[str]) -> Optional[int]:
    """Returns the port of an http://host:port/... URL, or None for None."""
    if url is None:
        return None
    return int(url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
