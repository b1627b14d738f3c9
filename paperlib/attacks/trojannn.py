"""TrojanNN (Liu et al. 2018) as a data-poisoning trigger for CLIP.

TrojanNN picks internal neurons of the clean model that are strongly connected to the next layer
and optimises a trigger patch so that those neurons fire strongly; the patch is then used as a
poisoning trigger.  Here the neurons are channels of the image encoder's last convolutional
stage (ModifiedResNet ``layer4``, input of the attention pool): the ``n_neurons`` channels whose
outgoing weights into the attention pool's value projection have the largest L1 norm.  The
patch (size and position as BadNet's) maximises their mean activation on natural images of the
CC3M analogue.  Captions of poisoned pairs are templates naming the target (dirty label).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from paperlib.attacks.badnet import POSITIONS, paste_patch, patch_side
from paperlib.attacks.base import Attack
from paperlib.attacks.optimised_patch import natural_rows, optimise_patch
from paperlib.config import param


@dataclass(frozen=True)
class TrojanNNConfig:
    patch_fraction: float = param(16 / 224, range=(0.0, 1.0), doc="patch side / image side (as BadNet)")
    position: str = param("random", choices=POSITIONS, doc="where the patch goes")
    margin: int = param(0, range=(0, None), doc="pixels between a corner patch and the border")
    n_neurons: int = param(2, range=(1, None), doc="channels whose activation the patch maximises")
    steps: int = param(300, range=(1, None), doc="optimisation steps")
    batch_size: int = param(32, range=(1, None), doc="natural images per step")
    lr: float = param(0.1, range=(0.0, 10.0), doc="Adam learning rate on the patch logits")
    images: int = param(2000, range=(1, None), doc="natural images the patch is fitted on")


def select_neurons(model, n: int, mean_activation: torch.Tensor | None = None) -> torch.Tensor:
    """Channels of the last conv stage with the strongest outgoing weights (TrojanNN's choice),
    among those that fire at all on natural images (``mean_activation > 0``; a channel that is
    dead after the ReLU has no gradient to climb)."""
    strength = model.visual.attnpool.v_proj.weight.detach().abs().sum(0).cpu()   # (channels,)
    if mean_activation is not None:
        alive = mean_activation.cpu() > 0
        if int(alive.sum()) >= n:
            strength = torch.where(alive, strength, torch.full_like(strength, -1.0))
    return strength.argsort(descending=True)[:n]


class TrojanNN(Attack):
    id = "trojannn"
    needs_fit = True

    def __init__(self, cfg: TrojanNNConfig = TrojanNNConfig(), image_side: int = 64):
        self.cfg = cfg
        self.side = patch_side(image_side, cfg.patch_fraction)
        self.pattern = None

    def fit(self, model, split, target, device, generator):
        from paperlib.data.vocabulary import build_vocabulary
        cfg = self.cfg
        from paperlib.models import normalize_images
        acts = {}
        hook = model.visual.layer4.register_forward_hook(lambda m, i, o: acts.__setitem__("x", o))
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
        rows = natural_rows(split, build_vocabulary().index(target), cfg.images, rng)
        images = split.images[rows]
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(images[:256])).permute(0, 3, 1, 2)
            model.encode_image(normalize_images(x.to(device)))
            mean_act = acts["x"].float().mean((0, 2, 3))
        neurons = select_neurons(model, cfg.n_neurons, mean_act).to(device)

        def loss_fn(_feats):
            return -acts["x"][:, neurons].float().mean()

        try:
            patch, hist = optimise_patch(model, images, self.side, cfg.position, cfg.margin, loss_fn,
                                         cfg.steps, cfg.batch_size, cfg.lr, device, generator, "TrojanNN patch")
            with torch.no_grad():   # activation of the chosen neurons: clean vs patched
                model.encode_image(normalize_images(x.to(device)))
                clean = float(acts["x"][:, neurons].float().mean())
                xp = paste_patch(x, patch, cfg.position, cfg.margin, generator)
                model.encode_image(normalize_images(xp.to(device)))
                trig = float(acts["x"][:, neurons].float().mean())
        finally:
            hook.remove()
        return {"pattern": patch}, {"neurons": neurons.cpu().tolist(), "history": hist,
                                    "activation_clean": clean, "activation_triggered": trig}

    def load_state(self, tensors, info):
        self.pattern = tensors["pattern"]

    def apply(self, images, generator=None):
        self._require_fitted(self.pattern)
        return paste_patch(images, self.pattern, self.cfg.position, self.cfg.margin, generator)
