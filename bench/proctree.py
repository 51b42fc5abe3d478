"""CPU time of a benchmarked server and the processes it started, read from /proc: on a
shared machine, CPU per message is steadier than messages per second."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(root: int) -> dict[int, float]:
    """User + system CPU seconds so far of `root` and of every process descended from it
    (forked server processes, the Celery worker and its children), by pid."""
    parent_of, used = {}, {}
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        pid = int(stat.parent.name)
        parent_of[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    family, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in used:
            family[pid] = used[pid]
            todo.extend(child for child, parent in parent_of.items() if parent == pid)
    return family
