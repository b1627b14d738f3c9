"""Class names in captions, as whole words: the one rule that labels a real caption with classes,
checks a label-consistent attack's target word and counts EftCLIP's label frequencies."""
from __future__ import annotations

from typing import Sequence


def caption_words(text: str) -> list[str]:
    """Lower-case words of a caption or a class name: runs of letters and digits, so apostrophes
    and hyphens split words ("dog's" -> dog, s; "t-shirt" -> t, shirt)."""
    import re
    return re.findall(r"[a-z0-9]+", text.lower())


def name_at(tokens: Sequence[str], k: int, words: Sequence[str]) -> bool:
    """Whether the name ``words`` (its :func:`caption_words`) starts at ``tokens[k]``, a plural
    "-s" / "-es" allowed on its last word."""
    span = list(tokens[k:k + len(words)])
    if not words or len(span) != len(words):
        return False
    last = words[-1]
    return span[:-1] == list(words[:-1]) and span[-1] in (last, last + "s", last + "es")


def mentions(caption: str, name: str) -> bool:
    """Whether ``caption`` names ``name`` as whole words, plural "-s"/"-es" allowed (case-insensitive).

    Whole words, so "cat" is not found in "category"; CleanCLIP's label-consistent attack checks
    that the caption contains the target word (anchors.md).  The same words and the same rule
    label real captions with classes (:func:`paperlib.data.realsplit.caption_objects`).
    """
    words, tokens = caption_words(name), caption_words(caption)
    return any(name_at(tokens, k, words) for k in range(len(tokens)))
