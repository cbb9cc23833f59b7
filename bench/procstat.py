"""CPU use from ``/proc`` (Linux): of a process tree, and of the whole machine.

Used by the HTTP benchmarks to show where the CPU went during a run (client, server, Redis) and how
much of it went to *other* processes on the machine, which would make a run's figures unreliable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, from /proc/PID/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = stat(int(entry.name))
            if found is not None:
                children.setdefault(found[0], []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_of(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) used so far by ``pids`` and their live descendants."""
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            found = stat(pid)
            if found is not None:
                total += found[1]
    return total


def machine_busy() -> float:
    """CPU seconds every core of the machine spent not idle (all processes, kernel included)."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS
