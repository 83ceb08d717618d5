"""``yolox-tune``: on the target machine and the user's own images, measure every installed
backend x precision x thread setting, choose the fastest within an accuracy bound, and
write a deployment folder that ``Detector(folder)`` and every CLI's ``--model`` load.

Parts: ``config`` (what is asked), ``data`` (the images, their labels or pseudo-labels),
``candidates`` (what is measured, in which order, and what is skipped), ``accuracy``,
``measure`` (latency and images/s), ``choice``, ``report`` (table, Pareto plot),
``deploy_dir`` (the folder) and ``run`` (the whole run within the time budget).
"""
from __future__ import annotations

from .config import TuneConfig
from .run import NothingWithinBound, TuneBudgetError, TuneResult, tune

__all__ = ["NothingWithinBound", "TuneBudgetError", "TuneConfig", "TuneResult", "tune"]
