"""Closed-class word lists and cached WordNet look-ups shared by the text modules.

There is no part-of-speech tagger and no stop-word corpus offline, so the text modules combine
two sources of knowledge:

* closed-class lists written here by hand (determiners, numerals, pronouns, prepositions and
  multi-word spatial relations, conjunctions, auxiliaries, a few adverbs, frame nouns such as
  "photo" or "picture"), which are small and stable in English;
* WordNet 3.0 (through :func:`paperlib.assets.load_wordnet`) for the open classes: which parts
  of speech a word can have (``morphy`` handles inflection), its lemmas and synonyms, and the
  SemCor sense-tag counts of ``index.sense`` (how often each (lemma, part of speech) was seen in
  tagged text), used as a unigram prior where a word is both a noun and a verb.

WordNet is loaded once per process (about 5 s) and every look-up is memoised.
"""
from __future__ import annotations

import re
from functools import lru_cache

__all__ = [
    "ADVERBS", "AUXILIARIES", "BE_FORMS", "COLLECTIVE_NOUNS", "COLOURS", "COLOUR_GROUPS",
    "CONJUNCTIONS", "DESCRIPTIVE_ADJECTIVES",
    "DEPICTION_VERBS", "DETERMINERS", "FRAME_NOUNS", "MODALS", "NUMBERS", "POSITION_NOUNS",
    "POSSESSIVES", "PREPOSITIONS", "PRONOUNS", "RELATIVE_PRONOUNS", "SETTING_NOUNS", "SIZES",
    "SIZE_GROUPS", "SPATIAL_GROUPS", "SPATIAL_OPPOSITES", "SPATIAL_RELATIONS", "STOP_WORDS",
    "VERB_FORMS", "article", "inflect_verb", "is_plural_noun", "lemma_counts", "noun_lemma",
    "pluralize", "pos_set", "sense_index", "verb_form", "verb_lemma", "wordnet",
]

# ---------------------------------------------------------------------------
# WordNet, loaded once
# ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def wordnet():
    """The project's WordNet (NLTK reader over ``.assets/nltk_data``), loaded once per process."""
    from paperlib.assets import load_wordnet

    return load_wordnet()


_WN_POS = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}
_SS_TYPE = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}


@lru_cache(maxsize=200_000)
def pos_set(word: str) -> frozenset:
    """Parts of speech WordNet allows for ``word`` (any inflection): a subset of {n, v, a, r}."""
    wn = wordnet()
    w = word.lower().replace(" ", "_")
    return frozenset(p for p in "nvar" if wn.morphy(w, p) is not None)


@lru_cache(maxsize=200_000)
def noun_lemma(word: str) -> str:
    """WordNet's base form of a noun ("men" -> "man"); the word itself if unknown."""
    w = word.lower().replace(" ", "_")
    base = wordnet().morphy(w, "n")
    return (base or w).replace("_", " ")


@lru_cache(maxsize=200_000)
def verb_lemma(word: str) -> str | None:
    """WordNet's base form of a verb ("held" -> "hold"), or None if ``word`` is no verb."""
    base = wordnet().morphy(word.lower(), "v")
    return base.replace("_", " ") if base else None


@lru_cache(maxsize=1)
def sense_index():
    """Parse ``index.sense`` once: {(lemma, pos): tag count} and the noun senses.

    Each line is ``lemma%ss_type:lex_filenum:lex_id:head:head_id offset sense_number tag_cnt``.
    Returns (counts, nouns, adjectives) where nouns and adjectives are lists of (lemma,
    lex_filenum, offset, tag_cnt), one per sense.
    """
    counts: dict[tuple[str, str], int] = {}
    nouns, adjectives = [], []
    with wordnet().open("index.sense") as fh:
        for line in fh:
            key, offset, _, cnt = line.split()
            lemma, rest = key.split("%", 1)
            ss_type, lexfile = rest[0], int(rest[2:4])
            pos = _SS_TYPE[ss_type]
            cnt = int(cnt)
            counts[(lemma, pos)] = counts.get((lemma, pos), 0) + cnt
            if pos == "n":
                nouns.append((lemma, lexfile, int(offset), cnt))
            elif pos == "a":
                adjectives.append((lemma, lexfile, int(offset), cnt))
    return counts, nouns, adjectives


