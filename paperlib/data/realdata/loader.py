"""A DataLoader that drops the rows whose image cannot be read, and counts them."""
from __future__ import annotations

import logging
from typing import Any, Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from paperlib.data.realdata.image import UnreadableImage

log = logging.getLogger(__name__)


class Unreadable(NamedTuple):
    """Marker returned in place of an item whose image could not be read."""

    path: str
    reason: str
    index: int | None


class SkipUnreadable(Dataset):
    """Dataset wrapper: unreadable items become :class:`Unreadable` markers.

    Returning a marker (instead of raising) lets a worker process keep going
    and report the bad file to the main process through the batch.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            return self.dataset[i]
        except UnreadableImage as exc:
            return Unreadable(exc.path, exc.reason, exc.index)


def collate_skipping(batch: list) -> tuple[Any, list[Unreadable]]:
    """Collate the readable items; return (collated or None, skipped markers)."""
    good = [b for b in batch if not isinstance(b, Unreadable)]
    bad = [b for b in batch if isinstance(b, Unreadable)]
    return (default_collate(good) if good else None), bad


class SkippingLoader:
    """A DataLoader that drops rows with unreadable images and counts them.

    Iterate it like a DataLoader: each batch is what ``default_collate`` makes
    of the readable items (e.g. ``[uint8 images [B,3,S,S], captions]``); a batch
    made only of bad rows is skipped. ``n_skipped`` is the number of distinct
    unreadable files seen so far (not double-counted across epochs);
    ``skipped_files`` lists them. The first ``warn_first`` are logged as
    warnings by file name, and each pass ends with a one-line summary.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool = False,
        num_workers: int = 0,
        seed: int | None = None,
        drop_last: bool = False,
        warn_first: int = 5,
        **loader_kwargs: Any,
    ):
        if "collate_fn" in loader_kwargs:
            raise ValueError("SkippingLoader sets collate_fn itself; do not pass one")
        generator = None
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(int(seed))
        self.dataset = dataset
        self.warn_first = int(warn_first)
        self.loader = DataLoader(
            SkipUnreadable(dataset),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            drop_last=drop_last,
            generator=generator,
            collate_fn=collate_skipping,
            **loader_kwargs,
        )
        self._skipped: dict[str, str] = {}

    @property
    def n_skipped(self) -> int:
        return len(self._skipped)

    @property
    def skipped_files(self) -> list[str]:
        return list(self._skipped)

    def __len__(self) -> int:
        return len(self.loader)

    def _record(self, bad: list[Unreadable]) -> None:
        for u in bad:
            if u.path in self._skipped:
                continue
            self._skipped[u.path] = u.reason
            if len(self._skipped) <= self.warn_first:
                log.warning("skipping unreadable image %s (%s)", u.path, u.reason)
                if len(self._skipped) == self.warn_first:
                    log.warning("further unreadable images are counted without a warning each")

    def __iter__(self) -> Iterator[Any]:
        this_pass = 0
        for collated, bad in self.loader:
            this_pass += len(bad)
            self._record(bad)
            if collated is not None:
                yield collated
        if this_pass:
            log.warning(
                "skipped %d unreadable row(s) in this pass (%d distinct files so far)",
                this_pass, self.n_skipped,
            )
