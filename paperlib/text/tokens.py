"""Tokens of a caption and the words the parser reads them as (contractions resolved).

:func:`tokenize` splits a caption into words (hyphenated words such as "x-ray" and
"jack-o'-lantern" stay one token), clitics and punctuation marks.  Contractions are split where
the clitic starts, as in the Penn Treebank: "it's" -> "it" + "'s", "he'll" -> "he" + "'ll", and
a negation keeps its "n": "don't" -> "do" + "n't", "isn't" -> "is" + "n't", "can't" -> "ca" +
"n't", "won't" -> "wo" + "n't"; "cannot" -> "can" + "not".  An apostrophe that starts no known
clitic (a quotation mark: "a sign saying 'stop'") is punctuation of its own.

:func:`canonical_words` gives, one for one with the tokens (so that spans over the tokens
still hold), the lower-case word each token stands for: "n't" -> "not", the stems of irregular
negations ("ca", "wo", "sha", "ai") -> "can", "will", "shall", "is", and the clitics "'ll",
"'re", "'m", "'ve" -> "will", "are", "am", "have"; "'d" is "had" before "been" and "would"
otherwise; "'s" after "let" is "us".  Any other "'s" stays as it is: the parser reads it as
"is" / "has" or as a possessive from its context.
"""
from __future__ import annotations

import re

__all__ = ["canonical_words", "tokenize"]

_CLITICS = r"(?:s|re|ve|ll|d|m|t)"
_TOKEN = re.compile(
    r"[A-Za-z]+(?=n't\b)|can(?=not\b)|n't\b"                       # negations: do|n't, can|not
    r"|[A-Za-z0-9]+(?:(?:-|'(?!" + _CLITICS + r"\b)-?)[A-Za-z0-9]+)*"  # words, hyphenated words
    r"|'" + _CLITICS + r"\b"                                        # clitics: 's 'll 're 've ...
    r"|[^\sA-Za-z0-9]",                                             # punctuation
    re.IGNORECASE)

#: Stems of negations whose spelling differs from the word ("won't" is "will not").
_NEGATED_STEMS = {"ca": "can", "wo": "will", "sha": "shall", "ai": "is"}
_CLITIC_WORDS = {"n't": "not", "'t": "not", "'ll": "will", "'re": "are", "'m": "am",
                 "'ve": "have"}


def tokenize(text: str) -> list[str]:
    """Words (hyphenated words kept whole), clitics ("'s", "n't") and punctuation marks."""
    return _TOKEN.findall(text.replace("’", "'"))


def canonical_words(tokens: list[str]) -> list[str]:
    """The lower-case word each token stands for, one per token (contractions resolved)."""
    low = [t.lower() for t in tokens]
    out = []
    for i, w in enumerate(low):
        nxt = low[i + 1] if i + 1 < len(low) else None
        prev = low[i - 1] if i > 0 else None
        if nxt == "n't" and w in _NEGATED_STEMS:
            w = _NEGATED_STEMS[w]
        elif w in _CLITIC_WORDS:
            w = _CLITIC_WORDS[w]
        elif w == "'d":
            w = "had" if nxt == "been" else "would"
        elif w == "'s" and prev == "let":
            w = "us"
        out.append(w)
    return out
