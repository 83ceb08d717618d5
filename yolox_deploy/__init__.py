"""yolox_deploy: ship YOLOX detectors on any backend with one pre/postprocessing layer.

>>> from yolox_deploy import Detector
>>> det = Detector("yolox_nano.onnx")            # backend from the suffix
>>> dets = det("image.jpg")                      # Detections: xyxy, scores, class_ids, class_names
"""
from ._version import __version__
from .detections import Detections
from .detector import Detector, StageTimings
from .errors import (BackendNotInstalledError, BackendUnavailableError, CheckpointError, InvalidInputError,
                     ModelFileError, YoloxDeployError)
from .metadata import ModelMetadata

__all__ = ["BackendNotInstalledError", "BackendUnavailableError", "CheckpointError", "Detections", "Detector",
           "InvalidInputError", "ModelFileError", "ModelMetadata", "StageTimings", "YoloxDeployError",
           "__version__"]
