"""Text modules: EDA (CleanCLIP / ABD), the caption parser, CleanerCLIP's sub-captions.

WordNet is loaded once for the whole module (about 5 s); everything else is look-ups.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest


@pytest.fixture(scope="module")
def vocab(wn):
    from paperlib.text.subcaptions import ReplacementVocab

    return ReplacementVocab.from_wordnet(size=3000, seed=0)


def _is_subsequence(short, long) -> bool:
    it = iter(long)
    return all(any(w == x for x in it) for w in short)


# ---------------------------------------------------------------------------
# EDA
# ---------------------------------------------------------------------------
TEN = "a small banana sits beside a red bicycle near home"   # 10 words after cleaning


def test_eda_change_count_rule():
    from paperlib.text.eda import clean_sentence, n_changes

    assert len(clean_sentence(TEN)) == 10
    # EDA's rule: max(1, floor(alpha * n_words)); alpha = 0.1 -> 1 change on 10 words.
    assert n_changes(0.1, 10) == 1
    assert n_changes(0.1, 3) == 1
    assert n_changes(0.1, 19) == 1
    assert n_changes(0.1, 25) == 2
    assert clean_sentence("A dog's X-ray, in 3D!") == ["a", "dog", "s", "x", "ray", "in", "d"]


def test_synonyms_are_wordnet_lemmas(wn):
    from paperlib.text.eda import synonyms

    assert "large" in synonyms("big")
    assert "bike" in synonyms("bicycle")
    assert "big" not in synonyms("big")
    assert synonyms("the") == ()
    # every synonym is a lemma of some synset of the word
    lemmas = {name.replace("_", " ").replace("-", " ").lower()
              for s in wn.synsets("big") for name in s.lemma_names()}
    assert set(synonyms("big")) <= lemmas


def test_synonym_replacement_changes_at_most_n_word_types(wn):
    """sr with alpha 0.1 on 10 words: one word type (all its occurrences) becomes a synonym."""
    from paperlib.text.eda import clean_sentence, n_changes, synonym_replacement, synonyms
    from paperlib.text.lexicon import STOP_WORDS

    words = clean_sentence(TEN + " with a small bell")
    n = n_changes(0.1, len(words))
    assert n == 1
    changed_any = 0
    for seed in range(40):
        out = synonym_replacement(words, n, np.random.default_rng(seed))
        assert len(out) == len(words)
        diff = [(a, b) for a, b in zip(words, out) if a != b]
        types = {a for a, _ in diff}
        assert len(types) <= n
        for a, b in diff:
            assert a not in STOP_WORDS and b in synonyms(a)
        if types:  # all occurrences of the chosen word are replaced, by the same synonym
            (word,) = types
            assert len({b for _, b in diff}) == 1 and len(diff) == words.count(word)
        changed_any += bool(diff)
    assert changed_any == 40


def test_synonym_replacement_big_to_large(wn):
    from paperlib.text.eda import eda

    outs = {eda("big dog", np.random.default_rng(s), op="sr") for s in range(60)}
    assert any(o.split()[0] == "large" and o.endswith("dog") for o in outs)


def test_random_insertion_inserts_n_synonyms(wn):
    from paperlib.text.eda import clean_sentence, random_insertion, synonyms

    words = clean_sentence(TEN)
    for seed in range(30):
        out = random_insertion(words, 1, np.random.default_rng(seed))
        assert len(out) == len(words) + 1
        assert _is_subsequence(words, out)
        inserted = [w for i, w in enumerate(out) if out[:i] + out[i + 1:] == words]
        assert inserted and any(inserted[0] in synonyms(w) for w in words)


def test_random_swap_swaps_at_most_n_pairs():
    from paperlib.text.eda import clean_sentence, random_swap

    words = clean_sentence(TEN)
    for seed in range(30):
        out = random_swap(words, 1, np.random.default_rng(seed))
        assert sorted(out) == sorted(words)
        assert sum(a != b for a, b in zip(words, out)) <= 2


def test_random_deletion_rate_and_never_empty():
    from paperlib.text.eda import clean_sentence, random_deletion

    words = clean_sentence(TEN)
    rng = np.random.default_rng(0)
    deleted = []
    for _ in range(3000):
        out = random_deletion(words, 0.1, rng)
        assert out and _is_subsequence(out, words)
        deleted.append(1 - len(out) / len(words))
    assert abs(np.mean(deleted) - 0.1) < 0.01
    assert random_deletion(["dog"], 0.9, rng) == ["dog"]
    assert len(random_deletion(words, 1.0, rng)) == 1


def test_eda_applies_the_chosen_operation(wn):
    from paperlib.text.eda import clean_sentence, eda, random_deletion, random_swap

    words = clean_sentence(TEN)
    for seed in range(10):
        assert eda(TEN, np.random.default_rng(seed), op="rs") == " ".join(
            random_swap(words, 1, np.random.default_rng(seed)))
        assert eda(TEN, np.random.default_rng(seed), op="rd") == " ".join(
            random_deletion(words, 0.1, np.random.default_rng(seed)))
    with pytest.raises(ValueError):
        eda(TEN, np.random.default_rng(0), op="xx")
    # all rates zero: the cleaned sentence
    assert eda("A Dog!", np.random.default_rng(0), 0, 0, 0, 0) == "a dog"


def test_eda_is_resampled_and_deterministic_for_a_seed(wn):
    from paperlib.text.eda import eda

    rng = np.random.default_rng(1)
    outs = [eda(TEN, rng) for _ in range(30)]
    assert len(set(outs)) >= 10                       # a fresh augmentation every call
    again = np.random.default_rng(1)
    assert outs == [eda(TEN, again) for _ in range(30)]
    other = np.random.default_rng(2)
    assert outs != [eda(TEN, other) for _ in range(30)]
    ops_seen = Counter()
    rng = np.random.default_rng(3)
    words = TEN.split()
    for _ in range(400):
        out = eda(TEN, rng).split()
        ops_seen["rd" if len(out) < len(words) else "ri" if len(out) > len(words)
                 else "same-length"] += 1
    # one operation drawn uniformly: rd ~1/4 (minus the no-deletion draws), ri >= 1/4
    assert ops_seen["ri"] > 60 and ops_seen["rd"] > 40 and ops_seen["same-length"] > 120


def test_eda_augmenter_batch_and_transform(wn):
    import torch

    from paperlib.text.eda import EDAAugmenter

    caps = [TEN, "two men are playing guitar on the street", "a photo of a banana."]
    aug = EDAAugmenter(tokenizer=lambda texts: torch.tensor([[len(t.split())] for t in texts]))
    out = aug(caps, np.random.default_rng(0))
    assert len(out) == 3 and all(isinstance(o, str) and o for o in out)
    assert aug(caps, np.random.default_rng(0)) == out
    tf = aug.batch_transform()
    b1 = tf({"captions": caps}, 0, torch.Generator().manual_seed(7))
    b2 = tf({"captions": caps}, 0, torch.Generator().manual_seed(7))
    assert torch.equal(b1["aug_tokens"], b2["aug_tokens"]) and b1["aug_tokens"].shape == (3, 1)
    with pytest.raises(ValueError):
        EDAAugmenter().tokens(caps, np.random.default_rng(0))


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------
PARSES = [
    # caption, subject head, relation, object head
    ("a small banana to the left of a red bicycle", "banana", "to the left of", "bicycle"),
    ("a small banana to the left of a red bicycle on a striped background",
     "banana", "to the left of", "bicycle"),
    ("There is a dog in the picture.", "dog", None, None),
    ("two men are playing guitar on the street", "men", "playing", "guitar"),
    ("A woman in a blue dress holding an umbrella", "woman", "holding", "umbrella"),
    ("a photo of a banana.", "banana", None, None),
    ("the cat sits on the old wooden table", "cat", "sits on", "table"),
    ("In this picture, a big blue x-ray to the right of a small grey telescope.",
     "x-ray", "to the right of", "telescope"),
    ("banana", "banana", None, None),
    ("dogs", "dogs", None, None),
    ("a man eating ice cream next to a tennis ball", "man", "eating", "ice cream"),
    ("the image shows a dog.", "dog", None, None),
    ("We can see a cat to the left of a dog on a blue backdrop.", "cat", "to the left of", "dog"),
    ("Someone drew a tiny green apple on a dotted background.", "apple", None, None),
    ("A close look at a large orange fish in the top left corner.", "fish", None, None),
    ("a red car parked on the street", "car", "parked on", "street"),
    ("A giraffe standing next to a tree.", "giraffe", "standing next to", "tree"),
    ("a herd of elephants walking across a river", "elephants", "walking across", "river"),
    ("she is riding a horse", "she", "riding", "horse"),
    ("a man who is holding an umbrella", "man", "holding", "umbrella"),
    ("a cup of coffee on a wooden table", "cup", "on", "table"),
    ("A black and white photo of a cat", "cat", None, None),
    ("close up of a red rose", "rose", None, None),
    ("Two dogs play in the snow", "dogs", "play in", "snow"),
    ("a dog running in the background", "dog", None, None),
    ("A man rides a horse.", "man", "rides", "horse"),
    ("a black cat sitting inside a white sink", "cat", "sitting inside", "sink"),
    ("a kitchen with a stove and a refrigerator", "kitchen", "with", "stove"),
    ("apple trees in a garden", "apple trees", "in", "garden"),
    ("a cat above a dog, with a banana at the bottom", "cat", "above", "dog"),
    ("a banana and a cat to the left of a dog", "cat", "to the left of", "dog"),
    ("happy family having breakfast", "family", "having", "breakfast"),
    ("A swimming pool next to a house", "swimming pool", "next to", "house"),
]


@pytest.mark.parametrize("caption,subject,relation,obj", PARSES)
def test_parser_subject_relation_object(wn, caption, subject, relation, obj):
    from paperlib.text.parse import parse_caption

    p = parse_caption(caption)
    assert (p.subject.head, p.relation, p.object.head if p.object else None) == (subject, relation, obj)
    start, end = p.subject.span
    assert subject.split()[-1] in " ".join(p.tokens[start:end]).lower()


def test_parser_adjectives_determiners_and_extras(wn):
    from paperlib.text.parse import parse_caption

    p = parse_caption("In this picture, a big blue x-ray to the right of a small grey telescope.")
    assert (p.subject.det, p.subject.adjectives) == ("a", ["big", "blue"])
    assert (p.object.det, p.object.adjectives) == ("a", ["small", "grey"])
    p = parse_caption("the cat sits on the old wooden table")
    assert p.object.adjectives == ["old", "wooden"] and p.object.det == "the"
    p = parse_caption("two men are playing guitar on the street")
    assert p.subject.det == "two" and [(x.prep, x.head) for x in p.extra] == [("on", "street")]
    p = parse_caption("A woman in a blue dress holding an umbrella")
    assert [(x.prep, x.adjectives, x.head) for x in p.extra] == [("in", ["blue"], "dress")]
    p = parse_caption("a small banana to the left of a red bicycle on a striped background")
    assert [(x.prep, x.adjectives, x.head) for x in p.extra] == [("on", ["striped"], "background")]
    assert p.tokens[p.relation_span[0]:p.relation_span[1]] == ["to", "the", "left", "of"]
    assert p.core_text(adjectives=False) == "a banana to the left of a bicycle"
    with pytest.raises(ValueError):
        parse_caption(" ... ")


def test_parser_on_the_embedded_grammar(wn):
    """Captions of paperlib.data.captions: the heads are the objects, the relation is the one
    the grammar computed between them (multi-word class names passed as ``nouns``)."""
    from paperlib.data.captions import SceneObject, caption_scene, relation
    from paperlib.text.parse import parse_caption

    names = ["banana", "bicycle", "umbrella", "x-ray", "telescope", "ice cream", "tennis ball",
             "tape measure", "aerial tramway", "ball of yarn", "bow and arrow", "cat", "dog"]
    colours = ["red", "blue", "grey", "yellow", "white"]
    sizes = ["tiny", "small", "", "large", "big"]
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(150):
        k = int(rng.integers(1, 4))
        picked = rng.choice(len(names), size=k, replace=False)
        objects = []
        for n, idx in enumerate(picked):
            x, y = rng.integers(0, 48, size=2)
            objects.append(SceneObject(names[idx], colours[rng.integers(5)], sizes[rng.integers(5)],
                                       (int(x), int(y), int(x) + 16, int(y) + 16), n))
        by_name = {o.name: o for o in objects}
        for register in ("plain", "descriptive"):
            text = caption_scene(objects, "striped", 64, rng, register)
            p = parse_caption(text, nouns=names)
            assert p.subject.head in by_name, text
            if k == 1:
                assert p.relation is None, text
                continue
            assert p.object is not None and p.object.head in by_name, text
            assert p.relation == relation(by_name[p.subject.head], by_name[p.object.head]), text
            checked += 1
    assert checked > 150


# Ordinary English (issue 25): contractions, "than" / "until", a modal before "be" / "have".
ENGLISH_PARSES = [
    # caption, subject head, relation, object head
    ("the dog don't like the cat", "dog", "like", "cat"),
    ("the dog doesn't like the cat", "dog", "like", "cat"),
    ("a man isn't riding a horse", "man", "riding", "horse"),
    ("the kids aren't playing in the garden", "kids", "playing in", "garden"),
    ("the dog isn't on the sofa", "dog", "on", "sofa"),
    ("there isn't a cat on the mat", "cat", "on", "mat"),
    ("a man can't ride a horse", "man", "ride", "horse"),
    ("he cannot ride a horse", "he", "ride", "horse"),
    ("the boy won't eat the apple", "boy", "eat", "apple"),
    ("a man who won't ride a horse", "man", "ride", "horse"),
    ("the dog hasn't eaten the food", "dog", "eaten", "food"),
    ("a dog that doesn't bark", "dog", None, None),
    ("I can't see the dog", "dog", None, None),             # "we can see X": X is the scene
    ("it's a red car near the house", "car", "near", "house"),
    ("he's riding a bike", "he", "riding", "bike"),
    ("they're playing football in the park", "they", "playing", "football"),
    ("they've eaten the cake", "they", "eaten", "cake"),
    ("I'm holding a cup", "i", "holding", "cup"),
    ("she'd like a cup of tea", "she", "like", "cup"),
    ("she'd been running in the park", "she", "running in", "park"),
    ("let's play football", "us", "play", "football"),
    ("the dog don’t like the cat", "dog", "like", "cat"),     # typographic apostrophe
    ("he'll be ruling the country", "he", "ruling", "country"),
    ("the dog will be running in the park", "dog", "running in", "park"),
    ("a cat could have eaten the fish", "cat", "eaten", "fish"),
    ("a cat could've eaten the fish", "cat", "eaten", "fish"),
    ("a man shouldn't be riding a horse", "man", "riding", "horse"),
    ("the cat may be sleeping on a bed", "cat", "sleeping on", "bed"),
    ("a dog has been sleeping on the sofa", "dog", "sleeping on", "sofa"),
    ("a girl taller than her brother", "girl", None, None),
    ("the shop stays open until night", "shop", None, None),
    ("the sky is blue above the trees", "sky", "above", "trees"),
    ("a sign saying 'stop' near a road", "sign", "saying", "stop"),
]
#: What a contraction split badly leaves behind; none of it is ever a noun, attribute or relation.
FRAGMENTS = {"don", "doesn", "didn", "isn", "aren", "wasn", "weren", "won", "wouldn", "couldn",
             "shouldn", "hasn", "haven", "hadn", "ca", "wo", "t", "s", "ll", "re", "ve", "d", "m",
             "n't", "not"}


def _slot_words(p) -> list[str]:
    """Every word of a parse's heads, attributes and relation (subject, object and extras)."""
    phrases = [p.subject] + ([p.object] if p.object else []) + list(p.extra)
    texts = [ph.head for ph in phrases] + [a for ph in phrases for a in ph.adjectives]
    return " ".join(texts + [p.relation or ""]).split()


