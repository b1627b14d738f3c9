"""Step 3 of the parser: every unit tagged left to right (verb, adjective, noun, ...) from word lists and WordNet."""
from __future__ import annotations

from paperlib.text import lexicon as lx
from paperlib.text.parse.units import _Unit


#: Auxiliaries that can follow a modal ("will be", "could have"; "'ve" is read as "have").
_AFTER_MODAL = frozenset("be have been being".split())
#: Prepositions that are verbs after an auxiliary other than "be" ("doesn't like", "would like").
_VERB_PREPOSITIONS = frozenset({"like"})
#: Verbs read like "is" before a predicative adjective ("the shop stays open").
_LINKING_VERBS = frozenset("stay remain become seem appear look feel get turn grow".split())


def _pos(unit: _Unit) -> frozenset:
    word = unit.text
    p = lx.pos_set(word)
    if not p:
        return frozenset("r") if word.endswith("ly") else frozenset("n")
    return p


def _prefers_verb(word: str) -> bool:
    base = lx.verb_lemma(word)
    if base is None:
        return False
    return lx.lemma_counts(base, "v") >= lx.lemma_counts(lx.noun_lemma(word), "n")


class _Tagger:
    """Left-to-right tagger over units (see the module docstring, step 3)."""

    def __init__(self, units: list[_Unit]):
        self.u = units

    def _next_tag(self, j: int) -> str:
        """Closed tag of unit j as far as it is known before tagging it ('END' past the end)."""
        if j >= len(self.u):
            return "END"
        t = self.u[j].tag
        if t == "DETPRON":
            return "DET" if self._continues(j + 1, assume_prev="DET") else "PRON"
        return t

    def _continues(self, j: int, assume_prev: str = "NOUN") -> bool:
        """Does unit j continue a noun phrase (open-class and not a verb there)?"""
        if j >= len(self.u) or self.u[j].tag not in ("OPEN", "NOUN"):
            return False
        if self.u[j].tag == "NOUN":
            return True
        return not self._verb_here(j, assume_prev, self._prev_noun_word(j))

    def _noun_follows(self, j: int) -> bool:
        if j >= len(self.u) or self.u[j].tag not in ("OPEN", "NOUN"):
            return False
        word = self.u[j].text
        if self.u[j].tag == "NOUN":
            return True
        if lx.verb_form(word) in ("ing", "past") and (word.endswith(("ing", "ed"))
                                                       or "n" not in _pos(self.u[j])):
            # a participle inside the phrase only if a noun follows it: "a blue flying disc",
            # "a big shaved ice", not "a woman in red holding a ..."
            return self._noun_follows(j + 1)
        return "n" in _pos(self.u[j])

    def _adjective_pair(self, j: int) -> bool:
        """Unit j is followed by and/or/comma and an adjective that continues the phrase."""
        if j + 2 >= len(self.u) or self.u[j + 1].text not in ("and", "or", ","):
            return False
        nxt = self.u[j + 2]
        if nxt.tag != "OPEN":
            return False
        kind = nxt.text in lx.COLOURS or nxt.text in lx.SIZES
        return (kind or "a" in _pos(nxt)) and (self._continues(j + 3, "ADJ")
                                               or self._adjective_pair(j + 2))

    def _verb_group_follows(self, j: int) -> bool:
        """After a modal: does unit j go on with the verb group (an adverb such as "not", a verb,
        an auxiliary "be"/"have": "will be running", "could have eaten", "can't ride")?"""
        if j >= len(self.u):
            return False
        unit = self.u[j]
        return (unit.tag == "ADV" or unit.text in _AFTER_MODAL
                or unit.text in _VERB_PREPOSITIONS
                or (unit.tag == "OPEN" and lx.verb_lemma(unit.text) is not None))

    def _participle_follows(self, j: int) -> bool:
        """After "have": is the next unit that is not an adverb a past participle or "been"?"""
        while j < len(self.u) and self.u[j].tag == "ADV":
            j += 1
        if j >= len(self.u):
            return False
        unit = self.u[j]
        return unit.text == "been" or (unit.tag == "OPEN" and lx.verb_form(unit.text) == "past")

    def _prev_noun_word(self, j: int) -> str | None:
        return self.u[j - 1].words[-1] if j > 0 else None

    def _verb_here(self, j: int, prev: str, prev_word: str | None) -> bool:
        """Can unit j be a verb after a unit tagged ``prev`` (adverbs skipped), word ``prev_word``?"""
        unit = self.u[j]
        word = unit.text
        if len(unit.words) > 1 or lx.verb_lemma(word) is None or word in lx.POSITION_NOUNS:
            return False
        p = _pos(unit)
        form = lx.verb_form(word)
        pure = "n" not in p and "a" not in p
        nxt = self._next_tag(j + 1)
        if prev in ("DET", "NUM", "ADJ", "PREP", "POSS"):
            return False
        if prev == "AUX":
            aux = prev_word or ""
            if aux in lx.BE_FORMS:
                return form in ("ing", "past")
            return True
        if prev in ("PRON", "RELPRON"):
            return True
        if prev == "NOUN":
            if form in ("ing", "past"):
                return True
            plural = prev_word is not None and lx.is_plural_noun(prev_word)
            if pure:
                return True
            if form == "s" and not plural:
                return nxt in ("DET", "NUM", "PRON") or (nxt not in ("END", "PUNCT")
                                                        and _prefers_verb(word))
            if form == "base" and plural:
                return nxt in ("DET", "NUM", "PRON") or _prefers_verb(word)
            return False
        if prev in ("START", "PUNCT", "CONJ"):
            if form == "ing":
                return nxt not in ("END", "PUNCT", "CONJ")
            return pure
        if prev == "VERB":
            return form == "ing" and "n" not in p
        return pure

    def tag(self) -> list[_Unit]:
        # ``prev`` / ``prev_word``: tag and last word of the previous unit that is not an adverb
        prev, prev_word, prev_j = "START", None, -1
        for j, unit in enumerate(self.u):
            t = unit.tag
            word = unit.text
            if t == "DETPRON":
                if word in ("who", "whom") or (word in ("which", "that", "whose")
                                               and prev in ("NOUN", "PRON")
                                               and not self._continues(j + 1, "DET")):
                    t = "RELPRON"
                elif word in lx.DETERMINERS and self._continues(j + 1, "DET"):
                    t = "DET"
                elif word in lx.PRONOUNS:
                    t = "PRON"
                else:
                    t = "DET"
            elif t == "NUM":
                if word == "one" and not self._continues(j + 1, "DET"):
                    t = "PRON"
            elif t == "AUX" and word == "'s" and prev == "NOUN" and self._continues(j + 1, "DET"):
                t = "POSS"
            elif t == "AUX" and word in lx.MODALS and not self._verb_group_follows(j + 1):
                t = self._open_tag(j, prev, prev_word)   # "a trash can"
            elif t == "AUX" and word in ("has", "have", "had", "having") and not \
                    self._participle_follows(j + 1):
                t = "VERB"                     # "a man has a dog", "having breakfast"
            elif t == "PREP" and word in _VERB_PREPOSITIONS and prev == "AUX" \
                    and prev_word not in lx.BE_FORMS:
                t = "VERB"                     # "doesn't like", "would like"
            elif t == "OPEN" and word == "let" and j + 1 < len(self.u) \
                    and self.u[j + 1].text in ("us", "me"):
                t = "AUX"                      # "let's go", "let us play"
            elif t == "EX" and not (self._next_tag(j + 1) == "AUX" or prev == "START"):
                t = "ADV"
            elif t == "OPEN":
                t = self._open_tag(j, prev, prev_word)
            unit.tag = t
            if t == "ADJ" and prev == "VERB" and self._predicative(j, prev, prev_word):
                self.u[prev_j].tag = "AUX"     # a linking verb is read as "is": "stays open"
            if t != "ADV":
                prev, prev_word, prev_j = t, unit.words[-1], j
        return self.u

    def _predicative(self, j: int, prev: str, prev_word: str | None) -> bool:
        """Is unit j an adjective after "be" or a linking verb, ending its phrase ("is blue")?"""
        if not (prev == "AUX" and prev_word in lx.BE_FORMS) and not (
                prev == "VERB" and prev_word is not None
                and lx.verb_lemma(prev_word) in _LINKING_VERBS):
            return False
        word = self.u[j].text
        return (("a" in _pos(self.u[j]) or word in lx.COLOURS or word in lx.SIZES)
                and not self._continues(j + 1, "ADJ"))

    def _open_tag(self, j: int, prev: str, prev_word: str | None) -> str:
        unit = self.u[j]
        word = unit.text
        p = _pos(unit)
        if self._verb_here(j, prev, prev_word):
            return "VERB"
        kind_word = word in lx.COLOURS or word in lx.SIZES
        if self._predicative(j, prev, prev_word):
            return "ADJ"                       # predicative: "is blue", "stays open"
        if kind_word and self._noun_follows(j + 1):
            return "ADJ"                       # "a red rose" (not "a red" + verb "rose")
        if ("a" in p or kind_word) and self._adjective_pair(j):
            return "ADJ"                       # "black and white", "big, red"
        if self._continues(j + 1, "NOUN"):
            if "a" in p or kind_word:
                return "ADJ"
            if "n" in p:
                return "NOUN"
            if "v" in p:
                return "ADJ"                   # participle used attributively
            return "ADV" if "r" in p else "NOUN"
        if "n" in p:
            return "NOUN"
        if "a" in p or kind_word:
            return "ADJ" if not (prev in ("DET", "NUM", "ADJ")) else "NOUN"
        if "r" in p:
            return "ADV"
        if "v" in p:
            return "VERB"
        return "NOUN"
