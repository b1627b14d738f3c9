"""Optimiser and schedule as CleanCLIP sets them (see ../shared/notes/anchors.md).

AdamW with two parameter groups: no weight decay on normalisation layers, biases and the logit
scale (CleanCLIP's rule tests the parameter name for "bn", "ln", "bias", "logit_scale"; we also
exempt every 0/1-dimensional tensor, which covers open_clip's norm layers named otherwise).
Learning rate: linear warm-up from 0, then cosine decay to 0 over the remaining steps.
"""
from __future__ import annotations

import math

import torch


def no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim < 2 or any(k in name for k in ("bn", "ln", "bias", "logit_scale"))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if no_decay(name, p) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def make_optimizer(model, lr: float, weight_decay: float, betas=(0.9, 0.999), eps=1e-8):
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=tuple(betas), eps=eps)


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine to zero."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(optimizer, warmup: int, total: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup, total))
