"""``yolox-tune --verify DEPLOY_DIR --data DIR``: on the machine a deployment was copied to,
re-measure the deployed configuration against the FP32 reference and the (up to) three
next-best candidates recorded with it (their model files travel in ``verify/``), and say
whether the choice still holds: within the accuracy bound (its interval too) and within 5%
of the fastest of those measured. Nothing changes unless ``update`` is given; then the
folder is re-staged with the fastest configuration that holds, and this machine recorded.
"""
from __future__ import annotations

import dataclasses
import datetime
import shutil
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..artifacts.deploy import DEPLOY_FILE, read_deployment, write_deployment
from ..artifacts.machine import machine_fingerprint
from ..artifacts.staging import staged_folder
from ..detector import Detector
from ..errors import InvalidInputError, ModelFileError
from ..measure.calls import latency_against, rotation, throughput_against
from ..measure.config import ARTIFACT_AND_ARITHMETIC
from ..runtimes import load_backend
from .accuracy import detect_all, evaluation_detector
from .choice import TuneRow
from .data import TuneImages, load_images
from .candidates import Candidate
from .deploy_dir import VERIFY_FOLDER, check_files_sha256, copy_model, files_sha256
from .estimate import MIN_INTERVAL_IMAGES, Delta, DeltaScorer, sampled_truths

HOLDS_WITHIN = 0.05  # the deployed configuration may be this much slower than the fastest measured


@dataclasses.dataclass
class Contender:
    label: str
    backend: str
    precision: str
    threads: int | None
    spinning: bool | None
    model_file: str  # relative to the deployment folder
    float_convs: list[str] = dataclasses.field(default_factory=list)  # int8-mixed
    deployed: bool = False
    speedup: float | None = None  # the reference's p50 (or images/s ratio) against this, same window
    p50_ms: float | None = None
    cpu_ms_per_image: float | None = None
    delta: Any = None
    within: bool = False


@dataclasses.dataclass
class VerifyResult:
    contenders: list[Contender]
    holds: bool
    reason: str
    table: str
    updated: bool = False


def verify(folder: str | Path, data: str | Path, ann: str | Path | None = None, update: bool = False,
           timing_s: float = 1.0, max_images: int = 200, progress: bool = True) -> VerifyResult:
    folder = Path(folder)
    deployment = read_deployment(folder, check_machine=False)
    record = deployment.record
    files = (record.get("verify") or {}).get("files") if isinstance(record.get("verify"), dict) else None
    if not isinstance(files, dict) or "reference" not in files:
        raise ModelFileError(f"{folder / DEPLOY_FILE} records no verify/ model files (made by an older yolox-tune?); "
                             "re-run yolox-tune to make a folder --verify can check")
    check_files_sha256(folder, record)  # the model files are the ones yolox-tune wrote
    bound = float((record.get("accuracy") or {}).get("max_ap_drop", 0.01))
    contenders = _contenders(deployment, files)
    images = _evaluation_images(record, data, ann, max_images, progress)
    reference, *others = contenders
    ref_detector = _open(folder, reference)
    try:
        scorer = _scorer(ref_detector, images)
        reference.delta, reference.within, reference.speedup = Delta(0.0, 0.0, 0.0), True, 1.0
        for contender in tqdm(others, desc="yolox-tune --verify", unit="configuration", disable=not progress):
            with _open(folder, contender) as detector:
                found = detect_all(evaluation_detector(detector).pipeline, images, float("inf"))
                contender.delta = scorer.score(found)[1]
                contender.within = (contender.delta.value >= -bound - 1e-12 and not contender.delta.crosses(bound))
                _time(contender, ref_detector, detector, rotation(images.images), deployment.batch, timing_s)
    finally:
        ref_detector.close()
    deployed = next(c for c in contenders if c.deployed)
    fastest = max((c for c in contenders if c.within), key=lambda c: c.speedup)
    holds = deployed.within and deployed.speedup >= (1 - HOLDS_WITHIN) * fastest.speedup
    reason = ("still within the bound and within 5% of the fastest measured" if holds else
              f"not sure on {deployed.delta.images} images (fewer than {MIN_INTERVAL_IMAGES} make no interval sure): "
              "give more images" if deployed.delta.too_few_images else
              f"outside the bound (ΔmAP50-95 {deployed.delta.value:+.4f}, interval [{deployed.delta.low:+.4f}, "
              f"{deployed.delta.high:+.4f}], bound {bound})" if not deployed.within else
              f"{fastest.label} is {fastest.speedup / deployed.speedup:.2f}x as fast here")
    result = VerifyResult(contenders, holds, reason, _table(contenders, images.annotations is not None))
    if update:
        _update(folder, deployment, fastest if not holds else deployed, contenders)
        result.updated = True
    return result


