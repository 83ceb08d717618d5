"""The ``yolox-tune`` run: measure the candidates within the time budget, choose the fastest
within the accuracy bound, and write the deployment folder.

Order: the destination is checked and the images read first (bad input fails before any
work); the FP32 ONNX Runtime reference is measured next (its detections are the
pseudo-labels when there are no annotations; a budget too small for it is an error); then
each candidate whose estimated cost still fits the budget: export (yolox-bench's cache),
accuracy on every image, batch-1 latency interleaved with the reference, and images/s per
batch with ``--batch auto``/N. Nothing is written until the choice is made; the folder is
staged, loaded back and checked, then moved into place.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .._optional import require
from .._version import __version__
from ..artifacts.deploy import file_sha256
from ..artifacts.machine import machine_fingerprint
from ..measure.config import ARTIFACT_AND_ARITHMETIC, BenchConfig
from ..measure.models import ModelCache
from ..detector import Detector
from ..errors import InvalidInputError, YoloxDeployError, first_line
from ..runtimes import load_backend, runtime_error_types
from .accuracy import BudgetExhausted, coco_map, detect_all, evaluation_detector
from .candidates import Candidate, Skipped, plan_candidates
from .choice import TuneRow, choose
from .config import TuneConfig
from .data import load_images, pseudo_labels
from .deploy_dir import check_destination, write_deploy_dir
from .measure import images_per_second, latency_ms, timed_call
from .report import markdown_table, write_pareto_plot

DEFAULT_EXPORT_S = 20.0  # assumed for an export not yet seen, until one has been timed
TIMING_OVERHEAD = 1.5  # warm-up and settling calls around the timed ones
CHECK_IMAGES = 4  # images the staged deployment must reproduce


def candidate_failures() -> tuple[type[BaseException], ...]:
    """What counts as a candidate's own failure (a skipped row): the project's one-line errors,
    a missing optional dependency and the runtimes' typed errors. Anything else is a bug in
    the measuring and stops the run with its traceback."""
    return (YoloxDeployError, ImportError, *runtime_error_types())


class TuneBudgetError(InvalidInputError):
    """The budget does not cover even the FP32 reference."""


class NothingWithinBound(YoloxDeployError):
    """No candidate is within --max-ap-drop; ``result`` holds the table and the closest one."""

    def __init__(self, message: str, result: TuneResult):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class TuneResult:
    rows: list[TuneRow]
    skipped: list[Skipped]
    chosen: TuneRow | None
    closest: TuneRow | None
    accuracy_mode: str  # "annotations" or "fp32-pseudo-labels"
    table: str
    elapsed_s: float
    deploy_json: Path | None = None


def tune(cfg: TuneConfig) -> TuneResult:
    """Run ``yolox-tune``; returns the result with ``deploy_json`` written, or raises
    :class:`NothingWithinBound` (nothing written) or a one-line :class:`YoloxDeployError`."""
    return Tuner(cfg).run()


class Tuner:
    def __init__(self, cfg: TuneConfig):
        cfg.check()
        self.cfg = cfg
        self.start = time.monotonic()
        self.deadline = self.start + cfg.budget_s
        # kept for writing the folder: at least a second, at most 10 s
        self.reserve_s = max(1.0, min(10.0, 0.05 * cfg.budget_s))
        self.source = Path(cfg.weights or cfg.model)
        self.source_sha256 = file_sha256(self.source)
        self.accuracy: dict[tuple[str, str], tuple[float, float, float]] = {}  # artifact -> mAP50-95, mAP50, s
        self.failed: dict[tuple[str, str], str] = {}
        self.export_times: list[float] = []
        self.rows: list[TuneRow] = []
        self.skipped: list[Skipped] = []

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> TuneResult:
        cfg = self.cfg
        require("pycocotools", extra="tune", purpose="yolox-tune's accuracy measurement")
        require("matplotlib", extra="tune", purpose="yolox-tune's Pareto plot")
        check_destination(cfg.output, self.source_sha256, cfg.force)
        self.images = load_images(cfg.data, cfg.ann, cfg.max_images, progress=cfg.progress)
        self.cache = ModelCache(BenchConfig(backends=(), weights=cfg.checkpoint, onnx=cfg.onnx,
                                            model_name=cfg.model_name, input_size=cfg.input_size,
                                            batches=(max(cfg.batches),), data=Path(cfg.data), cache_dir=cfg.cache_dir,
                                            conf=cfg.conf, iou=cfg.iou, progress=False))
        candidates, self.skipped, reference_choosable = plan_candidates(cfg, self.cache)
        with tqdm(total=len(candidates), desc="yolox-tune", unit="candidate", disable=not cfg.progress) as bar:
            bar.set_postfix_str(f"{candidates[0].label} (reference)")
            self.measure_reference(candidates[0], reference_choosable)
            bar.update(1)
            for candidate in candidates[1:]:
                bar.set_postfix_str(f"{candidate.label}, {self.left_s():.0f} s left")
                self.try_candidate(candidate)
                bar.update(1)
        return self.finish()

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def finish(self) -> TuneResult:
        cfg = self.cfg
        by_throughput = cfg.batch != 1
        self.reference_detector.close()
        chosen, closest = choose(self.rows, cfg.max_ap_drop, by_throughput)
        if chosen is not None:
            chosen.chosen = True
        table = markdown_table(self.rows, self.skipped, self.accuracy_label)
        result = TuneResult(self.rows, self.skipped, chosen, closest, self.accuracy_mode, table,
                            time.monotonic() - self.start)
        if chosen is None:
            hint = (f"closest: {closest.label} (ΔmAP50-95 {closest.delta_mAP50_95:+.4f})" if closest
                    else "no candidate was measured")
            raise NothingWithinBound(f"no candidate is within --max-ap-drop {cfg.max_ap_drop}; {hint}. Raise "
                                     "--max-ap-drop, or let fp32 candidates in (--backends/--precisions); nothing "
                                     "was written", result)
        detector = self.open_detector(Candidate(chosen.backend, chosen.precision, chosen.threads))
        check_images = self.images.images[:CHECK_IMAGES]
        expected = [detector(image) for image in check_images]
        detector.close()
        result.deploy_json = write_deploy_dir(
            cfg.output, Path(chosen.model_file), self.record(result), table,
            lambda path: write_pareto_plot(self.rows, path, by_throughput=by_throughput, max_ap_drop=cfg.max_ap_drop,
                                           reference_map=self.reference.mAP50_95,
                                           title=f"{self.cache.name} {self.cache.input_size[0]}x"
                                                 f"{self.cache.input_size[1]} on {machine_fingerprint()['cpu']}"),
            check_images, expected)
        result.elapsed_s = time.monotonic() - self.start
        return result

    # --- measuring --------------------------------------------------------------------------

    @property
    def accuracy_mode(self) -> str:
        return "annotations" if self.images.annotations is not None else "fp32-pseudo-labels"

    @property
    def accuracy_label(self) -> str:
        return "COCO labels" if self.images.annotations is not None else "vs FP32 detections"

    def open_detector(self, candidate: Candidate) -> Detector:
        """The candidate's model (exported on first use) on its backend, at the deployed
        thresholds, batch 1."""
        started = time.monotonic()
        cached = self.cache.artifact_path(*candidate.artifact).exists()
        path = self.cache.model_for(*candidate.artifact)
        self.last_export_s = 0.0 if cached else time.monotonic() - started
        if not cached:
            self.export_times.append(self.last_export_s)
        arithmetic = ARTIFACT_AND_ARITHMETIC[candidate.precision][1]
        torch_options = {"model_name": self.cfg.model_name} if candidate.backend == "torch" and self.cfg.model_name \
            else {}
        opened = load_backend(path, candidate.backend, threads=candidate.threads, precision=arithmetic,
                              **torch_options)
        input_size = self.cache.input_size if opened.input_shape[2] is None else None
        return Detector(opened, input_size=input_size, batch_size=1, conf=self.cfg.conf, iou=self.cfg.iou,
                        max_det=self.cfg.max_det)

    def new_row(self, candidate: Candidate, detector: Detector, role: str) -> TuneRow:
        return TuneRow(candidate.backend, candidate.precision, candidate.threads, arithmetic=detector.backend.precision,
                       model_file=str(detector.backend.path), role=role, export_s=self.last_export_s)

    def measure_reference(self, candidate: Candidate, choosable: bool) -> None:
        """The FP32 reference: its accuracy (and, without annotations, the pseudo-labels) and
        latency. A budget that ends before it is done is an error."""
        try:
            detector = self.open_detector(candidate)
            started = time.monotonic()
            found, deployed = detect_all(evaluation_detector(detector).pipeline, self.images, self.deadline,
                                         also=detector.pipeline)
        except BudgetExhausted as exc:
            raise self.budget_error(f"it had scored {exc.done} of {exc.total} images") from None
        row = self.new_row(candidate, detector, "reference" if choosable else "reference only")
        classes = detector.class_names or ()
        if self.images.annotations is not None:
            self.truth = self.images.annotations
            self.category_ids = self.images.category_ids
            if len(self.category_ids) != len(classes):
                raise InvalidInputError(f"{Path(self.cfg.ann).name} has {len(self.category_ids)} categories and the "
                                        f"model predicts {len(classes)} classes: the annotations are for another "
                                        "label set")
        else:
            self.truth = pseudo_labels(self.images, deployed, classes, self.cfg.conf)
            self.category_ids = list(range(len(classes)))
        row.mAP50_95, row.mAP50 = coco_map(self.truth, self.images, found, self.category_ids)
        row.delta_mAP50_95 = 0.0
        row.accuracy_s = time.monotonic() - started
        self.accuracy[candidate.artifact] = (row.mAP50_95, row.mAP50, row.accuracy_s)
        self.reference_call = timed_call(detector, self.images.images[:1])
        (ms,) = latency_ms([self.reference_call], self.cfg.timing_seconds)
        row.p50_ms, row.p99_ms, row.speedup = ms["p50"], ms["p99"], 1.0
        self.add_throughput(row, detector)
        if time.monotonic() > self.deadline:
            raise self.budget_error("it was measured, with nothing left for any candidate")
        self.reference, self.reference_detector = row, detector
        self.rows.append(row)

    def budget_error(self, progress: str) -> TuneBudgetError:
        used = time.monotonic() - self.start
        return TuneBudgetError(f"--budget-s {self.cfg.budget_s:g} is too small for even one candidate: after "
                               f"{used:.1f} s on the FP32 reference {progress}; give a larger --budget-s (or fewer "
                               "images); nothing was written")

    def estimate_s(self, candidate: Candidate) -> float:
        timing = 2 * self.cfg.timing_seconds * TIMING_OVERHEAD
        if self.cfg.batch != 1:
            timing += len(self.cfg.batches) * self.cfg.timing_seconds * TIMING_OVERHEAD
        accuracy = 0.0 if candidate.artifact in self.accuracy else 1.5 * self.reference.accuracy_s
        export = 0.0
        if not self.cache.artifact_path(*candidate.artifact).exists():
            export = max(self.export_times, default=DEFAULT_EXPORT_S)
        return timing + accuracy + export

    def try_candidate(self, candidate: Candidate) -> None:
        """Measure ``candidate`` if its estimated cost fits the budget left; a failure or a
        skip is recorded with its reason."""
        if candidate.artifact in self.failed:
            self.skipped.append(Skipped(candidate.label, self.failed[candidate.artifact]))
            return
        needed, left = self.estimate_s(candidate), self.left_s() - self.reserve_s
        if needed > left:
            self.skipped.append(Skipped(candidate.label, f"budget: needs about {needed:.0f} s, {max(left, 0):.0f} s "
                                                         "left (raise --budget-s)"))
            return
        detector = None
        try:
            detector = self.open_detector(candidate)
            self.rows.append(self.measure(candidate, detector))
        except BudgetExhausted as exc:
            self.skipped.append(Skipped(candidate.label, f"budget ran out in its accuracy pass ({exc})"))
        except candidate_failures() as exc:
            reason = first_line(exc)
            self.failed[candidate.artifact] = reason
            self.skipped.append(Skipped(candidate.label, reason))
        finally:
            if detector is not None:
                detector.close()

    def measure(self, candidate: Candidate, detector: Detector) -> TuneRow:
        row = self.new_row(candidate, detector, "candidate")
        if candidate.artifact not in self.accuracy:  # thread variants share their artifact's accuracy
            started = time.monotonic()
            found, _ = detect_all(evaluation_detector(detector).pipeline, self.images, self.deadline - self.reserve_s)
            self.accuracy[candidate.artifact] = (*coco_map(self.truth, self.images, found, self.category_ids),
                                                 time.monotonic() - started)
        row.mAP50_95, row.mAP50, row.accuracy_s = self.accuracy[candidate.artifact]
        row.delta_mAP50_95 = row.mAP50_95 - self.reference.mAP50_95
        reference_ms, ms = latency_ms([self.reference_call, timed_call(detector, self.images.images[:1])],
                                      self.cfg.timing_seconds)
        row.p50_ms, row.p99_ms = ms["p50"], ms["p99"]
        row.speedup = reference_ms["p50"] / ms["p50"]
        self.add_throughput(row, detector)
        return row

    def add_throughput(self, row: TuneRow, detector: Detector) -> None:
        """Images/s at batch 1 from the latency, and with --batch auto/N at those batches."""
        row.images_per_s_by_batch = {1: 1000.0 / row.p50_ms}
        if self.cfg.batch != 1:
            row.images_per_s_by_batch.update(images_per_second(detector, self.images.images, self.cfg.batches,
                                                               self.cfg.timing_seconds))
        allowed = self.cfg.batches if self.cfg.batch != "auto" else row.images_per_s_by_batch
        measured = {b: v for b, v in row.images_per_s_by_batch.items() if b in allowed} or row.images_per_s_by_batch
        row.batch = max(measured, key=measured.get)
        row.images_per_s = measured[row.batch]

    # --- the record -------------------------------------------------------------------------

    def record(self, result: TuneResult) -> dict[str, Any]:
        """deploy.json's content (the model file's name is added when it is copied)."""
        cfg, chosen = self.cfg, result.chosen
        return {
            "backend": chosen.backend, "precision": chosen.precision, "arithmetic": chosen.arithmetic,
            "threads": chosen.threads, "batch": chosen.batch,
            "detector": {"conf": cfg.conf, "iou": cfg.iou, "max_det": cfg.max_det, "class_agnostic": False},
            "model": {"name": self.cache.name, "input_size": list(self.cache.input_size)},
            "source": {"path": str(self.source.resolve()), "sha256": self.source_sha256},
            "measured": {k: getattr(chosen, k) for k in ("p50_ms", "p99_ms", "speedup", "images_per_s",
                                                          "mAP50_95", "mAP50", "delta_mAP50_95")},
            "why": (f"fastest ({'images/s at its batch' if cfg.batch != 1 else 'p50 latency at batch 1'}) of "
                    f"{sum(r.choosable for r in self.rows)} measured candidates within --max-ap-drop "
                    f"{cfg.max_ap_drop} of the FP32 reference"),
            "accuracy": {"mode": result.accuracy_mode, "images": len(self.images.images),
                         "folder": str(Path(cfg.data).resolve()),
                         "annotations": str(Path(cfg.ann).resolve()) if cfg.ann else None,
                         "max_ap_drop": cfg.max_ap_drop, "reference": "onnxruntime fp32",
                         "predictions": "conf 0.01, class-aware NMS 0.65, all detections, no clipping"},
            "budget_s": cfg.budget_s, "elapsed_s": round(result.elapsed_s, 1),
            "candidates": [dataclasses.asdict(r) for r in result.rows],
            "skipped": [dataclasses.asdict(s) for s in result.skipped],
            "machine": machine_fingerprint(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "yolox_deploy": __version__, "command": cfg.command,
        }
