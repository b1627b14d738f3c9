"""A small rule-based caption parser: subject, relation, object (a one-edge scene graph).

CleanerCLIP parses captions with SceneGraphParser (a spaCy dependency parser); no parser model is
available offline, so this module parses with word lists and WordNet instead.  It is meant for
the short descriptive captions of image-text data (CC3M / Flickr30K alt-text, and the embedded
grammar of :mod:`paperlib.data.captions`), not for arbitrary prose.

Pipeline
--------
1. **Tokens.**  Words (hyphenated words such as "x-ray" and "jack-o'-lantern" stay one token),
   clitics ("'s", "'ll", "n't": "don't" is "do" + "n't") and punctuation, read as words with the
   contractions resolved ("n't" -> "not", "'ll" -> "will", "won't" -> "will not"; see
   :mod:`paperlib.text.tokens`).  Quotation marks are skipped.
2. **Units.**  First the caller's multi-word nouns (``nouns``, e.g. a benchmark's class names
   such as "ball of yarn"), then multi-word spatial relations ("to the left of", "in front of",
   "next to", "on top of", see :data:`~paperlib.text.lexicon.SPATIAL_RELATIONS`) become one
   unit each.  Runs of 2-3 open-class words that form a WordNet noun ("ice cream", "tennis ball",
   "aerial tramway", "living room") become one noun unit, unless the first word is an everyday
   descriptive adjective (:data:`~paperlib.text.lexicon.DESCRIPTIVE_ADJECTIVES`: "old man",
   "red fox", "hot dog" stay adjective + noun) or a determiner/numeral/pronoun follows ("the
   picture shows a dog" is not the noun "picture show").  "close up" before "of" is "close-up".
3. **Tags.**  Closed-class words are looked up in hand-written lists (determiners, numerals,
   pronouns, relative pronouns, prepositions, conjunctions, auxiliaries, adverbs, existential
   "there"); "that/this/her/one" are resolved by what follows, a modal followed by neither a
   verb, an adverb ("not") nor "be"/"have" is an open word ("a trash can", but "will be
   running", "could have eaten"), "have" without a participle (or "been") after it is a verb ("a
   man has a dog"), "like" after an auxiliary other than *be* is a verb ("doesn't like"), "let"
   before "us" is an auxiliary ("let's play").  Every other word gets the parts of speech WordNet
   allows (``morphy``; unknown words count as nouns) and is tagged left to right:

   * *verb* only where a verb can stand: after a subject (noun or pronoun) or a relative pronoun,
     after an auxiliary (after a form of *be*, only an -ing or past participle: "is blue" is an
     adjective, and so is an adjective after a linking verb: "stays open", "looks happy", the
     verb then counting as an auxiliary), or after a conjunction (-ing forms).  After a noun,
     -ing and past forms are verbs ("a woman holding", "a car parked"); a 3rd-person "-s" form
     after a singular noun, or a base form after a plural noun ("two men play"), is a verb when
     it is followed by a determiner, numeral or pronoun, or when WordNet's SemCor counts make
     the verb reading at least as frequent as the noun reading ("shows", "rides" but not
     "trees"); such a word at the end of the caption stays a noun.  Never after a determiner,
     numeral, adjective or preposition ("a sleeping dog", "a striped background"), and never
     for place words ("left", "right", "top").
   * otherwise a word is a *modifier* when the next word continues the noun phrase (adjective if
     WordNet allows an adjective reading or it is a colour/size word, else a noun modifier), and
     the *head* (noun) when it ends the phrase.  A colour or size word before a noun is always an
     adjective ("a red rose", not "a red" + verb "rose"); a participle inside a phrase needs a
     noun after it ("a big shaved ice", "a blue flying disc"); "black and white" is one run of
     adjectives.
4. **Noun phrases.**  ``[determiner/numeral]* [adjective/modifier]* noun+``; consecutive nouns
   at the end are joined into the head ("tennis ball"), earlier noun modifiers count as
   adjectives, adverbs ("very") are dropped; an adjective after the noun starts a phrase of its
   own ("a girl taller than ...").  A pronoun is a phrase of its own.  A collective
   noun with "of" becomes part of the determiner: "a herd of elephants" has head "elephants" and
   determiner "a herd of" (:data:`~paperlib.text.lexicon.COLLECTIVE_NOUNS`).
5. **Frames removed.**  "there is/are", "this is", a leading prepositional phrase about the
   picture ("In this picture,"), a frame noun followed by of/at ("a photo of", "a close look
   at", "an aerial view of"), and a viewer or picture subject with a depiction verb ("we can
   see", "the image shows", "someone drew") are not part of the scene; the content that follows
   is parsed.
6. **Relation.**  The first verb followed by a noun phrase (optionally through a preposition:
   "sits on") whose object is not a *setting* noun (frame nouns and places in the frame:
   "picture", "background", "corner", ...); failing that, the first preposition or spatial
   relation (not "of", "for", "as", "than", "until", ...) followed by a non-setting noun phrase.
   Its subject is the nearest noun phrase before it that is not itself the object of a
   preposition or verb, nor adjectives alone after a verb or noun ("a woman in a blue dress
   holding an umbrella" -> woman; "the sky is blue above the trees" -> sky).  Auxiliaries and
   adverbs are not part of the relation ("are playing" -> "playing", "isn't riding" -> "riding").
7. **Rest.**  Without a relation the subject is the first noun phrase that is not the object of a
   preposition.  Every other phrase goes to ``extra`` with the word(s) that introduced it.

Known failure cases (no statistical model, so these are by design):

* noun/verb ambiguity the rules cannot see: a plural compound followed by a relation can be read
  as a verb ("a theatre masks to the right of a hook" -> subject "theatre", relation "masks to
  the right of"); a finite verb at the very end stays a noun ("while a man watches" -> head "man
  watches"); "left" is always a place word ("a man left the room" -> head "man left");
* predicative and post-nominal adjectives ("the sky is blue", "a girl taller than her brother")
  are not attached to the subject (they become an extra phrase);
* intransitive verbs have no object, so no relation is kept ("a dog sleeping" -> subject only);
* coordination: the relation goes to the nearest conjunct ("a cat and a dog on a sofa" -> dog on
  sofa, cat in ``extra``); coordinated objects keep only the first ("wearing glasses and a red
  shirt" -> object "glasses");
* prepositional attachment is always to the subject, and "of" phrases are never relations
  ("a cup of coffee on a table" -> cup on table, coffee in ``extra``); multi-word names with
  "of"/"and" ("ball of yarn") need the ``nouns`` argument;
* possessives split the phrase: "a man's hat on a table" -> subject "hat", "man" in ``extra``;
* a caption without any noun falls back to its last word as subject ("running").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Collection

from paperlib.text import lexicon as lx
from paperlib.text.tokens import canonical_words, tokenize

__all__ = ["ParsedCaption", "Phrase", "parse_caption", "split_relation", "tokenize"]

_MULTI_RELATIONS = sorted((r.split() for r in lx.SPATIAL_RELATIONS if " " in r), key=len,
                          reverse=True)
_NOT_RELATIONS = frozenset({"of", "for", "as", "than", "per", "except", "unlike", "during",
                            "until", "till", "about", "via"})
_VIEWERS = frozenset("i you we someone somebody".split())
_QUOTES = frozenset("' \" ` ‘ “ ”".split())
#: Auxiliaries that can follow a modal ("will be", "could have"; "'ve" is read as "have").
_AFTER_MODAL = frozenset("be have been being".split())
#: Prepositions that are verbs after an auxiliary other than "be" ("doesn't like", "would like").
_VERB_PREPOSITIONS = frozenset({"like"})
#: Verbs read like "is" before a predicative adjective ("the shop stays open").
_LINKING_VERBS = frozenset("stay remain become seem appear look feel get turn grow".split())


@dataclass
class Phrase:
    """A noun phrase: determiner(s), adjectives (and noun modifiers), head noun, token span.

    ``span`` is ``(start, end)`` over :attr:`ParsedCaption.tokens` (end exclusive).  ``prep`` is
    set on extra phrases only: the preposition, relation, verb or conjunction that introduced it.
    """

    det: str | None
    adjectives: list[str]
    head: str
    span: tuple[int, int]
    prep: str | None = None

    @property
    def is_pronoun(self) -> bool:
        return self.head in lx.PRONOUNS and not self.adjectives and self.det is None

    def text(self, adjectives: bool = True) -> str:
        """The phrase as words: determiner (article re-agreed), adjectives, head."""
        words = (list(self.adjectives) if adjectives else []) + [self.head]
        det = self.det
        if det in ("a", "an"):
            det = lx.article(words[0])
        return " ".join(([det] if det else []) + words)


@dataclass
class ParsedCaption:
    """One caption as a one-edge scene graph: ``subject --relation--> object`` plus extras."""

    tokens: list[str]
    subject: Phrase
    relation: str | None
    object: Phrase | None
    extra: list[Phrase] = field(default_factory=list)
    relation_span: tuple[int, int] | None = None
    text: str = ""

    def slots(self) -> dict:
        """The slots CleanerCLIP's replacements act on (for comparisons)."""
        return {
            "subject_adjectives": tuple(self.subject.adjectives), "subject": self.subject.head,
            "relation": self.relation,
            "object_adjectives": tuple(self.object.adjectives) if self.object else (),
            "object": self.object.head if self.object else None,
        }

    def core_text(self, adjectives: bool = True) -> str:
        """"subject relation object" (or the subject alone), without the extras."""
        parts = [self.subject.text(adjectives)]
        if self.relation and self.object is not None:
            parts += [self.relation, self.object.text(adjectives)]
        return " ".join(parts)

    def copy(self) -> "ParsedCaption":
        return replace(self, subject=replace(self.subject, adjectives=list(self.subject.adjectives)),
                       object=None if self.object is None else
                       replace(self.object, adjectives=list(self.object.adjectives)),
                       extra=[replace(p, adjectives=list(p.adjectives)) for p in self.extra],
                       tokens=list(self.tokens))


