"""Writing the deployment folder: the chosen model file(s) as ``model.*``, ``deploy.json``,
the table and the Pareto plot, staged and checked before it replaces ``-o DEPLOY_DIR``."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.deploy import COMPANIONS, DEPLOY_FILE, file_sha256, is_deployment, read_deployment, write_deployment
from ..artifacts.staging import staged_folder
from ..detections import Detections
from ..detector import Detector
from ..errors import InvalidInputError, ModelFileError, YoloxDeployError


def check_destination(output: Path, source_sha256: str, force: bool) -> None:
    """Refuse (one line) an ``output`` that is a file, or a non-empty folder that is not a
    deployment of this same model, unless ``force``."""
    if output.exists() and not output.is_dir():
        raise InvalidInputError(f"-o {output} is a file: give a folder for the deployment")
    if force or not output.exists() or not any(output.iterdir()):
        return
    if not is_deployment(output):
        raise InvalidInputError(f"-o {output} holds files that are not a yolox-tune deployment: choose an empty or "
                                "new folder, or pass --force to replace its content")
    try:
        held = read_deployment(output, check_machine=False)
    except ModelFileError as exc:
        raise InvalidInputError(f"-o {output} holds a broken deployment ({exc}); pass --force to replace it") from None
    if held.source_sha256 != source_sha256:
        source = (held.record.get("source") or {}).get("path") or "another file"
        raise InvalidInputError(f"-o {output} already holds another model's deployment (made from {source}): "
                                "choose another folder, or pass --force to replace it")


def copy_model(model: Path, folder: Path) -> str:
    """Copy ``model`` and its companion files into ``folder`` as ``model.<suffix>``; returns
    the main file's name."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = model.suffix.lower()
    for extra in COMPANIONS.get(suffix, ()):
        companion = model.with_suffix(extra)
        if companion.is_file():
            shutil.copy2(companion, folder / f"model{extra}")
    shutil.copy2(model, folder / f"model{suffix}")
    return f"model{suffix}"


VERIFY_FOLDER = "verify"  # the FP32 reference's and the next-best candidates' model files, for --verify


def copy_verify_models(stage: Path, models: dict[str, Path]) -> dict[str, str]:
    """Copy each labelled model file once (several labels may share one file) under
    ``verify/<n>/``; returns label -> path relative to the deployment folder."""
    copied: dict[Path, str] = {}
    placed = {}
    for label, model in models.items():
        source = Path(model).resolve()
        if source not in copied:
            sub = f"{VERIFY_FOLDER}/{len(copied)}"
            copied[source] = f"{sub}/{copy_model(source, stage / sub)}"
        placed[label] = copied[source]
    return placed


def files_sha256(folder: Path) -> dict[str, str]:
    """SHA-256 of the deployment's model files (``model.*`` and everything under ``verify/``), by
    path relative to ``folder``: recorded in deploy.json, checked by ``--verify``."""
    files = sorted([*folder.glob("model.*"), *(p for p in (folder / VERIFY_FOLDER).rglob("*") if p.is_file())])
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in files}


def check_files_sha256(folder: Path, record: dict[str, Any]) -> None:
    """One-line :class:`ModelFileError` when a recorded model file is missing or changed."""
    for relative, digest in (record.get("files_sha256") or {}).items():
        path = (folder / relative).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise ModelFileError(f"{folder / DEPLOY_FILE}: files_sha256 names {relative!r}, outside the folder")
        if not path.is_file():
            raise ModelFileError(f"{folder}/{relative} is missing (deploy.json records it): copy the whole folder")
        if file_sha256(path) != digest:
            raise ModelFileError(f"{folder}/{relative} is not the file yolox-tune wrote (sha256 differs): copy the "
                                 "folder again, or re-run yolox-tune")


def write_deploy_dir(output: Path, model: Path, record: Callable[[], dict[str, Any]], table: str,
                     plot: Callable[[Path], Path], check_images: Sequence[np.ndarray],
                     expected: Sequence[Detections], reference: Path | None = None,
                     alternatives: dict[str, Path] | None = None) -> Path:
    """Stage the deployment (the chosen model as ``model.*``; with ``reference`` and
    ``alternatives``, those model files under ``verify/``), load it back with ``Detector``
    and compare its detections on ``check_images`` with ``expected`` (the chosen
    candidate's), then put it in place. ``record()`` gives deploy.json's content; it is
    called again as the last step, so its ``elapsed_s`` covers the writing."""
    with staged_folder(output) as stage:
        model_file = copy_model(model, stage)
        verify_files = copy_verify_models(stage, {"reference": reference, **(alternatives or {})}) \
            if reference is not None else {}

        hashes = files_sha256(stage)

        def full_record() -> dict[str, Any]:
            content = {**record(), "model_file": model_file, "files_sha256": hashes}
            if verify_files:
                content["verify"] = {**content.get("verify", {}), "files": verify_files}
            return content

        write_deployment(stage, full_record())
        (stage / "table.md").write_text(table + "\n", encoding="utf-8")
        plot(stage / "pareto.png")
        with Detector(stage, batch_size=1) as loaded:
            for got, want in zip(loaded(list(check_images)), expected):
                if not (np.array_equal(got.class_ids, want.class_ids) and np.allclose(got.xyxy, want.xyxy, atol=1e-3)
                        and np.allclose(got.scores, want.scores, atol=1e-5)):
                    raise YoloxDeployError(f"the staged deployment does not reproduce the chosen candidate's "
                                           f"detections; nothing was written to {output}")
        write_deployment(stage, full_record())
    return output / DEPLOY_FILE