@pytest.mark.parametrize("caption,subject,relation,obj", ENGLISH_PARSES)
def test_parser_on_ordinary_english(wn, caption, subject, relation, obj):
    from paperlib.text.lexicon import AUXILIARIES
    from paperlib.text.parse import parse_caption

    p = parse_caption(caption)
    got = (p.subject.head, p.relation, p.object.head if p.object else None)
    assert got == (subject, relation, obj)
    words = _slot_words(p)
    assert not [w for w in words if "'" in w or "’" in w or w in FRAGMENTS], words
    # a modal or auxiliary is part of the verb group, never a noun, attribute or relation
    assert not set(words) & (AUXILIARIES | {"do", "does", "did", "let"}), words


def test_parser_contractions_keep_their_phrases(wn):
    from paperlib.text.parse import parse_caption

    p = parse_caption("it's a red car near the house")
    assert (p.subject.det, p.subject.adjectives, p.extra) == ("a", ["red"], [])
    p = parse_caption("the dog don't like the cat")
    assert (p.subject.text(), p.object.text(), p.extra) == ("the dog", "the cat", [])
    assert p.tokens == ["the", "dog", "do", "n't", "like", "the", "cat"]
    p = parse_caption("a man isn't riding a horse")
    assert p.core_text() == "a man riding a horse" and p.extra == []
    p = parse_caption("he'll be ruling the country")
    assert (p.subject.span, p.object.text(), p.extra) == ((0, 1), "the country", [])
    assert p.tokens[p.relation_span[0]:p.relation_span[1]] == ["'ll", "be", "ruling"]
    p = parse_caption("a cat could have eaten the fish")
    assert (p.subject.text(), p.relation_span) == ("a cat", (2, 5))