def lemma_counts(lemma: str, pos: str) -> int:
    """SemCor tag count of (lemma, pos) summed over its senses (0 if never tagged or unknown)."""
    return sense_index()[0].get((lemma.lower().replace(" ", "_"), _WN_POS[pos]), 0)


# ---------------------------------------------------------------------------
# Closed classes
# ---------------------------------------------------------------------------
POSSESSIVES = frozenset("my your his her its our their".split())
DETERMINERS = frozenset(
    "a an the this that these those some any each every no another both either neither all "
    "many several few much more most such what which whose".split()) | POSSESSIVES
NUMBERS = frozenset(
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty hundred dozen dozens "
    "hundreds thousands".split())
PRONOUNS = frozenset(
    "i me you he him she her it we us they them someone somebody something anyone anybody "
    "anything everyone everybody everything nobody nothing myself yourself himself herself "
    "itself ourselves themselves this that these those".split())
RELATIVE_PRONOUNS = frozenset("who whom which that whose".split())
PREPOSITIONS = frozenset(
    "about above across after against along alongside amid amidst among around at atop before "
    "behind below beneath beside besides between beyond by down during except for from in "
    "inside into like near nearby of off on onto opposite out outside over past per round "
    "than through throughout till to toward towards under underneath unlike until up upon via "
    "with within without".split())
CONJUNCTIONS = frozenset(
    "and or but nor yet so while whereas as because although though if when where whilst "
    "then plus".split())
BE_FORMS = frozenset("am is are was were be been being 's 're 'm".split())
MODALS = frozenset("can could will would shall should may might must 'll 'd".split())
AUXILIARIES = BE_FORMS | MODALS | frozenset("has have had having do does did 've".split())
ADVERBS = frozenset(
    "not n't very too also just really quite rather almost here there now still even only "
    "again together away somewhat slightly extremely so".split())

#: Multi-word and single-word spatial relations, longest first when matching.  The multi-word
#: ones are merged into one token unit by the parser ("to the left of" is one relation).
SPATIAL_RELATIONS = (
    "on the left side of", "on the right side of", "on the other side of",
    "to the left of", "to the right of", "on the left of", "on the right of",
    "at the left of", "at the right of", "in the middle of", "in the center of",
    "in the centre of", "at the top of", "at the bottom of", "on the edge of",
    "on the side of", "to the side of", "at the back of", "in back of", "in front of",
    "on top of", "inside of", "outside of", "out of", "next to", "close to", "near to",
    "far from", "away from", "across from", "left of", "right of", "together with",
    "above", "below", "beneath", "under", "underneath", "over", "on", "onto", "upon", "atop",
    "in", "inside", "into", "within", "outside", "behind", "beside", "by", "near", "at",
    "against", "around", "along", "alongside", "across", "between", "among", "through",
    "with", "without", "opposite", "toward", "towards", "past", "off", "from", "before",
)
#: Relations that mean nearly the same thing: a counterfactual must leave its group.
SPATIAL_GROUPS = (
    ("to the left of", "on the left of", "left of", "at the left of", "on the left side of"),
    ("to the right of", "on the right of", "right of", "at the right of", "on the right side of"),
    ("above", "over", "at the top of"),
    ("below", "under", "underneath", "beneath", "at the bottom of"),
    ("on", "on top of", "onto", "upon", "atop"),
    ("in", "inside", "into", "within", "inside of", "in the middle of", "in the center of",
     "in the centre of"),
    ("outside", "outside of", "out of", "off"),
    ("in front of", "before"),
    ("behind", "in back of", "at the back of", "on the other side of"),
    ("next to", "beside", "by", "near", "close to", "near to", "alongside", "on the side of",
     "to the side of", "at", "with", "together with", "along"),
    ("far from", "away from", "without"),
    ("across from", "opposite", "across"),
    ("against",), ("around",), ("between", "among"), ("through",), ("toward", "towards"),
    ("past",), ("from",), ("on the edge of",),
)
#: Opposites used first when a spatial relation is replaced (CleanerCLIP: "left" -> "right").
SPATIAL_OPPOSITES = {
    "to the left of": "to the right of", "to the right of": "to the left of",
    "on the left of": "on the right of", "on the right of": "on the left of",
    "left of": "right of", "right of": "left of",
    "at the left of": "at the right of", "at the right of": "at the left of",
    "on the left side of": "on the right side of", "on the right side of": "on the left side of",
    "above": "below", "below": "above", "over": "under", "under": "over",
    "beneath": "above", "underneath": "on top of", "on": "under", "on top of": "underneath",
    "onto": "under", "upon": "under", "atop": "below",
    "in": "outside", "inside": "outside", "into": "out of", "within": "outside",
    "inside of": "outside of", "outside": "inside", "outside of": "inside of",
    "out of": "into", "off": "on",
    "in front of": "behind", "behind": "in front of", "in back of": "in front of",
    "at the back of": "in front of", "before": "behind",
    "next to": "far from", "beside": "far from", "near": "far from", "close to": "far from",
    "near to": "far from", "by": "far from", "alongside": "far from",
    "far from": "next to", "away from": "next to",
    "at the top of": "at the bottom of", "at the bottom of": "at the top of",
    "with": "without", "without": "with", "toward": "away from", "towards": "away from",
}

