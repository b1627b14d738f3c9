"""Batch transforms shared by the defences: AutoAugment views of images and EDA views of captions.

Both are re-sampled at every step from the loop's per-step generator, as CleanCLIP's method
asks (its public code drew EDA once per dataset: a defect we do not repeat, see anchors.md).
"""
from __future__ import annotations

import torch

from paperlib.defences.base import step_rng


class AutoAugmentImages:
    """``batch[out_key]`` = AutoAugment (ImageNet policy, torchvision) of ``batch[in_key]``,
    one independently drawn policy per image.  ``joint``: the two views are marked to go through
    the image tower in one pass (:data:`paperlib.train.losses.JOINT_IMAGES`), as CleanCLIP's trainer
    sends them."""

    def __init__(self, in_key: str = "images", out_key: str = "images_aug", joint: bool = False):
        from torchvision.transforms import v2
        self.op = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
        self.in_key, self.out_key, self.joint = in_key, out_key, joint

    def __call__(self, batch: dict, step: int, generator: torch.Generator) -> dict:
        images = batch[self.in_key]
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = torch.stack([self.op(img) for img in images.cpu()])
        batch[self.out_key] = out.to(images.device).contiguous(memory_format=torch.channels_last) \
            if images.device.type == "cpu" else out.to(images.device)
        if self.joint:
            from paperlib.train.losses import JOINT_IMAGES
            batch[JOINT_IMAGES] = (self.in_key, self.out_key)
        return batch


class EDACaptions:
    """``batch[out_key]`` = tokens of an EDA view of each caption in ``batch["texts"]``."""

    def __init__(self, tokenizer, out_key: str = "tokens_aug", alpha_sr: float = 0.1,
                 alpha_ri: float = 0.1, alpha_rs: float = 0.1, p_rd: float = 0.1):
        from paperlib.text.eda import EDAAugmenter
        self.eda = EDAAugmenter(tokenizer, alpha_sr, alpha_ri, alpha_rs, p_rd)
        self.out_key = out_key

    def __call__(self, batch: dict, step: int, generator: torch.Generator) -> dict:
        if "texts" not in batch:
            raise KeyError("EDA needs the caption strings: build the pair set with texts=")
        batch[self.out_key] = self.eda.tokens(batch["texts"], step_rng(generator)).to(batch["tokens"].device)
        return batch