def test_parser_than_and_until_are_prepositions(wn):
    from paperlib.text.lexicon import PREPOSITIONS
    from paperlib.text.parse import parse_caption

    assert {"than", "until"} <= PREPOSITIONS
    p = parse_caption("a girl taller than her brother")
    assert (p.subject.det, p.subject.adjectives) == ("a", [])
    assert [(x.prep, x.det, x.head) for x in p.extra] == [(None, None, "taller"),
                                                          ("than", "her", "brother")]
    p = parse_caption("the shop stays open until night")
    assert [(x.prep, x.head) for x in p.extra] == [("stays", "open"), ("until", "night")]
    # temporal, not a relation between two things in the picture
    assert parse_caption("a man sleeping on a bench until noon").relation == "sleeping on"


def test_tokenize_splits_contractions():
    from paperlib.text.parse import tokenize

    assert tokenize("don't isn't can't won't cannot") == [
        "do", "n't", "is", "n't", "ca", "n't", "wo", "n't", "can", "not"]
    assert tokenize("It's he'll they're we've I'm she'd let's") == [
        "It", "'s", "he", "'ll", "they", "'re", "we", "'ve", "I", "'m", "she", "'d", "let", "'s"]
    assert tokenize("a jack-o'-lantern, the dog’s bone") == [
        "a", "jack-o'-lantern", ",", "the", "dog", "'s", "bone"]
    assert tokenize("a sign saying 'stop'") == ["a", "sign", "saying", "'", "stop", "'"]


