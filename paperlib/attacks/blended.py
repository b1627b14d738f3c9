"""Blended (Chen et al. 2017): a fixed pattern mixed into the whole image at opacity alpha.

``out = round((1 - alpha) * x + alpha * pattern)`` on the 0-255 scale.  alpha = 0.2 in CleanCLIP,
BackdoorBench and Detect-CLIP-Backdoor-Samples (anchors.md).  The pattern is either

* ``noise``: uniform noise in [0, 255] drawn once from ``pattern_seed`` (CleanCLIP's choice,
  anchors.md), one fixed trigger for every image;
* ``image``: a fixed picture.  BackdoorBench blends its "hello kitty" image (anchors.md), which is
  not available offline; a deterministic, colourful procedural image (concentric hue rings with
  angular spokes) stands in for it: like a photo it is smooth and structured, unlike noise.

The pattern depends only on the image size and the seed, so the trigger at 64 px and at 224 px is
the same construction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from paperlib.attacks.base import Attack
from paperlib.config import param

PATTERNS = ("noise", "image")


@dataclass(frozen=True)
class BlendedConfig:
    # anchors.md: alpha 0.2 (CleanCLIP, BackdoorBench, Detect-CLIP-Backdoor-Samples)
    alpha: float = param(0.2, range=(0.0, 1.0), doc="opacity of the blended pattern")
    # anchors.md: CleanCLIP blends uniform noise; BackdoorBench an image ("image" here)
    pattern: str = param("noise", choices=PATTERNS, doc="uniform noise (CleanCLIP) or a fixed image")
    pattern_seed: int = param(0, range=(0, None), doc="seed of the fixed noise pattern")


def radial_image(height: int, width: int) -> np.ndarray:
    """A deterministic colourful (3, H, W) uint8 picture: hue rings plus angular spokes."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    r = np.hypot((yy - cy) / max(height, 1), (xx - cx) / max(width, 1))   # ~[0, 0.71]
    theta = np.arctan2(yy - cy, xx - cx)
    hue = (3.0 * r + theta / (2 * math.pi)) % 1.0
    val = 0.6 + 0.4 * np.cos(6 * theta) * np.cos(2 * math.pi * 4 * r)
    chans = [0.5 + 0.5 * np.cos(2 * math.pi * (hue + k / 3)) for k in range(3)]
    img = np.stack([c * val for c in chans]) * 255
    return np.clip(img, 0, 255).round().astype(np.uint8)


def blend_pattern(height: int, width: int, pattern: str, seed: int) -> torch.Tensor:
    """The (3, H, W) uint8 pattern."""
    if pattern == "noise":
        g = np.random.default_rng(seed)
        return torch.from_numpy(g.integers(0, 256, (3, height, width), dtype=np.uint8))
    if pattern == "image":
        return torch.from_numpy(radial_image(height, width))
    raise ValueError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")


class Blended(Attack):
    id = "blended"

    def __init__(self, cfg: BlendedConfig = BlendedConfig(), image_side: int = 64):
        self.cfg = cfg
        self.image_side = image_side
        self._patterns: dict[tuple[int, int], torch.Tensor] = {}
        self.pattern = self.pattern_for(image_side, image_side)

    def pattern_for(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._patterns:
            self._patterns[key] = blend_pattern(height, width, self.cfg.pattern, self.cfg.pattern_seed)
        return self._patterns[key]

    def apply(self, images, generator=None):
        _, _, H, W = images.shape
        pat = self.pattern_for(H, W).to(images.device).float()
        a = self.cfg.alpha
        out = (1 - a) * images.float() + a * pat
        return out.round().clamp_(0, 255).to(torch.uint8)
