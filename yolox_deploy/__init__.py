"""yolox_deploy: ship YOLOX detectors on any backend with one pre/postprocessing layer.

>>> from yolox_deploy import Detector
>>> det = Detector("yolox_nano.onnx")            # backend from the suffix
>>> dets = det("image.jpg")                      # Detections: xyxy, scores, class_ids, class_names
"""
import os as _os

# setup.py installs the top-level exporters/, runtimes/ and benchmarks/ folders as
# yolox_deploy.exporters, yolox_deploy.runtimes and yolox_deploy.benchmarks (scripts only). When this package is imported straight from a source checkout
# (the repository root on sys.path), resolve them the same way.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if not _os.path.isdir(_os.path.join(__path__[0], "runtimes")) and _os.path.isfile(
        _os.path.join(_root, "runtimes", "base.py")):
    __path__.append(_root)

from ._version import __version__  # noqa: E402
from .artifacts.metadata import ModelMetadata
from .detections import Detections
from .detector import Detector
from .errors import (
    BackendNotInstalledError,
    BackendUnavailableError,
    CheckpointError,
    InvalidInputError,
    ModelFileError,
    YoloxDeployError,
)
from .pipeline import StageTimings
from .slicing import SliceSettings

__all__ = ["BackendNotInstalledError", "BackendUnavailableError", "CheckpointError", "Detections", "Detector", "SliceSettings",
           "InvalidInputError", "ModelFileError", "ModelMetadata", "StageTimings", "YoloxDeployError",
           "__version__"]
