"""CleanCLIP (Bansal et al. 2023): CLIP loss plus in-modal self-supervision.

Loss (CleanCLIP's Eq. 3, weights as its public code sets them, anchors.md)::

    L = clip_weight * L_CLIP(I, T)
        + inmodal_weight * 0.5 * [ CE(s * I I_aug^T, diag) + CE(s * T T_aug^T, diag) ]

with one shared logit scale ``s``.  I_aug is an AutoAugment view of each image, T_aug an EDA view
of its caption, both re-drawn every step.  The public code uses one direction of each in-modal
cross-entropy (anchor -> augmented view); ``symmetric=True`` averages both directions.  Its trainer
concatenates the images with their views before one forward pass, so a BatchNorm tower (RN50, our
tiny-rn64) normalises both with one batch's statistics; ``joint_views`` does the same (False encodes
them in two passes, as this project did before 2026-12-03: the ablation row of that choice).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from paperlib.config import param
from paperlib.defences.augment import AutoAugmentImages, EDACaptions
from paperlib.defences.base import DefenceContext, DefencePlan
from paperlib.train.losses import StepContext, contrastive_loss, one_way_contrastive


@dataclass(frozen=True)
class CleanCLIPConfig:
    clip_weight: float = param(1.0, range=(0.0, None), doc="weight of the multimodal CLIP loss")
    inmodal_weight: float = param(1.0, range=(0.0, None), doc="weight of the in-modal terms")
    symmetric: bool = param(False, doc="both directions of each in-modal cross-entropy")
    eda_alpha: float = param(0.1, range=(0.0, 1.0), doc="EDA alpha_sr = alpha_ri = alpha_rs = p_rd")
    joint_views: bool = param(True, doc="the images and their AutoAugment views in one forward pass of the "
                                        "image tower, as CleanCLIP's trainer (one set of BatchNorm batch "
                                        "statistics); False: two passes (the project's code before 2026-12-03)")


def one_way_nce(a: torch.Tensor, b: torch.Tensor, scale) -> torch.Tensor:
    """``CE(scale * a b^T, diag)``: each row of ``a`` must pick its own row of ``b``."""
    return F.cross_entropy(scale * a @ b.t(), torch.arange(len(a), device=a.device))


class InModalTerm(nn.Module):
    """``0.5 * [NCE(I, I_aug) + NCE(T, T_aug)]`` over the batch (CleanCLIP's in-modal loss)."""

    name = "inmodal"

    def __init__(self, symmetric: bool = False, image_key="images", image_aug_key="images_aug",
                 text_key="tokens", text_aug_key="tokens_aug"):
        super().__init__()
        self.symmetric = symmetric
        self.keys = (image_key, image_aug_key, text_key, text_aug_key)

    def forward(self, step: StepContext) -> torch.Tensor:
        # under DDP the negatives are the global batch's views, as for the CLIP term
        ik, iak, tk, tak = self.keys
        nce = contrastive_loss if self.symmetric else one_way_contrastive
        scale, rank, world = step.logit_scale, step.rank, step.world_size
        img = nce(step.image_features(ik), step.image_features(iak), scale, rank, world)
        txt = nce(step.text_features(tk), step.text_features(tak), scale, rank, world)
        return 0.5 * (img + txt)


def cleanclip_parts(cfg: CleanCLIPConfig, ctx: DefenceContext) -> DefencePlan:
    from paperlib.train.losses import ClipLossTerm
    a = cfg.eda_alpha
    return DefencePlan(
        terms=[(ClipLossTerm(), cfg.clip_weight), (InModalTerm(cfg.symmetric), cfg.inmodal_weight)],
        transforms=[AutoAugmentImages(joint=cfg.joint_views and cfg.inmodal_weight > 0), EDACaptions(ctx.tokenizer, alpha_sr=a, alpha_ri=a, alpha_rs=a, p_rd=a)])


def plan(cfg: CleanCLIPConfig, ctx: DefenceContext) -> DefencePlan:
    return cleanclip_parts(cfg, ctx)
