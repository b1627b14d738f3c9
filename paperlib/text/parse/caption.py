"""Steps 6-7 of the parser: :func:`parse_caption`, the relation, its subject and object, and the extra phrases."""
from __future__ import annotations

import re
from typing import Collection

from paperlib.text import lexicon as lx
from paperlib.text.parse.frames import _is_setting, _strip_frames
from paperlib.text.parse.items import _items, _merge_collectives
from paperlib.text.parse.phrases import ParsedCaption, Phrase
from paperlib.text.parse.tagger import _Tagger
from paperlib.text.parse.units import _units
from paperlib.text.tokens import canonical_words, tokenize


_NOT_RELATIONS = frozenset({"of", "for", "as", "than", "per", "except", "unlike", "during",
                            "until", "till", "about", "via"})


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
