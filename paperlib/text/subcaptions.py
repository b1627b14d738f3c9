"""CleanerCLIP's fine-grained counterfactual augmentation: positive and negative sub-captions.

From a parsed caption (:func:`paperlib.text.parse.parse_caption`, ``subject --relation-->
object``), following CleanerCLIP Sec. 3.2:

* the **positive** (factual) sub-caption keeps the subject, the relation and the object and drops
  the adjectives: "a small banana to the left of a red bicycle on a striped background" ->
  "a banana to the left of a bicycle".  ``p_keep_adjective`` keeps, per phrase, one randomly
  chosen adjective with that probability (the paper "simplifies or omits" adjectives; default 0:
  omit).  A caption without a relation is reduced to its head noun ("a photo of an apple" ->
  "apple"), as the paper does for captions that are too simple.
* the **negative** (counterfactual) sub-caption: Sec. 3.2 applies its random replacement to each
  *sub-caption*, so by default (``negatives="one_slot"``) it is the positive sub-caption with
  exactly ONE slot replaced, and differs from its positive in that slot only ("a banana to the
  left of a bicycle" -> "a banana to the right of a bicycle"; an "a"/"an" before the slot is
  re-agreed, and a pronoun replaced by a noun gets an article).  The ablation
  ``negatives="full_caption"`` (the construction before) replaces one slot of the core caption
  (subject, relation, object with all their adjectives), so its negative also differs from the
  positive by the adjectives the positive dropped.  The replacement is of one of three types,
  drawn uniformly among the types that apply to the caption it acts on:

  - ``adjective``: one adjective of the subject or object (uniform over all of them) is
    replaced by one of the same kind: a colour by a colour of another colour group, a size word
    by a word of the opposite size group ("small" -> "huge"); otherwise by a WordNet antonym of
    the word where one exists ("old" -> "young"/"new"), else by a random vocabulary adjective
    that shares no WordNet synset with it.  Needs an adjective (with ``one_slot`` and
    ``p_keep_adjective=0`` positives have none, so this type does not arise).
  - ``relation``: a spatial relation is replaced by its opposite with probability
    ``p_opposite`` ("to the left of" -> "to the right of", "above" -> "below", "on" -> "under"),
    else by a random spatial relation from another meaning group; a verb relation gets its verb
    replaced by another action verb in the same form ("holding" -> "kicking") that shares no
    WordNet synset with it, or, for a verb with a preposition ("sits on"), one of the two parts is
    replaced.  Needs a relation.
  - ``noun``: the subject's or the object's head noun is replaced by a vocabulary noun that is
    not a WordNet synonym (shared synset), hypernym or hyponym of it, nor another head of the
    caption; plural heads get a plural replacement, "a"/"an" are re-agreed.

The replacement vocabularies are :class:`~paperlib.text.replacement_vocab.ReplacementVocab`s:
the words of the training captions (closed: colour / size groups, antonyms and opposite
relations are also limited to its words) or, as the ablation, WordNet lemmas (open).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Collection, Sequence

import numpy as np

from paperlib.text import lexicon as lx
from paperlib.text.parse import ParsedCaption, Phrase, parse_caption, split_relation
from paperlib.text.replacement_vocab import _ADJ_RE, CONCRETE_LEXFILES, ReplacementVocab

__all__ = [
    "CONCRETE_LEXFILES", "Counterfactual", "KINDS", "NEGATIVES", "NoReplacementError", "ReplacementVocab",
    "SubcaptionGenerator", "counterfactual", "is_related_noun", "negative_subcaption",
    "positive_parse", "positive_subcaption", "subcaption_pair",
]

#: The three replacement types of CleanerCLIP, in the paper's order.
KINDS = ("adjective", "relation", "noun")
#: What a negative sub-caption is built from: the positive sub-caption (faithful, Sec. 3.2) or
#: the core caption with its adjectives (the ablation, the construction before).
NEGATIVES = ("one_slot", "full_caption")
_PLURAL_PRONOUNS = frozenset("they them we us these those".split())


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


def positive_parse(parsed: ParsedCaption, rng: np.random.Generator | None = None,
                   p_keep_adjective: float = 0.0) -> ParsedCaption:
    """The positive sub-caption as a parse (no extras; the bare subject without a relation).

    Sec. 3.2's template: (subject adjective) subject, relational verb, (object adjective) object;
    a too simple caption keeps only its key word.  Its :meth:`~ParsedCaption.core_text` is
    :func:`positive_subcaption`."""
    if parsed.relation is None or parsed.object is None:
        subject = Phrase(None, [], parsed.subject.head, parsed.subject.span)
        return ParsedCaption(parsed.tokens, subject, None, None, [], None, subject.head)
    subject = _simplified(parsed.subject, rng, p_keep_adjective)
    objct = _simplified(parsed.object, rng, p_keep_adjective)
    out = ParsedCaption(parsed.tokens, subject, parsed.relation, objct, [], parsed.relation_span)
    out.text = out.core_text()
    return out


def positive_subcaption(parsed: ParsedCaption, rng: np.random.Generator | None = None,
                        p_keep_adjective: float = 0.0) -> str:
    """Subject + relation + object without adjectives (or the head noun alone, no relation)."""
    return positive_parse(parsed, rng, p_keep_adjective).core_text()


# ---------------------------------------------------------------------------
# Negative (counterfactual) sub-caption
# ---------------------------------------------------------------------------
class NoReplacementError(ValueError):
    """No replacement of any applicable type exists in the vocabulary for this caption."""


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
        pool = [[w for w in g if vocab.allows(w, "a")] for g in groups
                if g is not own and g not in taken]
        pool = [g for g in pool if g]             # a closed vocabulary may lack whole groups
        if not pool:
            return None
        group = pool[rng.integers(len(pool))]
        return group[rng.integers(len(group))]
    antonyms = [a for a in _antonyms(old) if a not in others and vocab.allows(a, "a")]
    if antonyms:
        return antonyms[rng.integers(len(antonyms))]
    return _draw(rng, vocab.adjectives,
                 lambda c: c not in others and not _synonymous(c, old, "a")
                 and c not in lx.COLOURS and c not in lx.SIZES)


def _replace_spatial(prep: str, rng, vocab, p_opposite: float) -> str | None:
    opposite = lx.SPATIAL_OPPOSITES.get(prep)
    if opposite is not None and rng.random() < p_opposite and vocab.allows(opposite, "r"):
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
    raise NoReplacementError(f"no replacement found for {parsed.text!r} (vocabulary too small?)")


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
    """The text of one :func:`counterfactual` of ``parsed`` (exactly one adjective, relation or
    noun replaced; of the core caption with its adjectives, whatever ``parsed`` holds)."""
    return counterfactual(parsed, rng, vocab, p_opposite).text


def subcaption_pair(parsed: ParsedCaption, rng: np.random.Generator, vocab: ReplacementVocab,
                    p_keep_adjective: float = 0.0, p_opposite: float = 0.5,
                    negatives: str = "one_slot") -> tuple[ParsedCaption, Counterfactual]:
    """(positive parse, negative) for one caption; the positive text is ``.core_text()``.

    ``negatives="one_slot"`` (CleanerCLIP Sec. 3.2: the replacement acts on the sub-caption):
    the negative is the positive with one slot replaced; ``"full_caption"`` (ablation): one slot
    of the core caption with its adjectives replaced.  The random draws come in the same order
    either way (positive first), so ``"full_caption"`` reproduces the former generator."""
    if negatives not in NEGATIVES:
        raise ValueError(f"unknown negatives {negatives!r}; valid: {', '.join(NEGATIVES)}")
    positive = positive_parse(parsed, rng, p_keep_adjective)
    source = positive if negatives == "one_slot" else parsed
    return positive, counterfactual(source, rng, vocab, p_opposite)


class SubcaptionGenerator:
    """Positive and negative sub-captions for a batch of captions, re-drawn on every call.

    Parses are cached (parsing is deterministic); ``nouns`` are extra multi-word nouns for the
    parser (e.g. the benchmark's class names); ``negatives``: see :func:`subcaption_pair`.  A
    caption that has no replacement in the vocabulary (possible with a small closed vocabulary:
    "a square to the left of a dog" when the captions hold no other noun and no other relation)
    gets ``None`` as positive and negative; ``n_skipped`` counts them.
    """

    def __init__(self, vocab: ReplacementVocab, nouns: Collection[str] = (),
                 p_keep_adjective: float = 0.0, p_opposite: float = 0.5, cache_size: int = 65536,
                 negatives: str = "one_slot"):
        if negatives not in NEGATIVES:
            raise ValueError(f"unknown negatives {negatives!r}; valid: {', '.join(NEGATIVES)}")
        self.vocab = vocab
        self.nouns = frozenset(nouns)
        self.p_keep_adjective = p_keep_adjective
        self.p_opposite = p_opposite
        self.negatives = negatives
        self.n_skipped = 0
        self._parse = lru_cache(maxsize=cache_size)(lambda text: parse_caption(text, self.nouns))

    def parse(self, caption: str) -> ParsedCaption:
        return self._parse(caption)

    def __call__(self, captions: Sequence[str], rng: np.random.Generator) -> tuple[list, list]:
        positives, negatives = [], []
        for caption in captions:
            try:
                positive, negative = subcaption_pair(self._parse(caption), rng, self.vocab,
                                                     self.p_keep_adjective, self.p_opposite,
                                                     self.negatives)
            except NoReplacementError:
                if self.n_skipped == 0:
                    logging.getLogger(__name__).warning(
                        "no counterfactual for %r within the replacement vocabulary: pair skipped "
                        "(further skips are counted in n_skipped)", caption)
                self.n_skipped += 1
                positives.append(None)
                negatives.append(None)
                continue
            positives.append(positive.core_text())
            negatives.append(negative.text)
        return positives, negatives