def test_canonical_words_resolve_contractions():
    from paperlib.text.tokens import canonical_words, tokenize

    def read(text):
        return canonical_words(tokenize(text))

    assert read("Don't, can't, won't, ain't") == [
        "do", "not", ",", "can", "not", ",", "will", "not", ",", "is", "not"]
    assert read("he'll they're I'm we've") == ["he", "will", "they", "are", "i", "am", "we", "have"]
    assert read("she'd like, she'd been") == ["she", "would", "like", ",", "she", "had", "been"]
    assert read("let's go, it's red, a man's hat") == [
        "let", "us", "go", ",", "it", "'s", "red", ",", "a", "man", "'s", "hat"]
    assert read("a ca b wo") == ["a", "ca", "b", "wo"]        # stems only before "n't"


# ---------------------------------------------------------------------------
# Sub-captions
# ---------------------------------------------------------------------------
WITH_RELATION = [
    "a small banana to the left of a red bicycle on a striped background",
    "In this picture, a big blue x-ray to the right of a small grey telescope.",
    "the cat sits on the old wooden table",
    "two men are playing guitar on the street",
    "A woman in a blue dress holding an umbrella",
    "a black cat sitting inside a white sink",
    "A little girl climbing into a wooden playhouse.",
]


def test_positive_subcaption_keeps_core_and_drops_adjectives(wn):
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import positive_subcaption

    for caption in WITH_RELATION:
        p = parse_caption(caption)
        pos = positive_subcaption(p, np.random.default_rng(0))
        q = parse_caption(pos)
        assert (q.subject.head, q.relation, q.object.head) == (p.subject.head, p.relation, p.object.head), pos
        adjectives = set(p.subject.adjectives + p.object.adjectives)
        assert not adjectives & set(pos.split()), pos
    p = parse_caption("a small banana to the left of a red bicycle on a striped background")
    assert positive_subcaption(p) == "a banana to the left of a bicycle"
    p = parse_caption("In this picture, a big blue x-ray to the right of a small grey telescope.")
    assert positive_subcaption(p) == "an x-ray to the right of a telescope"
    # too simple a caption: only the key word (CleanerCLIP: "a picture of an apple" -> "apple")
    assert positive_subcaption(parse_caption("a picture of an apple")) == "apple"
    assert positive_subcaption(parse_caption("There is a dog in the picture.")) == "dog"
    # simplifying instead of dropping: at most one adjective per phrase
    p = parse_caption("a big blue x-ray to the right of a small grey telescope")
    kept = positive_subcaption(p, np.random.default_rng(0), p_keep_adjective=1.0).split()
    assert sum(w in {"big", "blue"} for w in kept) == 1 and sum(w in {"small", "grey"} for w in kept) == 1


