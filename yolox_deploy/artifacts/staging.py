"""Exports land whole or not at all: files are written and checked in a staging folder beside
their destination, and moved into place only when every check has passed."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def export_stage_prefix(pid: int) -> str:
    """The name prefix of the staging folders that process ``pid`` writes exports into."""
    return f".yolox-export-{pid}-"


@contextlib.contextmanager
def staged_into(destination: str | Path) -> Iterator[Path]:
    """A fresh folder to write an export into. When the block ends without an error, each
    entry written there (files, or model folders of a Triton repository) replaces its
    namesake in ``destination``; on any error the folder is removed and ``destination`` is
    left as it was, so no user or cache picks up a half-written or failed export.

    The folder is a hidden sibling inside ``destination`` (same file system: each move is an
    atomic rename), named after this process (:func:`export_stage_prefix`), so that whoever
    kills it can remove what it left and nothing else."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=export_stage_prefix(os.getpid()), dir=destination))
    try:
        yield stage
        for entry in sorted(stage.iterdir()):
            target = destination / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(destination: str | Path) -> Iterator[Path]:
    """A fresh folder that replaces ``destination`` as a whole (nothing of the old content
    stays) when the block ends without an error; on any error, Ctrl-C included, the folder
    is removed and ``destination`` is left as it was.

    The folder is a hidden sibling of ``destination``; the old folder is moved aside, the new
    one renamed into place, then the old one removed (put back if the rename fails)."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{destination.name}.staging-", dir=destination.parent))
    try:
        yield stage
        aside = None
        if destination.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
            os.replace(destination, aside)  # over the empty folder mkdtemp made
        try:
            os.replace(stage, destination)
        except BaseException:
            if aside is not None:
                os.replace(aside, destination)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
