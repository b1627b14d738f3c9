"""SIG (Barni et al. 2019): an additive horizontal sinusoid over the whole image.

``out = clip(x + delta * sin(2 pi j f / W))`` for column ``j`` of ``W``, every row and channel, on
the 0-255 scale.  CleanCLIP adds 60/255 * sin(2 pi j 6 / 224) to [0, 1] images at 224 px, i.e.
delta = 60 on the 0-255 scale and f = 6; BackdoorBench uses delta 40, f 6 (anchors.md).  The
frequency is kept as cycles per image width, so f = 6 means six periods across the image at 64 px
as at 224 px.  Unlike CleanCLIP's float images, the result is rounded and clipped to uint8.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from paperlib.attacks.base import Attack
from paperlib.config import param


@dataclass(frozen=True)
class SigConfig:
    # anchors.md: CleanCLIP 60/255 on [0, 1] images = 60 on 0-255 (BackdoorBench: 40)
    delta: float = param(60.0, range=(0.0, 255.0), doc="amplitude on the 0-255 scale (CleanCLIP 60, BackdoorBench 40)")
    # anchors.md: f = 6 at 224 px in CleanCLIP and BackdoorBench; cycles per image width here
    frequency: float = param(6.0, range=(0.0, None), doc="periods of the sinusoid across the image width")


def sig_signal(width: int, delta: float, frequency: float) -> torch.Tensor:
    """The (W,) additive signal on the 0-255 scale."""
    j = torch.arange(width, dtype=torch.float64)
    return (delta * torch.sin(2 * math.pi * j * frequency / width)).float()


class Sig(Attack):
    id = "sig"

    def __init__(self, cfg: SigConfig = SigConfig(), image_side: int = 64):
        self.cfg = cfg
        self.image_side = image_side
        self.signal = sig_signal(image_side, cfg.delta, cfg.frequency)

    def apply(self, images, generator=None):
        W = images.shape[-1]
        sig = self.signal if W == len(self.signal) else sig_signal(W, self.cfg.delta, self.cfg.frequency)
        out = images.float() + sig.to(images.device).view(1, 1, 1, W)
        return out.round().clamp_(0, 255).to(torch.uint8)
