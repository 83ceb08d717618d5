"""Writing the deployment folder: the chosen model file(s) as ``model.*``, ``deploy.json``,
the table and the Pareto plot, staged and checked before it replaces ``-o DEPLOY_DIR``."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.deploy import COMPANIONS, DEPLOY_FILE, is_deployment, read_deployment, write_deployment
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
    suffix = model.suffix.lower()
    for extra in COMPANIONS.get(suffix, ()):
        companion = model.with_suffix(extra)
        if companion.is_file():
            shutil.copy2(companion, folder / f"model{extra}")
    shutil.copy2(model, folder / f"model{suffix}")
    return f"model{suffix}"


def write_deploy_dir(output: Path, model: Path, record: dict[str, Any], table: str,
                     plot: Callable[[Path], Path], check_images: Sequence[np.ndarray],
                     expected: Sequence[Detections]) -> Path:
    """Stage the deployment, load it back with ``Detector`` and compare its detections on
    ``check_images`` with ``expected`` (the chosen candidate's), then put it in place."""
    with staged_folder(output) as stage:
        record = {**record, "model_file": copy_model(model, stage)}
        write_deployment(stage, record)
        (stage / "table.md").write_text(table + "\n", encoding="utf-8")
        plot(stage / "pareto.png")
        with Detector(stage, batch_size=1) as loaded:
            for got, want in zip(loaded(list(check_images)), expected):
                if not (np.array_equal(got.class_ids, want.class_ids) and np.allclose(got.xyxy, want.xyxy, atol=1e-3)
                        and np.allclose(got.scores, want.scores, atol=1e-5)):
                    raise YoloxDeployError(f"the staged deployment does not reproduce {record['backend']} "
                                           f"{record['precision']}'s detections; nothing was written to {output}")
    return output / DEPLOY_FILE
