"""Image-caption pairs as the training loop consumes them.

The loop asks a pair set for the batches of an epoch: ``pairs.epoch_batches(epoch, batch_size,
seed, skip)`` yields dicts with ``images`` (uint8, B x 3 x H x W), ``tokens`` (long, B x L) and
``index`` (the row of each sample in the pair set).  The order of an epoch depends only on
``(seed, epoch)``, so a run resumed from a checkpoint at step k skips k batches and continues
exactly as if it had not stopped.

:class:`TensorPairs` serves the embedded benchmark: images from a memory-mapped split (or, on a
GPU, a copy resident in device memory), pre-tokenised captions (several per scene, one drawn per
sample and epoch), and *extra* rows that replace or add pairs (poisoned images and captions).
:class:`LoaderPairs` adapts a map-style dataset of (uint8 image, caption) such as the CC3M CSV
loader, with DataLoader workers, for the papers' own data.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch


class TensorPairs:
    """Rows of a pair set: ``rows[k] >= 0`` is base scene ``rows[k]``; ``rows[k] < 0`` is extra
    pair ``-rows[k] - 1`` (its own image and caption tokens)."""

    def __init__(self, images, tokens: np.ndarray, rows: np.ndarray | None = None,
                 extra_images: np.ndarray | None = None, extra_tokens: np.ndarray | None = None,
                 texts: Sequence[Sequence[str]] | None = None,
                 extra_texts: Sequence[Sequence[str]] | None = None):
        """``texts`` / ``extra_texts`` (optional): the caption strings behind ``tokens`` /
        ``extra_tokens``, one list per scene.  When given, every batch carries ``texts`` (the
        drawn caption of each sample), which text augmentations (EDA, sub-captions) need."""
        self.images = images                                  # (N, H, W, 3) uint8 (memmap ok)
        self.tokens = np.asarray(tokens)                      # (N, C, L) int
        if self.tokens.ndim == 2:
            self.tokens = self.tokens[:, None, :]
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows, np.int64)
        side = images.shape[1:]
        self.extra_images = (np.zeros((0,) + tuple(side), np.uint8) if extra_images is None
                             else np.asarray(extra_images, np.uint8))
        L = self.tokens.shape[-1]
        self.extra_tokens = (np.zeros((0, 1, L), np.int64) if extra_tokens is None
                             else np.asarray(extra_tokens))
        if self.extra_tokens.ndim == 2:
            self.extra_tokens = self.extra_tokens[:, None, :]
        self._device_images = None
        self.texts = texts
        self.extra_texts = extra_texts
        if texts is not None and len(texts) != len(self.tokens):
            raise ValueError(f"texts has {len(texts)} scenes, tokens {len(self.tokens)}")
        if extra_texts is not None and len(extra_texts) != len(self.extra_tokens):
            raise ValueError(f"extra_texts has {len(extra_texts)} pairs, extra_tokens {len(self.extra_tokens)}")

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, positions) -> "TensorPairs":
        """The pair set restricted to ``positions`` (rows of this set), sharing its arrays (host side)."""
        return TensorPairs(self.images, self.tokens, rows=self.rows[np.asarray(positions, np.int64)],
                           extra_images=self.extra_images, extra_tokens=self.extra_tokens, texts=self.texts,
                           extra_texts=self.extra_texts)

    def to_device(self, device) -> "TensorPairs":
        """Keep all images in device memory (GPU-resident batches); indexing then happens there.

        File-backed images (real data, :class:`paperlib.data.realsplit.LazyImages`) stay where they
        are and are decoded per batch: CC3M does not fit in any GPU."""
        if getattr(self.images, "file_backed", False):
            return self
        if torch.device(device).type != "cpu":
            self._device_images = torch.from_numpy(np.ascontiguousarray(self.images)).to(device)
            self._device_extra = torch.from_numpy(self.extra_images).to(device)
        return self

    def fetch(self, rows: np.ndarray, caption_rng: np.random.Generator | None = None) -> dict:
        """The batch of the given pair-set rows (positions into ``self.rows``)."""
        ids = self.rows[rows]
        base = ids >= 0
        n_caps_base = self.tokens.shape[1]
        pick = lambda n, k: (caption_rng.integers(0, k, size=n) if caption_rng is not None  # noqa: E731
                             else np.zeros(n, np.int64))
        B = len(ids)
        tokens = np.empty((B, self.tokens.shape[-1]), np.int64)
        b_idx = ids[base]
        e_idx = -ids[~base] - 1
        b_pick = pick(len(b_idx), n_caps_base)
        tokens[base] = self.tokens[b_idx, b_pick]
        e_pick = pick(len(e_idx), self.extra_tokens.shape[1]) if len(e_idx) else np.zeros(0, np.int64)
        if len(e_idx):
            tokens[~base] = self.extra_tokens[e_idx, e_pick]
        texts = None
        if self.texts is not None:
            texts = [""] * B
            for pos, i, c in zip(np.flatnonzero(base), b_idx, b_pick):
                texts[pos] = self.texts[int(i)][int(c)]
            for pos, i, c in zip(np.flatnonzero(~base), e_idx, e_pick):
                if self.extra_texts is None:
                    raise ValueError("a pair set with texts needs extra_texts for its extra rows")
                texts[pos] = self.extra_texts[int(i)][int(c)]
        if self._device_images is not None:
            dev = self._device_images.device
            img = torch.empty((B,) + tuple(self._device_images.shape[1:]), dtype=torch.uint8, device=dev)
            base_t = torch.from_numpy(base).to(dev)
            img[base_t] = self._device_images[torch.from_numpy(b_idx).to(dev)]
            if len(e_idx):
                img[~base_t] = self._device_extra[torch.from_numpy(e_idx).to(dev)]
            images = img.permute(0, 3, 1, 2)
        else:
            img = np.empty((B,) + tuple(self.images.shape[1:]), np.uint8)
            order = np.argsort(b_idx)
            tmp = np.empty((len(b_idx),) + tuple(self.images.shape[1:]), np.uint8)
            tmp[order] = self.images[b_idx[order]]
            img[base] = tmp
            if len(e_idx):
                img[~base] = self.extra_images[e_idx]
            images = torch.from_numpy(img).permute(0, 3, 1, 2)
        out = {"images": images, "tokens": torch.from_numpy(tokens),
               "index": torch.from_numpy(np.asarray(rows, np.int64))}
        if texts is not None:
            out["texts"] = texts
        return out

    def epoch_batches(self, epoch: int, batch_size: int, seed: int, skip: int = 0,
                      rank: int = 0, world_size: int = 1) -> Iterator[dict]:
        order = np.random.default_rng([seed, epoch, 7]).permutation(len(self))
        n_batches = len(self) // (batch_size * world_size)   # drop the last partial batch
        cap_rng_seed = [seed, epoch, 11]
        for b in range(skip, n_batches):
            chunk = order[(b * world_size + rank) * batch_size:(b * world_size + rank + 1) * batch_size]
            yield self.fetch(chunk, np.random.default_rng(cap_rng_seed + [b]))

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        return len(self) // (batch_size * world_size)


class LoaderPairs:
    """A map-style dataset of (uint8 image, caption str) served by DataLoader workers.

    Unreadable images (:class:`paperlib.data.realdata.UnreadableImage`) are dropped from their
    batch, counted in ``n_skipped`` and the first few named in the log; any other error is raised.
    """

    def __init__(self, dataset, tokenizer, workers: int = 4, warn_first: int = 5):
        self.dataset, self.tokenizer, self.workers = dataset, tokenizer, workers
        self.skipped: set[str] = set()
        self.warn_first = warn_first

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.dataset)

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        return len(self) // (batch_size * world_size)

    def _collate(self, items):
        from paperlib.data.realdata import Unreadable
        good = [it for it in items if not isinstance(it[1], Unreadable)]
        for it in items:
            if isinstance(it[1], Unreadable) and it[1].path not in self.skipped:
                self.skipped.add(it[1].path)
                if len(self.skipped) <= self.warn_first:
                    import logging
                    logging.getLogger(__name__).warning("skipping unreadable image %s (%s)",
                                                        it[1].path, it[1].reason)
        return {"images": torch.stack([it[1] for it in good]),
                "tokens": self.tokenizer([it[2] for it in good]),
                "index": torch.tensor([it[0] for it in good])}

    def epoch_batches(self, epoch, batch_size, seed, skip=0, rank=0, world_size=1):
        from paperlib.data.realdata import SkipUnreadable, Unreadable
        order = np.random.default_rng([seed, epoch, 7]).permutation(len(self))
        n_batches = self.steps_per_epoch(batch_size, world_size)
        order = order[:n_batches * batch_size * world_size].reshape(n_batches, world_size, batch_size)
        chunks = [order[b, rank].tolist() for b in range(skip, n_batches)]
        safe = SkipUnreadable(self.dataset)

        class _Rows(torch.utils.data.Dataset):
            def __len__(self):
                return len(chunks)

            def __getitem__(self, k):
                out = []
                for i in chunks[k]:
                    item = safe[i]
                    if isinstance(item, Unreadable):   # a NamedTuple: test it before unpacking
                        out.append((i, item, ""))
                    else:
                        out.append((i, item[0], item[1]))
                return out

        loader = torch.utils.data.DataLoader(_Rows(), batch_size=None, num_workers=self.workers,
                                             collate_fn=self._collate)
        yield from loader
