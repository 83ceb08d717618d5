"""Exceptions with one-line messages that name the problem and the fix.

All derive from :class:`YoloxDeployError` (and from ``ValueError`` or ``ImportError``
where that is the natural category), so applications can catch one type and the CLIs
can print one line instead of a traceback.
"""
from __future__ import annotations


class YoloxDeployError(Exception):
    """Base class of every error this SDK raises on purpose."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of ``exc``'s message (runtimes raise multi-line text), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class InvalidInputError(YoloxDeployError, ValueError):
    """An image or array the SDK cannot use (unreadable, wrong dtype/shape/channels)."""


class ModelFileError(YoloxDeployError, ValueError):
    """A model file that is missing, of an unknown kind, or not what it claims to be."""


class CheckpointError(ModelFileError):
    """A PyTorch checkpoint that cannot be loaded into the requested architecture."""


class BackendNotInstalledError(YoloxDeployError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


class BackendUnavailableError(YoloxDeployError, RuntimeError):
    """A backend is installed but cannot serve the request (e.g. no CUDA provider)."""