def split_relation(relation: str) -> tuple[str | None, str | None]:
    """(verb part, preposition part) of a relation: "sits on" -> ("sits", "on"),
    "to the left of" -> (None, "to the left of"), "holding" -> ("holding", None)."""
    words = relation.split()
    for k in range(len(words)):
        tail = " ".join(words[k:])
        if tail in lx.SPATIAL_RELATIONS or (k == len(words) - 1 and tail in lx.PREPOSITIONS):
            return (" ".join(words[:k]) or None), tail
    return relation, None


# ---------------------------------------------------------------------------
# Units and tags
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Items: noun phrases, verb groups, prepositions, ...
# ---------------------------------------------------------------------------
@dataclass
class _Item:
    kind: str                 # NP, VERB, PREP, CONJ, PUNCT, AUX, EX, RELPRON, POSS, ADV
    start: int
    end: int
    text: str = ""
    phrase: Phrase | None = None
    verb_words: list[str] = field(default_factory=list)
    complement: bool = False  # adjectives only, after a verb or noun: "is blue", "girl taller"


def _phrase_from(units: list[_Unit]) -> Phrase | None:
    dets = [u.text for u in units if u.tag in ("DET", "NUM")]
    body = [u for u in units if u.tag in ("ADJ", "NOUN")]
    if not body:
        return None
    k = len(body)
    while k > 0 and body[k - 1].tag == "NOUN":
        k -= 1
    if k == len(body):                  # no noun: the last adjective is the head
        k -= 1
    head = " ".join(u.text for u in body[k:])
    adjectives = [u.text for u in body[:k]]
    return Phrase(det=" ".join(dets) or None, adjectives=adjectives, head=head,
                  span=(units[0].start, units[-1].end))


