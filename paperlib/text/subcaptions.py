"""CleanerCLIP's fine-grained counterfactual augmentation: positive and negative sub-captions.

From a parsed caption (:func:`paperlib.text.parse.parse_caption`, ``subject --relation-->
object``):

* the **positive** (factual) sub-caption keeps the subject, the relation and the object and drops
  the adjectives: "a small banana to the left of a red bicycle on a striped background" ->
  "a banana to the left of a bicycle".  ``p_keep_adjective`` keeps, per phrase, one randomly
  chosen adjective with that probability (the paper "simplifies or omits" adjectives; default 0:
  omit).  A caption without a relation is reduced to its head noun ("a photo of an apple" ->
  "apple"), as the paper does for captions that are too simple.
* the **negative** (counterfactual) sub-caption is the core caption (subject, relation, object
  with their adjectives, no extras) with exactly ONE random replacement, of one of three types
  drawn uniformly among the types that apply to the caption:

  - ``adjective``: one adjective of the subject or object (uniform over all of them) is
    replaced by one of the same kind: a colour by a colour of another colour group, a size word
    by a word of the opposite size group ("small" -> "huge"); otherwise by a WordNet antonym of
    the word where one exists ("old" -> "young"/"new"), else by a random vocabulary adjective
    that shares no WordNet synset with it.  Needs an adjective.
  - ``relation``: a spatial relation is replaced by its opposite with probability
    ``p_opposite`` ("to the left of" -> "to the right of", "above" -> "below", "on" -> "under"),
    else by a random spatial relation from another meaning group; a verb relation gets its verb
    replaced by another action verb in the same form ("holding" -> "kicking") that shares no
    WordNet synset with it, or, for a verb with a preposition ("sits on"), one of the two parts is
    replaced.  Needs a relation.
  - ``noun``: the subject's or the object's head noun is replaced by a vocabulary noun that is
    not a WordNet synonym (shared synset), hypernym or hyponym of it, nor another head of the
    caption; plural heads get a plural replacement, "a"/"an" are re-agreed.

The replacement vocabularies (:class:`ReplacementVocab`): the paper builds three repositories of
3,000 terms each with WordNet and ChatGPT; ChatGPT is not available offline, so ours come from
WordNet alone (see :meth:`ReplacementVocab.from_wordnet`).  Their size is a parameter.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Collection, Sequence

import numpy as np

from paperlib.text import lexicon as lx
from paperlib.text.parse import ParsedCaption, Phrase, parse_caption, split_relation

__all__ = [
    "CONCRETE_LEXFILES", "Counterfactual", "KINDS", "ReplacementVocab", "SubcaptionGenerator",
    "counterfactual", "is_related_noun", "negative_subcaption", "positive_subcaption",
]

#: The three replacement types of CleanerCLIP, in the paper's order.
KINDS = ("adjective", "relation", "noun")
#: WordNet lexicographer files of concrete, picturable nouns: animal, artifact, food, object,
#: person, plant (numbers as in :data:`paperlib.assets.LEXNAMES`).
CONCRETE_LEXFILES = {5: "noun.animal", 6: "noun.artifact", 13: "noun.food", 17: "noun.object",
                     18: "noun.person", 20: "noun.plant"}
_NOUN_RE = re.compile(r"^[a-z]+(?:[_-][a-z]+)?$")
_ADJ_RE = re.compile(r"^[a-z]+$")
_PLURAL_PRONOUNS = frozenset("they them we us these those".split())
_ROMAN = re.compile(r"^[ivxlcdm]+$")


def _plain_word(lemma: str) -> bool:
    """Not a closed-class word, numeral or roman numeral ("above", "six", "xxviii")."""
    return lemma not in lx.STOP_WORDS and lemma not in lx.NUMBERS and not _ROMAN.match(lemma)


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ReplacementVocab:
    """The three replacement repositories: nouns, adjectives, relations (spatial + verbs)."""

    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    relations: tuple[str, ...]

    @property
    def spatial(self) -> tuple[str, ...]:
        return tuple(r for r in self.relations if r in lx.SPATIAL_RELATIONS)

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(r for r in self.relations if r in lx.VERB_FORMS)

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


# ---------------------------------------------------------------------------
# WordNet relations between words
# ---------------------------------------------------------------------------
def _wn_key(phrase: str) -> str:
    words = phrase.lower().split()
    words[-1] = lx.noun_lemma(words[-1])
    return "_".join(" ".join(words).split())


@lru_cache(maxsize=100_000)
def _noun_synsets(phrase: str) -> frozenset:
    return frozenset(lx.wordnet().synsets(_wn_key(phrase), pos="n"))


@lru_cache(maxsize=100_000)
def _hypernym_closure(phrase: str) -> frozenset:
    out = set()
    for s in _noun_synsets(phrase):
        out.update(s.closure(lambda x: x.hypernyms() + x.instance_hypernyms()))
    return frozenset(out)


def is_related_noun(a: str, b: str) -> bool:
    """Are nouns ``a`` and ``b`` the same lemma, WordNet synonyms (a shared synset), or is one a
    hypernym of the other (any sense)?  Plurals and multi-word nouns are handled."""
    if _wn_key(a) == _wn_key(b):
        return True
    sa, sb = _noun_synsets(a), _noun_synsets(b)
    return bool(sa & sb or sa & _hypernym_closure(b) or sb & _hypernym_closure(a))


@lru_cache(maxsize=100_000)
def _synsets(word: str, pos: str) -> frozenset:
    return frozenset(lx.wordnet().synsets(word.replace(" ", "_"), pos=pos))


def _synonymous(a: str, b: str, pos: str) -> bool:
    return a == b or bool(_synsets(a, pos) & _synsets(b, pos))


@lru_cache(maxsize=100_000)
def _antonyms(adjective: str) -> tuple[str, ...]:
    out = set()
    for s in lx.wordnet().synsets(adjective, pos="a"):
        for lemma in s.lemmas():
            if lemma.name() == adjective:
                out.update(a.name() for a in lemma.antonyms() if _ADJ_RE.match(a.name()))
    return tuple(sorted(out))


# ---------------------------------------------------------------------------
# Positive sub-caption
# ---------------------------------------------------------------------------
def _simplified(phrase: Phrase, rng: np.random.Generator | None, p_keep: float) -> Phrase:
    keep: list[str] = []
    if p_keep > 0 and phrase.adjectives and rng is not None and rng.random() < p_keep:
        keep = [phrase.adjectives[rng.integers(len(phrase.adjectives))]]
    return Phrase(phrase.det, keep, phrase.head, phrase.span)


def positive_subcaption(parsed: ParsedCaption, rng: np.random.Generator | None = None,
                        p_keep_adjective: float = 0.0) -> str:
    """Subject + relation + object without adjectives (or the head noun alone, no relation)."""
    if parsed.relation is None or parsed.object is None:
        return parsed.subject.head
    subject = _simplified(parsed.subject, rng, p_keep_adjective)
    objct = _simplified(parsed.object, rng, p_keep_adjective)
    return f"{subject.text()} {parsed.relation} {objct.text()}"


# ---------------------------------------------------------------------------
# Negative (counterfactual) sub-caption
# ---------------------------------------------------------------------------
@dataclass
class Counterfactual:
    """One counterfactual: the text and what was replaced (``parsed`` is the edited parse)."""

    text: str
    kind: str            # "adjective", "relation" or "noun"
    slot: str            # "subject", "object" or "relation"
    old: str
    new: str
    parsed: ParsedCaption


def _draw(rng: np.random.Generator, pool: Sequence[str], ok, tries: int = 200) -> str | None:
    if not pool:
        return None
    for _ in range(tries):
        cand = pool[rng.integers(len(pool))]
        if ok(cand):
            return cand
    return None


def _group_of(word: str, groups) -> tuple[str, ...] | None:
    return next((g for g in groups if word in g), None)


def _replace_adjective(old: str, others: Collection[str], rng, vocab) -> str | None:
    groups = (lx.COLOUR_GROUPS if old in lx.COLOURS else
              (lx.SIZE_GROUPS if old in lx.SIZES else None))
    if groups is not None:
        own = _group_of(old, groups)
        taken = {g for w in others for g in groups if w in g}
        pool = [g for g in groups if g is not own and g not in taken]
        if not pool:
            return None
        group = pool[rng.integers(len(pool))]
        return group[rng.integers(len(group))]
    antonyms = [a for a in _antonyms(old) if a not in others]
    if antonyms:
        return antonyms[rng.integers(len(antonyms))]
    return _draw(rng, vocab.adjectives,
                 lambda c: c not in others and not _synonymous(c, old, "a")
                 and c not in lx.COLOURS and c not in lx.SIZES)


def _replace_spatial(prep: str, rng, vocab, p_opposite: float) -> str | None:
    opposite = lx.SPATIAL_OPPOSITES.get(prep)
    if opposite is not None and rng.random() < p_opposite:
        return opposite
    own = _group_of(prep, lx.SPATIAL_GROUPS) or (prep,)
    return _draw(rng, vocab.spatial, lambda c: c not in own)


def _replace_verb(verb: str, rng, vocab) -> str | None:
    words = verb.split()
    last = words[-1]
    base = lx.verb_lemma(last) or last
    form = lx.verb_form(last) or "base"
    new = _draw(rng, vocab.verbs, lambda c: c != base and not _synonymous(c, base, "v"))
    if new is None:
        return None
    return " ".join(words[:-1] + [lx.inflect_verb(new, form)])


def _replace_noun(phrase: Phrase, others: Collection[str], rng, vocab) -> tuple[str, str | None] | None:
    """(new head, new determiner) for ``phrase``."""
    old = phrase.head
    pronoun = phrase.is_pronoun
    new = _draw(rng, vocab.nouns,
                lambda c: (pronoun or not is_related_noun(c, old))
                and not any(_wn_key(c) == _wn_key(o) for o in others))
    if new is None:
        return None
    if pronoun:
        plural = old in _PLURAL_PRONOUNS
        return (lx.pluralize(new) if plural else new), (None if plural else "a")
    return (lx.pluralize(new) if lx.is_plural_noun(old) else new), phrase.det


def _applicable(parsed: ParsedCaption) -> list[str]:
    kinds = []
    phrases = [p for p in (parsed.subject, parsed.object) if p is not None]
    if any(p.adjectives for p in phrases):
        kinds.append("adjective")
    if parsed.relation and parsed.object is not None:
        kinds.append("relation")
    kinds.append("noun")              # a subject always exists
    return kinds


def counterfactual(parsed: ParsedCaption, rng: np.random.Generator, vocab: ReplacementVocab,
                   p_opposite: float = 0.5, kind: str | None = None) -> Counterfactual:
    """One counterfactual of ``parsed`` (see the module docstring); ``kind`` forces the type."""
    kinds = _applicable(parsed)
    if kind is not None:
        if kind not in KINDS:
            raise ValueError(f"unknown replacement kind {kind!r}; valid: {', '.join(KINDS)}")
        if kind not in kinds:
            raise ValueError(f"replacement kind {kind!r} does not apply to {parsed.text!r}; "
                             f"applicable: {', '.join(kinds)}")
        order = [kind]
    else:
        order = list(rng.permutation(kinds))  # uniform first choice, the others as fall-backs
    for k in order:
        out = _apply(parsed, str(k), rng, vocab, p_opposite)
        if out is not None:
            return out
    raise ValueError(f"no replacement found for {parsed.text!r} (vocabulary too small?)")


def _apply(parsed: ParsedCaption, kind: str, rng, vocab, p_opposite) -> Counterfactual | None:
    new_parsed = parsed.copy()
    slots = [("subject", new_parsed.subject)]
    if new_parsed.object is not None and new_parsed.relation:
        slots.append(("object", new_parsed.object))
    if kind == "adjective":
        positions = [(name, p, i) for name, p in slots for i in range(len(p.adjectives))]
        if not positions:
            return None
        name, phrase, i = positions[rng.integers(len(positions))]
        old = phrase.adjectives[i]
        new = _replace_adjective(old, phrase.adjectives, rng, vocab)
        if new is None:
            return None
        phrase.adjectives[i] = new
        if phrase.det in ("a", "an"):
            phrase.det = lx.article(phrase.adjectives[0])
    elif kind == "relation":
        if not (parsed.relation and parsed.object is not None):
            return None
        name, old = "relation", parsed.relation
        verb, prep = split_relation(old)
        parts = [p for p, present in (("verb", verb), ("prep", prep)) if present]
        part = parts[rng.integers(len(parts))]
        if part == "prep":
            repl = _replace_spatial(prep, rng, vocab, p_opposite)
            new = None if repl is None else " ".join(filter(None, [verb, repl]))
        else:
            repl = _replace_verb(verb, rng, vocab)
            new = None if repl is None else " ".join(filter(None, [repl, prep]))
        if new is None or new == old:
            return None
        new_parsed.relation = new
    else:
        candidates = [(n, p) for n, p in slots if not p.is_pronoun] or slots
        name, phrase = candidates[rng.integers(len(candidates))]
        old = phrase.head
        others = [p.head for _, p in slots if p is not phrase]
        result = _replace_noun(phrase, others, rng, vocab)
        if result is None:
            return None
        new, phrase.det = result
        phrase.head = new
        if phrase.det in ("a", "an"):
            phrase.det = lx.article((phrase.adjectives + [new])[0])
    return Counterfactual(new_parsed.core_text(adjectives=True), kind, name, old, new, new_parsed)


def negative_subcaption(parsed: ParsedCaption, rng: np.random.Generator,
                        vocab: ReplacementVocab, p_opposite: float = 0.5) -> str:
    """The text of one :func:`counterfactual` (exactly one adjective, relation or noun replaced)."""
    return counterfactual(parsed, rng, vocab, p_opposite).text


class SubcaptionGenerator:
    """Positive and negative sub-captions for a batch of captions, re-drawn on every call.

    Parses are cached (parsing is deterministic); ``nouns`` are extra multi-word nouns for the
    parser (e.g. the benchmark's class names).
    """

    def __init__(self, vocab: ReplacementVocab, nouns: Collection[str] = (),
                 p_keep_adjective: float = 0.0, p_opposite: float = 0.5, cache_size: int = 65536):
        self.vocab = vocab
        self.nouns = frozenset(nouns)
        self.p_keep_adjective = p_keep_adjective
        self.p_opposite = p_opposite
        self._parse = lru_cache(maxsize=cache_size)(lambda text: parse_caption(text, self.nouns))

    def parse(self, caption: str) -> ParsedCaption:
        return self._parse(caption)

    def __call__(self, captions: Sequence[str], rng: np.random.Generator) -> tuple[list[str], list[str]]:
        positives, negatives = [], []
        for caption in captions:
            parsed = self._parse(caption)
            positives.append(positive_subcaption(parsed, rng, self.p_keep_adjective))
            negatives.append(negative_subcaption(parsed, rng, self.vocab, self.p_opposite))
        return positives, negatives
