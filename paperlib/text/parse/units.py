"""Steps 1-2 of the parser: words grouped into units (multi-word nouns, relations) with closed-class tags."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from paperlib.text import lexicon as lx
from paperlib.text.tokens import canonical_words, tokenize


_MULTI_RELATIONS = sorted((r.split() for r in lx.SPATIAL_RELATIONS if " " in r), key=len,
                          reverse=True)
_QUOTES = frozenset("' \" ` ‘ “ ”".split())


@dataclass
class _Unit:
    words: list[str]          # lower case
    start: int
    end: int
    tag: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _closed_tag(word: str) -> str | None:
    if not re.search(r"[a-z0-9]", word):
        return "PUNCT"
    if word.isdigit() or word in lx.NUMBERS:
        return "NUM"
    if word in lx.AUXILIARIES:
        return "AUX"
    if word == "there":
        return "EX"
    if word in lx.DETERMINERS or word in lx.PRONOUNS or word in lx.RELATIVE_PRONOUNS:
        return "DETPRON"           # resolved in context
    if word in lx.PREPOSITIONS:
        return "PREP"
    if word in lx.CONJUNCTIONS:
        return "CONJ"
    if word in lx.ADVERBS:
        return "ADV"
    return None


def _is_compound(words: list[str], following: str | None) -> bool:
    """Is this run of open-class words one WordNet noun ("ice cream", "tennis ball")?

    Not when the first word is an everyday descriptive adjective ("old man" stays adjective +
    noun, so that CleanerCLIP can act on the adjective; "aerial tramway" is one noun), and not
    when a determiner, numeral or pronoun follows (then the last word is a verb: "the picture
    shows a dog", not the noun "picture show").
    """
    if words[0] in lx.DESCRIPTIVE_ADJECTIVES:
        return False
    if following is not None and (following in lx.DETERMINERS or following in lx.NUMBERS
                                  or following in lx.PRONOUNS or following.isdigit()):
        return False
    return "n" in lx.pos_set("_".join(words))


@lru_cache(maxsize=32)
def _noun_table(nouns: frozenset) -> dict[str, list[list[str]]]:
    """Known multi-word nouns by first word, longest first."""
    table: dict[str, list[list[str]]] = {}
    for noun in nouns:
        known = canonical_words(tokenize(noun))
        if len(known) > 1:
            table.setdefault(known[0], []).append(known)
    for entries in table.values():
        entries.sort(key=len, reverse=True)
    return table


def _units(low: list[str], nouns: frozenset = frozenset()) -> list[_Unit]:
    """Units over :func:`~paperlib.text.tokens.canonical_words` (lower case, one per token).

    Quotation marks are skipped (a sign saying "stop"), except an apostrophe after a word ending
    in "s", which may be a possessive ("the girls' bikes").
    """
    table = _noun_table(nouns) if nouns else {}
    units, i = [], 0
    while i < len(low):
        if low[i] in _QUOTES and not (low[i] == "'" and i > 0 and low[i - 1].endswith("s")):
            i += 1
            continue
        known = next((w for w in table.get(low[i], ()) if low[i:i + len(w)] == w), None)
        if known is not None:
            units.append(_Unit([" ".join(known)], i, i + len(known), "NOUN"))
            i += len(known)
            continue
        if low[i:i + 2] == ["close", "up"] and (i + 2 == len(low) or low[i + 2] == "of"):
            units.append(_Unit(["close-up"], i, i + 2, "NOUN"))
            i += 2
            continue
        for rel in _MULTI_RELATIONS:
            if low[i:i + len(rel)] == rel:
                units.append(_Unit(rel, i, i + len(rel), "PREP"))
                i += len(rel)
                break
        else:
            for k in (3, 2):
                chunk = low[i:i + k]
                following = low[i + k] if i + k < len(low) else None
                if (len(chunk) == k and all(_closed_tag(w) is None for w in chunk)
                        and _is_compound(chunk, following)):
                    units.append(_Unit(chunk, i, i + k, "NOUN"))
                    i += k
                    break
            else:
                units.append(_Unit([low[i]], i, i + 1, _closed_tag(low[i]) or "OPEN"))
                i += 1
    return units
