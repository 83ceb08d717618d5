"""The backend protocol every runtime implements."""
from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import InvalidInputError, ModelFileError
from ..metadata import ModelMetadata

InputShape = tuple[int | None, int, int | None, int | None]  # (batch, 3, height, width); None = dynamic


class Backend(abc.ABC):
    """Loads one model file and turns a float32 NCHW batch into the raw ``[B, N, 5 + C]``.

    Subclasses set ``name`` (what users pass as ``backend=``), ``suffixes`` (model files
    they load) and ``extra`` (the pip extra that installs their dependencies), and
    ``export_target`` (the ``yolox-export --to`` format it loads, None for checkpoints),
    and register themselves with :func:`yolox_deploy.runtimes.register`.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    export_target: ClassVar[str | None]  # the `yolox-export --to` that makes its files; None: loads .pth
    loads_files: ClassVar[bool] = True  # False: ``path`` names a model on a server (e.g. Triton)

    def __init__(self, path: str | Path, device: str = "cpu", **options: Any):
        self.path = Path(path)
        self.device = device
        if self.loads_files and not self.path.is_file():
            raise ModelFileError(f"model file not found: {self.path}")

    @property
    @abc.abstractmethod
    def input_shape(self) -> InputShape:
        """(batch, 3, height, width) the model takes; None for a dynamic dimension."""

    @property
    @abc.abstractmethod
    def metadata(self) -> ModelMetadata:
        """Model name, input size, strides, class names stored with the model, if any."""

    @abc.abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray:
        """Run a validated batch; return float32 [B, N, 5 + C]."""

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 [B, 3, H, W] BGR 0-255 letterboxed -> raw float32 [B, N, 5 + C]."""
        self.check_batch(batch)
        return self.check_output(batch, self._run(batch))

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several batches; backends with an asynchronous API override this to overlap them."""
        return [self.infer(batch) for batch in batches]

    def check_output(self, batch: np.ndarray, raw: np.ndarray) -> np.ndarray:
        if raw.ndim != 3 or raw.shape[0] != batch.shape[0]:
            raise ModelFileError(f"{self.path.name} returned shape {list(raw.shape)} for a batch of "
                                 f"{batch.shape[0]}; expected [{batch.shape[0]}, N, 5+C] (a graph with a "
                                 "hard-coded batch size? re-export with --dynamic)")
        return raw

    def check_batch(self, batch: np.ndarray) -> None:
        if not isinstance(batch, np.ndarray) or batch.dtype != np.float32:
            raise InvalidInputError(f"{self.name}: input batch must be a float32 numpy array, got "
                                    f"{getattr(batch, 'dtype', type(batch).__name__)}")
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise InvalidInputError(f"{self.name}: input batch must be [B, 3, H, W], got shape {batch.shape}")
        for axis, (want, got) in enumerate(zip(self.input_shape, batch.shape)):
            if want is not None and want != got:
                raise InvalidInputError(f"{self.name}: model {self.path.name} takes input "
                                        f"{list(self.input_shape)}, got {list(batch.shape)} (axis {axis})")
