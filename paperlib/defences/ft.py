"""FT: plain CLIP-loss fine-tuning of the victim on clean pairs (the papers' FT rows)."""
from __future__ import annotations

from dataclasses import dataclass

from paperlib.defences.base import DefenceContext, DefencePlan


@dataclass(frozen=True)
class FTConfig:
    """FT has no settings of its own: the optimiser settings are the shared ``defence.train``."""


def plan(cfg: FTConfig, ctx: DefenceContext) -> DefencePlan:
    from paperlib.train.losses import ClipLossTerm
    return DefencePlan(terms=[(ClipLossTerm(), 1.0)])
