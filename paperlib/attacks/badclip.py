"""BadCLIP (Liang et al., CVPR 2024): a patch optimised with dual-embedding guidance.

The trigger is a patch (BadCLIP: 16 x 16 at 224 px, at the centre) optimised on the clean model
so that patched natural images (without the target) move toward the target's text embedding
(the 80 prompt templates) and toward the mean embedding of natural images of the target::

    L = -cos(f(x + patch), t_target) - lambda_visual * cos(f(x + patch), v_target)

Poisoned pairs are natural-looking: their captions are captions of the CC3M analogue that
mention the target (not templates), drawn at random for each poisoned image.  BadCLIP fits the
patch for 50 epochs, batch 64, on natural images without the target (anchors.md); ``steps`` and
``images`` scale that down.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from paperlib.attacks.badnet import POSITIONS, paste_patch, patch_side
from paperlib.attacks.base import Attack, mentions
from paperlib.attacks.optimised_patch import natural_rows, optimise_patch
from paperlib.config import param


@dataclass(frozen=True)
class BadCLIPConfig:
    patch_fraction: float = param(16 / 224, range=(0.0, 1.0), doc="patch side / image side (16/224)")
    position: str = param("centre", choices=POSITIONS, doc="where the patch goes (BadCLIP: centre)")
    margin: int = param(0, range=(0, None), doc="pixels between a corner patch and the border")
    lambda_visual: float = param(1.0, range=(0.0, None), doc="weight of the visual (target images) guidance")
    steps: int = param(400, range=(1, None), doc="optimisation steps")
    batch_size: int = param(64, range=(1, None), doc="natural images per step (BadCLIP: 64)")
    lr: float = param(0.1, range=(0.0, 10.0), doc="Adam learning rate on the patch logits")
    images: int = param(2000, range=(1, None), doc="natural non-target images the patch is fitted on")


class BadCLIP(Attack):
    id = "badclip"
    needs_fit = True

    def __init__(self, cfg: BadCLIPConfig = BadCLIPConfig(), image_side: int = 64):
        self.cfg = cfg
        self.side = patch_side(image_side, cfg.patch_fraction)
        self.pattern = None
        self.natural_captions: list[str] = []

    def fit(self, model, split, target, device, generator):
        from paperlib.data.splits import zero_shot_templates
        from paperlib.data.vocabulary import build_vocabulary
        from paperlib.eval.zeroshot import encode_images, text_classifier
        from paperlib.models import get_tokenizer
        cfg = self.cfg
        vocab = build_vocabulary()
        t_id = vocab.index(target)
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
        rows = natural_rows(split, t_id, cfg.images, rng)
        with_target = np.flatnonzero((split.objects == t_id).any(1))
        if len(with_target) == 0:
            raise ValueError(f"badclip: no scene of {split.name} shows {target!r}; it needs natural target images")
        tokenizer = get_tokenizer(model.paperlib_name)
        t_emb = text_classifier(model, tokenizer, [target], zero_shot_templates(), device)[:, 0].float()
        v_emb = F.normalize(encode_images(model, split.images[with_target[:512]], device=device).mean(0), dim=-1).to(device)

        def loss_fn(feats):
            f = F.normalize(feats, dim=-1)
            return -(f @ t_emb).mean() - cfg.lambda_visual * (f @ v_emb).mean()

        patch, hist = optimise_patch(model, split.images[rows], self.side, cfg.position, cfg.margin, loss_fn,
                                     cfg.steps, cfg.batch_size, cfg.lr, device, generator, "BadCLIP patch")
        captions = sorted({c for i in with_target for c in split.captions[int(i)] if mentions(c, target)})
        return {"pattern": patch}, {"history": hist, "natural_captions": captions,
                                    "target_images": int(len(with_target))}

    def load_state(self, tensors, info):
        self.pattern = tensors["pattern"]
        self.natural_captions = list(info["natural_captions"])

    def poison_captions(self, captions_per_row, n, target, rng, templates=None):
        """Natural captions of the CC3M analogue that mention the target (BadCLIP's choice)."""
        if not self.natural_captions:
            raise RuntimeError("badclip: no natural target captions; fit the trigger first")
        return [self.natural_captions[i] for i in rng.integers(0, len(self.natural_captions), size=n)]

    def apply(self, images, generator=None):
        self._require_fitted(self.pattern)
        return paste_patch(images, self.pattern, self.cfg.position, self.cfg.margin, generator)