def _items(units: list[_Unit]) -> list[_Item]:
    items: list[_Item] = []
    i = 0
    while i < len(units):
        u = units[i]
        if u.tag in ("DET", "NUM", "ADJ", "NOUN") or (
                u.tag == "ADV" and i + 1 < len(units) and units[i + 1].tag in ("ADJ",)):
            j = i
            seen_body = False
            while j < len(units):
                t = units[j].tag
                if t in ("DET", "NUM") and not seen_body:
                    pass
                elif t == "ADJ" and j > i and units[j - 1].tag == "NOUN" and not (
                        j + 1 < len(units) and units[j + 1].tag in ("ADJ", "NOUN")):
                    break                       # after its noun: "a girl taller than ..."
                elif t in ("ADJ", "NOUN"):
                    seen_body = True
                elif (units[j].text in ("and", "or", ",") and j > i and units[j - 1].tag == "ADJ"
                      and j + 1 < len(units) and units[j + 1].tag == "ADJ"):
                    pass
                elif t == "ADV" and j + 1 < len(units) and units[j + 1].tag in ("ADJ", "NOUN"):
                    pass
                else:
                    break
                j += 1
            chunk = units[i:j]
            phrase = _phrase_from(chunk)
            if phrase is not None:
                complement = (all(c.tag != "NOUN" for c in chunk) and bool(items)
                              and items[-1].kind in ("AUX", "NP"))
                items.append(_Item("NP", chunk[0].start, chunk[-1].end, phrase=phrase,
                                   complement=complement))
            i = max(j, i + 1)
            continue
        if u.tag == "PRON":
            items.append(_Item("NP", u.start, u.end,
                               phrase=Phrase(None, [], u.text, (u.start, u.end))))
        elif u.tag in ("AUX", "VERB"):
            j = i
            verbs = []
            while j < len(units) and units[j].tag in ("AUX", "VERB", "ADV"):
                if units[j].tag == "ADV" and not (j + 1 < len(units)
                                                  and units[j + 1].tag in ("AUX", "VERB")):
                    break
                if units[j].tag == "VERB":
                    verbs.append(units[j].text)
                j += 1
            kind = "VERB" if verbs else "AUX"
            items.append(_Item(kind, u.start, units[j - 1].end,
                               text=" ".join(w.text for w in units[i:j]), verb_words=verbs))
            i = j
            continue
        else:
            items.append(_Item(u.tag, u.start, u.end, text=u.text))
        i += 1
    return items