def _diff(before: dict, after: dict) -> list[str]:
    return [k for k in before if before[k] != after[k]]


def test_negative_subcaption_changes_exactly_one_slot_of_the_stated_kind(wn, vocab):
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import counterfactual, negative_subcaption

    expected_slots = {"adjective": {"subject_adjectives", "object_adjectives"},
                      "relation": {"relation"}, "noun": {"subject", "object"}}
    kinds = Counter()
    for caption in WITH_RELATION + ["a photo of a red banana.", "banana", "she is riding a horse"]:
        p = parse_caption(caption)
        for seed in range(15):
            cf = counterfactual(p, np.random.default_rng(seed), vocab)
            changed = _diff(p.slots(), cf.parsed.slots())
            assert len(changed) == 1 and changed[0] in expected_slots[cf.kind], (caption, cf)
            if cf.kind == "adjective":
                a, b = p.slots()[changed[0]], cf.parsed.slots()[changed[0]]
                assert len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1
                assert cf.old in a and cf.new in b
            assert cf.old != cf.new
            assert cf.text == cf.parsed.core_text()
            assert cf.text != p.core_text()
            assert negative_subcaption(p, np.random.default_rng(seed), vocab) == cf.text
            kinds[cf.kind] += 1
    assert set(kinds) == {"adjective", "relation", "noun"}


def test_negative_kind_is_uniform_over_applicable_kinds(wn, vocab):
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import counterfactual

    rng = np.random.default_rng(0)
    p = parse_caption("a small banana to the left of a red bicycle")
    kinds = Counter(counterfactual(p, rng, vocab).kind for _ in range(300))
    assert all(80 <= kinds[k] <= 120 for k in ("adjective", "relation", "noun")), kinds
    p = parse_caption("a cat above a dog")                      # no adjective
    assert {counterfactual(p, rng, vocab).kind for _ in range(60)} == {"relation", "noun"}
    p = parse_caption("a photo of a dog")                        # no relation, no adjective
    assert {counterfactual(p, rng, vocab).kind for _ in range(20)} == {"noun"}
    with pytest.raises(ValueError):
        counterfactual(p, rng, vocab, kind="relation")


def test_adjective_replacement_keeps_the_kind(wn, vocab):
    from paperlib.text.lexicon import COLOUR_GROUPS, SIZE_GROUPS
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import counterfactual

    group = {w: g for g in COLOUR_GROUPS + SIZE_GROUPS for w in g}
    rng = np.random.default_rng(0)
    for _ in range(40):
        cf = counterfactual(parse_caption("a small banana to the left of a red bicycle"), rng, vocab,
                            kind="adjective")
        assert cf.new in group and group[cf.new] is not group[cf.old]
        assert (cf.old == "small") == any(cf.new in g for g in SIZE_GROUPS)
        if cf.old == "small":
            assert cf.new in SIZE_GROUPS[1]                       # the other size group
    news = {counterfactual(parse_caption("an old man"), rng, vocab, kind="adjective").new
            for _ in range(20)}
    assert news <= {"young", "new"} and news                      # WordNet antonyms
    cf = counterfactual(parse_caption("a wooden table"), rng, vocab, kind="adjective")
    assert cf.new in vocab.adjectives and cf.new != "wooden"
    from paperlib.text.lexicon import article
    assert cf.text.split()[0] == article(cf.new)