#: Nouns that name the picture rather than its content ("a photo of", "in this picture").
FRAME_NOUNS = frozenset(
    "photo photograph photos picture pictures pic image images shot snapshot snap illustration "
    "drawing painting sketch render rendering clipart artwork graphic icon emoji cartoon "
    "depiction portrait view close-up closeup look scene frame screenshot poster print "
    "selfie stock vector".split())
#: Nouns that name a place in the frame or the backdrop; phrases headed by them are setting.
POSITION_NOUNS = frozenset(
    "corner centre center middle top bottom left right side edge foreground background "
    "backdrop".split())
SETTING_NOUNS = FRAME_NOUNS | POSITION_NOUNS
#: Verbs whose subject is the picture or the viewer ("the image shows X", "we can see X").
DEPICTION_VERBS = frozenset(
    "see show depict feature contain display portray illustrate capture draw paint picture "
    "present find notice observe spot view sketch render".split())

# ---------------------------------------------------------------------------
# Attribute words with a kind (CleanerCLIP replaces an adjective by one of the same kind)
# ---------------------------------------------------------------------------
#: Synonymous colour spellings are grouped so a replacement never stays in the same colour.
COLOUR_GROUPS = (
    ("red", "crimson", "scarlet"), ("orange",), ("yellow", "golden"), ("green",),
    ("blue", "navy"), ("purple", "violet"), ("pink",), ("brown",), ("white",),
    ("grey", "gray", "silver"), ("black",), ("beige", "tan"), ("turquoise", "teal", "cyan"),
)
COLOURS = frozenset(w for g in COLOUR_GROUPS for w in g)
#: Size words in two groups; a size replacement goes to the other group ("small" -> "huge").
SIZE_GROUPS = (
    ("tiny", "small", "little", "miniature", "short", "mini"),
    ("big", "large", "huge", "giant", "enormous", "tall", "massive"),
)
SIZES = frozenset(w for g in SIZE_GROUPS for w in g)

#: Everyday descriptive adjectives: a WordNet compound starting with one of them is still read
#: as adjective + noun ("old man", "hot dog"), so that the adjective can be replaced.
DESCRIPTIVE_ADJECTIVES = COLOURS | SIZES | frozenset(
    "old young new hot cold warm cool good bad nice beautiful pretty ugly cute happy sad wet dry "
    "long short dark light bright empty full open closed clean dirty fresh round square flat "
    "high low heavy thin thick fat wild strong soft hard sweet sour".split())
