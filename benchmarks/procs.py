"""Process helpers: start/stop by pid, free ports, CPU accounting from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    # Racy by nature, but everything here runs on loopback in (usually) a
    # private network namespace, so nobody else competes for the port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses; everything after the
    # last ')' is well-formed. Index 0 of the result is field 3 (state).
    return raw[raw.rindex(")") + 2 :].split()


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _read_stat(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """root and all its live descendants (hypercorn forks a worker, quill may too)."""
    children = _children_map()
    tree: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime+stime (+ reaped children's) of every live process in the tree.

    cutime/cstime are included so that CPU of a child that exited inside the
    window is not lost; a live child is never also counted in its parent's
    cutime, so nothing is counted twice.
    """
    ticks = 0
    for pid in process_tree(root):
        fields = _read_stat(pid)
        if fields is None:
            continue
        # Fields 14..17 of /proc/pid/stat (utime stime cutime cstime) are
        # indices 11..14 here.
        ticks += sum(int(v) for v in fields[11:15])
    return ticks / _CLK_TCK


@dataclass(frozen=True)
class MachineCpu:
    busy_s: float
    iowait_s: float


def machine_cpu() -> MachineCpu:
    """Whole-machine CPU from /proc/stat, to spot interference from other work."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest* already in user).
    user, nice, system, _idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return MachineCpu(busy_s=(user + nice + system + irq + softirq + steal) / _CLK_TCK, iowait_s=iowait / _CLK_TCK)


@dataclass
class Managed:
    """A process this harness started; it is only ever signalled by its pid."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Managed:
    log = log_path.open("wb")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
        # Own session: a Ctrl-C at the terminal reaches only the harness,
        # which then stops its children in order.
        start_new_session=True,
    )
    log.close()
    return Managed(name=name, proc=proc, log_path=log_path)


def stop(managed: Managed, grace_s: float = 10.0) -> None:
    """SIGTERM the root, give it time to stop its own workers, then SIGKILL leftovers by pid."""
    if not managed.alive():
        return
    descendants = [p for p in process_tree(managed.pid) if p != managed.pid]
    _signal(managed.pid, signal.SIGTERM)
    try:
        managed.proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal(managed.pid, signal.SIGKILL)
        managed.proc.wait(timeout=5)
    deadline = time.monotonic() + 2.0
    for pid in descendants:
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _pid_alive(pid: int) -> bool:
    fields = _read_stat(pid)
    return fields is not None and fields[0] != "Z"
