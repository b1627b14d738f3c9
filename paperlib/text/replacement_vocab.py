"""CleanerCLIP's replacement repositories (nouns, adjectives, relations) for counterfactuals.

CleanerCLIP (Sec. 3.2, last paragraph of "Counterfactual: Negative sub-caption generation") draws
the replacement words of its negative sub-captions from three repositories of 3,000 terms each,
"from common to rare", built with WordNet and ChatGPT.  Two constructions are offered here:

* :meth:`ReplacementVocab.from_captions` (the default of the CleanerCLIP defence,
  ``replacement_vocab="training_captions"``): only words that occur in the clean fine-tuning
  captions the defence receives, so that a negative sub-caption uses words the model is being
  fine-tuned on.  Such a vocabulary is *closed*: every replacement, including a colour or size
  word of another group, a WordNet antonym or an opposite spatial relation, must be one of its
  words (see :mod:`paperlib.text.subcaptions`).
* :meth:`ReplacementVocab.from_wordnet` (the ablation, ``replacement_vocab="wordnet"``; the only
  construction before): WordNet lemmas; ChatGPT is not available offline.  Curated colour / size
  groups, antonyms and opposite relations may come from outside it (an *open* vocabulary).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Collection, Iterable

import numpy as np

from paperlib.text import lexicon as lx
from paperlib.text.parse import ParsedCaption, parse_caption, split_relation

__all__ = ["CONCRETE_LEXFILES", "ReplacementVocab", "caption_words"]

#: WordNet lexicographer files of concrete, picturable nouns: animal, artifact, food, object,
#: person, plant (numbers as in :data:`paperlib.assets.LEXNAMES`).
CONCRETE_LEXFILES = {5: "noun.animal", 6: "noun.artifact", 13: "noun.food", 17: "noun.object",
                     18: "noun.person", 20: "noun.plant"}
_NOUN_RE = re.compile(r"^[a-z]+(?:[_-][a-z]+)?$")
_ADJ_RE = re.compile(r"^[a-z]+$")
_CAPTION_NOUN_RE = re.compile(r"^[a-z][a-z'-]*(?: [a-z][a-z'-]*)*$")
_ROMAN = re.compile(r"^[ivxlcdm]+$")


def _plain_word(lemma: str) -> bool:
    """Not a closed-class word, numeral or roman numeral ("above", "six", "xxviii")."""
    return lemma not in lx.STOP_WORDS and lemma not in lx.NUMBERS and not _ROMAN.match(lemma)


@dataclass(frozen=True)
class ReplacementVocab:
    """The three replacement repositories: nouns, adjectives, relations (spatial + verbs).

    ``closed``: every replacement must be a word of this vocabulary, the curated colour and size
    groups, WordNet antonyms and opposite spatial relations included (the training-caption
    vocabulary); ``False``: those may come from outside it (the WordNet vocabulary).
    """

    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    relations: tuple[str, ...]
    closed: bool = False

    @property
    def spatial(self) -> tuple[str, ...]:
        return tuple(r for r in self.relations if r in lx.SPATIAL_RELATIONS)

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(r for r in self.relations if r in lx.VERB_FORMS)

    def allows(self, word: str, pos: str) -> bool:
        """May ``word`` (part of speech ``"a"``: adjective, ``"r"``: spatial relation) be a
        replacement?  Always for an open vocabulary; for a closed one only its own words."""
        if not self.closed:
            return True
        return word in (self.adjectives if pos == "a" else self.spatial)

    @classmethod
    def from_wordnet(cls, size: int = 3000, seed: int = 0,
                     common_fraction: float = 0.5) -> "ReplacementVocab":
        """Build the vocabularies from WordNet 3.0 (the paper used WordNet + ChatGPT).

        * nouns: lemmas of noun senses in the concrete lexicographer files
          (:data:`CONCRETE_LEXFILES`) whose synset descends from ``physical_entity.n.01`` through
          hyponym links (instances, i.e. proper nouns such as cities, are not hyponyms and are
          left out), one or two words, lower-case in WordNet itself, 3-20 letters;
        * adjectives: single-word lemmas of ``adj.all`` (not pertainyms, not participles), lower
          case, 3-15 letters;
        * neither: closed-class words, numerals, roman numerals ("above", "six", "xxviii");
        * relations: the curated spatial relations and action verbs of
          :mod:`paperlib.text.lexicon` (about 70 + 70; a curated list, so not ``size`` long).

        "From common to rare", like the paper's: ``common_fraction`` of ``size`` are the most
        frequent lemmas by SemCor tag count (summed over the qualifying senses), the rest are
        drawn uniformly, with ``seed``, from the remaining qualifying lemmas.
        """
        if size < 1:
            raise ValueError(f"vocabulary size must be positive, got {size}")
        if not 0.0 <= common_fraction <= 1.0:
            raise ValueError(f"common_fraction must lie in [0, 1], got {common_fraction}")
        nouns, adjectives = _wordnet_vocab(size, seed, common_fraction)
        relations = tuple(dict.fromkeys(lx.SPATIAL_RELATIONS)) + tuple(lx.VERB_FORMS)
        return cls(nouns=nouns, adjectives=adjectives, relations=relations)

    @classmethod
    def from_captions(cls, captions: Iterable[str], nouns: Collection[str] = (),
                      parse: Callable[[str], ParsedCaption] | None = None) -> "ReplacementVocab":
        """A closed vocabulary of the words the given (training) captions use in each role.

        Each distinct caption is parsed (``parse``, default :func:`parse_caption` with the extra
        multi-word ``nouns``, as the sub-caption generator parses) and :func:`caption_words`
        collects its head nouns, adjectives and relations.  Raises ValueError when the captions
        give no noun (the one replacement type every caption has).
        """
        if parse is None:
            known = frozenset(nouns)
            parse = lambda text: parse_caption(text, known)  # noqa: E731
        found_nouns, found_adjectives, found_relations = set(), set(), set()
        for text in dict.fromkeys(captions):
            try:
                parsed = parse(text)
            except ValueError:                      # no words at all ("...")
                continue
            n, a, r = caption_words(parsed, nouns)
            found_nouns.update(n)
            found_adjectives.update(a)
            found_relations.update(r)
        if not found_nouns:
            raise ValueError("the captions give no replacement noun (no captions, or none parsed)")
        spatial = [r for r in dict.fromkeys(lx.SPATIAL_RELATIONS) if r in found_relations]
        verbs = [v for v in lx.VERB_FORMS if v in found_relations]
        return cls(nouns=tuple(sorted(found_nouns)), adjectives=tuple(sorted(found_adjectives)),
                   relations=tuple(spatial + verbs), closed=True)


def _singular(head: str) -> str:
    """The head noun in the singular, by its last word ("tennis balls" -> "tennis ball")."""
    words = head.split()
    if lx.is_plural_noun(head):
        words[-1] = lx.noun_lemma(words[-1])
    return " ".join(words)


def _caption_noun(head: str, known: Collection[str]) -> bool:
    if head in known:
        return True
    if (not _CAPTION_NOUN_RE.match(head) or head in lx.PRONOUNS or head in lx.SETTING_NOUNS
            or not all(_plain_word(w) for w in head.split())):
        return False
    last = head.split()[-1]
    pos = lx.pos_set(head) | lx.pos_set(last)
    return "n" in pos or not pos                  # a WordNet noun, or unknown (the parser's reading)


def _caption_adjective(word: str) -> bool:
    return bool(_ADJ_RE.match(word) and _plain_word(word) and word not in lx.POSITION_NOUNS
                and (word in lx.COLOURS or word in lx.SIZES or "a" in lx.pos_set(word)))


def caption_words(parsed: ParsedCaption, nouns: Collection[str] = ()) -> tuple[set, set, set]:
    """(head nouns, adjectives, relations) one parsed caption uses, as replacement words.

    Phrases headed by a frame or setting noun ("a photo", "in the top left corner", "on a
    striped background") describe the picture, not an object in it, and give no word.  Of the
    other noun phrases (subject, object and the extra ones):

    * nouns: the heads that are not pronouns, closed-class words or numerals, and are a WordNet
      noun, unknown to WordNet (read as a noun by the parser) or one of ``nouns``; in the
      singular (the number is re-agreed where a replacement is used);
    * adjectives: their adjectives that are WordNet adjectives, colours or sizes (noun modifiers
      are not);
    * relations: the curated spatial relations (:data:`~paperlib.text.lexicon.SPATIAL_RELATIONS`)
      and the base forms of the curated action verbs (:data:`~paperlib.text.lexicon.VERB_FORMS`,
      whose inflections are written out) that link the subject to the object or introduce an
      extra phrase.
    """
    known = nouns if isinstance(nouns, (set, frozenset)) else frozenset(nouns)
    found_nouns, found_adjectives, found_relations = set(), set(), set()
    phrases = [p for p in (parsed.subject, parsed.object, *parsed.extra)
               if p is not None and p.head.lower() not in lx.SETTING_NOUNS]
    for phrase in phrases:
        head = phrase.head.lower()
        if not phrase.is_pronoun and _caption_noun(head, known):
            found_nouns.add(_singular(head))
        found_adjectives.update(a.lower() for a in phrase.adjectives if _caption_adjective(a.lower()))
    links = ([parsed.relation] if parsed.relation and parsed.object in phrases
             and parsed.subject in phrases else [])
    links += [p.prep for p in parsed.extra if p.prep and p in phrases]
    for link in links:
        verb, prep = split_relation(link.lower())
        if prep in lx.SPATIAL_RELATIONS:
            found_relations.add(prep)
        if verb:
            base = lx.verb_lemma(verb.split()[-1])
            if base in lx.VERB_FORMS:
                found_relations.add(base)
    return found_nouns, found_adjectives, found_relations


@lru_cache(maxsize=8)
def _wordnet_vocab(size: int, seed: int, common_fraction: float):
    wn = lx.wordnet()
    _, noun_senses, adj_senses = lx.sense_index()
    physical = wn.synset("physical_entity.n.01")
    memo: dict = {physical: True}

    def is_physical(synset) -> bool:
        if synset not in memo:
            memo[synset] = False
            memo[synset] = any(is_physical(h) for h in synset.hypernyms())
        return memo[synset]

    def lower_case_in_wordnet(lemma: str, pos: str, offset: int) -> bool:
        synset = wn.synset_from_pos_and_offset(pos, offset)
        return lemma in synset.lemma_names()

    # nouns
    counts: dict[str, int] = {}
    senses: dict[str, list[int]] = {}
    for lemma, lexfile, offset, cnt in noun_senses:
        if (lexfile in CONCRETE_LEXFILES and _NOUN_RE.match(lemma) and 3 <= len(lemma) <= 20
                and _plain_word(lemma)):
            counts[lemma] = counts.get(lemma, 0) + cnt
            senses.setdefault(lemma, []).append(offset)

    def noun_ok(lemma: str) -> bool:
        return any(lower_case_in_wordnet(lemma, "n", off)
                   and is_physical(wn.synset_from_pos_and_offset("n", off))
                   for off in senses[lemma])

    nouns = _common_and_rare(counts, noun_ok, size, seed, common_fraction)

    # adjectives (adj.all is lexicographer file 0)
    counts, senses = {}, {}
    for lemma, lexfile, offset, cnt in adj_senses:
        if lexfile == 0 and _ADJ_RE.match(lemma) and 3 <= len(lemma) <= 15 and _plain_word(lemma):
            counts[lemma] = counts.get(lemma, 0) + cnt
            senses.setdefault(lemma, []).append(offset)

    def adj_ok(lemma: str) -> bool:
        return any(lower_case_in_wordnet(lemma, "a", off) for off in senses[lemma])

    adjectives = _common_and_rare(counts, adj_ok, size, seed + 1, common_fraction)
    return (tuple(n.replace("_", " ") for n in nouns), tuple(adjectives))


def _common_and_rare(counts: dict[str, int], ok, size: int, seed: int,
                     common_fraction: float) -> list[str]:
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    n_common = int(round(size * common_fraction))
    chosen, k = [], 0
    while len(chosen) < n_common and k < len(ranked):
        if ok(ranked[k]):
            chosen.append(ranked[k])
        k += 1
    rest = ranked[k:]
    for idx in np.random.default_rng(seed).permutation(len(rest)):
        if len(chosen) >= size:
            break
        if ok(rest[idx]):
            chosen.append(rest[idx])
    return sorted(chosen)