def _contenders(deployment: Any, files: dict[str, str]) -> list[Contender]:
    record = deployment.record
    verify = record["verify"]
    reference = Contender(str(verify.get("reference", "onnxruntime fp32")), "onnxruntime", "fp32",
                          deployment.threads, None, _inside(deployment.folder, files["reference"]))
    mixed = f" ({len(record['float_convs'])} float)" if record.get("float_convs") else ""
    deployed = Contender(f"deployed: {deployment.backend} {deployment.precision}{mixed} x{deployment.threads}",
                         deployment.backend, deployment.precision, deployment.threads, deployment.spinning,
                         deployment.model_file, list(record.get("float_convs") or []), deployed=True)
    others = []
    for row in verify.get("alternatives", []):
        label = TuneRow(**row).label
        if label in files:
            others.append(Contender(label, row["backend"], row["precision"], int(row["threads"]), row.get("spinning"),
                                    _inside(deployment.folder, files[label]), list(row.get("float_convs") or [])))
    return [reference, deployed, *others[:3]]


def _inside(folder: Path, relative: str) -> str:
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise ModelFileError(f"{folder / DEPLOY_FILE}: verify file {relative!r} is missing or outside the folder")
    return relative


def _evaluation_images(record: dict[str, Any], data: str | Path, ann: str | Path | None, max_images: int,
                       progress: bool) -> TuneImages:
    """``data``'s images, minus those the deployment's INT8 files were calibrated on."""
    images = load_images(data, ann, max_images, progress=progress)
    calibrated = set((record.get("split") or {}).get("calibration", []))
    keep = [i for i, f in enumerate(images.files) if f.name not in calibrated]
    if not keep:
        raise InvalidInputError(f"every image of {data} was a calibration image of this deployment: give other "
                                "images to verify it on")
    return images.subset(keep)


def _open(folder: Path, contender: Contender) -> Detector:
    """The deployed configuration as users load it, ``Detector(folder)`` (deploy.json's backend,
    threads, precision, input size, thresholds and class handling); the others from their files."""
    if contender.deployed:
        return Detector(folder, batch_size=1)
    options = Candidate(contender.backend, contender.precision, contender.threads, contender.spinning).backend_options
    backend = load_backend(folder / contender.model_file, contender.backend, threads=contender.threads,
                           precision=ARTIFACT_AND_ARITHMETIC[contender.precision][1], **options)
    return Detector(backend, batch_size=1)


def _scorer(reference: Detector, images: TuneImages) -> DeltaScorer:
    evaluator = evaluation_detector(reference)
    found = detect_all(evaluator.pipeline, images, float("inf"))
    classes = evaluator.class_names or ()
    if images.annotations is not None:
        return DeltaScorer([images.annotations], images.image_ids, images.category_ids, found)
    truths = sampled_truths(found, images.image_ids, [im.shape[:2] for im in images.images], len(classes))
    return DeltaScorer(truths, images.image_ids, list(range(len(classes))), found)


def _time(contender: Contender, reference: Detector, detector: Detector, timed_images: list, batch: int,
          seconds: float) -> None:
    if batch == 1:
        ref, mine = latency_against(reference, detector, timed_images, seconds)
        contender.speedup = ref.p50_ms / mine.p50_ms
    else:
        refs, mines = throughput_against(reference, detector, timed_images, (batch,), seconds)
        mine = next(iter(mines.values()))
        contender.speedup = mine.images_per_s / next(iter(refs.values())).images_per_s
    contender.p50_ms, contender.cpu_ms_per_image = mine.p50_ms, mine.cpu_ms_per_image