def _merge_collectives(items: list[_Item]) -> list[_Item]:
    """"a herd of elephants" -> one phrase, det "a herd of", head "elephants"."""
    k = 0
    while k + 2 < len(items):
        a, b, c = items[k], items[k + 1], items[k + 2]
        if (a.kind == "NP" and a.phrase.head in lx.COLLECTIVE_NOUNS and b.kind == "PREP"
                and b.text == "of" and c.kind == "NP" and not c.phrase.is_pronoun):
            det = " ".join(filter(None, [a.phrase.text(), "of", c.phrase.det]))
            phrase = Phrase(det, list(c.phrase.adjectives), c.phrase.head,
                            (a.phrase.span[0], c.phrase.span[1]))
            items[k:k + 3] = [_Item("NP", a.start, c.end, phrase=phrase)]
        k += 1
    return items


def _is_setting(item: _Item, nouns: frozenset = frozenset()) -> bool:
    head = item.phrase.head if item.kind == "NP" else ""
    return bool(head) and head.split()[-1] in lx.SETTING_NOUNS and head not in nouns


def _is_frame(item: _Item, nouns: frozenset = frozenset()) -> bool:
    head = item.phrase.head if item.kind == "NP" else ""
    return bool(head) and head.split()[-1] in lx.FRAME_NOUNS and head not in nouns


def _strip_frames(items: list[_Item], nouns: frozenset) -> tuple[list[_Item], list[_Item]]:
    """Remove picture-about words (step 5); returns (content items, dropped setting phrases)."""
    dropped: list[_Item] = []
    changed = True
    while changed:
        changed = False
        # "there is / there are / there's"
        for k in range(len(items) - 1):
            if items[k].kind == "EX" and items[k + 1].kind in ("AUX", "VERB"):
                del items[k:k + 2]
                changed = True
                break
        if changed:
            continue
        # a leading "this is", "it is", "here is" before a noun phrase
        if (len(items) >= 3 and items[0].kind == "NP" and items[0].phrase.head in
                ("this", "it", "that", "these", "those", "here") and items[1].kind == "AUX"
                and items[2].kind == "NP" and not items[2].complement):
            del items[:2]
            changed = True
            continue
        # a leading prepositional phrase about the picture: "In this picture ,"
        if (len(items) >= 3 and items[0].kind == "PREP" and _is_frame(items[1], nouns)):
            items[1].phrase.prep = items[0].text
            dropped.append(items[1])
            del items[:2]
            if items and items[0].kind == "PUNCT":
                del items[0]
            changed = True
            continue
        for k in range(len(items) - 2):
            a, b, c = items[k], items[k + 1], items[k + 2]
            # "a photo of X", "a close look at X", "a picture showing X"
            if _is_frame(a, nouns) and c.kind == "NP" and (
                    (b.kind == "PREP" and b.text in ("of", "at", "with"))
                    or (b.kind == "VERB" and lx.verb_lemma(b.verb_words[-1]) in lx.DEPICTION_VERBS)):
                if k == 0 or items[k - 1].kind in ("PUNCT", "CONJ", "AUX", "VERB"):
                    del items[k:k + 2]
                    changed = True
                    break
            # "we can see X", "the image shows X", "someone drew X"
            if (a.kind == "NP" and (a.phrase.head in _VIEWERS or _is_frame(a, nouns))
                    and b.kind == "VERB" and c.kind == "NP"
                    and lx.verb_lemma(b.verb_words[-1]) in lx.DEPICTION_VERBS):
                del items[k:k + 2]
                changed = True
                break
    return items, dropped