def test_relation_replacement(wn, vocab):
    from paperlib.text.lexicon import SPATIAL_GROUPS, verb_form
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import counterfactual

    rng = np.random.default_rng(0)
    for text, opposite in [("a banana to the left of a bicycle", "to the right of"),
                           ("a cat above a dog", "below"), ("a cup on a table", "under"),
                           ("a dog in front of a car", "behind")]:
        cf = counterfactual(parse_caption(text), rng, vocab, p_opposite=1.0, kind="relation")
        assert cf.new == opposite
        for _ in range(10):
            cf = counterfactual(parse_caption(text), rng, vocab, p_opposite=0.0, kind="relation")
            own = next(g for g in SPATIAL_GROUPS if cf.old in g)
            assert cf.new in vocab.spatial and cf.new not in own
    wn_ = __import__("paperlib.text.lexicon", fromlist=["wordnet"]).wordnet()
    for _ in range(20):
        cf = counterfactual(parse_caption("A woman holding an umbrella"), rng, vocab, kind="relation")
        assert verb_form(cf.new) == "ing" and cf.new != "holding"
        assert not set(wn_.synsets("hold", "v")) & set(wn_.synsets(wn_.morphy(cf.new, "v"), "v"))
    news = {counterfactual(parse_caption("the cat sits on the table"), rng, vocab, kind="relation").new
            for _ in range(30)}
    assert any(n.startswith("sits ") for n in news) and any(n.endswith(" on") for n in news)
    assert all(n.split()[0] == "sits" or verb_form(n.split()[0]) == "s" for n in news)


def test_noun_replacement_is_not_a_synonym_or_hypernym(wn, vocab):
    from paperlib.text.lexicon import is_plural_noun
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import counterfactual, is_related_noun

    assert is_related_noun("dog", "domestic dog") and is_related_noun("dog", "canine")
    assert is_related_noun("dogs", "animal") and is_related_noun("animal", "dog")
    assert not is_related_noun("dog", "bicycle")
    rng = np.random.default_rng(0)
    for text in ["a small banana to the left of a red bicycle", "a dog", "the cat sits on the table"]:
        p = parse_caption(text)
        for _ in range(25):
            cf = counterfactual(p, rng, vocab, kind="noun")
            assert cf.new in vocab.nouns and not is_related_noun(cf.new, cf.old)
            old = set(wn.synsets(cf.old.replace(" ", "_"), "n"))
            new = set(wn.synsets(cf.new.replace(" ", "_"), "n"))
            hypernyms = {h for s in old for h in s.closure(lambda x: x.hypernyms())}
            assert not old & new and not new & hypernyms
    p = parse_caption("two men are playing guitar")
    for _ in range(10):
        cf = counterfactual(p, rng, vocab, kind="noun")
        if cf.slot == "subject":
            assert is_plural_noun(cf.new) or cf.new.endswith("s")


def test_replacement_vocab_from_wordnet(wn, vocab):
    from paperlib.text.subcaptions import ReplacementVocab

    assert len(vocab.nouns) == len(vocab.adjectives) == 3000
    assert "to the left of" in vocab.relations and "hold" in vocab.relations
    assert len(set(vocab.nouns)) == 3000
    physical = wn.synset("physical_entity.n.01")
    rng = np.random.default_rng(0)
    for noun in rng.choice(vocab.nouns, 100):
        assert noun == noun.lower() and len(noun.split()) <= 2
        synsets = wn.synsets(noun.replace(" ", "_"), "n")
        assert any(physical in s.closure(lambda x: x.hypernyms()) for s in synsets), noun
        assert any(noun.replace(" ", "_") in s.lemma_names() for s in synsets)   # not only "Noun"
    for adj in rng.choice(vocab.adjectives, 100):
        assert wn.synsets(adj, "a") and adj.isalpha()
    small = ReplacementVocab.from_wordnet(size=200, seed=0)
    assert len(small.nouns) == 200
    assert small == ReplacementVocab.from_wordnet(size=200, seed=0)
    assert small.nouns != ReplacementVocab.from_wordnet(size=200, seed=1).nouns
    with pytest.raises(ValueError):
        ReplacementVocab.from_wordnet(size=0)


def test_subcaption_generator_batch(wn, vocab):
    from paperlib.text.subcaptions import SubcaptionGenerator

    gen = SubcaptionGenerator(vocab, nouns=["tennis ball"])
    caps = WITH_RELATION[:3] + ["a tennis ball"]
    pos1, neg1 = gen(caps, np.random.default_rng(0))
    pos2, neg2 = gen(caps, np.random.default_rng(0))
    assert (pos1, neg1) == (pos2, neg2) and len(pos1) == len(neg1) == 4
    assert pos1[-1] == "tennis ball"
    _, neg3 = gen(caps, np.random.default_rng(1))
    assert neg3 != neg1


# ---------------------------------------------------------------------------
# CleanerCLIP Sec. 3.2: one-slot negatives, training-caption vocabulary (issue 23, item 3)
# ---------------------------------------------------------------------------
ONE_SLOT_CAPTIONS = WITH_RELATION + [
    "a small banana to the left of a red bicycle on a striped background", "a picture of an apple",
    "she is riding a horse", "an old man above a small red car", "two dogs chasing a green ball"]


