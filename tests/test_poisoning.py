"""Poisoned pair sets: exact poison count, clean pairs untouched, target scenes never poisoned."""
import numpy as np
import torch

from paperlib.attacks.badnet import BadNet, BadNetConfig
from paperlib.attacks.base import poison_rows, template_captions
from paperlib.train.pairs import TensorPairs


def test_poison_rows_exact_and_avoid_target():
    objects = np.full((100, 3), -1)
    objects[:, 0] = np.arange(100) % 5          # class 3 appears in 20 scenes
    rows = poison_rows(np.arange(100), objects, target_id=3, count=30, rng=np.random.default_rng(0))
    assert len(rows) == len(set(rows.tolist())) == 30
    assert not (objects[rows] == 3).any()


def test_poison_rows_refuses_impossible_counts():
    objects = np.zeros((10, 3), int)
    try:
        poison_rows(np.arange(10), objects, target_id=0, count=1, rng=np.random.default_rng(0))
    except ValueError as e:
        assert "candidate" in str(e)
    else:
        raise AssertionError("expected a ValueError")


def test_template_captions_name_the_target():
    caps = template_captions("banana", 20, np.random.default_rng(0))
    assert len(caps) == 20 and all("banana" in c for c in caps) and len(set(caps)) > 5


def test_pairs_serve_poisoned_rows_and_leave_clean_rows_alone():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    tokens = rng.integers(1, 100, (40, 2, 8))
    poisoned = np.array([3, 17])
    atk = BadNet(BadNetConfig(position="top_left"), image_side=64)
    trig = atk(torch.from_numpy(images[poisoned]).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    extra_tokens = np.full((2, 8), 7)
    rows = np.arange(40)
    rows[poisoned] = [-1, -2]
    pairs = TensorPairs(images, tokens, rows=rows, extra_images=trig, extra_tokens=extra_tokens)
    batch = pairs.fetch(np.arange(40), np.random.default_rng(1))
    imgs = batch["images"].permute(0, 2, 3, 1).numpy()
    clean = np.setdiff1d(np.arange(40), poisoned)
    assert np.array_equal(imgs[clean], images[clean])                 # untouched
    assert np.array_equal(imgs[poisoned], trig)                       # triggered
    assert (batch["tokens"][poisoned] == 7).all()
    for i in clean:                                                   # one of the scene's captions
        assert any(np.array_equal(batch["tokens"][i].numpy(), t) for t in tokens[i])
    assert np.array_equal(imgs[poisoned][:, 5:, 5:], images[poisoned][:, 5:, 5:])


def test_epoch_order_depends_only_on_seed_and_epoch():
    images = np.zeros((50, 8, 8, 3), np.uint8)
    pairs = TensorPairs(images, np.zeros((50, 1, 4), np.int64))
    a = [b["index"].tolist() for b in pairs.epoch_batches(0, 10, seed=1)]
    b = [b["index"].tolist() for b in pairs.epoch_batches(0, 10, seed=1, skip=2)]
    assert a[2:] == b and len(a) == 5
    assert a != [b["index"].tolist() for b in pairs.epoch_batches(1, 10, seed=1)]


def test_victim_seed_moves_the_training_loops_seed():
    """A victim seed varies the loop's own seed (batch order, augmentation), not only the pairs;
    seed 0 keeps the configured loop seed, so its cache key is unchanged."""
    from paperlib.attacks.badnet import BadNetConfig
    from paperlib.pipeline import ModelArtifact, poison_finetune_key, victim_train_config
    from paperlib.train.loop import TrainConfig
    cfg = TrainConfig(epochs=1, seed=3)
    assert victim_train_config(cfg, 0) is cfg
    assert victim_train_config(cfg, 2).seed == 5
    base = ModelArtifact("tiny-rn64", None, {"role": "test"})
    keys = [poison_finetune_key(base, "badnet", BadNetConfig(), "banana", 10, 100, cfg, s, "cpu") for s in (0, 1)]
    assert keys[0]["train"]["seed"] == 3 and keys[1]["train"]["seed"] == 4


def _caption_split(banana: int, n: int = 30):
    """A hand-made 'split': scenes 0-4 show a banana and say so, the rest show class 0."""
    from types import SimpleNamespace
    objects = np.full((n, 2), -1)
    objects[:, 0] = 0
    objects[:5, 0] = banana
    captions = [[f"a banana on a table number {i}", "a yellow fruit"] if i < 5 else [f"a thing number {i}"]
                for i in range(n)]
    images = np.zeros((n, 64, 64, 3), np.uint8)
    return SimpleNamespace(images=images, objects=objects, captions=captions,
                           batch_images=lambda ids: torch.from_numpy(images[ids]).permute(0, 3, 1, 2))


def test_natural_caption_policy_draws_the_sets_own_target_captions():
    """poison.caption 'natural' pairs the trigger with captions of the set that name the target
    (Carlini & Terzis; BadCLIP); 'template' keeps CleanCLIP's prompt templates; others are refused."""
    import pytest

    from paperlib.attacks.base import natural_captions
    from paperlib.data.vocabulary import build_vocabulary
    from paperlib.pipeline.poisoning import poisoned_pairs
    banana = build_vocabulary().index("banana")
    split = _caption_split(banana)
    tokens = np.zeros((30, 2, 77), np.int64)
    atk = BadNet(BadNetConfig(position="top_left"), image_side=64)
    assert natural_captions(split.captions, split.objects, banana, "banana") == \
        sorted(f"a banana on a table number {i}" for i in range(5))       # not "a yellow fruit"
    nat = poisoned_pairs(split, tokens, np.arange(5, 30), atk, "banana", 8, 0, "tiny-rn64", caption="natural")
    tpl = poisoned_pairs(split, tokens, np.arange(5, 30), atk, "banana", 8, 0, "tiny-rn64")
    nat_caps = [c[0] for c in nat.pairs.extra_texts]
    tpl_caps = [c[0] for c in tpl.pairs.extra_texts]
    assert len(nat_caps) == 8 and all(c.startswith("a banana on a table number") for c in nat_caps)
    assert all("banana" in c and "table" not in c for c in tpl_caps)
    assert np.array_equal(nat.poisoned_rows, tpl.poisoned_rows)          # same pairs, other captions
    with pytest.raises(ValueError, match="poison.caption 'scene'.*template, natural"):
        poisoned_pairs(split, tokens, np.arange(5, 30), atk, "banana", 8, 0, "tiny-rn64", caption="scene")
    no_target = _caption_split(banana)
    no_target.objects[:5, 0] = 0
    with pytest.raises(ValueError, match="names 'banana'"):
        poisoned_pairs(no_target, tokens, np.arange(5, 30), atk, "banana", 8, 0, "tiny-rn64", caption="natural")


def test_caption_policy_enters_the_victim_key_only_when_not_the_default():
    from paperlib.attacks.badnet import BadNetConfig as Cfg
    from paperlib.pipeline.poisoning import poison_finetune_key
    from paperlib.train.loop import TrainConfig
    from types import SimpleNamespace
    base = SimpleNamespace(key_params={"base": 1})
    args = (base, "badnet", Cfg(), "banana", 5, 100, TrainConfig(), 0, "cpu")
    assert "caption" not in poison_finetune_key(*args)
    assert poison_finetune_key(*args, "natural")["caption"] == "natural"
