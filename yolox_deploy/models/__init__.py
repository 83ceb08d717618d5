"""PyTorch definition of the YOLOX family (inference only, official parameter names)."""
from .._optional import require

require("torch", extra="torch", purpose="the PyTorch model definition")

from .checkpoint import load_model, read_state_dict
from .head import STRIDES, YOLOX, YOLOXHead
from .zoo import MODEL_ZOO, ModelSpec, build_model, get_spec, infer_spec, seeded_model

__all__ = ["MODEL_ZOO", "STRIDES", "YOLOX", "YOLOXHead", "ModelSpec", "build_model", "get_spec",
           "infer_spec", "load_model", "read_state_dict", "seeded_model"]