#: Nouns that quantify: "a herd of elephants" is read with "elephants" as head and "a herd of"
#: as determiner.
COLLECTIVE_NOUNS = frozenset(
    "group groups herd flock pair couple bunch crowd team pack set row line pile stack lot lots "
    "number collection variety swarm school bundle handful couple cluster series assortment "
    "kind sort type".split())

# ---------------------------------------------------------------------------
# Stop-words for EDA (closed-class words, never replaced by synonyms)
# ---------------------------------------------------------------------------
STOP_WORDS = frozenset(
    DETERMINERS | PRONOUNS | RELATIVE_PRONOUNS | PREPOSITIONS | CONJUNCTIONS | AUXILIARIES
    | ADVERBS | frozenset(
        "mine yours hers ours theirs own same other than too s t don should now ll re ve d m o y "
        "there here why how what where when whom am doing having".split()))

# ---------------------------------------------------------------------------
# Verbs: forms of the curated action verbs (CleanerCLIP's relation vocabulary)
# ---------------------------------------------------------------------------
#: base -> (third person singular, present participle, past participle), written out in full so
#: that no inflection rule is needed for the replacement vocabulary.
VERB_FORMS: dict[str, tuple[str, str, str]] = {
    "hold": ("holds", "holding", "held"), "carry": ("carries", "carrying", "carried"),
    "ride": ("rides", "riding", "ridden"), "eat": ("eats", "eating", "eaten"),
    "drink": ("drinks", "drinking", "drunk"), "play": ("plays", "playing", "played"),
    "throw": ("throws", "throwing", "thrown"), "catch": ("catches", "catching", "caught"),
    "kick": ("kicks", "kicking", "kicked"), "push": ("pushes", "pushing", "pushed"),
    "pull": ("pulls", "pulling", "pulled"), "watch": ("watches", "watching", "watched"),
    "chase": ("chases", "chasing", "chased"), "touch": ("touches", "touching", "touched"),
    "wear": ("wears", "wearing", "worn"), "sit": ("sits", "sitting", "sat"),
    "stand": ("stands", "standing", "stood"), "lie": ("lies", "lying", "lain"),
    "lean": ("leans", "leaning", "leaned"), "hang": ("hangs", "hanging", "hung"),
    "walk": ("walks", "walking", "walked"), "run": ("runs", "running", "run"),
    "jump": ("jumps", "jumping", "jumped"), "climb": ("climbs", "climbing", "climbed"),
    "fly": ("flies", "flying", "flown"), "swim": ("swims", "swimming", "swum"),
    "drive": ("drives", "driving", "driven"), "cut": ("cuts", "cutting", "cut"),
    "cook": ("cooks", "cooking", "cooked"), "wash": ("washes", "washing", "washed"),
    "paint": ("paints", "painting", "painted"), "read": ("reads", "reading", "read"),
    "open": ("opens", "opening", "opened"), "close": ("closes", "closing", "closed"),
    "cover": ("covers", "covering", "covered"), "fill": ("fills", "filling", "filled"),
    "hit": ("hits", "hitting", "hit"), "hug": ("hugs", "hugging", "hugged"),
    "feed": ("feeds", "feeding", "fed"), "bite": ("bites", "biting", "bitten"),
    "lick": ("licks", "licking", "licked"), "smell": ("smells", "smelling", "smelled"),
    "follow": ("follows", "following", "followed"), "face": ("faces", "facing", "faced"),
    "grab": ("grabs", "grabbing", "grabbed"), "drop": ("drops", "dropping", "dropped"),
    "lift": ("lifts", "lifting", "lifted"), "break": ("breaks", "breaking", "broken"),
    "fix": ("fixes", "fixing", "fixed"), "build": ("builds", "building", "built"),
    "use": ("uses", "using", "used"), "sell": ("sells", "selling", "sold"),
    "buy": ("buys", "buying", "bought"), "pick": ("picks", "picking", "picked"),
    "wave": ("waves", "waving", "waved"), "point": ("points", "pointing", "pointed"),
    "sniff": ("sniffs", "sniffing", "sniffed"), "guard": ("guards", "guarding", "guarded"),
    "attack": ("attacks", "attacking", "attacked"), "kiss": ("kisses", "kissing", "kissed"),
    "photograph": ("photographs", "photographing", "photographed"),
    "sleep": ("sleeps", "sleeping", "slept"), "rest": ("rests", "resting", "rested"),
    "float": ("floats", "floating", "floated"), "hide": ("hides", "hiding", "hidden"),
    "balance": ("balances", "balancing", "balanced"), "spin": ("spins", "spinning", "spun"),
    "dig": ("digs", "digging", "dug"), "blow": ("blows", "blowing", "blown"),
    "stack": ("stacks", "stacking", "stacked"), "chew": ("chews", "chewing", "chewed"),
}
_FORM_INDEX = {"s": 0, "ing": 1, "past": 2}


