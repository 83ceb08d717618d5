"""Exports land whole or not at all: files are written and checked in a staging folder beside
their destination, and moved into place only when every check has passed."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_into(destination: str | Path) -> Iterator[Path]:
    """A fresh folder to write an export into. When the block ends without an error, each
    entry written there (files, or model folders of a Triton repository) replaces its
    namesake in ``destination``; on any error the folder is removed and ``destination`` is
    left as it was, so no user or cache picks up a half-written or failed export.

    The folder is a hidden sibling inside ``destination`` (same file system: each move is an
    atomic rename)."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".yolox-export-", dir=destination))
    try:
        yield stage
        for entry in sorted(stage.iterdir()):
            target = destination / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
