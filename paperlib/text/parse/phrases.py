"""What the parser returns: noun phrases, the parsed caption (a one-edge scene graph), relation parts."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from paperlib.text import lexicon as lx


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
