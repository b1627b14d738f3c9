"""WaNet (Nguyen & Tran 2021): an imperceptible, smooth warp of the whole image.

The warp is fixed by ``field_seed``: a k x k control grid of 2-D offsets drawn uniformly in
[-1, 1] and divided by its mean absolute value, upsampled bicubically to H x W, scaled by s / H and
added to the identity sampling grid (normalised coordinates in [-1, 1]); the grid is multiplied
by ``grid_rescale``, clamped to [-1, 1] and the image is resampled bilinearly with
``grid_sample(align_corners=True)``.  In pixels the displacement is about s / 2 whatever the image
side, so s keeps its meaning at 64 px and at 224 px.

Defaults are BackdoorBench's standard WaNet: k = 4, s = 0.5, grid_rescale = 1, cross ratio 2
(anchors.md).  CleanCLIP's CLIP poisoning uses k = 224, s = 1, grid_rescale = 1 (anchors.md),
a much finer, near per-pixel field; set ``k: 224, s: 1.0`` for it.

Noise mode (WaNet's "cross" samples): besides the poisoned pairs, ``cross_ratio`` times as many
other training images are warped with the trigger field *plus* a random per-pixel offset
(:meth:`WaNet.noise_grid`, uniform in [-1, 1] / H) and keep their own clean captions, so the model
must learn the exact field rather than "any warp".  It is a training-time option only
(``noise_mode``), off by default because CleanCLIP and BadCLIP poison CLIP without it; the test
trigger is always the plain field.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from paperlib.attacks.base import Attack
from paperlib.config import param


@dataclass(frozen=True)
class WaNetConfig:
    # anchors.md: BackdoorBench k 4, s 0.5, grid_rescale 1, cross ratio 2; CleanCLIP k 224, s 1, grid_rescale 1
    k: int = param(4, range=(1, None), doc="side of the random control grid (BackdoorBench 4, CleanCLIP 224)")
    s: float = param(0.5, range=(0.0, None), doc="warp strength (BackdoorBench 0.5, CleanCLIP 1)")
    grid_rescale: float = param(1.0, range=(0.0, None), doc="factor applied to the warped grid (1 in both)")
    field_seed: int = param(0, range=(0, None), doc="seed of the fixed warping field")
    noise_mode: bool = param(False, doc="training only: add cross_ratio x noise-warped pairs with clean captions")
    cross_ratio: float = param(2.0, range=(0.0, None), doc="noise-warped pairs per poisoned pair (BackdoorBench 2)")


def control_grid(k: int, seed: int) -> torch.Tensor:
    """The (1, 2, k, k) control offsets: uniform in [-1, 1], divided by their mean absolute value."""
    g = torch.Generator().manual_seed(seed)
    ctrl = torch.rand((1, 2, k, k), generator=g, dtype=torch.float64) * 2 - 1
    return (ctrl / ctrl.abs().mean()).float()


def identity_grid(height: int, width: int) -> torch.Tensor:
    """(H, W, 2) sampling grid (x, y) in normalised coordinates that reproduces the image."""
    ys = torch.linspace(-1, 1, height)
    xs = torch.linspace(-1, 1, width)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


class WaNet(Attack):
    id = "wanet"

    def __init__(self, cfg: WaNetConfig = WaNetConfig(), image_side: int = 64):
        self.cfg = cfg
        self.image_side = image_side
        self.control = control_grid(cfg.k, cfg.field_seed)
        self._grids: dict[tuple[int, int], torch.Tensor] = {}

    def field(self, height: int, width: int) -> torch.Tensor:
        """(H, W, 2) smooth unit field: the control grid upsampled bicubically (mean |.| ~ 1)."""
        up = F.interpolate(self.control, size=(height, width), mode="bicubic", align_corners=True)
        return up[0].permute(1, 2, 0).contiguous()

    def flow(self, height: int, width: int) -> torch.Tensor:
        """(H, W, 2) offset added to the identity grid (normalised coordinates): s / H * field."""
        return self.cfg.s / height * self.field(height, width)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """(H, W, 2) sampling grid of the trigger."""
        key = (height, width)
        if key not in self._grids:
            g = (identity_grid(height, width) + self.flow(height, width)) * self.cfg.grid_rescale
            self._grids[key] = g.clamp(-1, 1)
        return self._grids[key]

    def noise_grid(self, generator: torch.Generator | None = None, n: int = 1,
                   height: int | None = None, width: int | None = None) -> torch.Tensor:
        """(n, H, W, 2) grids of noise mode: the trigger grid plus uniform([-1, 1]) / H per pixel."""
        height = height or self.image_side
        width = width or height
        extra = torch.rand((n, height, width, 2), generator=generator) * 2 - 1
        return (self.grid(height, width).unsqueeze(0) + extra / height).clamp(-1, 1)

    @staticmethod
    def _warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        out = F.grid_sample(images.float(), grid.to(images.device), mode="bilinear",
                            padding_mode="border", align_corners=True)
        return out.round().clamp_(0, 255).to(torch.uint8)

    def apply(self, images, generator=None):
        n, _, H, W = images.shape
        return self._warp(images, self.grid(H, W).unsqueeze(0).expand(n, H, W, 2))

    def noise_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Noise-mode (cross) images: each warped by its own :meth:`noise_grid`; captions stay clean."""
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.id}: triggers act on uint8 images, got {images.dtype}")
        n, _, H, W = images.shape
        return self._warp(images, self.noise_grid(generator, n, H, W))

    def cross_count(self, poison_count: int) -> int:
        """How many noise-mode pairs accompany ``poison_count`` poisoned pairs (0 when off)."""
        return int(round(self.cfg.cross_ratio * poison_count)) if self.cfg.noise_mode else 0
