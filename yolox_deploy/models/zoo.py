"""The YOLOX model zoo: variant table, model construction, architecture inference."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from ..errors import CheckpointError
from .backbones import YOLOFPN, YOLOPAFPN
from .head import YOLOX, YOLOXHead


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Architecture of one YOLOX variant. ``input_size`` is (height, width) in pixels."""

    name: str
    depth: float
    width: float
    depthwise: bool = False
    act: str = "silu"
    family: str = "cspdarknet"  # or "darknet53"
    input_size: tuple[int, int] = (640, 640)

    def base_depth(self) -> int:
        return max(round(self.depth * 3), 1)


MODEL_ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("yolox-nano", 0.33, 0.25, depthwise=True, input_size=(416, 416)),
        ModelSpec("yolox-tiny", 0.33, 0.375, input_size=(416, 416)),
        ModelSpec("yolox-s", 0.33, 0.50),
        ModelSpec("yolox-m", 0.67, 0.75),
        ModelSpec("yolox-l", 1.0, 1.0),
        ModelSpec("yolox-x", 1.33, 1.25),
        ModelSpec("yolox-darknet53", 1.0, 1.0, act="lrelu", family="darknet53"),
    )
}
_ALIASES = {"yolov3": "yolox-darknet53", "darknet53": "yolox-darknet53", "nano": "yolox-nano",
            "tiny": "yolox-tiny", "s": "yolox-s", "m": "yolox-m", "l": "yolox-l", "x": "yolox-x"}


def get_spec(name: str) -> ModelSpec:
    """Look a variant up by name ('yolox-nano', 'yolox_s', 'yolov3', 's', ...)."""
    key = name.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in MODEL_ZOO:
        raise ValueError(f"unknown model name {name!r}; choose one of {', '.join(MODEL_ZOO)} "
                         "(or give depth/width for a custom model)")
    return MODEL_ZOO[key]


def build_model(spec: ModelSpec | str, num_classes: int = 80) -> YOLOX:
    """Build a variant in eval mode with freshly initialised weights."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if spec.family == "darknet53":
        backbone = YOLOFPN()
        head = YOLOXHead(num_classes, spec.width, in_channels=(128, 256, 512), act=spec.act)
    else:
        backbone = YOLOPAFPN(spec.depth, spec.width, depthwise=spec.depthwise, act=spec.act)
        head = YOLOXHead(num_classes, spec.width, act=spec.act, depthwise=spec.depthwise)
    return YOLOX(backbone, head).eval()


def seeded_model(spec: ModelSpec | str, num_classes: int = 80, seed: int = 0) -> YOLOX:
    """A variant with seeded random weights and non-trivial BatchNorm statistics, for
    export, parity and latency work where no trained weights exist."""
    model = build_model(spec, num_classes)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(1 + 0.1 * torch.randn(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                module.running_var.copy_(1 + 0.1 * torch.rand(n, generator=gen))
            elif isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / fan_in ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
    return model


def infer_spec(state_dict: Mapping[str, torch.Tensor]) -> tuple[ModelSpec, int]:
    """Infer the architecture and ``num_classes`` of an official-format state_dict.

    Returns the zoo entry when one matches, otherwise a custom spec named 'yolox-custom'.
    """
    try:
        num_classes = int(state_dict["head.cls_preds.0.weight"].shape[0])
    except KeyError:
        raise CheckpointError("this checkpoint has no 'head.cls_preds.0.weight': it is not a "
                              "YOLOX model state_dict with the official key names") from None
    if "backbone.backbone.stem.0.conv.weight" in state_dict:
        return MODEL_ZOO["yolox-darknet53"], num_classes
    stem = state_dict.get("backbone.backbone.stem.conv.conv.weight")
    if stem is None:
        raise CheckpointError("cannot recognise the backbone: neither a CSPDarknet "
                              "('backbone.backbone.stem.conv.conv.weight') nor a DarkNet53 "
                              "('backbone.backbone.stem.0.conv.weight') stem was found")
    width = int(stem.shape[0]) / 64
    depthwise = "backbone.backbone.dark2.0.dconv.conv.weight" in state_dict
    prefix = "backbone.backbone.dark2.1.m."
    base_depth = len({k[len(prefix):].split(".")[0] for k in state_dict if k.startswith(prefix)})
    for spec in MODEL_ZOO.values():
        if (spec.family == "cspdarknet" and spec.width == width and spec.depthwise == depthwise
                and spec.base_depth() == base_depth):
            return spec, num_classes
    return ModelSpec("yolox-custom", base_depth / 3, width, depthwise=depthwise), num_classes


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor],
                           model_name: str) -> None:
    """``load_state_dict(strict=True)`` with a short error naming the mismatching keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
                   for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if keys:
            problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
    if problems:
        raise CheckpointError(f"checkpoint does not match {model_name}: " + "; ".join(problems)
                              + ". Pick the model name the checkpoint was trained with.")
    model.load_state_dict(state_dict, strict=True)
