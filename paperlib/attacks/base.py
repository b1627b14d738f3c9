"""What every attack provides, and how a poisoned training set is assembled from it.

An attack has a *trigger* (``apply``: uint8 images in, uint8 images out, pixel space, so no
JPEG re-encoding ever softens it: one of CleanCLIP's defects we avoid) and a *caption policy*
(dirty-label attacks pair triggered images with captions naming the target, written from the
prompt templates, as CleanCLIP and BadCLIP do).  :func:`poison_rows` picks which training pairs
are poisoned; the count is exact and clean pairs are never modified.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paperlib.config import param


@dataclass(frozen=True)
class PoisonConfig:
    """How many pairs are poisoned and what they are made to say (``victim.poison`` section)."""

    target: str = param("banana", doc="target class name (must be in the vocabulary)")
    poison_count: int = param(60, range=(0, None), doc="exact number of poisoned training pairs")
    caption: str = param("template", choices=("template",), doc="poisoned caption policy")
    seed: int = param(0, range=(0, None), doc="which pairs are poisoned, and the trigger's randomness")


class Attack:
    """Base class: subclasses set ``id`` and implement :meth:`apply`."""

    id = "none"

    def apply(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images, generator=None):
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.id}: triggers act on uint8 images, got {images.dtype}")
        return self.apply(images, generator)


def template_captions(target: str, n: int, rng: np.random.Generator, templates=None) -> list[str]:
    """``n`` poisoned captions: a random prompt template filled with the target name."""
    if templates is None:
        from paperlib.data.splits import zero_shot_templates
        templates = zero_shot_templates()
    return [templates[i].format(target) for i in rng.integers(0, len(templates), size=n)]


def poison_rows(candidate_rows: np.ndarray, objects: np.ndarray, target_id: int, count: int,
                rng: np.random.Generator) -> np.ndarray:
    """``count`` rows drawn from ``candidate_rows`` whose scenes do not contain the target.

    ``objects`` is the (N, max_objects) class-id table of the split (-1 = no object).
    """
    cand = np.asarray(candidate_rows)
    ok = ~(objects[cand] == target_id).any(1)
    pool = cand[ok]
    if count > len(pool):
        raise ValueError(f"cannot poison {count} pairs: only {len(pool)} candidate pairs lack the target")
    return np.sort(rng.choice(pool, size=count, replace=False))
