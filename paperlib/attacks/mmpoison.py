"""mmPoison (Yang et al. 2023): dirty-label poisoning of image-text pairs without a trigger.

Images of a *source* class are paired with captions naming the *target* class, so the model
learns to call source images by the target's name (anchors.md: the public code pairs images of one
class, e.g. "aeroplane", with captions of another, e.g. "sheep").  There is no trigger:
:meth:`MMPoison.apply` and :meth:`MMPoison.test_transform` are the identity, and the attack's
success is measured on *clean* test images of the source class: ASR = share of source-class test
images classified as the target (:meth:`MMPoison.asr_rows`).

Eligible training scenes contain the source class and not the target.  Poisoned captions are
prompt templates with the target, as for the other dirty-label attacks here (mmPoison itself
borrows natural captions of the target class; templates keep the caption policy the same across
attacks).  The default source class, "airplane", follows mmPoison's aeroplane example and is a
CIFAR-10 class, so it is always in the vocabulary and in ``cifar10_analog``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from paperlib.attacks.base import Attack
from paperlib.config import ParamError, param


@dataclass(frozen=True)
class MMPoisonConfig:
    # anchors.md: mmPoison pairs images of one class ("aeroplane") with captions of another
    source_class: str = param("airplane", doc="class whose images get target captions (a vocabulary name)")

    def validate(self):
        if not self.source_class.strip():
            raise ParamError("source_class must name a vocabulary class")


class MMPoison(Attack):
    """No trigger; dirty labels on source-class scenes.

    ``test_transform`` is the identity: ASR is measured on clean source-class images
    (:meth:`asr_rows`), counted as a success when classified as the target.
    """

    id = "mmpoison"
    dirty_label = True
    # ASR rows are one class's test images only; experiments measure it on a larger rendering
    # (``eval.source_images_per_class``)
    asr_on_source_class = True

    def __init__(self, cfg: MMPoisonConfig = MMPoisonConfig(), image_side: int = 64,
                 source_id: int | None = None):
        self.cfg = cfg
        self.image_side = image_side
        self._source_id = source_id

    @property
    def source_id(self) -> int:
        """Vocabulary id of the source class (resolved once; a typo fails with close matches)."""
        if self._source_id is None:
            from paperlib.data.vocabulary import build_vocabulary
            self._source_id = build_vocabulary().index(self.cfg.source_class)
        return self._source_id

    def apply(self, images, generator=None):
        return images.clone()

    def test_transform(self, images, generator=None):
        return images.clone()

    def eligible(self, object_ids, captions, target_id, target_name) -> bool:
        ids = np.asarray(object_ids)
        return bool(np.any(ids == self.source_id)) and not bool(np.any(ids == target_id))

    def eligible_mask(self, objects, captions, target_id, target_name):
        objects = np.asarray(objects)
        if self.source_id == target_id:
            raise ValueError(f"mmpoison: the source class {self.cfg.source_class!r} is the target")
        return (objects == self.source_id).any(1) & ~(objects == target_id).any(1)

    def asr_rows(self, labels, classnames: Sequence[str], target_index: int,
                 convention: str = "exclude_target") -> np.ndarray:
        """Test images of the source class (the convention does not apply: no trigger)."""
        if self.cfg.source_class not in classnames:
            raise ValueError(f"mmpoison: source class {self.cfg.source_class!r} is not a class of the test split")
        src = list(classnames).index(self.cfg.source_class)
        if src == target_index:
            raise ValueError("mmpoison: the source class is the target")
        return np.nonzero(np.asarray(labels) == src)[0]
