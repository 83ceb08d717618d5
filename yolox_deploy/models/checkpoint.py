"""Loading official-format checkpoints safely (``weights_only=True``, never pickled code)."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ..errors import CheckpointError
from .head import YOLOX
from .zoo import ModelSpec, build_model, get_spec, infer_spec, load_state_dict_strict


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read ``{"model": state_dict}`` or a bare state_dict from a ``.pth`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        if match:
            raise CheckpointError(f"refusing to load {path}: it holds pickled code or objects ({match.group(1)}) "
                                  "that weights_only=True does not allow; re-save it as "
                                  "{'model': model.state_dict()}") from None
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt or another format)") from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__})") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state_dict: expected {{'model': state_dict}} or a "
                              "bare state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_model(path: str | Path, model_name: str | None = None,
               spec: ModelSpec | None = None) -> tuple[YOLOX, ModelSpec]:
    """Build the model of a checkpoint and load it with ``strict=True``.

    The architecture comes from ``spec``, else ``model_name``, else is inferred from the
    weights; ``num_classes`` is always read from the head's weights.
    """
    state_dict = read_state_dict(path)
    inferred, num_classes = infer_spec(state_dict)
    if spec is None:
        spec = get_spec(model_name) if model_name else inferred
    model = build_model(spec, num_classes)
    load_state_dict_strict(model, state_dict, spec.name)
    return model.eval(), spec
