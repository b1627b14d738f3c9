"""CleanerCLIP's negatives audit (paperlib.experiments.cleanerclip_negatives) on hand-made captions."""
import numpy as np
import pytest

from paperlib.assets import AssetMissingError


@pytest.fixture(scope="module")
def wn():
    from paperlib.text.lexicon import wordnet
    try:
        return wordnet()
    except AssetMissingError as err:  # pragma: no cover - only without `make setup`
        pytest.skip(str(err))


CAPTIONS = ["a small banana to the left of a red bicycle", "an old man above a small red car",
            "a dog to the right of a green ball", "a cat on a wooden table", "two dogs chasing a ball",
            "a woman holding an umbrella", "a bicycle below a lamp"]


@pytest.mark.parametrize("positive, negative, old, new, one", [
    ("a hamster to the right of a bowl", "a hamster in the middle of a bowl", "to the right of", "in the middle of", True),
    ("a banana to the left of a bicycle", "an apple to the left of a bicycle", "banana", "apple", True),   # re-agreed article
    ("a banana to the left of a bicycle", "a small banana to the right of a red bicycle", "to the left of",
     "to the right of", False),   # the adjectives the positive dropped come back
    ("a banana to the left of a bicycle", "a banana to the left of a bicycle", "banana", "banana", False),
    ("a banana to the left of a bicycle", "a cherry to the left of a lamp", "banana", "cherry", False),   # two slots
])
def test_one_slot_is_the_replaced_slot_and_nothing_else(positive, negative, old, new, one):
    from paperlib.experiments.cleanerclip_negatives import differs_in_one_slot
    assert differs_in_one_slot(positive, negative, old, new) is one


def test_audit_counts_one_slot_and_seen_words_per_construction(wn):
    from paperlib.experiments.cleanerclip_negatives import audit
    from paperlib.text.replacement_vocab import ReplacementVocab
    closed = ReplacementVocab.from_captions(CAPTIONS)
    one = audit(CAPTIONS, closed, np.random.default_rng(0), negatives="one_slot")
    assert one["n_captions"] == len(CAPTIONS) and one["n_negatives"] + round(one["skipped_pct"] * len(CAPTIONS) / 100) == len(CAPTIONS)
    assert one["one_slot_pct"] == 100.0
    assert one["replacement_seen_pct"] == 100.0            # a closed vocabulary: only the captions' words
    assert one["adjective_pct"] == 0.0                     # positives keep no adjective by default
    assert one["relation_pct"] + one["noun_pct"] == pytest.approx(100.0)
    full = audit(CAPTIONS, closed, np.random.default_rng(0), negatives="full_caption")
    assert full["one_slot_pct"] < 100.0                    # captions with adjectives differ in more than the slot
    # a vocabulary none of whose words the captions hold: nothing seen
    stranger = audit(CAPTIONS, closed, np.random.default_rng(0), seen={"zzz"})
    assert stranger["replacement_seen_pct"] == 0.0
