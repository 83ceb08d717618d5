"""Exports land whole or not at all: files are written and checked in a staging folder beside
their destination, and moved into place only when every check has passed."""
from __future__ import annotations

import contextlib
import ctypes
import errno
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


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``, kernel 3.15+);
    False where the C library, kernel or file system has no such call."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_folder(destination: str | Path) -> None:
    """Clear what a killed :func:`staged_folder` left beside ``destination``: its staging and
    old folders (named after their process, removed once it is dead), and, when the kill fell
    between the two renames of the fallback swap, the old folder put back in place."""
    destination = Path(destination)
    if not destination.parent.is_dir():
        return
    for kind in ("old", "staging"):
        for leftover in sorted(destination.parent.glob(f".{destination.name}.{kind}-*")):
            pid = leftover.name.rsplit(f".{kind}-", 1)[1].split("-", 1)[0]
            if not pid.isdigit() or _pid_alive(int(pid)):
                continue
            if kind == "old" and not destination.exists():
                os.replace(leftover, destination)  # killed between the fallback's two renames: put it back
            else:
                shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(destination: str | Path) -> Iterator[Path]:
    """A fresh folder that replaces ``destination`` as a whole (nothing of the old content
    stays) when the block ends without an error; on any error, Ctrl-C included, the folder
    is removed and ``destination`` is left as it was.

    The folder is a hidden sibling of ``destination``. The new folder and the old one trade
    places in one atomic ``renameat2(RENAME_EXCHANGE)``, so ``destination`` is never missing,
    however the process dies; where the kernel or file system lacks it, two renames (old aside,
    new in). Either way, what a killed run leaves (a staging folder, the old folder, or the old
    folder aside with no ``destination``) is cleared or put back by the next run
    (:func:`recover_folder`)."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(destination)
    pid = os.getpid()
    stage = Path(tempfile.mkdtemp(prefix=f".{destination.name}.staging-{pid}-", dir=destination.parent))
    try:
        yield stage
        if not destination.exists():
            os.replace(stage, destination)
        elif _exchange(stage, destination):
            old = stage.with_name(stage.name.replace(".staging-", ".old-", 1))
            os.replace(stage, old)  # the old content, under the name recover_folder clears
            shutil.rmtree(old, ignore_errors=True)
        else:
            aside = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-{pid}-", dir=destination.parent))
            os.replace(destination, aside)  # over the empty folder mkdtemp made
            try:
                os.replace(stage, destination)
            except BaseException:
                os.replace(aside, destination)
                raise
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
