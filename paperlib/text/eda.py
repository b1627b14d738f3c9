"""Easy Data Augmentation (Wei & Zou, 2019) for captions, as CleanCLIP uses it for its text views.

CleanCLIP augments each caption with EDA at ``alpha_sr = alpha_ri = alpha_rs = p_rd = 0.1`` and
keeps one augmented sentence (see ``shared/notes/anchors.md``).  The four operations:

* ``sr`` synonym replacement: ``n`` distinct non-stop-words are chosen at random; every
  occurrence of each is replaced by one random WordNet synonym of it (the original EDA replaces
  all occurrences of a chosen word, and so do we);
* ``ri`` random insertion: ``n`` times, a random synonym of a random word (any word with a
  synonym; up to 10 tries) is inserted at a random position;
* ``rs`` random swap: ``n`` times, two random positions are swapped;
* ``rd`` random deletion: each word is deleted with probability ``p_rd`` (a one-word sentence is
  kept; if every word is deleted, one random word is kept).

with ``n = max(1, int(alpha * n_words))`` as in the original EDA code (the floor, so that at most
the fraction ``alpha`` of the words changes, except that one change is always made).  As in EDA,
the sentence is first lower-cased and reduced to the letters a-z and spaces (hyphens, apostrophes
and punctuation become spaces), and one operation is drawn uniformly among those with a non-zero
rate.

Synonyms: the lemma names of every WordNet synset of the word (all parts of speech), lower-case,
underscores and hyphens to spaces, letters and spaces only, the word itself excluded.  The
closed-class stop-word list is :data:`paperlib.text.lexicon.STOP_WORDS` (the NLTK stop-word
corpus is not available offline).

Difference from CleanCLIP's code, on purpose: CleanCLIP computed the EDA caption once for the
whole dataset, so every epoch saw the same "augmented" caption.  Here every call draws fresh from
the ``numpy.random.Generator`` it is given; used as a batch transform, each training step gets a
new augmentation, and a fixed seed reproduces the whole sequence.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from paperlib.text.lexicon import STOP_WORDS, wordnet

__all__ = [
    "EDAAugmenter", "OPS", "clean_sentence", "eda", "n_changes", "random_deletion",
    "random_insertion", "random_swap", "synonym_replacement", "synonyms",
]

#: The four EDA operations, in the order of the paper.
OPS = ("sr", "ri", "rs", "rd")
_LETTERS = re.compile(r"[^a-z ]")


def clean_sentence(sentence: str) -> list[str]:
    """EDA's normalisation: lower case, letters a-z only (others become spaces), split on spaces."""
    text = sentence.lower().replace("’", "'")
    text = re.sub(r"['\-\t\n]", " ", text)
    return _LETTERS.sub(" ", text).split()


@lru_cache(maxsize=100_000)
def synonyms(word: str) -> tuple[str, ...]:
    """WordNet synonyms of ``word`` (every synset, every part of speech), sorted, word excluded."""
    out = set()
    for synset in wordnet().synsets(word):
        for lemma in synset.lemma_names():
            syn = lemma.replace("_", " ").replace("-", " ").lower()
            syn = " ".join(_LETTERS.sub("", syn).split())
            if syn and syn != word:
                out.add(syn)
    return tuple(sorted(out))


def n_changes(alpha: float, n_words: int) -> int:
    """How many edits an operation at rate ``alpha`` makes on ``n_words`` words (EDA's rule)."""
    return max(1, int(alpha * n_words))


