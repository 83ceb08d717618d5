"""The decoupled YOLOX head (inference only) and the whole detector module."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import BaseConv, conv_class

STRIDES = (8, 16, 32)


class YOLOXHead(nn.Module):
    """Per level: stem -> (cls convs -> cls pred) and (reg convs -> reg pred, obj pred).

    ``forward`` returns the raw ``[B, N, 5 + C]`` tensor: box offsets (x, y, log w, log h;
    not decoded), sigmoid objectness, sigmoid class scores; anchors of the stride-8,
    16 and 32 levels concatenated, each level in row-major (y, x) order.
    """

    def __init__(self, num_classes: int, width: float = 1.0,
                 in_channels: tuple[int, int, int] = (256, 512, 1024),
                 act: str = "silu", depthwise: bool = False):
        super().__init__()
        Conv = conv_class(depthwise)
        hidden = int(256 * width)
        self.num_classes = num_classes
        self.strides = STRIDES
        self.stems = nn.ModuleList()
        self.cls_convs = nn.ModuleList()
        self.reg_convs = nn.ModuleList()
        self.cls_preds = nn.ModuleList()
        self.reg_preds = nn.ModuleList()
        self.obj_preds = nn.ModuleList()
        for channels in in_channels:
            self.stems.append(BaseConv(int(channels * width), hidden, 1, 1, act=act))
            self.cls_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act),
                                                Conv(hidden, hidden, 3, 1, act=act)))
            self.reg_convs.append(nn.Sequential(Conv(hidden, hidden, 3, 1, act=act),
                                                Conv(hidden, hidden, 3, 1, act=act)))
            self.cls_preds.append(nn.Conv2d(hidden, num_classes, 1, 1, 0))
            self.reg_preds.append(nn.Conv2d(hidden, 4, 1, 1, 0))
            self.obj_preds.append(nn.Conv2d(hidden, 1, 1, 1, 0))

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        outputs = []
        for k, x in enumerate(features):
            x = self.stems[k](x)
            cls_out = self.cls_preds[k](self.cls_convs[k](x))
            reg_feat = self.reg_convs[k](x)
            reg_out = self.reg_preds[k](reg_feat)
            obj_out = self.obj_preds[k](reg_feat)
            level = torch.cat([reg_out, obj_out.sigmoid(), cls_out.sigmoid()], 1)
            outputs.append(level.flatten(start_dim=2))
        return torch.cat(outputs, dim=2).permute(0, 2, 1)


class YOLOX(nn.Module):
    """Backbone (+ neck) and head; input float32 BGR 0-255 ``[B, 3, H, W]``, H and W
    multiples of 32; output raw ``[B, N, 5 + C]`` (see :class:`YOLOXHead`)."""

    def __init__(self, backbone: nn.Module, head: YOLOXHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
