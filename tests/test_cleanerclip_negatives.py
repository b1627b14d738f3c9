"""CleanerCLIP's negatives audit (paperlib.experiments.cleanerclip_negatives) on hand-made captions."""
import numpy as np
import pytest



CAPTIONS = ["a small banana to the left of a red bicycle", "an old man above a small red car",
            "a dog to the right of a green ball", "a cat on a wooden table", "two dogs chasing a ball",
            "a woman holding an umbrella", "a bicycle below a lamp"]


@pytest.mark.parametrize("positive, negative, old, new, one", [
    ("a hamster to the right of a bowl", "a hamster in the middle of a bowl", "to the right of", "in the middle of", True),
    ("a banana to the left of a bicycle", "an apple to the left of a bicycle", "banana", "apple", True),   # re-agreed
    ("she is riding a horse", "a dog is riding a horse", "she", "dog", True),        # a pronoun's noun gets an article
    ("a dog on a table", "a dog on a table", "dog", "dog", False),                   # nothing replaced
    ("a banana to the left of a bicycle", "a small banana to the right of a red bicycle", "to the left of",
     "to the right of", False),                                                     # adjectives came back
    ("a banana to the left of a bicycle", "a cherry to the left of a lamp", "banana", "cherry", False),   # two slots
    ("a dog on a table", "the dog on a table", "dog", "cat", False),                 # only an article changed
    ("a dog on a table", "a dog on table", "on", "under", False),                    # an article dropped elsewhere
    ("a dog on a table", "a dog on under a table", "on", "under", False),            # inserted, old kept
    ("a dog on a table", "a dog on an apple table", "table", "apple", False),        # inserted before the old word
    ("a dog to the left of a cat", "a dog of the right to a cat", "to the left of", "to the right of", False),
    ("a dog on a table", "a dog on a", "table", "chair", False),                     # the slot deleted
    ("a banana to the left of a bicycle", "a huge banana to the left of a bicycle", "small", "huge", False),
])
def test_one_slot_is_the_replaced_slot_where_it_stands_and_nothing_else(positive, negative, old, new, one):
    from paperlib.experiments.cleanerclip_negatives import differs_in_one_slot
    assert differs_in_one_slot(positive, negative, old, new) is one


def test_a_plural_or_inflected_replacement_counts_by_its_base_form(wn):
    from paperlib.experiments.cleanerclip_negatives import caption_word_forms, seen_in
    seen = caption_word_forms(["a trumpet on a wine glass", "a man kicks a ball", "two puppies"])
    assert seen_in("trumpets", seen) and seen_in("wine glasses", seen) and seen_in("puppy", seen)
    assert seen_in("kicking", seen)                  # the verb by its lemma
    assert not seen_in("violins", seen) and not seen_in("wine bottle", seen)


def test_audit_counts_per_construction_on_hand_made_captions(wn):
    from paperlib.experiments.cleanerclip_negatives import audit
    from paperlib.text.replacement_vocab import ReplacementVocab
    closed = ReplacementVocab.from_captions(CAPTIONS)
    one = audit(CAPTIONS, closed, np.random.default_rng(0), negatives="one_slot")
    assert one["n_captions"] == len(CAPTIONS) and one["skipped_pct"] == 0.0
    assert one["one_slot_pct"] == 100.0
    assert one["replacement_seen_pct"] == 100.0      # a closed vocabulary: only the captions' words
    assert one["adjective_pct"] == 0.0               # positives keep no adjective by default
    full = audit(CAPTIONS, closed, np.random.default_rng(0), negatives="full_caption")
    assert full["one_slot_pct"] < 100.0              # captions with adjectives differ in more than the slot
    # WordNet's words (the former draw): one slot still, but words the captions do not hold
    open_vocab = ReplacementVocab.from_wordnet(3000, seed=0)
    wordnet_draw = audit(CAPTIONS * 5, open_vocab, np.random.default_rng(0), negatives="one_slot")
    assert wordnet_draw["one_slot_pct"] == 100.0 and wordnet_draw["replacement_seen_pct"] < 100.0


def test_a_caption_without_replacement_is_counted_as_skipped(wn):
    from paperlib.experiments.cleanerclip_negatives import audit
    from paperlib.text.replacement_vocab import ReplacementVocab
    # a closed vocabulary of one caption: no other noun, and no relation to swap "on" for
    lone = ["a dog on a mat"]
    vocab = ReplacementVocab.from_captions(lone)
    counts = audit(lone + ["a dog on a mat"], vocab, np.random.default_rng(0))
    assert counts["n_captions"] == 2 and counts["n_negatives"] == 0 and counts["skipped_pct"] == 100.0
    assert np.isnan(counts["one_slot_pct"])          # no negative to judge
