"""Step 4 of the parser: tagged units grouped into noun phrases, verb groups and the other items of a caption."""
from __future__ import annotations

from dataclasses import dataclass, field

from paperlib.text import lexicon as lx
from paperlib.text.parse.phrases import Phrase
from paperlib.text.parse.units import _Unit


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
