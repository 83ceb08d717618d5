"""The ``yolox-tune`` run: measure the candidates within the time budget, choose the fastest
within the accuracy bound, and write the deployment folder.

Order: the destination is checked and the images read first (bad input fails before any
work); ``--data`` is split (seeded) into calibration and evaluation images; the FP32 ONNX
Runtime reference is measured next on the evaluation images (its detections make the
sampled truths of the label-free estimate when there are no annotations; a budget too
small for it is an error); then each candidate whose estimated cost still fits the
budget: export in a child process with a deadline (yolox-bench's cache, INT8 calibrated on
the calibration images only), accuracy with a bootstrap interval on the evaluation
images, batch-1 latency and CPU time interleaved with the reference over at least 8
evaluation images, and with ``--batch auto``/N images/s per batch, also against the
reference in the same window. Nothing is written until the choice is made; the folder is
staged, loaded back and checked, then moved into place, within ``--budget-s`` + 5%.
"""
from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from .._optional import require
from .._version import __version__
from ..artifacts.deploy import file_sha256
from ..artifacts.machine import machine_fingerprint
from ..detector import Detector
from ..errors import InvalidInputError, YoloxDeployError, first_line
from ..measure.calls import latency_against, latency_of, rotation, throughput_against, timing_cost_s
from ..measure.config import ARTIFACT_AND_ARITHMETIC, BenchConfig
from ..measure.models import ModelCache
from ..runtimes import load_backend, runtime_error_types
from .accuracy import BudgetExhausted, detect_all, evaluation_detector
from .candidates import Candidate, Skipped, plan_candidates
from .choice import TuneRow, choose, objective
from .config import TuneConfig
from .data import calibration_folder, load_images, split_images
from .deploy_dir import check_destination, write_deploy_dir
from ..measure.load import OthersLoad
from ..measure.timing import TimingCut
from .estimate import MIN_INTERVAL_IMAGES, Delta, DeltaScorer, ScoringCut, sampled_truths
from .report import markdown_table, write_pareto_plot
from .worker import ExportWorker, StepCut

