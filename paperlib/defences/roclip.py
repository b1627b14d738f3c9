"""RoCLIP (Yang et al. 2023) as a fine-tuning baseline: nearest-neighbour captions from a pool.

Every ``break_epoch``-th epoch (epochs break_epoch-1, 2*break_epoch-1, ... counting from 0) each
image is matched, instead of with its own caption, with the caption embedding in a FIFO memory
bank that is most similar to the image; the other epochs use the plain CLIP loss.  The bank
holds detached text embeddings of recent batches (RoCLIP: 21,845 at batch 512; ``bank_size``
scales it).  On nearest-neighbour epochs the text side receives no gradient from this term, as
the pool entries are detached.  RoCLIP's optional image augmentation and EDA are off by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from paperlib.config import param
from paperlib.defences.base import DefenceContext, DefencePlan
from paperlib.train.losses import StepContext, info_nce


@dataclass(frozen=True)
class RoCLIPConfig:
    break_epoch: int = param(2, range=(1, None), doc="every break_epoch-th epoch uses nearest neighbours")
    bank_size: int = param(2048, range=(1, None), doc="text embeddings in the memory bank (21,845 in RoCLIP)")


class MemoryBank:
    """A FIFO bank of normalised embeddings with exact nearest-neighbour lookup (cosine)."""

    def __init__(self, size: int):
        self.size = size
        self.items: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.items is None else len(self.items)

    def push(self, x: torch.Tensor) -> None:
        x = x.detach()
        self.items = x[-self.size:] if self.items is None else torch.cat([self.items, x])[-self.size:]

    def nearest(self, queries: torch.Tensor) -> torch.Tensor:
        """The bank entry most similar to each query (queries and entries normalised)."""
        if self.items is None:
            raise ValueError("the memory bank is empty")
        return self.items[(queries.detach() @ self.items.t()).argmax(1)]


class RoCLIPTerm(nn.Module):
    name = "roclip"

    def __init__(self, cfg: RoCLIPConfig, steps_per_epoch: int):
        super().__init__()
        self.cfg, self.steps_per_epoch = cfg, max(1, steps_per_epoch)
        self.bank = MemoryBank(cfg.bank_size)

    def nn_epoch(self, epoch: int) -> bool:
        return (epoch + 1) % self.cfg.break_epoch == 0

    def forward(self, step: StepContext) -> torch.Tensor:
        img = step.image_features()
        txt = step.text_features()
        epoch = int(step.batch["step"]) // self.steps_per_epoch
        if self.nn_epoch(epoch) and len(self.bank):
            loss = info_nce(img, self.bank.nearest(img), step.logit_scale)
        else:
            loss = info_nce(img, txt, step.logit_scale)
        self.bank.push(txt)
        return loss


def record_step(batch: dict, step: int, generator) -> dict:
    batch["step"] = step
    return batch


def plan(cfg: RoCLIPConfig, ctx: DefenceContext) -> DefencePlan:
    return DefencePlan(terms=[(RoCLIPTerm(cfg, ctx.steps_per_epoch), 1.0)], transforms=[record_step])
