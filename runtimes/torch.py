"""PyTorch backend: the reference, loading official-format ``.pth`` checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..coco import default_class_names
from ..errors import BackendUnavailableError
from ..metadata import ModelMetadata
from . import register
from .base import Backend, InputShape


@register
class TorchBackend(Backend):
    name = "torch"
    suffixes = (".pth", ".pt")
    extra = "torch"
    export_target = None

    def __init__(self, path: str | Path, device: str = "cpu", model_name: str | None = None,
                 threads: int | None = None, **options: Any):
        super().__init__(path, device)
        self._torch = require("torch", extra=self.extra, purpose="the torch backend")
        from ..models import load_model

        if device.startswith("cuda") and not self._torch.cuda.is_available():
            raise BackendUnavailableError("device='cuda' asked for, but this PyTorch has no CUDA device; "
                                          "install a CUDA build of torch or use device='cpu'")
        if threads:
            self._torch.set_num_threads(int(threads))
        model, spec = load_model(self.path, model_name=model_name)
        self.model = model.to(device)
        self._metadata = ModelMetadata(model_name=spec.name, input_size=spec.input_size,
                                       class_names=default_class_names(model.head.num_classes))

    @property
    def input_shape(self) -> InputShape:
        return (None, 3, None, None)

    @property
    def metadata(self) -> ModelMetadata:
        return self._metadata

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self.model(self._torch.from_numpy(batch).to(self.device))
        return out.float().cpu().numpy()
