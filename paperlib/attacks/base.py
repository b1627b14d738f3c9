"""What every attack provides, and how a poisoned training set is assembled from it.

An attack has a *trigger* (``apply``: uint8 images in, uint8 images out, pixel space, so no
JPEG re-encoding ever softens it: one of CleanCLIP's defects we avoid) and a *caption policy*
(dirty-label attacks pair triggered images with captions naming the target, written from the
prompt templates, as CleanCLIP and BadCLIP do).  :func:`poison_rows` picks which training pairs
are poisoned; the count is exact and clean pairs are never modified.

Hooks that let attacks other than BadNet differ (each default is the BadNet behaviour, so a
dirty-label trigger attack needs none of them):

* ``dirty_label``: True when poisoned pairs get a templated caption naming the target;
* :meth:`Attack.eligible` / :meth:`Attack.eligible_mask`: which scenes may be poisoned
  (default: scenes without the target); :func:`select_poison_rows` draws the poisoned rows;
* :meth:`Attack.poison_caption` / :meth:`Attack.poison_captions`: the caption of a poisoned pair;
* :meth:`Attack.poison_images`: the training-time image change (default: the trigger; the
  label-consistent attack adds an adversarial perturbation computed on a clean encoder);
* :meth:`Attack.test_transform` and :meth:`Attack.asr_rows`: what ASR measures.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from paperlib.config import param
from paperlib.data.names import caption_words, mentions, name_at  # noqa: F401 (re-exported)


CAPTION_POLICIES = ("template", "natural")
# rows and keys made before the caption policy existed used the templates
CAPTION_KEY_DEFAULTS = {"poison_caption": "template"}


def caption_key(caption: str) -> dict:
    """The caption policy's part of a victim's cache key: nothing for the default (the keys made
    before the policy existed stay as they were)."""
    return {"caption": caption} if caption != "template" else {}


@dataclass(frozen=True)
class PoisonConfig:
    """How many pairs are poisoned and what they are made to say (``victim.poison`` section)."""

    target: str = param("banana", doc="target class name (must be in the vocabulary)")
    poison_count: int = param(60, range=(0, None), doc="exact number of poisoned training pairs")
    caption: str = param("template", choices=CAPTION_POLICIES,
                         doc="what a dirty-label poisoned pair says: 'template', one of OpenAI's 80 prompt "
                             "templates naming the target (CleanCLIP); 'natural', a caption of the split the "
                             "poisoning set is drawn from that names the target (Carlini & Terzis 2022; BadCLIP)")
    seed: int = param(0, range=(0, None), doc="which pairs are poisoned, and the trigger's randomness")


class Attack:
    """Base class: subclasses set ``id`` and implement :meth:`apply`.

    The hooks below default to BadNet's behaviour (dirty label: a trigger on scenes without the
    target, paired with a templated caption naming the target; ASR on triggered non-target
    images).  Attacks that differ override them.
    """

    id = "none"
    dirty_label = True   # poisoned captions are templates naming the target (CleanCLIP, BadCLIP)

    def apply(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, images, generator=None):
        if images.dtype != torch.uint8:
            raise TypeError(f"{self.id}: triggers act on uint8 images, got {images.dtype}")
        return self.apply(images, generator)

    # -- which pairs may be poisoned -------------------------------------------------------
    def eligible(self, object_ids, captions: Sequence[str], target_id: int, target_name: str) -> bool:
        """May a scene (its class ids, -1 padded, and its captions) be poisoned?

        Default: the scene does not contain the target (a dirty-label pair must lie).
        """
        return not bool(np.any(np.asarray(object_ids) == target_id))

    def eligible_mask(self, objects: np.ndarray, captions: Sequence[Sequence[str]] | None,
                      target_id: int, target_name: str) -> np.ndarray:
        """:meth:`eligible` for every row of an (N, max_objects) class-id table (bool (N,)).

        ``captions`` is the rows' caption lists (or None where the split has none).
        """
        objects = np.asarray(objects)
        if type(self).eligible is Attack.eligible:   # the default, vectorised
            return ~(objects == target_id).any(1)
        return np.array([self.eligible(objects[i], captions[i] if captions is not None else (),
                                       target_id, target_name) for i in range(len(objects))],
                        dtype=bool).reshape(len(objects))

    # -- what the poisoned pairs say ----------------------------------------------------------
    def poison_caption(self, original_captions: Sequence[str], target: str, rng: np.random.Generator,
                       templates: Sequence[str] | None = None) -> str:
        """The caption of one poisoned pair.

        Dirty-label attacks: a random prompt template with the target.  Clean-label attacks
        (``dirty_label = False``): one of the scene's own captions, preferring those that name the
        target.
        """
        if self.dirty_label:
            if templates is None:
                from paperlib.data.splits import zero_shot_templates
                templates = zero_shot_templates()
            return templates[int(rng.integers(0, len(templates)))].format(target)
        caps = list(original_captions)
        if not caps:
            raise ValueError(f"{self.id}: a clean-label poisoned pair needs the scene's captions")
        naming = [c for c in caps if mentions(c, target)]
        pool = naming or caps
        return pool[int(rng.integers(0, len(pool)))]

    def poison_captions(self, captions_per_row: Sequence[Sequence[str]] | None, n: int, target: str,
                        rng: np.random.Generator, templates: Sequence[str] | None = None) -> list[str]:
        """Captions of ``n`` poisoned pairs (``captions_per_row``: each row's own captions).

        For the default dirty-label policy this is exactly :func:`template_captions` (same random
        draws as before the hooks existed, so cached victims stay valid).
        """
        if self.dirty_label and type(self).poison_caption is Attack.poison_caption:
            return template_captions(target, n, rng, templates)
        rows = captions_per_row if captions_per_row is not None else [()] * n
        if len(rows) != n:
            raise ValueError(f"{self.id}: {len(rows)} caption lists for {n} poisoned pairs")
        return [self.poison_caption(c, target, rng, templates) for c in rows]

    # -- what the poisoned images look like ---------------------------------------------------
    def poison_images(self, images: torch.Tensor, generator: torch.Generator | None = None, *,
                      encode_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                      text_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """Training-time images of the poisoned pairs (default: the trigger).

        ``encode_fn`` (float images on the 0-255 scale -> embeddings) and ``text_embedding`` are a
        clean encoder and the target's class text embedding, for attacks that need a surrogate
        model (label-consistent); others ignore them.
        """
        return self(images, generator)

    @property
    def needs_encoder(self) -> bool:
        """Whether :meth:`poison_images` needs ``encode_fn`` and ``text_embedding``."""
        return False

    # -- triggers fitted on a clean model or on data (TrojanNN, BadCLIP, SSBA) ------------------
    needs_fit = False   # True: :meth:`fit` must run (once, cached) before the trigger exists
    fit_version = 1     # bump when :meth:`fit` changes what it makes (a new trigger cache key)

    def fit(self, model, split, target: str, device, generator: torch.Generator) -> tuple[dict, dict]:
        """Make the trigger: returns ``(tensors, info)``; :meth:`load_state` takes them back.

        ``model`` is the clean pre-trained CLIP (frozen), ``split`` the rendered CC3M analogue (the
        attacker's natural images and captions).  :func:`paperlib.pipeline.prepared_attack` calls
        this once per (attack settings, clean model, data) and caches the result.
        """
        raise NotImplementedError(f"{self.id} has no fitted trigger")

    def load_state(self, tensors: dict, info: dict) -> None:
        raise NotImplementedError(f"{self.id} has no fitted trigger")

    def _require_fitted(self, what):
        if what is None:
            raise RuntimeError(f"{self.id}: the trigger is not fitted yet; build the attack with "
                               f"paperlib.pipeline.prepared_attack (or call fit / load_state)")

    # -- what ASR measures ----------------------------------------------------------------------
    def test_transform(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Test-time images for ASR (default: the trigger)."""
        return self(images, generator)

    def asr_rows(self, labels: np.ndarray, classnames: Sequence[str], target_index: int,
                 convention: str = "exclude_target") -> np.ndarray:
        """Indices of the test images ASR is measured on.

        Default: images whose class is not the target (``exclude_target``) or all (``all``).
        """
        labels = np.asarray(labels)
        if convention == "exclude_target":
            return np.nonzero(labels != target_index)[0]
        if convention == "all":
            return np.arange(len(labels))
        raise ValueError(f"unknown ASR convention {convention!r}; valid: exclude_target, all")


def template_captions(target: str, n: int, rng: np.random.Generator, templates=None) -> list[str]:
    """``n`` poisoned captions: a random prompt template filled with the target name."""
    if templates is None:
        from paperlib.data.splits import zero_shot_templates
        templates = zero_shot_templates()
    return [templates[i].format(target) for i in rng.integers(0, len(templates), size=n)]


def natural_captions(captions: Sequence[Sequence[str]], objects: np.ndarray, target_id: int,
                     target: str) -> list[str]:
    """The captions of a split's scenes that show the target and name it (sorted, no repeats):
    the pool of the ``natural`` caption policy."""
    with_target = np.flatnonzero((np.asarray(objects) == target_id).any(1))
    pool = sorted({c for i in with_target for c in captions[int(i)] if mentions(c, target)})
    if not pool:
        raise ValueError(f"caption 'natural': no caption of the poisoning set names {target!r}; "
                         "use caption: template")
    return pool


def poison_rows(candidate_rows: np.ndarray, objects: np.ndarray, target_id: int, count: int,
                rng: np.random.Generator) -> np.ndarray:
    """``count`` rows drawn from ``candidate_rows`` whose scenes do not contain the target.

    ``objects`` is the (N, max_objects) class-id table of the split (-1 = no object).
    """
    cand = np.asarray(candidate_rows)
    ok = ~(objects[cand] == target_id).any(1)
    pool = cand[ok]
    if count > len(pool):
        raise ValueError(f"cannot poison {count} pairs: only {len(pool)} candidate pairs lack the target")
    return np.sort(rng.choice(pool, size=count, replace=False))


def select_poison_rows(attack: Attack, candidate_rows: np.ndarray, objects: np.ndarray,
                       captions: Sequence[Sequence[str]] | None, target_id: int, target_name: str,
                       count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` rows drawn from ``candidate_rows`` that ``attack`` may poison (sorted).

    ``objects`` and ``captions`` are indexed by the candidate rows (``objects[candidate_rows]``).
    For the default eligibility this draws exactly what :func:`poison_rows` draws.
    """
    cand = np.asarray(candidate_rows)
    caps = [captions[int(r)] for r in cand] if captions is not None else None
    pool = cand[attack.eligible_mask(np.asarray(objects)[cand], caps, target_id, target_name)]
    if count > len(pool):
        raise ValueError(f"cannot poison {count} pairs: only {len(pool)} candidate pairs are eligible "
                         f"for {attack.id} (target {target_name!r})")
    return np.sort(rng.choice(pool, size=count, replace=False))
