"""BadNet (Gu et al. 2017) as the CLIP papers use it: a small patch pasted on the image.

CleanCLIP / BadCLIP paste a 16x16 Gaussian-noise patch at a random position on 224 px images;
EftCLIP sweeps the size rho in {8, 16} px at 224 and the position mu over random, top-left,
bottom-right and centre.  The patch size is given as a fraction of the image side so the same
setting means the same thing at 64 px and at 224 px.  The noise pattern is drawn once from the
attack's seed (one fixed trigger, as in BadNet), clipped to [0, 255] (CleanCLIP did not clip).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paperlib.attacks.base import Attack
from paperlib.config import param

POSITIONS = ("random", "top_left", "bottom_right", "centre")
PATTERNS = ("noise", "checkerboard", "solid")


@dataclass(frozen=True)
class BadNetConfig:
    patch_fraction: float = param(16 / 224, range=(0.0, 1.0), doc="patch side / image side (16/224 in the papers)")
    position: str = param("random", choices=POSITIONS, doc="where the patch goes (mu)")
    pattern: str = param("noise", choices=PATTERNS, doc="patch content")
    margin: int = param(0, range=(0, None), doc="pixels between a corner patch and the border")
    pattern_seed: int = param(0, range=(0, None), doc="seed of the fixed noise pattern")


def patch_side(image_side: int, fraction: float) -> int:
    return max(1, int(round(fraction * image_side)))


def make_pattern(side: int, pattern: str, seed: int) -> torch.Tensor:
    """A (3, side, side) uint8 patch."""
    if pattern == "noise":
        g = np.random.default_rng(seed)
        return torch.from_numpy(np.clip(g.normal(127.5, 127.5 / 2, (3, side, side)), 0, 255)
                                .round().astype(np.uint8))
    if pattern == "checkerboard":
        yy, xx = np.mgrid[0:side, 0:side]
        board = ((yy + xx) % 2 * 255).astype(np.uint8)
        return torch.from_numpy(np.repeat(board[None], 3, 0))
    if pattern == "solid":
        return torch.full((3, side, side), 255, dtype=torch.uint8)
    raise ValueError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")


def patch_positions(n: int, image_side: int, side: int, position: str, margin: int,
                    generator: torch.Generator | None) -> torch.Tensor:
    """(n, 2) top-left corners (y, x) of the patch for each image."""
    hi = image_side - side
    if position == "random":
        return torch.randint(0, hi + 1, (n, 2), generator=generator)
    if position == "top_left":
        yx = (margin, margin)
    elif position == "bottom_right":
        yx = (hi - margin, hi - margin)
    elif position == "centre":
        yx = (hi // 2, hi // 2)
    else:
        raise ValueError(f"unknown position {position!r}; valid: {', '.join(POSITIONS)}")
    return torch.tensor(yx).expand(n, 2).clone()


def paste_patch(images: torch.Tensor, pattern: torch.Tensor, position: str, margin: int,
                generator: torch.Generator | None) -> torch.Tensor:
    """A copy of ``images`` (B, 3, H, W) with the (3, s, s) ``pattern`` pasted where ``position`` says."""
    out = images.clone()
    side = pattern.shape[-1]
    pos = patch_positions(len(out), out.shape[2], side, position, margin, generator)
    pat = pattern.to(out.device)
    for i, (y, x) in enumerate(pos.tolist()):
        out[i, :, y:y + side, x:x + side] = pat
    return out


class BadNet(Attack):
    id = "badnet"

    def __init__(self, cfg: BadNetConfig = BadNetConfig(), image_side: int = 64):
        self.cfg = cfg
        self.side = patch_side(image_side, cfg.patch_fraction)
        self.pattern = make_pattern(self.side, cfg.pattern, cfg.pattern_seed)

    def apply(self, images, generator=None):
        return paste_patch(images, self.pattern, self.cfg.position, self.cfg.margin, generator)
