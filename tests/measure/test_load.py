"""The busy-machine gauge behind yolox-tune's "speed does not rank": the CPU other processes take."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from yolox_deploy.measure.load import BUSY_SHARE, OthersLoad


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_another_busy_process_is_seen_and_our_own_cpu_is_not():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        with OthersLoad() as loaded:
            time.sleep(1.0)
    finally:
        busy.kill()
        busy.wait()
    # one busy process is one core's worth of the machine's CPU, whatever the core count (up to 4 here)
    import os
    cores = os.cpu_count() or 1
    assert loaded.share is not None and loaded.share >= 0.6 / cores
    assert loaded.busy == (loaded.share > BUSY_SHARE)
    with OthersLoad() as own:  # this process spinning is not "others"
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            pass
    assert own.share is not None and own.share < loaded.share
