"""The backend protocol every runtime implements."""
from __future__ import annotations

import abc
import functools
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..artifacts.deploy import Deployment
from ..artifacts.metadata import ModelMetadata
from ..errors import BackendUnavailableError, InvalidInputError, ModelFileError
from ..precision import normalize_precision
from ..processing.end_to_end import END_TO_END_OUTPUTS, EndToEndOutputs
from ..processing.preprocess import pixels_to_tensor
from .registry import backends_offering

InputShape = tuple[int | None, int, int | None, int | None]  # (batch, 3, height, width); None = dynamic


class Backend(abc.ABC):
    """Loads one model file and turns a letterboxed batch (float32 NCHW, or uint8 NHWC pixels)
    into the raw ``[B, N, 5 + C]``.

    Subclasses set ``name`` (what users pass as ``backend=``), ``suffixes`` (model files
    they load) and ``extra`` (the pip extra that installs their dependencies), and
    ``export_target`` (the ``yolox-export --to`` format it loads, None for checkpoints),
    and register themselves with :func:`yolox_deploy.runtimes.register`. ``precisions`` lists
    the arithmetic precisions the runtime can be asked for; every backend computes in FP32
    unless ``precision=`` asks otherwise, whatever the runtime's own default on this CPU.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    runtime_module: ClassVar[str | None] = None  # the package its runtime imports (onnxruntime, openvino ...)
    export_target: ClassVar[str | None]  # the `yolox-export --to` that makes its files; None: loads .pth
    loads_files: ClassVar[bool] = True  # False: ``path`` names a model on a server (e.g. Triton)
    spin_option: ClassVar[bool] = False  # takes ``stop_spinning`` (intra-op threads spin-wait between runs or not)
    # True when the runtime itself casts and transposes uint8 pixels (inside the model), so
    # infer() is fastest fed uint8 [B, H, W, 3]; False: pixels are converted here first.
    native_pixels: bool = False
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    # the deployment folder this model was opened from (``load_backend``), else None
    deployment: Deployment | None = None

    @classmethod
    def runtime_errors(cls) -> tuple[type[BaseException], ...]:
        """The runtime's own exception types (raised for a model or input it cannot serve), for
        callers that must tell a runtime's refusal from a bug; empty while its package is not
        imported."""
        return ()

    @classmethod
    def installed(cls) -> bool:
        """True when the runtime's package can be imported here (without importing it)."""
        return cls.runtime_module is None or importlib.util.find_spec(cls.runtime_module) is not None

    def __init__(self, path: str | Path, device: str = "cpu", precision: str = "fp32", **options: Any):
        self.path = Path(path)
        self.device = device
        self.precision = self._checked_precision(precision)
        if self.loads_files and not self.path.is_file():
            raise ModelFileError(f"model file not found: {self.path}")

    def _checked_precision(self, precision: str) -> str:
        name = normalize_precision(precision)
        if name not in self.precisions:
            raise BackendUnavailableError(
                f"the {self.name} backend computes in {', '.join(self.precisions)}, not {name}; use "
                f"precision='fp32', or a backend that offers {name}: {', '.join(backends_offering(name)) or 'none'}")
        return name

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

    def _run_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Run a validated uint8 [B, H, W, 3] batch; backends with ``native_pixels`` override this."""
        return self._run(pixels_to_tensor(pixels))

    @property
    def output_names(self) -> tuple[str, ...]:
        """The model's output names where the runtime tells them (empty otherwise)."""
        return ()

    @functools.cached_property
    def end_to_end(self) -> bool:
        """True for end-to-end models (decode + NMS in the graph; metadata or output names say
        so). Read once per backend: it is asked on every batch."""
        return bool(self.metadata.end_to_end) or set(self.output_names) == set(END_TO_END_OUTPUTS)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Letterboxed BGR 0-255 batch, float32 [B, 3, H, W] or uint8 pixels [B, H, W, 3]
        -> raw float32 [B, N, 5 + C]."""
        if self.end_to_end:
            raise InvalidInputError(f"{self.path.name} is an end-to-end model (detections out, no raw [B, N, 5+C]): "
                                    "use infer_end_to_end(), or a Detector")
        raw = self._run_pixels(batch) if self.check_batch(batch) else self._run(batch)
        return self.check_output(batch, raw)

    def infer_end_to_end(self, batch: np.ndarray) -> EndToEndOutputs:
        """An end-to-end model's detections for a letterboxed batch (as :meth:`infer` takes):
        boxes xyxy in letterboxed-input pixels, ``num_dets`` valid rows per image."""
        if not self.end_to_end:
            raise InvalidInputError(f"{self.path.name} is a raw model: use infer()")
        outputs = self._run_end_to_end_pixels(batch) if self.check_batch(batch) else self._run_end_to_end(batch)
        return EndToEndOutputs.checked(outputs, batch.shape[0], self.path.name)

    def _run_end_to_end_pixels(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """As :meth:`_run_end_to_end` for uint8 [B, H, W, 3]; ``native_pixels`` backends override it."""
        return self._run_end_to_end(pixels_to_tensor(pixels))

    def _run_end_to_end(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """The four end-to-end outputs by name for a float32 batch; runtimes that run such
        graphs override this."""
        raise BackendUnavailableError(f"the {self.name} backend does not run end-to-end models; use onnxruntime, "
                                      "openvino or tensorrt")

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Several batches; backends with an asynchronous API override this to overlap them."""
        return [self.infer(batch) for batch in batches]

    def close(self) -> None:
        """Release connections or devices; backends that hold some override this."""

    def check_output(self, batch: np.ndarray, raw: np.ndarray) -> np.ndarray:
        if raw.ndim != 3 or raw.shape[0] != batch.shape[0]:
            raise ModelFileError(f"{self.path.name} returned shape {list(raw.shape)} for a batch of "
                                 f"{batch.shape[0]}; expected [{batch.shape[0]}, N, 5+C] (a graph with a "
                                 "hard-coded batch size? re-export with --dynamic)")
        return raw

    def check_batch(self, batch: np.ndarray) -> bool:
        """Validate an input batch; returns True for uint8 pixels, False for float32 NCHW."""
        if not isinstance(batch, np.ndarray) or batch.dtype not in (np.float32, np.uint8):
            raise InvalidInputError(f"{self.name}: input batch must be a float32 [B, 3, H, W] or uint8 [B, H, W, 3] "
                                    f"numpy array, got {getattr(batch, 'dtype', type(batch).__name__)}")
        pixels = batch.dtype == np.uint8
        if batch.ndim != 4 or batch.shape[3 if pixels else 1] != 3:
            layout = "uint8 pixels must be [B, H, W, 3]" if pixels else "float32 batch must be [B, 3, H, W]"
            raise InvalidInputError(f"{self.name}: input {layout}, got shape {batch.shape}")
        nchw = (batch.shape[0], 3, *batch.shape[1:3]) if pixels else batch.shape
        for axis, (want, got) in enumerate(zip(self.input_shape, nchw)):
            if want is not None and want != got:
                raise InvalidInputError(f"{self.name}: model {self.path.name} takes input "
                                        f"{list(self.input_shape)} (NCHW), got {list(nchw)} (axis {axis})")
        return pixels