def parse_caption(text: str, nouns: Collection[str] = ()) -> ParsedCaption:
    """Parse one caption into subject / relation / object (+ extra phrases); see module doc.

    ``nouns``: multi-word nouns to keep whole besides WordNet's (e.g. the class names of a
    benchmark: "ball of yarn", "bow and arrow"); matched first, longest first, case-insensitive.
    """
    tokens = tokenize(text)
    if not any(re.search(r"[A-Za-z0-9]", t) for t in tokens):
        raise ValueError(f"cannot parse a caption without words: {text!r}")
    nouns = nouns if isinstance(nouns, frozenset) else frozenset(nouns)
    units = _Tagger(_units(canonical_words(tokens), nouns)).tag()
    items, dropped = _strip_frames(_merge_collectives(_items(units)), nouns)

    nps = [k for k, it in enumerate(items) if it.kind == "NP"]
    if not nps:                                  # no noun phrase: last content word as head
        content = [u for u in units if u.tag not in ("PUNCT",)]
        u = content[-1]
        subject = Phrase(None, [], u.text, (u.start, u.end))
        return ParsedCaption(tokens, subject, None, None, [], None, text)

    def in_pp(k: int) -> bool:       # ... or otherwise not a subject: "is blue"
        return items[k].complement or (k > 0 and items[k - 1].kind in ("PREP", "VERB"))

    def subject_before(k: int) -> int | None:
        for m in range(k - 1, -1, -1):
            if items[m].kind == "NP" and not in_pp(m):
                return m
        return None

    rel = None            # (subject index, relation items, object index)
    for k, it in enumerate(items):                         # verbs first
        if it.kind != "VERB":
            continue
        if k + 1 < len(items) and items[k + 1].kind == "NP":
            obj, rel_items = k + 1, [k]
        elif k + 2 < len(items) and items[k + 1].kind == "PREP" and items[k + 2].kind == "NP":
            obj, rel_items = k + 2, [k, k + 1]
        else:
            continue
        if _is_setting(items[obj], nouns) or items[obj].phrase.head in lx.RELATIVE_PRONOUNS:
            continue
        subj = subject_before(k)
        if subj is not None:
            rel = (subj, rel_items, obj)
            break
    if rel is None:                                        # then prepositions
        for k, it in enumerate(items):
            if it.kind != "PREP" or it.text in _NOT_RELATIONS:
                continue
            if k + 1 < len(items) and items[k + 1].kind == "NP" and not _is_setting(items[k + 1], nouns):
                subj = subject_before(k)
                if subj is not None:
                    rel = (subj, [k], k + 1)
                    break

    if rel is not None:
        subj, rel_items, obj = rel
        words = []
        for m in rel_items:
            words += items[m].verb_words if items[m].kind == "VERB" else [items[m].text]
        relation = " ".join(words)
        relation_span = (items[rel_items[0]].start, items[rel_items[-1]].end)
        subject, objct = items[subj].phrase, items[obj].phrase
        used = {subj, obj}
    else:
        free = [k for k in nps if not in_pp(k)]
        subj = free[0] if free else nps[0]
        subject, objct, relation, relation_span = items[subj].phrase, None, None, None
        used = {subj}

    extra = []
    for k in nps:
        if k in used:
            continue
        phrase = items[k].phrase
        if k > 0 and items[k - 1].kind in ("PREP", "CONJ", "AUX"):
            phrase.prep = items[k - 1].text
        elif k + 1 < len(items) and items[k + 1].kind == "POSS":
            phrase.prep = "'s"
        elif k > 0 and items[k - 1].kind == "VERB":
            phrase.prep = " ".join(items[k - 1].verb_words)
        extra.append(phrase)
    extra += [it.phrase for it in dropped]
    extra.sort(key=lambda p: p.span)
    return ParsedCaption(tokens, subject, relation, objct, extra, relation_span, text)
