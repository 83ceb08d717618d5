"""How busy the rest of the machine was while we timed: the CPU time other processes took, from
/proc/stat, against the wall time of the window (Linux; None elsewhere)."""
from __future__ import annotations

import os
import time
from pathlib import Path

BUSY_SHARE = 0.25  # other processes took more than a quarter of the machine's CPU: timings do not rank


def _system_busy_s() -> float | None:
    """CPU seconds all processes have used since boot (user, nice, system, irq, softirq, steal)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


class OthersLoad:
    """``with OthersLoad() as load: ...`` then ``load.share``: the fraction of the machine's CPU
    (all cores) that other processes used during the block, or None where /proc/stat is not."""

    def __enter__(self) -> OthersLoad:
        self.share: float | None = None
        self._start = (time.monotonic(), _system_busy_s(), _own_cpu_s())
        return self

    def __exit__(self, *exc: object) -> None:
        wall0, busy0, own0 = self._start
        busy1 = _system_busy_s()
        if busy0 is None or busy1 is None:
            return
        wall = time.monotonic() - wall0
        if wall <= 0:
            return
        others = (busy1 - busy0) - (_own_cpu_s() - own0)
        self.share = min(1.0, max(0.0, others / (wall * (os.cpu_count() or 1))))

    @property
    def busy(self) -> bool:
        return self.share is not None and self.share > BUSY_SHARE