def verb_form(word: str) -> str | None:
    """Which form a verb token has: 'ing', 's' (3rd person), 'past', 'base', or None (no verb)."""
    w = word.lower()
    base = verb_lemma(w)
    if base is None:
        return None
    if base == w:
        return "base"
    if w.endswith("ing"):
        return "ing"
    if w.endswith("s") and (w in (base + "s", base + "es") or w == base[:-1] + "ies"):
        return "s"
    return "past"


def inflect_verb(base: str, form: str) -> str:
    """``base`` in ``form`` ('base', 's', 'ing', 'past'); curated table first, rules otherwise."""
    if form == "base":
        return base
    if base in VERB_FORMS:
        return VERB_FORMS[base][_FORM_INDEX[form]]
    if form == "s":
        if re.search(r"(s|sh|ch|x|z|o)$", base):
            return base + "es"
        return base[:-1] + "ies" if re.search(r"[^aeiou]y$", base) else base + "s"
    stem = base[:-1] if base.endswith("e") and not base.endswith(("ee", "ye", "oe")) else base
    return stem + ("ing" if form == "ing" else ("d" if base.endswith("e") else "ed"))


# ---------------------------------------------------------------------------
# Nouns: number and articles
# ---------------------------------------------------------------------------
_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "person": "people", "child": "children", "foot": "feet",
    "tooth": "teeth", "mouse": "mice", "goose": "geese", "ox": "oxen", "sheep": "sheep",
    "fish": "fish", "deer": "deer", "knife": "knives", "leaf": "leaves", "wolf": "wolves",
    "shelf": "shelves", "loaf": "loaves", "calf": "calves", "half": "halves", "life": "lives",
    "wife": "wives", "scarf": "scarves", "cactus": "cacti", "series": "series",
}


def is_plural_noun(phrase: str) -> bool:
    """True for a plural head noun ("men", "tennis balls"), judged on its last word."""
    last = phrase.lower().split()[-1]
    if last in _IRREGULAR_PLURALS.values() and last not in _IRREGULAR_PLURALS:
        return True
    if last.endswith(("ss", "us", "is")) or not last.endswith("s"):
        return False
    base = noun_lemma(last)
    return base != last


def pluralize(phrase: str) -> str:
    """Plural of a (possibly multi-word) noun phrase, by its last word."""
    words = phrase.split()
    last = words[-1]
    if last in _IRREGULAR_PLURALS:
        plural = _IRREGULAR_PLURALS[last]
    elif re.search(r"(s|sh|ch|x|z)$", last):
        plural = last + "es"
    elif re.search(r"[^aeiou]y$", last):
        plural = last[:-1] + "ies"
    else:
        plural = last + "s"
    return " ".join(words[:-1] + [plural])


def article(next_word: str) -> str:
    """'a' or 'an' before ``next_word`` (by its first letter, with a few spoken exceptions)."""
    w = next_word.lower()
    if re.match(r"(uni|use|usu|uti|eu|one|once|ewe)", w):
        return "a"
    if re.match(r"(hour|honest|honou?r|heir|x-|x\b|mri|fbi|[fhlmnrsx]\b)", w):
        return "an"
    return "an" if w[:1] in "aeiou" else "a"
