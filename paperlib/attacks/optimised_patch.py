"""Shared machinery of the optimised-patch attacks (TrojanNN, BadCLIP).

A patch is a (3, s, s) tensor in [0, 255] parameterised as ``255 * sigmoid(logits)`` and optimised
with Adam on clean natural images of the CC3M analogue, pasted (differentiably) where the
attack's ``position`` says.  After fitting it is rounded to uint8 and pasted like a BadNet patch,
so poisoning and evaluation apply exactly the fitted pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from paperlib.attacks.badnet import patch_positions


def paste_float(images: torch.Tensor, patch: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Float images (B,3,H,W) with the (3,s,s) float patch at each (y, x); keeps the gradient."""
    s = patch.shape[-1]
    B, _, H, W = images.shape
    mask = torch.zeros((B, 1, H, W), device=images.device)
    canvas = torch.zeros_like(images)
    for i, (y, x) in enumerate(positions.tolist()):
        mask[i, :, y:y + s, x:x + s] = 1.0
        canvas[i, :, y:y + s, x:x + s] = patch
    return images * (1 - mask) + canvas


def natural_rows(split, exclude_class: int | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` scenes of the split without ``exclude_class`` (the attacker's natural images)."""
    ok = np.ones(len(split), bool) if exclude_class is None else ~(split.objects == exclude_class).any(1)
    pool = np.flatnonzero(ok)
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def optimise_patch(model, images: np.ndarray, side: int, position: str, margin: int, loss_fn,
                   steps: int, batch_size: int, lr: float, device, generator: torch.Generator,
                   desc: str) -> tuple[torch.Tensor, list[dict]]:
    """Minimise ``loss_fn(features_of_patched_batch, batch_index)`` over the patch pixels.

    ``images``: (N, H, W, 3) uint8 natural images.  Returns the uint8 patch and a loss history.
    """
    from paperlib.progress import bar as progress_bar

    from paperlib.models import normalize_images
    logits = torch.randn((3, side, side), generator=generator).mul(0.5).to(device).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    n, H = len(images), images.shape[1]
    history = []
    for step in progress_bar(range(steps), desc=desc, unit="step", mininterval=5):
        idx = torch.randint(0, n, (batch_size,), generator=generator).numpy()
        x = torch.from_numpy(np.ascontiguousarray(images[np.sort(idx)])).permute(0, 3, 1, 2).float().to(device)
        pos = patch_positions(len(x), H, side, position, margin, generator)
        patched = paste_float(x, 255 * torch.sigmoid(logits), pos)
        feats = model.encode_image(normalize_images(patched / 255.0)).float()
        loss = loss_fn(feats)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == steps - 1:
            history.append({"step": step, "loss": float(loss.detach())})
    patch = (255 * torch.sigmoid(logits.detach())).round().clamp(0, 255).to(torch.uint8).cpu()
    return patch, history