def _slot_tokens(parsed) -> tuple[list[str], list[str]]:
    """Tokens of a sub-caption parse's text and, per token, its slot ("an" read as "a"; the
    article belongs to its noun's slot, as it is re-agreed with it)."""
    tokens, slots = [], []

    def phrase(p, name):
        if p.det:
            tokens.append(p.det)
            slots.append(name)
        for i, a in enumerate(p.adjectives):
            tokens.append(a)
            slots.append(f"{name}_adjective_{i}")
        tokens.extend(p.head.split())
        slots.extend([name] * len(p.head.split()))

    phrase(parsed.subject, "subject")
    if parsed.relation and parsed.object is not None:
        tokens.extend(parsed.relation.split())
        slots.extend(["relation"] * len(parsed.relation.split()))
        phrase(parsed.object, "object")
    return ["a" if t == "an" else t for t in tokens], slots


def _changed_slots(positive, negative: str) -> list[set[str]]:
    """The ways to read ``negative`` (text) as ``positive`` (a parse) with one contiguous run of
    tokens replaced: for each, the set of slots of ``positive`` that run covers (an insertion
    counts for the slot on either side of it).  Token-level comparison, articles as "a"."""
    a, slots = _slot_tokens(positive)
    assert a == ["a" if t == "an" else t for t in positive.core_text().split()]
    b = ["a" if t == "an" else t for t in negative.split()]
    options = []
    for s in range(len(a) + 1):
        if a[:s] != b[:s]:
            break
        for e in range(s, len(a) + 1):
            tail = len(a) - e
            if len(b) - tail < s or a[e:] != b[len(b) - tail:] or (e == s and len(b) == len(a)):
                continue
            if e > s:
                options.append(set(slots[s:e]))
            else:                                   # an insertion between tokens s - 1 and s
                options += [{slots[k]} for k in (s - 1, s) if 0 <= k < len(a)]
    return options


def _expected_slot(cf) -> set[str]:
    return {"relation"} if cf.kind == "relation" else (
        {cf.slot} if cf.kind == "noun" else {f"{cf.slot}_adjective_{k}" for k in range(8)})


