"""What a defence is, for the one training loop: loss terms, batch transforms and callbacks.

A fine-tuning defence (FT, CleanCLIP, CleanerCLIP, ABD, RoCLIP as fine-tuning) is a
:class:`DefencePlan`: the weighted loss terms the loop adds, the batch transforms that run
before them (augmentations, sub-captions, adversarial patches) and the callbacks the loop calls
at epoch ends.  A defence never brings its own loop.  Everything a plan needs from the world
(the victim, the clean base, tokenizer, device, the clean pair set) comes in a
:class:`DefenceContext`; defences that must prepare something first (ABD's generator) do it in
their ``plan`` function.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch


@dataclass
class DefenceContext:
    model_name: str
    tokenizer: Callable
    device: torch.device
    pairs: Any                          # the clean fine-tuning pair set (TensorPairs with texts)
    steps_per_epoch: int
    seed: int = 0
    victim: Any = None                  # ModelArtifact of the poisoned model
    clean_base: Any = None              # ModelArtifact of the clean pre-trained model (ABD's L_bd)
    classnames: Sequence[str] = ()      # nouns the caption parser should know (class names)
    cache: Any = None


@dataclass
class DefencePlan:
    terms: list = field(default_factory=list)           # [(nn.Module term, weight)]
    transforms: list = field(default_factory=list)      # fn(batch, step, generator) -> batch
    callbacks: list = field(default_factory=list)       # fn(event, info)
    info: dict = field(default_factory=dict)            # what was prepared (for the record)


def step_rng(generator: torch.Generator):
    """A numpy generator drawn from the loop's per-step torch generator (fresh and seeded)."""
    import numpy as np
    return np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=generator)))
