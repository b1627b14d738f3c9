"""ABL (Anti-Backdoor Learning, Li et al. 2021) as a poisoned-pair detector for CLIP.

ABL's isolation stage: train on the (poisoned) data with local gradient ascent (LGA),
``L' = sign(L - gamma) * L``, which keeps the loss of every batch near the flooding level gamma,
so the pairs the model learns fastest (poisoned pairs are easy: one trigger, one caption) end up
with the lowest losses; the ``isolation_ratio`` (1%) pairs with the lowest loss are isolated.
For CLIP the per-pair loss is the pair's CLIP loss inside its batch,
0.5 * [CE(image_i -> captions) + CE(caption_i -> images)].  BackdoorBench's defaults: isolation
ratio 0.01, flooding gamma 0.5, 20 tuning epochs, lr 5e-4 (anchors.md); ``epochs`` scales the
tuning down.  Training starts from the clean pre-trained model (CFBD's adaptation fine-tunes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from paperlib.config import param
from paperlib.train.losses import StepContext, info_nce


@dataclass(frozen=True)
class ABLConfig:
    isolation_ratio: float = param(0.01, range=(0.0, 1.0), doc="share of pairs isolated as poisoned")
    flooding: float = param(0.5, range=(0.0, None), doc="LGA level gamma")
    epochs: float = param(2.0, range=(0.0, None), doc="isolation (tuning) epochs")
    lr: float = param(5e-4, range=(0.0, 1.0), doc="learning rate of the isolation training")
    batch_size: int = param(128, range=(2, None), doc="batch size (also of the per-pair losses)")


class LGATerm(nn.Module):
    """The CLIP loss under local gradient ascent: sign(L - gamma) * L."""

    name = "clip_lga"

    def __init__(self, gamma: float):
        super().__init__()
        self.gamma = gamma

    def forward(self, step: StepContext) -> torch.Tensor:
        loss = info_nce(step.image_features(), step.text_features(), step.logit_scale)
        return torch.sign(loss.detach() - self.gamma) * loss


@torch.no_grad()
def per_pair_losses(model, pairs, batch_size: int, device, seed: int = 0) -> np.ndarray:
    """Each pair's CLIP loss within a seeded random batch of ``batch_size`` (the last, smaller
    batch included)."""
    from paperlib.models import normalize_images
    model.eval()
    order = np.random.default_rng([seed, 91]).permutation(len(pairs))
    out = np.zeros(len(pairs))
    for s in range(0, len(order), batch_size):
        rows = order[s:s + batch_size]
        b = pairs.fetch(rows)
        img = F.normalize(model.encode_image(normalize_images(b["images"].to(device))).float(), dim=-1)
        txt = F.normalize(model.encode_text(b["tokens"].to(device)).float(), dim=-1)
        logits = model.logit_scale.exp().float() * img @ txt.t()
        lab = torch.arange(len(rows), device=img.device)
        per = 0.5 * (F.cross_entropy(logits, lab, reduction="none") + F.cross_entropy(logits.t(), lab, reduction="none"))
        out[rows] = per.cpu().numpy()
    return out


def isolate(losses: np.ndarray, ratio: float) -> np.ndarray:
    """Bool mask of the ``ratio`` share of pairs with the lowest loss (at least one)."""
    n = len(losses)
    k = max(1, int(round(ratio * n)))
    flagged = np.zeros(n, bool)
    flagged[np.argsort(losses, kind="stable")[:k]] = True
    return flagged