@pytest.mark.parametrize("p_keep", [0.0, 1.0])
def test_one_slot_negative_differs_from_its_positive_in_one_slot(wn, vocab, p_keep):
    """Sec. 3.2: the replacement acts on the sub-caption, so negative = positive with ONE slot
    (object, attribute or relation word) replaced; token-level comparison, several captions."""
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import ReplacementVocab, SubcaptionGenerator, subcaption_pair

    kinds = Counter()
    for v in (vocab, ReplacementVocab.from_captions(ONE_SLOT_CAPTIONS + ["a dog on a mat"])):
        for caption in ONE_SLOT_CAPTIONS:
            p = parse_caption(caption)
            for seed in range(12):
                positive, cf = subcaption_pair(p, np.random.default_rng(seed), v, p_keep_adjective=p_keep)
                options = _changed_slots(positive, cf.text)
                assert any(len(o) == 1 and o <= _expected_slot(cf) for o in options), (
                    caption, positive.core_text(), cf.text, options)
                assert cf.text != positive.core_text()
                kinds[cf.kind] += 1
    assert {"relation", "noun"} <= set(kinds) and (p_keep == 0) == ("adjective" not in kinds), kinds
    # the generator's pairs (the default construction) are these pairs, one slot apart
    gen = SubcaptionGenerator(vocab, p_keep_adjective=p_keep)
    for seed in range(4):
        pos, neg = gen(ONE_SLOT_CAPTIONS, np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        for caption, a, b in zip(ONE_SLOT_CAPTIONS, pos, neg):
            positive, cf = subcaption_pair(gen.parse(caption), rng, vocab, p_keep_adjective=p_keep)
            assert (a, b) == (positive.core_text(), cf.text)
            assert any(len(o) == 1 for o in _changed_slots(positive, b)), (a, b)


def test_one_slot_negative_of_a_simple_caption_is_one_word(wn, vocab):
    from paperlib.text.subcaptions import SubcaptionGenerator

    gen = SubcaptionGenerator(vocab)
    for seed in range(10):
        (pos,), (neg,) = gen(["a picture of an apple"], np.random.default_rng(seed))
        assert pos == "apple" and neg != "apple" and neg in vocab.nouns     # no article added


#: SubcaptionGenerator outputs of the construction before issue 23 (WordNet vocabulary 3000 / 0).
FORMER_CAPTIONS = ["a small banana to the left of a red bicycle on a striped background",
                   "the cat sits on the old wooden table", "A woman in a blue dress holding an umbrella",
                   "a picture of an apple"]
FORMER_NEGATIVES = {
    (0.0, 0): ["a small art to the left of a red bicycle", "the skirt sits on the old wooden table",
               "a woman holding a lecture room", "an obstruction"],
    (0.0, 1): ["a large banana to the left of a red bicycle", "the cat jumps on the old wooden table",
               "a dipper holding an umbrella", "a soldier"],
    (0.5, 2): ["a big banana to the left of a red bicycle", "the cat sits on the old crazy table",
               "a woman eating an umbrella", "a meteorite"],
}
FORMER_POSITIVES = {
    (0.0, 0): ["a banana to the left of a bicycle", "the cat sits on the table",
               "a woman holding an umbrella", "apple"],
    (0.5, 2): ["a small banana to the left of a red bicycle", "the cat sits on the table",
               "a woman holding an umbrella", "apple"],
}


def test_full_caption_negatives_reproduce_the_former_generator(wn, vocab):
    """The ablation (``negatives="full_caption"`` with the WordNet vocabulary) gives the former
    construction's sub-captions draw for draw; the default gives other negatives."""
    from paperlib.text.subcaptions import SubcaptionGenerator

    for (p_keep, seed), negatives in FORMER_NEGATIVES.items():
        gen = SubcaptionGenerator(vocab, p_keep_adjective=p_keep, negatives="full_caption")
        pos, neg = gen(FORMER_CAPTIONS, np.random.default_rng(seed))
        assert neg == negatives
        if (p_keep, seed) in FORMER_POSITIVES:
            assert pos == FORMER_POSITIVES[(p_keep, seed)]
        pos1, neg1 = SubcaptionGenerator(vocab, p_keep_adjective=p_keep)(FORMER_CAPTIONS,
                                                                         np.random.default_rng(seed))
        assert pos1 == pos and neg1 != neg
    with pytest.raises(ValueError, match="one_slot"):
        SubcaptionGenerator(vocab, negatives="whole")


def test_replacement_vocab_from_training_captions(wn):
    from paperlib.text.subcaptions import ReplacementVocab

    caps = ["a small banana to the left of a red bicycle", "Two dogs chasing a green ball on a striped background.",
            "a photo of them", "A woman in a blue dress holding an umbrella", "a brick house above a tennis ball"]
    v = ReplacementVocab.from_captions(caps, nouns=["tennis ball"])
    assert v.closed and not ReplacementVocab.from_wordnet(size=50).closed
    assert set(v.nouns) == {"banana", "bicycle", "dog", "ball", "woman", "dress", "umbrella", "brick house",
                            "tennis ball"}                                 # no "photo", "background", "them"
    # the setting ("on a striped background") gives no word: neither "striped" nor "on"
    assert set(v.adjectives) == {"small", "red", "green", "blue"}
    assert set(v.spatial) == {"to the left of", "in", "above"} and set(v.verbs) == {"chase", "hold"}
    assert v == ReplacementVocab.from_captions(caps + caps[::-1], nouns=["tennis ball"])   # order-free
    with pytest.raises(ValueError, match="no replacement noun"):
        ReplacementVocab.from_captions([])


def test_replacements_come_from_the_training_caption_vocabulary(wn):
    from paperlib.text.lexicon import noun_lemma
    from paperlib.text.parse import parse_caption, split_relation
    from paperlib.text.subcaptions import ReplacementVocab, counterfactual, subcaption_pair

    train = ["a tiny red cat to the left of a large blue dog", "a green ball above a striped mat",
             "two men holding a yellow kite", "a horse behind a fence"]
    v = ReplacementVocab.from_captions(train)
    test = ["a small banana to the left of a red bicycle", "the cat sits on the old wooden table",
            "A woman in a blue dress holding an umbrella", "a cat above a dog", "a picture of an apple",
            "two dogs chasing a green ball"]
    seen = Counter()
    for caption in test:
        p = parse_caption(caption)
        for seed in range(20):
            for p_keep, p_opposite in ((1.0, 0.0), (1.0, 1.0), (0.0, 0.5)):
                _, cf = subcaption_pair(p, np.random.default_rng(seed), v, p_keep, p_opposite)
                if cf.kind == "noun":
                    assert cf.new in v.nouns or " ".join(map(noun_lemma, cf.new.split())) in v.nouns, cf
                elif cf.kind == "adjective":
                    assert cf.new in v.adjectives, cf
                else:
                    verb, prep = split_relation(cf.new)
                    old_verb, old_prep = split_relation(cf.old)
                    assert prep == old_prep or prep in v.spatial, cf
                    assert verb == old_verb or wn.morphy(verb.split()[-1], "v") in v.verbs, cf
                seen[cf.kind] += 1
    assert set(seen) == {"adjective", "relation", "noun"}
    # closed: colour groups, antonyms and opposite relations outside the captions are not used
    small = ReplacementVocab(nouns=("cat", "dog"), adjectives=("red", "small"),
                             relations=("above", "to the left of"), closed=True)
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert counterfactual(parse_caption("a cat above a dog"), rng, small, p_opposite=1.0,
                              kind="relation").new == "to the left of"               # not "below"
    with pytest.raises(ValueError, match="no replacement"):
        counterfactual(parse_caption("a red cat"), rng, small, kind="adjective")     # no other colour
    open_ = ReplacementVocab(nouns=small.nouns, adjectives=small.adjectives, relations=small.relations)
    assert counterfactual(parse_caption("a cat above a dog"), rng, open_, p_opposite=1.0,
                          kind="relation").new == "below"                            # the former draw


def test_generator_negatives_differ_from_their_positives_in_one_slot(wn, vocab):
    """The same check through the generator alone, on the re-parsed positive sub-captions."""
    from paperlib.text.parse import parse_caption
    from paperlib.text.subcaptions import SubcaptionGenerator

    gen = SubcaptionGenerator(vocab)
    for seed in range(6):
        pos, neg = gen(ONE_SLOT_CAPTIONS, np.random.default_rng(seed))
        for a, b in zip(pos, neg):
            q = parse_caption(a)
            assert q.core_text() == a
            assert any(len(o) == 1 for o in _changed_slots(q, b)), (a, b)
