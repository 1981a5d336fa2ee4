"""The memory of a process and the workers it forks, for ``make bench``: the peak of
their summed proportional set sizes (PSS), sampled from /proc.

PSS divides a page among the processes that share it, so a page a forked worker still
shares with its parent counts once and a page either has written counts in both: the
sum is what a memory limit on the user's job (a container's cgroup) charges, unlike the
``ru_maxrss`` of the largest single process.
"""

from __future__ import annotations

import os
import threading
import time


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc (empty where there is no /proc)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        found.append(p)
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
    return found


def pss_kb(pid: int) -> int:
    """The proportional set size of ``pid`` (a shared page divided among its sharers)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    """The peak of the summed PSS of a process and its descendants, sampled in a thread
    until :meth:`stop`: every 50 ms, or less often when a sample is slow (the kernel walks
    the page tables of each process), so that sampling takes at most a tenth of a core
    from the run it measures."""

    INTERVAL_S = 0.05
    MAX_SHARE = 0.1

    def __init__(self, pid: int) -> None:
        self.peak_kb = 0
        self._pid = pid
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self.INTERVAL_S
        while not self._done.wait(wait):
            started = time.perf_counter()
            self.peak_kb = max(self.peak_kb, sum(pss_kb(p) for p in process_tree(self._pid)))
            wait = max(self.INTERVAL_S, (time.perf_counter() - started) / self.MAX_SHARE)

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._done.set()
        self._thread.join()
        return self.peak_kb / 1024
