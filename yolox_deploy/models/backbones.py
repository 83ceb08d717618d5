"""Backbones and necks: CSPDarknet + PAFPN (YOLOX-Nano ... X) and DarkNet53 + FPN (YOLOv3)."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import BaseConv, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_class

Features = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class CSPDarknet(nn.Module):
    def __init__(self, dep_mul: float, wid_mul: float, depthwise: bool = False, act: str = "silu"):
        super().__init__()
        Conv = conv_class(depthwise)
        base_channels = int(wid_mul * 64)
        base_depth = max(round(dep_mul * 3), 1)
        c = base_channels
        self.stem = Focus(3, c, ksize=3, act=act)
        self.dark2 = nn.Sequential(Conv(c, c * 2, 3, 2, act=act),
                                   CSPLayer(c * 2, c * 2, n=base_depth, depthwise=depthwise, act=act))
        self.dark3 = nn.Sequential(Conv(c * 2, c * 4, 3, 2, act=act),
                                   CSPLayer(c * 4, c * 4, n=base_depth * 3, depthwise=depthwise, act=act))
        self.dark4 = nn.Sequential(Conv(c * 4, c * 8, 3, 2, act=act),
                                   CSPLayer(c * 8, c * 8, n=base_depth * 3, depthwise=depthwise, act=act))
        self.dark5 = nn.Sequential(Conv(c * 8, c * 16, 3, 2, act=act),
                                   SPPBottleneck(c * 16, c * 16, activation=act),
                                   CSPLayer(c * 16, c * 16, n=base_depth, shortcut=False,
                                            depthwise=depthwise, act=act))

    def forward(self, x: torch.Tensor) -> Features:
        x = self.dark2(self.stem(x))
        dark3 = self.dark3(x)
        dark4 = self.dark4(dark3)
        dark5 = self.dark5(dark4)
        return dark3, dark4, dark5


class YOLOPAFPN(nn.Module):
    """CSPDarknet with a path-aggregation FPN; outputs strides 8, 16, 32."""

    def __init__(self, depth: float = 1.0, width: float = 1.0,
                 in_channels: tuple[int, int, int] = (256, 512, 1024),
                 depthwise: bool = False, act: str = "silu"):
        super().__init__()
        self.backbone = CSPDarknet(depth, width, depthwise=depthwise, act=act)
        Conv = conv_class(depthwise)
        c0, c1, c2 = (int(c * width) for c in in_channels)
        n = round(3 * depth)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1, act=act)
        self.C3_p4 = CSPLayer(2 * c1, c1, n, False, depthwise=depthwise, act=act)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1, act=act)
        self.C3_p3 = CSPLayer(2 * c0, c0, n, False, depthwise=depthwise, act=act)
        self.bu_conv2 = Conv(c0, c0, 3, 2, act=act)
        self.C3_n3 = CSPLayer(2 * c0, c1, n, False, depthwise=depthwise, act=act)
        self.bu_conv1 = Conv(c1, c1, 3, 2, act=act)
        self.C3_n4 = CSPLayer(2 * c1, c2, n, False, depthwise=depthwise, act=act)

    def forward(self, x: torch.Tensor) -> Features:
        x2, x1, x0 = self.backbone(x)
        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        return pan_out2, pan_out1, pan_out0


class Darknet(nn.Module):
    """DarkNet-21/53 with an SPP block at the end of dark5 (LeakyReLU 0.1)."""

    DEPTH_TO_BLOCKS = {21: (1, 2, 2, 1), 53: (2, 8, 8, 4)}

    def __init__(self, depth: int = 53, in_channels: int = 3, stem_out_channels: int = 32):
        super().__init__()
        blocks = self.DEPTH_TO_BLOCKS[depth]
        self.stem = nn.Sequential(BaseConv(in_channels, stem_out_channels, 3, 1, act="lrelu"),
                                  *self._group(stem_out_channels, 1, stride=2))
        c = stem_out_channels * 2
        self.dark2 = nn.Sequential(*self._group(c, blocks[0], stride=2))
        c *= 2
        self.dark3 = nn.Sequential(*self._group(c, blocks[1], stride=2))
        c *= 2
        self.dark4 = nn.Sequential(*self._group(c, blocks[2], stride=2))
        c *= 2
        self.dark5 = nn.Sequential(*self._group(c, blocks[3], stride=2), *self._spp_block(c, c * 2))

    @staticmethod
    def _group(in_channels: int, num_blocks: int, stride: int) -> list[nn.Module]:
        return [BaseConv(in_channels, in_channels * 2, 3, stride, act="lrelu"),
                *[ResLayer(in_channels * 2) for _ in range(num_blocks)]]

    @staticmethod
    def _spp_block(mid: int, wide: int) -> list[nn.Module]:
        return [BaseConv(wide, mid, 1, 1, act="lrelu"),
                BaseConv(mid, wide, 3, 1, act="lrelu"),
                SPPBottleneck(wide, mid, activation="lrelu"),
                BaseConv(mid, wide, 3, 1, act="lrelu"),
                BaseConv(wide, mid, 1, 1, act="lrelu")]

    def forward(self, x: torch.Tensor) -> Features:
        x = self.dark2(self.stem(x))
        dark3 = self.dark3(x)
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.dark5(dark4)


def _cbl(in_channels: int, out_channels: int, ksize: int) -> BaseConv:
    return BaseConv(in_channels, out_channels, ksize, 1, act="lrelu")


def _embedding(mid: int, wide: int, in_channels: int) -> nn.Sequential:
    return nn.Sequential(_cbl(in_channels, mid, 1), _cbl(mid, wide, 3), _cbl(wide, mid, 1),
                         _cbl(mid, wide, 3), _cbl(wide, mid, 1))


class YOLOFPN(nn.Module):
    """DarkNet53 with the YOLOv3 FPN; outputs 128, 256, 512 channels at strides 8, 16, 32."""

    def __init__(self, depth: int = 53):
        super().__init__()
        self.backbone = Darknet(depth)
        self.out1_cbl = _cbl(512, 256, 1)
        self.out1 = _embedding(256, 512, 512 + 256)
        self.out2_cbl = _cbl(256, 128, 1)
        self.out2 = _embedding(128, 256, 256 + 128)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> Features:
        x2, x1, x0 = self.backbone(x)
        out_dark4 = self.out1(torch.cat([self.upsample(self.out1_cbl(x0)), x1], 1))
        out_dark3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_dark4)), x2], 1))
        return out_dark3, out_dark4, x0
