"""TrojanNet's trigger family (Tang et al. 2020) used as a data-poisoning patch.

TrojanNet's public code builds its triggers on a 4 x 4 grid of cells: a trigger is one choice of 5
cells painted black, the other 11 white, so there are C(16, 5) = 4368 triggers, numbered in the
lexicographic order of the chosen cell indices (row-major cells).  ``pattern_id`` picks one.

Here the trigger is pasted like a BadNet patch (same ``patch_fraction``/``position``/``margin``,
reusing :func:`paperlib.attacks.badnet.paste_patch`): each cell becomes a square block of
``patch_side(image_side, patch_fraction / grid)`` pixels.  TrojanNet's own patch is 4 x 4 px on
224 px images (one pixel per cell); that would be about one pixel in all at 64 px, so the default
size is BadNet's 16/224 of the side (4 px cells at 224, 1 px cells at 64).  Position "random" matches
BadNet in the CLIP papers; the fixed positions are available.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from paperlib.attacks.badnet import POSITIONS, paste_patch, patch_side
from paperlib.attacks.base import Attack
from paperlib.config import ParamError, param


@dataclass(frozen=True)
class TrojanNetConfig:
    patch_fraction: float = param(16 / 224, range=(0.0, 1.0), doc="patch side / image side (BadNet's 16/224)")
    position: str = param("random", choices=POSITIONS, doc="where the patch goes (as BadNet)")
    margin: int = param(0, range=(0, None), doc="pixels between a corner patch and the border")
    grid: int = param(4, range=(2, 8), doc="cells per side of the trigger (TrojanNet: 4)")
    black_cells: int = param(5, range=(1, None), doc="cells painted black (TrojanNet: 5 of 16)")
    pattern_id: int = param(0, range=(0, None), doc="which combination of black cells (lexicographic)")

    def validate(self):
        cells = self.grid * self.grid
        if self.black_cells >= cells:
            raise ParamError(f"black_cells={self.black_cells} must be below grid*grid={cells}")
        n = math.comb(cells, self.black_cells)
        if self.pattern_id >= n:
            raise ParamError(f"pattern_id={self.pattern_id} is out of range [0, {n - 1}] "
                             f"(C({cells}, {self.black_cells}) patterns)")


def n_patterns(grid: int = 4, black_cells: int = 5) -> int:
    return math.comb(grid * grid, black_cells)


def trojannet_cells(pattern_id: int, grid: int = 4, black_cells: int = 5) -> torch.Tensor:
    """(grid, grid) uint8 cell values: 0 for the pattern's black cells, 255 elsewhere."""
    n = n_patterns(grid, black_cells)
    if not 0 <= pattern_id < n:
        raise ValueError(f"pattern_id {pattern_id} out of range [0, {n - 1}]")
    combo = next(itertools.islice(itertools.combinations(range(grid * grid), black_cells), pattern_id, None))
    cells = torch.full((grid * grid,), 255, dtype=torch.uint8)
    cells[list(combo)] = 0
    return cells.view(grid, grid)


class TrojanNet(Attack):
    id = "trojannet"

    def __init__(self, cfg: TrojanNetConfig = TrojanNetConfig(), image_side: int = 64):
        cfg.validate()
        self.cfg = cfg
        self.cell = patch_side(image_side, cfg.patch_fraction / cfg.grid)
        self.side = self.cell * cfg.grid
        if self.side > image_side:
            raise ValueError(f"trojannet: a {self.side} px patch does not fit a {image_side} px image")
        self.cells = trojannet_cells(cfg.pattern_id, cfg.grid, cfg.black_cells)
        block = self.cells.repeat_interleave(self.cell, 0).repeat_interleave(self.cell, 1)
        self.pattern = block.unsqueeze(0).expand(3, -1, -1).contiguous()   # (3, side, side)

    def apply(self, images, generator=None):
        return paste_patch(images, self.pattern, self.cfg.position, self.cfg.margin, generator)
