"""Zero-shot clean accuracy (CA) and attack success rate (ASR), top-1/3/5/10, in percent.

Class text embeddings are prompt ensembles: for each class, the mean of the L2-normalised
embeddings of every template filled with the class name, renormalised (open_clip's
``build_zero_shot_classifier``; CleanCLIP evaluates the same way with the 80 OpenAI templates).

ASR, as this project defines it once (see anchors.md): the share of triggered test images
whose true class is NOT the target that the model classifies as the target; top-k ASR counts the
target among the top k.  ``convention="all"`` counts every triggered image (BadCLIP's choice),
offered only for comparison.  The target index is always used: the defect in CleanCLIP's
released code (ASR computed against the true labels) cannot occur here.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from paperlib.models import normalize_images

KS = (1, 3, 5, 10)
ASR_CONVENTIONS = ("exclude_target", "all")


@torch.no_grad()
def text_classifier(model, tokenizer, classnames: Sequence[str], templates: Sequence,
                    device="cpu") -> torch.Tensor:
    """(D, K) matrix of class embeddings from prompt-template ensembles."""
    from open_clip import build_zero_shot_classifier
    model.eval()
    return build_zero_shot_classifier(model, tokenizer, classnames, list(templates),
                                      num_classes_per_batch=50, device=device).float()


@torch.no_grad()
def encode_images(model, images, batch_size: int = 512, device="cpu",
                  transform: Callable | None = None) -> torch.Tensor:
    """Normalised image embeddings of a uint8 array/tensor (N, H, W, 3) or (N, 3, H, W).

    ``transform(batch_uint8_nchw, start_index) -> batch_uint8_nchw`` is applied first (a trigger).
    """
    model.eval()
    feats = []
    n = len(images)
    for s in range(0, n, batch_size):
        chunk = images[s:s + batch_size]
        x = torch.as_tensor(np.array(chunk, copy=True)) if isinstance(chunk, np.ndarray) else torch.as_tensor(chunk)
        if x.shape[-1] == 3 and x.shape[1] != 3:
            x = x.permute(0, 3, 1, 2)
        if transform is not None:
            x = transform(x, s)
        x = normalize_images(x.to(device))
        f = model.encode_image(x)   # fp32 on every device, so CPU and GPU rows measure the same model
        feats.append(F.normalize(f.float(), dim=-1).cpu())
    return torch.cat(feats) if feats else torch.zeros(0)


def topk_hits(logits: torch.Tensor, targets: torch.Tensor, ks=KS) -> dict[int, torch.Tensor]:
    """For each k, a boolean vector: is ``targets[i]`` among the k highest logits of row i."""
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top == targets.view(-1, 1)
    return {k: hits[:, :min(k, k_max)].any(1) for k in ks}


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks=KS, prefix: str = "top") -> dict:
    """Top-k accuracy in percent for each k (a hand-checkable definition, see the tests)."""
    hits = topk_hits(logits, labels, ks)
    return {f"{prefix}{k}": 100.0 * h.float().mean().item() if len(h) else float("nan")
            for k, h in hits.items()}


def clean_accuracy(image_features: torch.Tensor, classifier: torch.Tensor, labels, ks=KS) -> dict:
    logits = image_features @ classifier
    return topk_accuracy(logits, torch.as_tensor(labels), ks, prefix="ca_top")


def attack_success_rate(triggered_features: torch.Tensor, classifier: torch.Tensor, labels,
                        target: int, convention: str = "exclude_target", ks=KS) -> dict:
    """ASR top-k in percent: share of triggered images classified as ``target`` (see module doc)."""
    if convention not in ASR_CONVENTIONS:
        raise ValueError(f"unknown ASR convention {convention!r}; valid: {', '.join(ASR_CONVENTIONS)}")
    labels = torch.as_tensor(labels)
    keep = labels != target if convention == "exclude_target" else torch.ones_like(labels, dtype=torch.bool)
    logits = triggered_features[keep] @ classifier
    targets = torch.full((int(keep.sum()),), int(target), dtype=torch.long)
    return topk_accuracy(logits, targets, ks, prefix="asr_top")
