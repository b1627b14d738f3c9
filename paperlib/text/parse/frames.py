"""Step 5 of the parser: the words about the picture ("a photo of", "we can see") removed, setting nouns recognised."""
from __future__ import annotations

from paperlib.text import lexicon as lx
from paperlib.text.parse.items import _Item


_VIEWERS = frozenset("i you we someone somebody".split())


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
