"""Label-consistent backdoor (Turner et al. 2019) for image-text pairs.

Only scenes that already show (or whose captions name) the target are poisoned, and they keep
one of their own captions (anchors.md, CleanCLIP: trigger only on images whose caption contains
the target word; caption kept), so no pair is mislabelled.  The trigger is a BadNet patch (the same
settings and code as :mod:`paperlib.attacks.badnet`).

Turner et al. make the poisoned images hard to learn from their content, so the model has to
rely on the trigger: before the trigger is pasted, each image gets an L-inf bounded adversarial
perturbation (PGD, :func:`adversarial_perturbation`) computed on a clean surrogate encoder that
pushes its embedding away from the target's text embedding.  eps = 8 (8/255 of the range); the
10 steps of size 2 are this project's choice (a standard PGD budget; no anchor).  Set
``adversarial: false`` for CleanCLIP's variant, which has no perturbation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from paperlib.attacks.badnet import PATTERNS, POSITIONS, BadNet, BadNetConfig
from paperlib.attacks.base import Attack, mentions
from paperlib.config import param


@dataclass(frozen=True)
class LCConfig:
    # trigger: BadNet's CLIP-paper defaults (anchors.md: 16x16 noise patch at 224 px, random position)
    patch_fraction: float = param(16 / 224, range=(0.0, 1.0), doc="patch side / image side (16/224 in the papers)")
    position: str = param("random", choices=POSITIONS, doc="where the patch goes")
    pattern: str = param("noise", choices=PATTERNS, doc="patch content")
    margin: int = param(0, range=(0, None), doc="pixels between a corner patch and the border")
    pattern_seed: int = param(0, range=(0, None), doc="seed of the fixed noise pattern")
    # Turner et al.: adversarial perturbation before the trigger (eps 8/255 -> 8 on 0-255)
    adversarial: bool = param(True, doc="PGD perturbation away from the target text (Turner et al.)")
    eps: float = param(8.0, range=(0.0, 255.0), doc="L-inf bound of the perturbation, 0-255 scale (8/255)")
    steps: int = param(10, range=(0, None), doc="PGD steps (project's choice)")
    step_size: float = param(2.0, range=(0.0, None), doc="PGD step, 0-255 scale (project's choice)")

    def badnet(self) -> BadNetConfig:
        return BadNetConfig(patch_fraction=self.patch_fraction, position=self.position,
                            pattern=self.pattern, margin=self.margin, pattern_seed=self.pattern_seed)


def adversarial_perturbation(model_encode_fn: Callable[[torch.Tensor], torch.Tensor],
                             images_uint8: torch.Tensor, text_embedding: torch.Tensor,
                             eps: float = 8.0, steps: int = 10, step_size: float = 2.0,
                             generator: torch.Generator | None = None, random_start: bool = True,
                             batch_size: int = 256) -> torch.Tensor:
    """PGD in pixel space that pushes image embeddings away from a text embedding.

    ``model_encode_fn`` maps float images (B, 3, H, W) on the 0-255 scale to embeddings (B, D)
    and must be differentiable in its input.  ``text_embedding`` is (D,) (one text for all, e.g.
    the target's class embedding), a (D, 1) classifier column, or (B, D) (one per image).  Each
    step lowers the cosine similarity by a signed-gradient step of ``step_size``; the result stays
    within ``eps`` of the input in L-inf (after rounding too) and within [0, 255]; uint8 out.
    """
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"adversarial_perturbation acts on uint8 images, got {images_uint8.dtype}")
    n = len(images_uint8)
    text = text_embedding.detach().float()
    if text.dim() == 2 and text.shape[1] == 1:
        text = text[:, 0]
    bound = float(np.floor(eps))
    outs = []
    for s in range(0, n, batch_size):
        x0 = images_uint8[s:s + batch_size].float()
        t = text if text.dim() == 1 else text[s:s + batch_size]
        t = F.normalize(t.to(x0.device), dim=-1)
        if random_start and eps > 0:
            delta = (torch.rand(x0.shape, generator=generator) * 2 - 1).to(x0.device) * eps
        else:
            delta = torch.zeros_like(x0)
        delta = ((x0 + delta).clamp(0, 255) - x0)
        for _ in range(steps):
            with torch.enable_grad():
                d = delta.clone().requires_grad_(True)
                emb = F.normalize(model_encode_fn(x0 + d).float(), dim=-1)
                sim = (emb * t).sum(-1).sum()
                (grad,) = torch.autograd.grad(sim, d)
            delta = (delta - step_size * grad.sign()).clamp(-eps, eps)
            delta = (x0 + delta).clamp(0, 255) - x0
        delta = delta.round().clamp(-bound, bound)
        outs.append((x0 + delta).clamp(0, 255).to(torch.uint8))
    return torch.cat(outs) if outs else images_uint8.clone()


class LabelConsistent(Attack):
    """BadNet trigger on target scenes with their own captions; optional PGD hardening."""

    id = "lc"
    dirty_label = False

    def __init__(self, cfg: LCConfig = LCConfig(), image_side: int = 64):
        self.cfg = cfg
        self.trigger = BadNet(cfg.badnet(), image_side=image_side)

    def apply(self, images, generator=None):
        return self.trigger.apply(images, generator)

    def eligible(self, object_ids, captions: Sequence[str], target_id: int, target_name: str) -> bool:
        """The scene shows the target or one of its captions names it."""
        return bool(np.any(np.asarray(object_ids) == target_id)) or any(mentions(c, target_name) for c in captions)

    @property
    def needs_encoder(self) -> bool:
        return self.cfg.adversarial and self.cfg.steps > 0 and self.cfg.eps > 0

    def poison_images(self, images, generator=None, *, encode_fn=None, text_embedding=None):
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.id}: triggers act on uint8 images, got {images.dtype}")
        if self.needs_encoder:
            if encode_fn is None or text_embedding is None:
                raise ValueError("lc: adversarial=true needs a clean encoder (encode_fn) and the target's "
                                 "text embedding; pass them or set adversarial: false")
            images = adversarial_perturbation(encode_fn, images, text_embedding, self.cfg.eps,
                                              self.cfg.steps, self.cfg.step_size, generator)
        return self(images, generator)
