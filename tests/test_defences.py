"""Defences: each loss against a hand computation, the batch transforms, and one training step each."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperlib.defences import DEFENCE_IDS, REGISTRY, DefenceContext, defence_config_class, plan
from paperlib.defences.abd import (ABDConfig, PatchAndEDA, PatchGenerator, apply_patch, backdoor_loss,
                                   neighbourhood_distribution, patch_geometry, topology_divergence, train_patch)
from paperlib.defences.augment import AutoAugmentImages, EDACaptions
from paperlib.defences.cleanclip import InModalTerm, one_way_nce
from paperlib.defences.cleanerclip import SubcaptionBatch, counterfactual_loss, epoch_subset
from paperlib.defences.roclip import MemoryBank, RoCLIPConfig, RoCLIPTerm
from paperlib.train.losses import StepContext
from paperlib.train.pairs import TensorPairs

WORDS = ["red", "green", "blue", "yellow"]


def _unit(x):
    return F.normalize(torch.as_tensor(x, dtype=torch.float32), dim=-1)


def _pairs(n=32, side=64, seed=0):
    from paperlib.models import get_tokenizer
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    images = np.repeat(np.repeat(palette[labels][:, None, None, :], side, 1), side, 2)
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    texts = [[f"a {WORDS[lab]} square to the left of a small dog"] for lab in labels]
    tokens = get_tokenizer("tiny-rn64")([t[0] for t in texts]).numpy()
    return TensorPairs(images, tokens, texts=texts)


# --- CleanCLIP ----------------------------------------------------------------------------------
def test_one_way_nce_by_hand():
    a = _unit([[1.0, 0.0], [0.6, 0.8]])
    b = _unit([[0.8, 0.6], [0.0, 1.0]])
    s = 5.0
    logits = s * a @ b.t()
    by_hand = -0.5 * (torch.log_softmax(logits[0], 0)[0] + torch.log_softmax(logits[1], 0)[1])
    assert one_way_nce(a, b, s).item() == pytest.approx(by_hand.item(), rel=1e-6)


class _FakeModel(torch.nn.Module):
    """encode_image / encode_text return the given feature tables (normalised by StepContext)."""

    def __init__(self):
        super().__init__()
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))

    def encode_image(self, x):
        return x.flatten(1)[:, :4]

    def encode_text(self, t):
        return t.float()


def test_inmodal_smallest_for_identity_augmentation():
    torch.manual_seed(0)
    img = torch.rand(6, 3, 2, 2) * 255
    tok = torch.randn(6, 4)
    term = InModalTerm()
    same = term(StepContext(_FakeModel(), {"images": img, "images_aug": img.clone(),
                                            "tokens": tok, "tokens_aug": tok.clone()}))
    other = term(StepContext(_FakeModel(), {"images": img, "images_aug": img.flip(0),
                                             "tokens": tok, "tokens_aug": tok + torch.randn(6, 4)}))
    assert same < other


# --- CleanerCLIP --------------------------------------------------------------------------------
def test_counterfactual_loss_by_hand():
    torch.manual_seed(1)
    v, p, n = (_unit(torch.randn(3, 5)) for _ in range(3))
    tp, tn = 0.5, 0.3
    total = 0.0
    for i in range(3):
        num = math.exp(float(v[i] @ p[i]) / tp)
        den = sum(math.exp(float(v[i] @ p[j]) / tp) for j in range(3)) + \
            sum(math.exp(float(v[i] @ n[j]) / tn) for j in range(3))
        i2t = -math.log(num / den)
        den2 = sum(math.exp(float(p[i] @ v[j]) / tp) for j in range(3)) + \
            sum(math.exp(float(n[i] @ v[j]) / tn) for j in range(3))
        t2i = -math.log(num / den2)
        total += 0.5 * (i2t + t2i) / 3
    assert counterfactual_loss(v, p, n, tp, tn).item() == pytest.approx(total, rel=1e-5)


def test_counterfactual_loss_rewards_pushing_negatives_away():
    v = _unit(torch.eye(3))
    p = v.clone()
    near = _unit(v + 0.1)
    far = -v
    assert counterfactual_loss(v, p, far, 0.5, 0.3) < counterfactual_loss(v, p, near, 0.5, 0.3)


def test_epoch_subset_size_and_freshness():
    a = epoch_subset(5000, 1000 / 500_000, 1, seed=0, epoch=0)
    assert len(a) == 10 and len(set(a.tolist())) == 10 and a.max() < 5000
    assert np.array_equal(a, epoch_subset(5000, 1000 / 500_000, 1, seed=0, epoch=0))
    assert not np.array_equal(a, epoch_subset(5000, 1000 / 500_000, 1, seed=0, epoch=1))
    assert len(epoch_subset(100, 0.002, 3, 0, 0)) == 3      # the minimum applies


def test_subcaption_batch_marks_only_subset_rows():
    from paperlib.models import get_tokenizer
    from paperlib.text.subcaptions import ReplacementVocab, SubcaptionGenerator
    pairs = _pairs(32)
    vocab = ReplacementVocab(nouns=("cat", "hammer", "tree"), adjectives=("tall", "wet"),
                             relations=("above", "below", "to the right of"))
    tf = SubcaptionBatch(SubcaptionGenerator(vocab), get_tokenizer("tiny-rn64"), n_pairs=32,
                         steps_per_epoch=4, fraction=0.25, minimum=1, seed=0)
    batch = pairs.fetch(np.arange(8, 16))
    out = tf(batch, step=0, generator=torch.Generator().manual_seed(0))
    subset = set(tf.subset(0).tolist())
    expect = [k for k, r in enumerate(range(8, 16)) if r in subset]
    assert out["subcaption_rows"].tolist() == expect
    if expect:
        assert out["tokens_pos"].shape[0] == out["tokens_neg"].shape[0] == len(expect)


# --- RoCLIP -------------------------------------------------------------------------------------
def test_memory_bank_true_nearest_neighbours_and_fifo():
    torch.manual_seed(0)
    bank = MemoryBank(size=50)
    for _ in range(4):
        bank.push(_unit(torch.randn(20, 8)))
    assert len(bank) == 50
    q = _unit(torch.randn(7, 8))
    brute = torch.stack([bank.items[int(np.argmax([float(qi @ b) for b in bank.items]))] for qi in q])
    assert torch.equal(bank.nearest(q), brute)


def test_roclip_uses_neighbours_only_on_break_epochs():
    term = RoCLIPTerm(RoCLIPConfig(break_epoch=2, bank_size=16), steps_per_epoch=1)
    assert [term.nn_epoch(e) for e in range(4)] == [False, True, False, True]


# --- ABD ----------------------------------------------------------------------------------------
def test_abd_patch_geometry_matches_advclip():
    assert patch_geometry(224, 0.03, 14 / 224) == (38, 224 - 38 - 14)


def test_abd_patch_in_its_box_and_range():
    g = PatchGenerator(100, 11)
    patch = g(torch.randn(2, 100))
    assert patch.shape == (2, 3, 11, 11) and patch.min() >= 0 and patch.max() <= 255
    imgs = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    side, off = patch_geometry(64, 0.03, 14 / 224)
    out = apply_patch(imgs, patch[0].detach().round().to(torch.uint8), off)
    changed = (out != imgs).any(1).any(0)
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert ys.min() >= off and ys.max() < off + side and xs.min() >= off and xs.max() < off + side


def test_backdoor_loss_by_hand():
    c = _unit([[1.0, 0.0], [0.0, 1.0]])
    p = _unit([[0.9, 0.1], [0.2, 0.8]])
    tau = 0.1
    logits = c @ p.t() / tau
    by_hand = -(torch.log_softmax(logits[0], 0)[0] + torch.log_softmax(logits[1], 0)[1]) / 2
    assert backdoor_loss(c, p, tau).item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert backdoor_loss(c, c, tau) < backdoor_loss(c, c.flip(0), tau)


def test_neighbourhood_distribution_by_hand():
    """Three unit vectors at 0, 90 and 180 degrees: cosine distances [[0,1,2],[1,0,1],[2,1,0]];
    each row shifted so its nearest other sample is at 0, similarity (2 - d) / 2, rows normalised."""
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    shifted = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    sim = (2 - shifted) / 2
    expected = sim / sim.sum(1, keepdim=True)
    got = neighbourhood_distribution(f)
    assert torch.allclose(got, expected) and torch.allclose(got.sum(1), torch.ones(3))


def test_topology_divergence_by_hand_and_its_zero():
    a = _unit([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.2]])
    b = _unit([[1.0, 0.0], [-0.7, 0.7], [0.1, 1.0], [0.9, 0.3]])
    p, q = neighbourhood_distribution(b), neighbourhood_distribution(a)
    by_hand = (p * (p / q).log()).sum() + ((1 - p) * ((1 - p) / (1 - q)).log()).sum()
    assert topology_divergence(a, b).item() == pytest.approx(by_hand.item(), rel=1e-4)
    rotation = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    assert topology_divergence(a, a @ rotation).item() == pytest.approx(0.0, abs=1e-5)   # same arrangement
    assert topology_divergence(a, b) > 1e-3


def test_patch_and_eda_touch_only_chosen_rows():
    from paperlib.models import get_tokenizer
    from paperlib.text.eda import EDAAugmenter
    pairs = _pairs(16)
    batch = pairs.fetch(np.arange(16))
    before = batch["images"].clone()
    patch = torch.full((3, 11, 11), 7, dtype=torch.uint8)
    tf = PatchAndEDA(patch, 49, p_patch=0.5, p_eda=0.0, eda=EDAAugmenter(), tokenizer=get_tokenizer("tiny-rn64"))
    out = tf(batch, 0, torch.Generator().manual_seed(3))
    diff = (out["images"] != before).flatten(1).any(1)
    assert 0 < int(diff.sum()) < 16
    assert (out["images"][diff][:, :, 49:60, 49:60] == 7).all()
    outside = out["images"][diff].clone()
    outside[:, :, 49:60, 49:60] = before[diff][:, :, 49:60, 49:60]
    assert torch.equal(outside, before[diff])


def test_train_patch_runs_and_returns_uint8_patch():
    from paperlib.models import create_model
    victim = create_model("tiny-rn64", seed=0)
    clean = create_model("tiny-rn64", seed=1)
    pairs = _pairs(16)
    b = pairs.fetch(np.arange(16))
    cfg = ABDConfig(gan_epochs=1.0, gan_batch=8)
    patch, info = train_patch(victim, clean, b["images"], b["tokens"], cfg, seed=0, device="cpu")
    assert patch.dtype == torch.uint8 and patch.shape == (3, 11, 11)
    assert info["steps"] == 2 and info["history"][-1]["l_bd"] > 0
    assert info["history"][-1]["topology"] < 0        # AdvCLIP's topology terms are maximised


# --- augmentations ------------------------------------------------------------------------------
def test_autoaugment_is_seeded_and_keeps_shape():
    imgs = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    a = AutoAugmentImages()({"images": imgs}, 0, torch.Generator().manual_seed(5))["images_aug"]
    b = AutoAugmentImages()({"images": imgs}, 0, torch.Generator().manual_seed(5))["images_aug"]
    assert a.shape == imgs.shape and a.dtype == torch.uint8 and torch.equal(a, b)


def test_eda_needs_texts():
    from paperlib.models import get_tokenizer
    with pytest.raises(KeyError, match="texts"):
        EDACaptions(get_tokenizer("tiny-rn64"))({"tokens": torch.zeros(2, 32, dtype=torch.long)}, 0,
                                                 torch.Generator())


# --- registry and one step of each defence in the one loop --------------------------------------
def test_registry_and_bad_id():
    from paperlib.config import ParamError
    assert set(REGISTRY) <= set(DEFENCE_IDS)
    with pytest.raises(ParamError, match="valid: ft"):
        defence_config_class("nope")


@pytest.mark.parametrize("defence_id", ["ft", "cleanclip", "cleanerclip", "roclip", "abd"])
def test_each_defence_trains_in_the_one_loop(defence_id, tmp_path):
    from paperlib.cache import ArtifactCache
    from paperlib.config import replace
    from paperlib.models import create_model, get_tokenizer, save_checkpoint
    from paperlib.pipeline import ModelArtifact
    from paperlib.train.loop import TrainConfig, train
    pairs = _pairs(32)
    cache = ArtifactCache(tmp_path / "cache")
    model = create_model("tiny-rn64", seed=0)
    save_checkpoint(model, tmp_path / "model.safetensors")
    victim = ModelArtifact("tiny-rn64", tmp_path, {"role": "test"})
    cfg = defence_config_class(defence_id)()
    if defence_id == "abd":
        cfg = replace(cfg, gan_epochs=0.5, gan_batch=8, gan_images=16)
    if defence_id == "cleanerclip":
        cfg = replace(cfg, subset_fraction=0.5, vocab_size=200)
    ctx = DefenceContext("tiny-rn64", get_tokenizer("tiny-rn64"), torch.device("cpu"), pairs,
                         steps_per_epoch=2, victim=victim, clean_base=victim, cache=cache)
    p = plan(defence_id, cfg, ctx)
    before = torch.cat([q.detach().flatten() for q in model.parameters()])
    summary = train(model, pairs, TrainConfig(epochs=2, batch_size=16, precision="fp32", warmup_steps=0),
                    p.terms, transforms=p.transforms)
    after = torch.cat([q.detach().flatten() for q in model.parameters()])
    assert summary["steps"] == 4 and not torch.equal(before, after)
    assert all(np.isfinite(v) for v in summary["final_losses"].values())


def test_abd_patch_key_names_the_scenes_its_gan_trains_on():
    """The patch is cached per victim, settings and seed; the GAN's images come from the clean set,
    so two clean sets (another size or other scenes) must not share a patch."""
    from paperlib.config import replace
    from paperlib.defences.abd import gan_rows, gan_scenes_digest
    from paperlib.models import get_tokenizer
    pairs = _pairs(64)
    cfg = replace(ABDConfig(), gan_images=16)

    def digest(pool):
        ctx = DefenceContext("tiny-rn64", get_tokenizer("tiny-rn64"), torch.device("cpu"), pool, steps_per_epoch=1)
        return gan_scenes_digest(ctx, gan_rows(cfg, ctx))
    first = pairs.subset(np.arange(32))
    assert digest(first) == digest(pairs.subset(np.arange(32)))
    assert digest(first) != digest(pairs.subset(np.arange(32, 64)))     # other scenes
    assert digest(first) != digest(pairs.subset(np.arange(40)))         # a larger clean set