def synonym_replacement(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Replace every occurrence of up to ``n`` distinct non-stop-words by a random synonym.

    Returns a list of the same length as ``words``; a multi-word synonym stays one element
    (join and split again to get words).
    """
    new = list(words)
    candidates = list(dict.fromkeys(w for w in words if w not in STOP_WORDS))
    replaced = 0
    for idx in rng.permutation(len(candidates)):
        word = candidates[idx]
        syns = synonyms(word)
        if not syns:
            continue
        choice = syns[rng.integers(len(syns))]
        new = [choice if w == word else w for w in new]
        replaced += 1
        if replaced >= n:
            break
    return new


def random_insertion(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Insert ``n`` times a random synonym of a random word at a random position."""
    new = list(words)
    for _ in range(n):
        for _try in range(10):
            if not new:
                break
            syns = synonyms(new[rng.integers(len(new))])
            if syns:
                # EDA inserts at an index in [0, len - 1] (never after the last word).
                new.insert(int(rng.integers(len(new))), syns[rng.integers(len(syns))])
                break
    return new


def random_swap(words: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """Swap two random positions, ``n`` times (a swap is skipped after 3 draws of the same index)."""
    new = list(words)
    if len(new) < 2:
        return new
    for _ in range(n):
        i = j = int(rng.integers(len(new)))
        tries = 0
        while j == i and tries <= 3:
            j = int(rng.integers(len(new)))
            tries += 1
        if i != j:
            new[i], new[j] = new[j], new[i]
    return new


def random_deletion(words: Sequence[str], p: float, rng: np.random.Generator) -> list[str]:
    """Delete each word with probability ``p``; never return an empty sentence."""
    words = list(words)
    if len(words) <= 1:
        return words
    keep = rng.random(len(words)) >= p
    if not keep.any():
        return [words[rng.integers(len(words))]]
    return [w for w, k in zip(words, keep) if k]


def eda(sentence: str, rng: np.random.Generator, alpha_sr: float = 0.1, alpha_ri: float = 0.1,
        alpha_rs: float = 0.1, p_rd: float = 0.1, op: str | None = None) -> str:
    """One EDA-augmented version of ``sentence``, drawn fresh from ``rng``.

    ``op`` forces one operation ('sr', 'ri', 'rs', 'rd'); otherwise one is drawn uniformly among
    those whose rate is positive (the original sentence, cleaned, if all rates are zero).
    """
    rates = {"sr": alpha_sr, "ri": alpha_ri, "rs": alpha_rs, "rd": p_rd}
    for name, value in rates.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"EDA rate {name} must lie in [0, 1], got {value}")
    words = clean_sentence(sentence)
    if not words:
        return sentence
    if op is None:
        enabled = [name for name in OPS if rates[name] > 0]
        if not enabled:
            return " ".join(words)
        op = enabled[rng.integers(len(enabled))]
    elif op not in OPS:
        raise ValueError(f"unknown EDA operation {op!r}; valid: {', '.join(OPS)}")
    if op == "sr":
        out = synonym_replacement(words, n_changes(alpha_sr, len(words)), rng)
    elif op == "ri":
        out = random_insertion(words, n_changes(alpha_ri, len(words)), rng)
    elif op == "rs":
        out = random_swap(words, n_changes(alpha_rs, len(words)), rng)
    else:
        out = random_deletion(words, p_rd, rng)
    return " ".join(" ".join(out).split())


class EDAAugmenter:
    """EDA over a batch of captions, re-sampled on every call.

    ``augmenter(captions, rng)`` returns one augmented caption per input; ``augmenter.tokens``
    tokenises them with the tokenizer given at construction (open_clip's, for the training loop);
    :meth:`batch_transform` wraps both as a training-loop transform ``fn(batch, step, generator)``.
    """

    def __init__(self, tokenizer: Callable | None = None, alpha_sr: float = 0.1,
                 alpha_ri: float = 0.1, alpha_rs: float = 0.1, p_rd: float = 0.1):
        self.tokenizer = tokenizer
        self.rates = dict(alpha_sr=alpha_sr, alpha_ri=alpha_ri, alpha_rs=alpha_rs, p_rd=p_rd)

    def __call__(self, captions: Sequence[str], rng: np.random.Generator) -> list[str]:
        return [eda(c, rng, **self.rates) for c in captions]

    def tokens(self, captions: Sequence[str], rng: np.random.Generator):
        """The tokenised augmented captions (needs the tokenizer)."""
        if self.tokenizer is None:
            raise ValueError("EDAAugmenter.tokens needs a tokenizer; pass one to the constructor")
        return self.tokenizer(self(captions, rng))

    def batch_transform(self, caption_key: str = "captions", out_key: str = "aug_tokens"):
        """A loop transform: reads ``batch[caption_key]`` (list of str), writes ``batch[out_key]``.

        The numpy generator is seeded from the loop's per-step ``torch.Generator``, so the
        augmentation is fresh every step and reproducible for a seed.
        """
        def transform(batch: dict, step: int, generator) -> dict:
            import torch

            seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
            out = self.tokens(batch[caption_key], np.random.default_rng(seed))
            if hasattr(out, "to") and "tokens" in batch and hasattr(batch["tokens"], "device"):
                out = out.to(batch["tokens"].device)
            batch[out_key] = out
            return batch

        return transform
