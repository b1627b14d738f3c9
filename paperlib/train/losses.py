"""Pluggable loss terms for the one training loop.

A loss term is a small ``nn.Module`` whose ``forward(step)`` returns a scalar loss; the loop adds
the terms with their weights.  ``step`` is a :class:`StepContext`: the model, the batch (a dict
of tensors prepared by the data pipe and by batch transforms) and a per-step cache of encoded
features, so two terms that need the same embeddings encode them once.

Later issues add terms here or in their own modules (CleanCLIP's in-modal terms, CleanerCLIP's
sub-caption terms, RoCLIP's nearest-neighbour captions); the loop itself never changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from paperlib.models import normalize_images

LOGIT_SCALE_MAX = math.log(100.0)  # CLIP / CleanCLIP clamp
# A batch entry naming image views that go through the image tower together, in one batch: CleanCLIP's
# trainer concatenates each image with its augmented view before the forward pass, so a tower with
# BatchNorm (every ResNet CLIP) normalises both with the same batch statistics.
JOINT_IMAGES = "joint_image_keys"


@dataclass
class StepContext:
    model: nn.Module
    batch: dict
    rank: int = 0
    world_size: int = 1
    _cache: dict = field(default_factory=dict)

    def image_features(self, key: str = "images") -> torch.Tensor:
        """L2-normalised image embeddings of ``batch[key]`` (uint8 or [0,1] images).  When the batch
        names ``key`` among its joint views (``batch[JOINT_IMAGES]``), all those views are encoded in
        one forward pass and cached together."""
        if ("img", key) not in self._cache:
            group = tuple(self.batch.get(JOINT_IMAGES, ()))
            if key in group and all(k in self.batch for k in group):
                views = [self.batch[k] for k in group]
                feats = self.model.encode_image(normalize_images(torch.cat(views)))
                for k, f in zip(group, feats.split([len(v) for v in views])):
                    self._cache[("img", k)] = F.normalize(f.float(), dim=-1)
            else:
                feats = self.model.encode_image(normalize_images(self.batch[key]))
                self._cache[("img", key)] = F.normalize(feats.float(), dim=-1)
        return self._cache[("img", key)]

    def text_features(self, key: str = "tokens") -> torch.Tensor:
        """L2-normalised text embeddings of the token tensor ``batch[key]``."""
        if ("txt", key) not in self._cache:
            feats = self.model.encode_text(self.batch[key])
            self._cache[("txt", key)] = F.normalize(feats.float(), dim=-1)
        return self._cache[("txt", key)]

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp().float()


def info_nce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between two aligned batches of normalised embeddings.

    ``0.5 * [CE(scale * a b^T, I) + CE(scale * b a^T, I)]``: the CLIP loss when a = images and
    b = captions, and CleanCLIP's in-modal loss when b is an augmented view of a.
    """
    logits = scale * a @ b.t()
    labels = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def gather_features(x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """All-gather across DDP ranks, keeping the gradient of the local slice."""
    if world_size <= 1:
        return x
    import torch.distributed as dist
    parts = [torch.zeros_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.detach())
    parts[rank] = x
    return torch.cat(parts)


def contrastive_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor | float,
                     rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """The CLIP loss of a rank's aligned rows against the global batch's negatives.

    One process: :func:`info_nce`.  Under DDP both sides are gathered from every rank and each rank
    computes the loss of its own rows, as open_clip's ClipLoss does.
    """
    if world_size <= 1:
        return info_nce(img, txt, scale)
    all_img = gather_features(img, rank, world_size)
    all_txt = gather_features(txt, rank, world_size)
    labels = torch.arange(len(img), device=img.device) + rank * len(img)
    return 0.5 * (F.cross_entropy(scale * img @ all_txt.t(), labels)
                  + F.cross_entropy(scale * txt @ all_img.t(), labels))


def one_way_contrastive(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float,
                        rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """``CE(scale * a b^T, diag)`` (each row of ``a`` must pick its own row of ``b``) with ``b``
    from the global batch under DDP: CleanCLIP's in-modal loss, whose negatives are every
    augmented view of the step (its reference code gathers the embeddings of all processes
    before the loss).  As in :func:`contrastive_loss`, the other ranks' views are gathered
    without their gradient (open_clip's default), so each rank's gradient reaches only its own
    rows: the loss is the reference's, its gradient through the other ranks' negatives is not."""
    all_b = gather_features(b, rank, world_size)
    labels = torch.arange(len(a), device=a.device) + rank * len(a)
    return F.cross_entropy(scale * a @ all_b.t(), labels)


class ClipLossTerm(nn.Module):
    """The standard CLIP contrastive loss between ``images`` and ``tokens`` of the batch.

    Under DDP the embeddings of all ranks are gathered so the negatives are the global batch,
    as open_clip's ClipLoss does (each rank computes the loss of its own rows).
    """

    name = "clip"

    def __init__(self, image_key: str = "images", text_key: str = "tokens"):
        super().__init__()
        self.image_key, self.text_key = image_key, text_key

    def forward(self, step: StepContext) -> torch.Tensor:
        img = step.image_features(self.image_key)
        txt = step.text_features(self.text_key)
        return contrastive_loss(img, txt, step.logit_scale, step.rank, step.world_size)


class TrainingObjective(nn.Module):
    """Model + weighted loss terms as one module, so DDP wraps a single forward."""

    def __init__(self, model: nn.Module, terms: list[tuple[nn.Module, float]]):
        super().__init__()
        self.model = model
        self.terms = nn.ModuleList([t for t, _ in terms])
        self.weights = [float(w) for _, w in terms]

    def forward(self, batch: dict, rank: int = 0, world_size: int = 1) -> dict[str, torch.Tensor]:
        step = StepContext(self.model, batch, rank, world_size)
        losses = {}
        for term, w in zip(self.terms, self.weights):
            if w == 0:
                continue
            losses[term.name] = w * term(step)
        return losses
