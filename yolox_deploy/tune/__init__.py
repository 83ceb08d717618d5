"""``yolox-tune``: on the target machine and the user's own images, measure every installed
backend x precision x thread setting, choose the fastest within an accuracy bound, and
write a deployment folder that ``Detector(folder)`` and every CLI's ``--model`` load.

Parts: ``config`` (what is asked), ``data`` (the images, their labels, the seeded
calibration/evaluation split), ``candidates`` (what is measured, in which order, and what is
skipped), ``accuracy`` (detections under the deadline), ``estimate`` (ΔmAP with a bootstrap
interval, labelled or label-free), ``mixed_int8`` (which convs to keep float), ``worker``
(exports in a child process with a deadline), ``choice``, ``report`` (table, Pareto plot),
``deploy_dir`` (the folder), ``run`` (the whole run within the time budget) and ``verify``
(``--verify`` on the next machine). Timing comes from :mod:`yolox_deploy.measure`.
"""
from __future__ import annotations

from .config import TuneConfig
from .run import NothingWithinBound, TuneBudgetError, TuneResult, tune

__all__ = ["NothingWithinBound", "TuneBudgetError", "TuneConfig", "TuneResult", "tune"]