def _table(contenders: list[Contender], labelled: bool) -> str:
    accuracy = f"ΔmAP50-95 ({'labels' if labelled else 'label-free'}) [95%]"
    head = ("", "configuration", "p50 ms", "CPU ms/img", "x FP32", accuracy, "within bound")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for c in contenders:
        delta = f"{c.delta.value:+.4f} [{c.delta.low:+.4f}, {c.delta.high:+.4f}]" if c.delta is not None else ""
        lines.append("| " + " | ".join(("->" if c.deployed else "", c.label, _f(c.p50_ms), _f(c.cpu_ms_per_image),
                                        _f(c.speedup), delta, "yes" if c.within else "no")) + " |")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _as_row(contender: Contender) -> TuneRow:
    """A measured contender as a candidate row of deploy.json (its label is its key in verify.files)."""
    delta = contender.delta
    return TuneRow(contender.backend, contender.precision, int(contender.threads or 0), spinning=contender.spinning,
                   arithmetic=ARTIFACT_AND_ARITHMETIC[contender.precision][1], p50_ms=contender.p50_ms,
                   speedup=contender.speedup, cpu_ms_per_image=contender.cpu_ms_per_image,
                   delta_mAP50_95=delta.value if delta else None, delta_low=delta.low if delta else None,
                   delta_high=delta.high if delta else None, float_convs=list(contender.float_convs))


def _update(folder: Path, deployment: Any, best: Contender, contenders: list[Contender]) -> None:
    """Re-stage the folder with ``best`` deployed, and what this machine measured recorded:
    ``measured`` and ``why`` describe ``best``, ``verify.alternatives`` the others (the
    configuration deployed before among them, its model file kept under ``verify/``)."""
    record = dict(deployment.record)
    record.pop("format", None)
    verify_record = dict(record.get("verify") or {})
    files = dict(verify_record.get("files") or {})
    with staged_folder(folder) as stage:
        for item in folder.iterdir():
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, stage / item.name)
        if not best.deployed:
            previous = next(c for c in contenders if c.deployed)
            sub = f"{VERIFY_FOLDER}/{len(list((stage / VERIFY_FOLDER).glob('*')))}"
            files[_as_row(previous).label] = f"{sub}/{copy_model(folder / previous.model_file, stage / sub)}"
            for old in stage.glob("model.*"):
                old.unlink()
            record.update(model_file=copy_model(folder / best.model_file, stage), backend=best.backend,
                          precision=best.precision, arithmetic=ARTIFACT_AND_ARITHMETIC[best.precision][1],
                          threads=best.threads)
            for key, value in (("spinning", best.spinning), ("float_convs", best.float_convs or None)):
                record.pop(key, None)
                if value is not None:
                    record[key] = value
        row = _as_row(best)
        record["measured"] = {**{k: None for k in (record.get("measured") or {})},
                              **{k: getattr(row, k) for k in ("p50_ms", "speedup", "cpu_ms_per_image",
                                                              "delta_mAP50_95", "delta_low", "delta_high")}}
        record["why"] = (f"re-verified on this machine: the fastest of {len(contenders)} configurations measured here "
                         "(the FP32 reference and the recorded next-best) that holds the accuracy bound, with its "
                         "95% interval inside it")
        others = [c for c in contenders[1:] if c is not best]
        verify_record.update(files=files, alternatives=[dataclasses.asdict(_as_row(c)) for c in others
                                                         if _as_row(c).label in files])
        record["verify"] = verify_record
        record["files_sha256"] = files_sha256(stage)
        record["machine"] = machine_fingerprint()
        record.setdefault("verified", []).append({
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "deployed": best.label.removeprefix("deployed: "), "machine": record["machine"],
            "measured": [{"label": c.label, "speedup": c.speedup, "p50_ms": c.p50_ms,
                          "delta_mAP50_95": c.delta.value if c.delta else None, "within": c.within}
                         for c in contenders]})
        write_deployment(stage, record)

