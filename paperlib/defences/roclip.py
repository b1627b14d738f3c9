"""RoCLIP (Yang et al. 2023) as a fine-tuning baseline: nearest-neighbour captions from a pool.

Every ``break_epoch``-th epoch (epochs break_epoch-1, 2*break_epoch-1, ... counting from 0) each
image is matched, instead of with its own caption, with the caption embedding in a FIFO memory
bank that is most similar to the image; the other epochs use the plain CLIP loss.  The bank
holds detached text embeddings of recent batches (RoCLIP: 21,845 at batch 512; ``bank_size``
scales it).  On nearest-neighbour epochs the text side receives no gradient from this term, as
the pool entries are detached.  RoCLIP's optional image augmentation and EDA are off by default.

Under DDP every rank pushes the whole global batch's captions (gathered), so the banks of all
ranks are the same and the negatives are the global batch's, as in the plain CLIP loss.  The bank
is the term's extra state: the training loop saves it with each checkpoint, so a resumed run
looks up the same neighbours as an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from paperlib.config import param
from paperlib.defences.base import DefenceContext, DefencePlan
from paperlib.train.losses import StepContext, contrastive_loss, gather_features


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
        if self.items is not None:
            x = torch.cat([self.items.to(x.device), x])
        self.items = x[-self.size:]

    def nearest(self, queries: torch.Tensor) -> torch.Tensor:
        """The bank entry most similar to each query (queries and entries normalised)."""
        if self.items is None:
            raise ValueError("the memory bank is empty")
        items = self.items.to(queries.device)   # a bank restored from a checkpoint lives on the CPU
        return items[(queries.detach() @ items.t()).argmax(1)]


class RoCLIPTerm(nn.Module):
    name = "roclip"
    leaves_parameters_unused = True   # the text tower gets no gradient on nearest-neighbour epochs

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
        partner = self.bank.nearest(img) if self.nn_epoch(epoch) and len(self.bank) else txt
        loss = contrastive_loss(img, partner, step.logit_scale, step.rank, step.world_size)
        self.bank.push(gather_features(txt, step.rank, step.world_size))
        return loss

    def get_extra_state(self) -> torch.Tensor:
        """The memory bank (empty tensor before the first step): saved with the checkpoint."""
        return torch.empty(0) if self.bank.items is None else self.bank.items.detach().cpu().contiguous()

    def set_extra_state(self, state: torch.Tensor) -> None:
        if state.numel() and (state.ndim != 2 or len(state) > self.bank.size):
            raise ValueError(f"RoCLIP memory bank in the checkpoint has shape {tuple(state.shape)}; "
                             f"expected (n <= {self.bank.size}, embedding dim)")
        self.bank.items = state.clone() if state.numel() else None


def record_step(batch: dict, step: int, generator) -> dict:
    batch["step"] = step
    return batch


def plan(cfg: RoCLIPConfig, ctx: DefenceContext) -> DefencePlan:
    return DefencePlan(terms=[(RoCLIPTerm(cfg, ctx.steps_per_epoch), 1.0)], transforms=[record_step])