PLOT_S = 2.0  # drawing and saving the Pareto plot (matplotlib is imported at the start)
COPY_BYTES_PER_S = 100e6  # copying model files into the folder (a slow disk)
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
    accuracy_mode: str  # "annotations" or "label-free estimate"
    table: str
    elapsed_s: float
    deploy_json: Path | None = None
    notes: list[str] = dataclasses.field(default_factory=list)


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
        # kept for writing the folder (copy, plot, loading it back); the budget's 5% allowance covers the rest
        self.load_s: dict[str, float] = {}  # backend -> the longest a model took to load and compile here
        self.largest_model_bytes = 0
        self.source = Path(cfg.weights or cfg.model)
        self.source_sha256 = file_sha256(self.source)
        self.scores: dict[tuple[str, str], tuple[float, Delta, float]] = {}  # artifact -> mAP, Δ, seconds
        self.failed: dict[tuple[str, str], str] = {}
        self.rows: list[TuneRow] = []
        self.skipped: list[Skipped] = []
        self.notes: list[str] = []
        self.last_export_s = 0.0

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> TuneResult:
        cfg = self.cfg
        require("pycocotools", extra="tune", purpose="yolox-tune's accuracy measurement")
        require("matplotlib", extra="tune", purpose="yolox-tune's Pareto plot")
        import matplotlib.pyplot  # noqa: F401 - imported now, not in the final step's reserve

        check_destination(cfg.output, self.source_sha256, cfg.force)
        images = load_images(cfg.data, cfg.ann, cfg.max_images + min(300, cfg.max_images), progress=cfg.progress)
        self.split = split_images(images, cfg.split_seed)
        self.images = self.split.evaluation
        if self.split.too_small:
            self.notes.append(f"{len(images.files)} images: the split ({len(self.split.calibration)} calibration / "
                              f"{len(self.images.files)} evaluation) is too small to judge INT8; give at least 40 "
                              "images for INT8 candidates")
        if len(self.images.files) < MIN_INTERVAL_IMAGES:
            self.notes.append(f"{len(self.images.files)} evaluation images: no ΔmAP interval is sure on fewer than "
                              f"{MIN_INTERVAL_IMAGES}, so only the FP32 reference can be chosen; give at least "
                              f"{2 * MIN_INTERVAL_IMAGES} images")
        self.cache_cfg = BenchConfig(backends=(), weights=cfg.checkpoint, onnx=cfg.onnx, model_name=cfg.model_name,
                                     input_size=cfg.input_size, batches=(max(cfg.batches),),
                                     data=calibration_folder(self.split, cfg.cache_dir) if self.split.calibration
                                     else None, cache_dir=cfg.cache_dir, conf=cfg.conf, iou=cfg.iou, progress=False)
        self.cache = ModelCache(self.cache_cfg)
        self.worker = ExportWorker(self.cache_cfg, self.cache.dir)
        try:
            candidates, self.skipped, reference_choosable = plan_candidates(cfg, self.cache)
            if self.split.too_small:
                self.skip_int8(candidates)
                candidates = [c for c in candidates if not c.precision.startswith("int8")]
            with tqdm(total=len(candidates), desc="yolox-tune", unit="candidate", disable=not cfg.progress) as bar:
                bar.set_postfix_str(f"{candidates[0].label} (reference)")
                self.measure_reference(candidates[0], reference_choosable)
                bar.update(1)
                first_threads = candidates[0].threads
                mixed_tried = False
                for candidate in candidates[1:]:
                    if not mixed_tried and (candidate.threads != first_threads or candidate.spinning):
                        bar.set_postfix_str(f"mixed INT8, {self.left_s():.0f} s left")
                        self.try_mixed_int8(first_threads)
                        mixed_tried = True
                    bar.set_postfix_str(f"{candidate.label}, {self.left_s():.0f} s left")
                    self.try_candidate(candidate)
                    bar.update(1)
                if not mixed_tried:
                    self.try_mixed_int8(first_threads)
        finally:
            self.worker.close()
        return self.finish()

    def skip_int8(self, candidates: list[Candidate]) -> None:
        for c in candidates:
            if c.precision.startswith("int8"):
                self.skipped.append(Skipped(c.label, f"{len(self.split.calibration) + len(self.images.files)} images "
                                                     "are too few to judge INT8 on images it was not calibrated on"))

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def finish(self) -> TuneResult:
        cfg = self.cfg
        by_throughput = cfg.batch != 1
        self.reference_detector.close()
        chosen, closest = choose(self.rows, cfg.max_ap_drop, by_throughput)
        if chosen is not None:
            chosen.chosen = True
        table = markdown_table(self.rows, self.skipped, self.accuracy_label, cfg.max_ap_drop,
                               len(self.images.files))
        result = TuneResult(self.rows, self.skipped, chosen, closest, self.accuracy_mode, table,
                            time.monotonic() - self.start, notes=list(self.notes))
        if chosen is None:
            hint = (f"closest: {closest.label} (ΔmAP50-95 {closest.delta_mAP50_95:+.4f}"
                    f"{', uncertain' if closest.uncertain else ''})" if closest else "no candidate was measured")
            raise NothingWithinBound(f"no candidate is within --max-ap-drop {cfg.max_ap_drop} (and sure of it); "
                                     f"{hint}. Raise --max-ap-drop, give more images, or let fp32 candidates in "
                                     "(--backends/--precisions); nothing was written", result)
        detector = self.open_detector(self.candidate_of(chosen), Path(chosen.model_file))
        check_images = self.images.images[:CHECK_IMAGES]
        expected = [detector(image) for image in check_images]
        detector.close()
        alternatives = self.alternatives(chosen, by_throughput)
        result.deploy_json = write_deploy_dir(
            cfg.output, Path(chosen.model_file), lambda: self.record(result, alternatives), table,
            lambda path: write_pareto_plot(self.rows, path, by_throughput=by_throughput, max_ap_drop=cfg.max_ap_drop,
                                           reference_map=self.reference.mAP50_95,
                                           title=f"{self.cache.name} {self.cache.input_size[0]}x"
                                                 f"{self.cache.input_size[1]} on {machine_fingerprint()['cpu']}"),
            check_images, expected, reference=Path(self.reference.model_file),
            alternatives={label: Path(row.model_file) for label, row in alternatives.items()})
        result.elapsed_s = time.monotonic() - self.start
        return result

    def alternatives(self, chosen: TuneRow, by_throughput: bool) -> dict[str, TuneRow]:
        """The three next-best choosable rows within the bound (other model files or settings),
        fastest first: what ``--verify`` re-measures beside the choice."""
        others = [r for r in self.rows if r.choosable and r.within(self.cfg.max_ap_drop) and r is not chosen]
        others.sort(key=lambda r: -objective(r, by_throughput))
        return {r.label: r for r in others[:3]}

    @staticmethod
    def candidate_of(row: TuneRow) -> Candidate:
        return Candidate(row.backend, row.precision, row.threads, row.spinning)

    # --- measuring --------------------------------------------------------------------------

    @property
    def accuracy_mode(self) -> str:
        return "annotations" if self.images.annotations is not None else "label-free estimate"

    @property
    def accuracy_label(self) -> str:
        return "COCO labels" if self.images.annotations is not None else "label-free estimate"

    def export(self, candidate: Candidate, deadline: float) -> Path:
        """The candidate's model file: from the cache, or exported in the child by ``deadline``."""
        cached = self.cache.artifact_path(*candidate.artifact).exists()
        started = time.monotonic()
        path = self.cache.model_for(*candidate.artifact) if cached else \
            self.worker.model_for(*candidate.artifact, deadline=deadline)
        self.last_export_s = 0.0 if cached else time.monotonic() - started
        return path

    def open_detector(self, candidate: Candidate, path: Path) -> Detector:
        """The candidate's model on its backend, at the deployed thresholds, batch 1."""
        arithmetic = ARTIFACT_AND_ARITHMETIC[candidate.precision][1]
        torch_options = {"model_name": self.cfg.model_name} if candidate.backend == "torch" and self.cfg.model_name \
            else {}
        started = time.monotonic()
        opened = load_backend(path, candidate.backend, threads=candidate.threads, precision=arithmetic,
                              **candidate.backend_options, **torch_options)
        self.load_s[candidate.backend] = max(self.load_s.get(candidate.backend, 0.0), time.monotonic() - started)
        self.largest_model_bytes = max(self.largest_model_bytes, sum(
            f.stat().st_size for f in Path(path).parent.glob(f"{Path(path).stem}.*") if f.is_file()))
        input_size = self.cache.input_size if opened.input_shape[2] is None else None
        return Detector(opened, input_size=input_size, batch_size=1, conf=self.cfg.conf, iou=self.cfg.iou,
                        max_det=self.cfg.max_det)

    def new_row(self, candidate: Candidate, detector: Detector, role: str) -> TuneRow:
        return TuneRow(candidate.backend, candidate.precision, candidate.threads, spinning=candidate.spinning,
                       arithmetic=detector.backend.precision, model_file=str(detector.backend.path), role=role,
                       export_s=self.last_export_s)

    @property
    def rotation(self) -> list:
        """The evaluation images timed calls rotate through."""
        return rotation(self.images.images)

    def measure_reference(self, candidate: Candidate, choosable: bool) -> None:
        """The FP32 reference: its accuracy (and, without annotations, the sampled truths) and
        latency. A budget that ends before it is done is an error."""
        try:
            detector = self.open_detector(candidate, self.export(candidate, self.deadline))
            started = time.monotonic()
            evaluator = evaluation_detector(detector)
            found = detect_all(evaluator.pipeline, self.images, self.deadline)
        except BudgetExhausted as exc:
            raise self.budget_error(f"it had scored {exc.done} of {exc.total} images") from None
        except StepCut as exc:
            raise self.budget_error(f"its export was {exc}") from None
        row = self.new_row(candidate, detector, "reference" if choosable else "reference only")
        classes = evaluator.class_names or ()  # known after a call when the model stores none
        if self.images.annotations is not None:
            category_ids = self.images.category_ids
            if len(category_ids) != len(classes):
                raise InvalidInputError(f"{Path(self.cfg.ann).name} has {len(category_ids)} categories and the "
                                        f"model predicts {len(classes)} classes: the annotations are for another "
                                        "label set")
            truths = [self.images.annotations]
        else:
            if not any(len(f) for f in found):
                raise InvalidInputError(f"the FP32 model detects nothing on the {len(self.images.images)} evaluation "
                                        f"images of {self.images.folder}: give --ann, or images with the objects "
                                        "the model finds")
            category_ids = list(range(len(classes)))
            truths = sampled_truths(found, self.images.image_ids, [im.shape[:2] for im in self.images.images],
                                    len(classes))
        try:
            self.scorer = DeltaScorer(truths, self.images.image_ids, category_ids, found,
                                      deadline=self.deadline - self.reserve_s)
        except ScoringCut as exc:
            raise self.budget_error(f"its accuracy was cut ({exc})") from None
        row.mAP50_95, row.delta_mAP50_95, row.delta_low, row.delta_high = self.scorer.reference_map, 0.0, 0.0, 0.0
        row.accuracy_s = time.monotonic() - started
        self.scores[candidate.artifact] = (row.mAP50_95, Delta(0.0, 0.0, 0.0), row.accuracy_s)
        self.reference, self.reference_detector = row, detector
        try:
            self.fill_latency(row, *[latency_of(detector, self.rotation, self.cfg.timing_seconds,
                                                self.deadline - self.reserve_s)] * 2)
            self.add_throughput(row, detector, self.deadline - self.reserve_s)
        except TimingCut:
            raise self.budget_error("its timing was cut") from None
        if time.monotonic() > self.deadline:
            raise self.budget_error("it was measured, with nothing left for any candidate")
        self.rows.append(row)

    def budget_error(self, progress: str) -> TuneBudgetError:
        used = time.monotonic() - self.start
        return TuneBudgetError(f"--budget-s {self.cfg.budget_s:g} is too small for even one candidate: after "
                               f"{used:.1f} s on the FP32 reference {progress}; give a larger --budget-s (or fewer "
                               "images); nothing was written")

    @property
    def call_s(self) -> float:
        """Seconds of one batch-1 call of the reference, the yardstick of the others' (x2 margin)."""
        return 2 * self.reference.p50_ms / 1e3 if getattr(self, "reference", None) and self.reference.p50_ms else 0.1

    def load_estimate_s(self, backend: str) -> float:
        """Loading (and compiling) a model on ``backend``: the longest seen on it here, else twice the
        longest seen on any backend, plus a second."""
        return self.load_s.get(backend, 2 * max(self.load_s.values(), default=1.0) + 1.0)

    @property
    def reserve_s(self) -> float:
        """Seconds kept for writing the folder, from what was measured: opening the chosen model and
        loading the staged folder (two loads), the check images on it, copying the model files
        (the chosen, the reference, three alternatives), the plot; at least 2 s."""
        load = 2 * max(self.load_s.values(), default=1.0)
        check = 2 * CHECK_IMAGES * self.call_s
        copy = 5 * self.largest_model_bytes / COPY_BYTES_PER_S
        return max(2.0, load + check + copy + PLOT_S)

    def estimate_s(self, candidate: Candidate) -> float:
        """Wall seconds measuring ``candidate`` takes: loading it, its accuracy pass (unless its
        model file was scored), its timing against the reference (warm-up, settling and the round
        the loop finishes included, sized from measured call times), and per batch with --batch."""
        seconds = self.cfg.timing_seconds
        timing = timing_cost_s(seconds, self.call_s)
        if self.cfg.batch != 1:
            timing += sum(timing_cost_s(seconds, self.call_s * b) for b in self.cfg.batches)
        accuracy = 0.0 if candidate.artifact in self.scores else 1.2 * self.reference.accuracy_s
        return self.load_estimate_s(candidate.backend) + accuracy + timing

    def try_candidate(self, candidate: Candidate) -> None:
        """Measure ``candidate`` (see :meth:`attempt`)."""
        if candidate.artifact in self.failed:
            self.skipped.append(Skipped(candidate.label, self.failed[candidate.artifact]))
            return
        row = self.attempt(candidate, candidate.label, lambda deadline: self.export(candidate, deadline))
        if row is not None:
            self.rows.append(row)

    def attempt(self, candidate: Candidate, label: str, model_file: Callable[[float], Path]) -> TuneRow | None:
        """``candidate`` measured on ``model_file(deadline)`` if its estimated cost fits the
        budget left; else None, with the skip, the cut or the failure listed under ``label``
        (a cut or a failure also in ``failed``: its thread variants are not tried)."""
        step_deadline = self.deadline - self.reserve_s
        needed, left = self.estimate_s(candidate), step_deadline - time.monotonic()
        if needed > left:
            self.skipped.append(Skipped(label, f"budget: needs about {needed:.0f} s, {max(left, 0):.0f} s left "
                                               "(raise --budget-s)"))
            return None
        detector = None
        started = time.monotonic()
        try:
            detector = self.open_detector(candidate, model_file(step_deadline - needed))
            return self.measure(candidate, detector)
        except StepCut as exc:
            self.failed[candidate.artifact] = f"export {exc}"
            self.skipped.append(Skipped(label, f"export {exc}"))
        except BudgetExhausted as exc:
            self.skipped.append(Skipped(label, f"cut after {time.monotonic() - started:.1f} s (budget) in its "
                                               f"accuracy pass ({exc})"))
        except ScoringCut as exc:
            self.skipped.append(Skipped(label, f"cut after {time.monotonic() - started:.1f} s (budget) in its "
                                               f"accuracy pass ({exc})"))
        except TimingCut:
            self.skipped.append(Skipped(label, f"cut after {time.monotonic() - started:.1f} s (budget) in its "
                                               "timing"))
        except candidate_failures() as exc:
            self.failed[candidate.artifact] = first_line(exc)
            self.skipped.append(Skipped(label, first_line(exc)))
        finally:
            if detector is not None:
                detector.close()
        return None

    def measure(self, candidate: Candidate, detector: Detector) -> TuneRow:
        row = self.new_row(candidate, detector, "candidate")
        if candidate.artifact not in self.scores:  # thread and spinning variants share their artifact's accuracy
            started = time.monotonic()
            found = detect_all(evaluation_detector(detector).pipeline, self.images, self.deadline - self.reserve_s)
            mAP, delta = self.scorer.score(found, self.deadline - self.reserve_s)
            self.scores[candidate.artifact] = (mAP, delta, time.monotonic() - started)
        row.mAP50_95, delta, row.accuracy_s = self.scores[candidate.artifact]
        row.delta_mAP50_95, row.delta_low, row.delta_high = delta.value, delta.low, delta.high
        row.uncertain = delta.crosses(self.cfg.max_ap_drop)
        row.too_few_images = delta.too_few_images
        deadline = self.deadline - self.reserve_s
        with OthersLoad() as load:
            ref, mine = latency_against(self.reference_detector, detector, self.rotation, self.cfg.timing_seconds,
                                        deadline)
        row.others_cpu_share = load.share
        self.fill_latency(row, ref, mine)
        self.add_throughput(row, detector, deadline)
        return row

    @staticmethod
    def fill_latency(row: TuneRow, ref: Any, mine: Any) -> None:
        row.p50_ms, row.p99_ms, row.cpu_ms_per_image = mine.p50_ms, mine.p99_ms, mine.cpu_ms_per_image
        row.speedup = ref.p50_ms / mine.p50_ms

    def add_throughput(self, row: TuneRow, detector: Detector, deadline: float) -> None:
        """Images/s at batch 1 from the latency; with --batch auto/N, per batch against the
        reference in the same window (``throughput_speedup``: its best images/s over the
        reference's best, both from same-window medians)."""
        row.images_per_s_by_batch = {1: 1000.0 / row.p50_ms}
        row.batch, row.images_per_s, row.throughput_speedup = 1, row.images_per_s_by_batch[1], row.speedup
        if self.cfg.batch == 1:
            return
        refs, mine = throughput_against(self.reference_detector, detector, self.rotation, self.cfg.batches,
                                        self.cfg.timing_seconds, deadline)
        row.images_per_s_by_batch = {b: t.images_per_s for b, t in mine.items()}
        row.batch = max(mine, key=lambda b: mine[b].images_per_s)
        row.images_per_s = mine[row.batch].images_per_s
        row.throughput_speedup = row.images_per_s / max(t.images_per_s for t in refs.values())

    def try_mixed_int8(self, threads: int) -> None:
        """When ONNX Runtime's INT8 files were measured and none is within the bound (and sure
        of it), Q/DQ INT8 variants with the most harmful runs of convs kept float (1, 2, ...
        runs, see :mod:`.mixed_int8`), each a candidate, until one is within the bound or the
        budget ends. Harm is measured on the calibration images, in the export child."""
        int8_rows = [r for r in self.rows if r.backend == "onnxruntime" and r.precision in ("int8", "int8-all")]
        if not any(r.precision == "int8-all" for r in int8_rows) or any(r.within(self.cfg.max_ap_drop)
                                                                        for r in int8_rows):
            return
        from .mixed_int8 import MAX_FLOAT_GROUPS

        candidate = Candidate("onnxruntime", "int8-mixed", threads, False)
        started = time.monotonic()
        try:
            ranked = self.worker.group_harm(self.deadline - self.reserve_s - self.estimate_s(candidate))
        except StepCut as exc:
            self.skipped.append(Skipped("onnxruntime int8-mixed", f"measuring which convs to keep float was {exc}"))
            return
        except YoloxDeployError as exc:
            self.skipped.append(Skipped("onnxruntime int8-mixed", first_line(exc)))
            return
        self.notes.append(f"mixed INT8: harm of {len(ranked)} runs of convs measured on the calibration images in "
                          f"{time.monotonic() - started:.0f} s")
        for count in range(1, min(MAX_FLOAT_GROUPS, len(ranked) - 1) + 1):
            float_convs = [name for group, _ in ranked[:count] for name in group]
            self.scores.pop(candidate.artifact, None)  # each variant is its own file

            def model_file(deadline: float, convs: list[str] = float_convs) -> Path:
                started = time.monotonic()
                path = self.worker.mixed_int8(convs, deadline)
                self.last_export_s = time.monotonic() - started
                return path

            row = self.attempt(candidate, f"onnxruntime int8-mixed ({len(float_convs)} float) x{threads}",
                               model_file)
            if row is None:
                return
            row.float_convs = float_convs
            self.rows.append(row)
            if row.within(self.cfg.max_ap_drop):
                return

    # --- the record -------------------------------------------------------------------------

    def record(self, result: TuneResult, alternatives: dict[str, TuneRow]) -> dict[str, Any]:
        """deploy.json's content (the model file's name is added when it is copied);
        ``elapsed_s`` is taken when it is called, as the last step before the folder moves."""
        cfg, chosen = self.cfg, result.chosen
        record = {
            "backend": chosen.backend, "precision": chosen.precision, "arithmetic": chosen.arithmetic,
            "threads": chosen.threads, "batch": chosen.batch,
            "detector": {"conf": cfg.conf, "iou": cfg.iou, "max_det": cfg.max_det, "class_agnostic": False},
            "model": {"name": self.cache.name, "input_size": list(self.cache.input_size)},
            "source": {"path": str(self.source.resolve()), "sha256": self.source_sha256},
            "measured": {k: getattr(chosen, k) for k in ("p50_ms", "p99_ms", "speedup", "images_per_s",
                                                          "throughput_speedup", "cpu_ms_per_image", "mAP50_95",
                                                          "delta_mAP50_95", "delta_low", "delta_high")},
            "why": (f"fastest ({'images/s' if cfg.batch != 1 else 'p50 latency'} against the reference, same window) "
                    f"of {sum(r.choosable for r in self.rows)} measured candidates within --max-ap-drop "
                    f"{cfg.max_ap_drop} of the FP32 reference, with its 95% interval inside the bound"),
            "accuracy": {"mode": result.accuracy_mode, "images": len(self.images.images),
                         "folder": str(Path(cfg.data).resolve()),
                         "annotations": str(Path(cfg.ann).resolve()) if cfg.ann else None,
                         "max_ap_drop": cfg.max_ap_drop, "reference": "onnxruntime fp32",
                         "interval": "95% paired bootstrap over the evaluation images",
                         "predictions": "conf 0.01, class-aware NMS 0.65, all detections, no clipping"},
            "split": self.split.record(),
            "verify": {"reference": self.reference.label,
                       "alternatives": [dataclasses.asdict(r) for r in alternatives.values()]},
            "budget_s": cfg.budget_s,
            "candidates": [dataclasses.asdict(r) for r in result.rows],
            "skipped": [dataclasses.asdict(s) for s in result.skipped],
            "notes": result.notes,
            "machine": machine_fingerprint(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "yolox_deploy": __version__, "command": cfg.command,
        }
        if chosen.spinning is not None:
            record["spinning"] = chosen.spinning
        if chosen.float_convs:
            record["float_convs"] = chosen.float_convs
        record["elapsed_s"] = round(time.monotonic() - self.start, 1)
        return record

