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


def _bn_layers(g):
    return [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_abd_patch_read_in_train_mode_by_default_and_differs_from_eval_when_bn_stats_differ():
    """AdvCLIP (advclip.py) never calls G.eval(): the patch it saves is G(z) in training mode, its
    BatchNorm using the forward pass's own statistics.  With running averages set by hand far
    from those statistics, the eval-mode read differs; the default reads as AdvCLIP does, and
    reading leaves the generator's mode and running averages as they were."""
    from paperlib.defences.abd import read_patch
    assert ABDConfig().patch_mode == "train"
    torch.manual_seed(0)
    g = PatchGenerator(100, 11)
    z = torch.randn(1, 100)
    for m in _bn_layers(g):
        m.running_mean.fill_(2.0)
        m.running_var.fill_(9.0)
    g.eval()
    before = {k: v.clone() for k, v in g.named_buffers()}
    train, ev = read_patch(g, z, "train"), read_patch(g, z, "eval")
    assert not g.training
    assert all(torch.equal(v, before[k]) for k, v in g.named_buffers())
    # by hand: training-mode BatchNorm = each channel standardised over this pass's (batch, H, W)
    with torch.no_grad():
        h = g.fc(z).view(-1, 128, 4, 4)
        for layer in g.net:
            if isinstance(layer, torch.nn.BatchNorm2d):
                mu = h.mean(dim=(0, 2, 3), keepdim=True)
                var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
                h = (h - mu) / torch.sqrt(var + layer.eps)
                h = h * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
            else:
                h = layer(h)
        by_hand = (F.interpolate(h, size=(11, 11), mode="bilinear", align_corners=False) + 1) * 127.5
    assert torch.allclose(train, by_hand, atol=1e-3)
    assert (train - ev).abs().max() > 5.0              # the two reads are different patches
    # with running averages equal to this pass's statistics the two reads agree (the only difference)
    g2 = PatchGenerator(100, 11)
    g2.load_state_dict(g.state_dict())
    g2.eval()
    with torch.no_grad():
        h = g2.fc(z).view(-1, 128, 4, 4)
        for layer in g2.net:
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_mean.copy_(h.mean(dim=(0, 2, 3)))
                layer.running_var.copy_(h.var(dim=(0, 2, 3), unbiased=False))
            h = layer(h)                                   # eval mode: now the pass's own statistics
    assert torch.allclose(read_patch(g2, z, "train"), read_patch(g2, z, "eval"), atol=1e-2)
    with pytest.raises(ValueError, match="patch mode"):
        read_patch(g, z, "test")


@pytest.mark.parametrize("mode", [None, "train", "eval"])
def test_abd_train_patch_returns_the_read_of_its_patch_mode(mode, monkeypatch):
    """train_patch returns the patch read in ``cfg.patch_mode`` (default: training mode)."""
    from paperlib.config import replace
    from paperlib.defences import abd
    from paperlib.models import create_model
    reads = []
    real = abd.read_patch

    def spy(G, z, how="train"):
        out = real(G, z, how)
        reads.append((how, out.clone()))
        return out
    monkeypatch.setattr(abd, "read_patch", spy)
    victim = create_model("tiny-rn64", seed=0)
    b = _pairs(8).fetch(np.arange(8))
    cfg = ABDConfig(gan_epochs=1.0, gan_batch=8, lambda_bd=0.0)
    if mode is not None:
        cfg = replace(cfg, patch_mode=mode)
    patch, info = train_patch(victim, None, b["images"], b["tokens"], cfg, seed=0, device="cpu")
    assert [how for how, _ in reads] == [mode or "train"] and info["patch_mode"] == (mode or "train")
    assert torch.equal(patch, reads[0][1][0].round().clamp(0, 255).to(torch.uint8))


def test_abd_random_patch_has_the_adversarial_size_and_place_and_is_not_trained(tmp_path, monkeypatch):
    """The control (patch_source: random): uniform noise of the adversarial patch's side at its
    offset (AdvCLIP's patch_initialization / mask_generation), fixed per seed, with no generator
    trained and nothing cached; the fine-tuning transform pastes it where the adversarial one goes."""
    from paperlib.cache import ArtifactCache
    from paperlib.config import replace
    from paperlib.defences import abd
    from paperlib.models import get_tokenizer

    def no_training(*a, **k):
        raise AssertionError("the random patch must not train a generator")
    monkeypatch.setattr(abd, "train_patch", no_training)
    pairs = _pairs(16, side=64)
    cfg = replace(ABDConfig(), patch_source="random", p_eda=0.0, p_patch=1.0)

    def ctx(seed):
        return DefenceContext("tiny-rn64", get_tokenizer("tiny-rn64"), torch.device("cpu"), pairs,
                              steps_per_epoch=1, seed=seed, cache=ArtifactCache(tmp_path / "cache"))
    patch, info = abd.abd_patch(cfg, ctx(3))
    side, offset = patch_geometry(64, ABDConfig().patch_area, ABDConfig().margin_fraction)
    assert patch.dtype == torch.uint8 and patch.shape == (3, side, side)
    assert (info["side"], info["offset"], info["steps"]) == (side, offset, 0)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.safetensors"))
    # uniform over 0..255: mean about 127.5, sd about 73.9; fixed per seed, another seed another patch
    assert 100 < patch.float().mean() < 155 and patch.float().std() > 50
    assert torch.equal(patch, abd.abd_patch(cfg, ctx(3))[0])
    assert not torch.equal(patch, abd.abd_patch(cfg, ctx(4))[0])
    # the defence's plan pastes exactly this patch at the adversarial patch's place
    p = plan("abd", cfg, ctx(3))
    assert p.info["patch_source"] == "random" and p.info["gan_steps"] == 0
    batch = pairs.fetch(np.arange(16))
    before = batch["images"].clone()
    out = p.transforms[0](batch, 0, torch.Generator().manual_seed(0))["images"]
    assert (out[:, :, offset:offset + side, offset:offset + side] == patch).all()
    outside = out.clone()
    outside[:, :, offset:offset + side, offset:offset + side] = before[:, :, offset:offset + side, offset:offset + side]
    assert torch.equal(outside, before)


@pytest.mark.parametrize("scale", ["embedded", "gpu", "paper"])
def test_abd_params_give_table_iii_three_lbd_weights_and_the_random_patch_control(scale):
    """The ABD notebook's variant rows (parsed parameters): Table III at L_bd weight 0 (UAP) and at
    least three positive weights, images only, and the random-patch control (same geometry, images
    only, as I_adv), each a row of the notebook's tables; embedded Tables II-III at seeds 0-2."""
    from pathlib import Path

    from paperlib.experiments import abd
    p = abd.load(Path(__file__).resolve().parents[1] / "params" / "abd" / f"{scale}.yaml")
    rows = {label: cfg for label, d, cfg in p.defence.rows("badnet") if d == "abd"}
    assert rows["abd"].patch_mode == "train" and rows["abd"].patch_source == "adversarial"
    images_only = {label: c for label, c in rows.items() if c.p_eda == 0 and c.p_patch > 0}
    adversarial = {label: c.lambda_bd for label, c in images_only.items() if c.patch_source == "adversarial"}
    weights = set(adversarial.values())
    assert 0.0 in weights and len(weights - {0.0}) >= 3, adversarial
    assert set(adversarial) <= set(abd.TABLES["Table III"])
    random = [label for label, c in images_only.items() if c.patch_source == "random"]
    assert len(random) == 1 and random[0] in abd.TABLES["Table II"] and random[0] in abd.TABLES["Table III"]
    r, i_adv = rows[random[0]], rows["abd_i_adv"]
    assert (r.patch_area, r.margin_fraction, r.p_patch) == (i_adv.patch_area, i_adv.margin_fraction, i_adv.p_patch)
    # the replaced read (eval-mode BatchNorm) stays a row of Table II: full ABD otherwise
    evals = [label for label, c in rows.items() if c.patch_mode == "eval"]
    assert evals == ["abd_eval_patch"] and "abd_eval_patch" in abd.TABLES["Table II"]
    assert replace_mode(rows["abd_eval_patch"]) == rows["abd"]
    if scale == "embedded":
        assert p.ablation_seed_list == (0, 1, 2)


def replace_mode(cfg, mode="train"):
    from paperlib.config import replace
    return replace(cfg, patch_mode=mode)


def test_abd_patch_trigger_overlap_measures_what_the_patch_covers(tmp_path, monkeypatch):
    """The overlap table on hand-made triggers: a 16 px bottom-right corner square holds ABD's
    11 px box at 64 px (the box lies wholly in it: 121 of its 256 pixels), a centred square misses
    it, and a full-image change covers the box and puts only the box's share of its pixels there."""
    import pandas as pd

    from paperlib.experiments import abd, common

    class Square:
        def __init__(self, top, side):
            self.top, self.side = top, side

        def test_transform(self, images, generator=None):
            out = images.clone()
            out[:, :, self.top:self.top + self.side, self.top:self.top + self.side] = 255 - out[:, :, self.top:self.top + self.side, self.top:self.top + self.side]
            return out

    class Everywhere:
        def test_transform(self, images, generator=None):
            return 255 - images

    triggers = {"badnet": Square(48, 16), "badclip": Square(27, 10), "blended": Everywhere()}
    monkeypatch.setattr(common, "clean_base", lambda p: None)
    monkeypatch.setattr(common, "victim_attack", lambda p, base, v: triggers[v.attack])
    p = abd.load(None, {"scale": "embedded", "victims": [{"attack": a} for a in triggers],
                        "results_dir": str(tmp_path)})
    out = abd.patch_trigger_overlap(p, n=8).set_index("attack")
    assert (out.patch_side == 11).all() and (out.patch_offset == 49).all()
    assert out.loc["badnet", "trigger_pixels"] == 256
    assert out.loc["badnet", "trigger_in_patch_pct"] == pytest.approx(100 * 121 / 256)
    assert out.loc["badnet", "patch_changed_by_trigger_pct"] == pytest.approx(100.0)
    assert out.loc["badclip", "trigger_in_patch_pct"] == 0 and out.loc["badclip", "patch_changed_by_trigger_pct"] == 0
    assert out.loc["blended", "trigger_in_patch_pct"] == pytest.approx(100 * 121 / 4096)
    assert out.loc["blended", "patch_changed_by_trigger_pct"] == pytest.approx(100.0)
    assert len(pd.read_csv(tmp_path / "abd" / "patch_trigger_overlap_embedded.csv")) == 3


def test_abd_tables_keep_rows_the_paper_does_not_print(tmp_path):
    """Variant rows without a paper counterpart (more L_bd weights, the random patch) reach the
    notebook's tables with our numbers and no paper value; the paper's rows keep theirs."""
    import pandas as pd

    from paperlib.experiments import abd
    from paperlib.experiments.defences import matrix_row
    p = abd.load(None, {"scale": "embedded", "victims": [{"attack": "badnet"}], "seeds": [0, 1],
                        "ablation_seeds": [0, 1], "results_dir": str(tmp_path)})
    m = {f"{k}_top{t}": 10.0 + t for k in ("ca", "asr") for t in (1, 3, 5, 10)}
    rows = [matrix_row("badnet", label, "embedded", seed, m, 0.0, 0)
            for label in ("none", "abd_uap", "abd_i_adv", "abd_lbd10", "abd_lbd50", "abd_random") for seed in (0, 1)]
    t = abd.table(pd.DataFrame(rows), p, "Table III")
    asr = t[t.metric == "asr"].set_index("defence")
    assert set(asr.index) == {"none", "abd_uap", "abd_i_adv", "abd_lbd10", "abd_lbd50", "abd_random"}
    assert asr.loc["abd_i_adv", "paper"] == pytest.approx(10.49) and asr.loc["abd_uap", "paper"] == pytest.approx(18.39)
    assert asr.loc[["abd_lbd10", "abd_lbd50", "abd_random"], "paper"].isna().all()
    assert (asr.n_seeds == 2).all()


# --- augmentations ------------------------------------------------------------------------------
def test_autoaugment_is_seeded_and_keeps_shape():
    imgs = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    a = AutoAugmentImages()({"images": imgs}, 0, torch.Generator().manual_seed(5))["images_aug"]
    b = AutoAugmentImages()({"images": imgs}, 0, torch.Generator().manual_seed(5))["images_aug"]
    assert a.shape == imgs.shape and a.dtype == torch.uint8 and torch.equal(a, b)


def test_joint_views_go_through_a_batchnorm_tower_in_one_pass():
    """CleanCLIP's trainer encodes each image and its augmented view in one batch: with BatchNorm in
    training mode the two views then share batch statistics, which two passes would not."""
    from paperlib.train.losses import JOINT_IMAGES

    class Tower(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bn, self.calls = torch.nn.BatchNorm1d(3), 0

        def encode_image(self, x):
            self.calls += 1
            return self.bn(x.float().mean(dim=(2, 3))) + torch.arange(3.0)

    imgs = torch.randint(0, 128, (4, 3, 8, 8), dtype=torch.uint8)
    aug = torch.randint(128, 256, (4, 3, 8, 8), dtype=torch.uint8)     # another brightness: other statistics
    batch = AutoAugmentImages(joint=True)({"images": imgs}, 0, torch.Generator().manual_seed(1))
    assert batch[JOINT_IMAGES] == ("images", "images_aug")
    batch["images_aug"] = aug
    model = Tower().train()
    step = StepContext(model, batch)
    joint_img, joint_aug = step.image_features("images"), step.image_features("images_aug")
    assert model.calls == 1                                            # one forward pass for both views
    from paperlib.models import normalize_images
    whole = F.normalize(Tower().train().encode_image(normalize_images(torch.cat([imgs, aug]))), dim=-1)
    assert torch.allclose(joint_img, whole[:4], atol=1e-6) and torch.allclose(joint_aug, whole[4:], atol=1e-6)
    apart = StepContext(Tower().train(), {"images": imgs, "images_aug": aug})   # no joint mark: two passes
    assert not torch.allclose(apart.image_features("images"), joint_img, atol=1e-3)
    assert AutoAugmentImages()({"images": imgs}, 0, torch.Generator()).get(JOINT_IMAGES) is None


def test_cleanclip_marks_its_views_joint_unless_asked_not_to():
    from paperlib.config import replace
    from paperlib.defences.cleanclip import CleanCLIPConfig, cleanclip_parts
    from paperlib.models import get_tokenizer
    ctx = DefenceContext("tiny-rn64", get_tokenizer("tiny-rn64"), torch.device("cpu"), _pairs(8), steps_per_epoch=1)
    aug = [t for t in cleanclip_parts(CleanCLIPConfig(), ctx).transforms if isinstance(t, AutoAugmentImages)]
    assert len(aug) == 1 and aug[0].joint
    aug = [t for t in cleanclip_parts(replace(CleanCLIPConfig(), joint_views=False), ctx).transforms
           if isinstance(t, AutoAugmentImages)]
    assert not aug[0].joint
    aug = [t for t in cleanclip_parts(replace(CleanCLIPConfig(), inmodal_weight=0.0), ctx).transforms
           if isinstance(t, AutoAugmentImages)]
    assert not aug[0].joint                          # no in-modal term: CleanCLIP's trainer concatenates nothing


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
        # the pairs' captions hold two nouns and one relation, too few for a caption vocabulary
        # (every pair would be skipped): the WordNet one keeps the counterfactual term at work
        cfg = replace(cfg, subset_fraction=0.5, vocab_size=200, replacement_vocab="wordnet")
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


def test_cleanerclip_defaults_and_vocabulary_from_the_pair_captions():
    """Issue 23 item 3: one-slot negatives and the training-caption vocabulary by default, the
    former construction (full caption, WordNet) as the ablation; the share of pairs is Sec. 4.2's."""
    from paperlib.config import replace
    from paperlib.defences.cleanerclip import CleanerCLIPConfig, pair_captions
    from paperlib.models import get_tokenizer
    from paperlib.text.subcaptions import ReplacementVocab
    base = _pairs(32)
    nouns = ["square", "dog", "cat", "kite"]
    texts = [[f"a {WORDS[k % 4]} {nouns[k % 4]} to the left of a small {nouns[(k + 1) % 4]}",
              f"a {nouns[(k + 2) % 4]} above a {nouns[(k + 3) % 4]}"] for k in range(32)]
    tokenizer = get_tokenizer("tiny-rn64")
    tokens = np.stack([tokenizer(t).numpy() for t in texts])
    pairs = TensorPairs(base.images, tokens, texts=texts).subset(np.arange(16))    # the rows it sees
    cfg = CleanerCLIPConfig()
    assert (cfg.negatives, cfg.replacement_vocab) == ("one_slot", "training_captions")
    assert cfg.subset_fraction == 1000 / 500_000
    assert pair_captions(pairs.subset([0, 1])) == texts[0] + texts[1]

    def generator(c):
        ctx = DefenceContext("tiny-rn64", tokenizer, torch.device("cpu"), pairs, steps_per_epoch=2)
        p = plan("cleanerclip", c, ctx)
        sub = next(t for t in p.transforms if isinstance(t, SubcaptionBatch))
        return p.info, sub

    info, sub = generator(replace(cfg, subset_fraction=1.0))
    gen = sub.gen
    assert info["replacement_vocab"] == "training_captions" and gen.negatives == "one_slot"
    assert gen.vocab.closed and set(gen.vocab.nouns) == set(nouns)
    assert set(gen.vocab.adjectives) == set(WORDS) | {"small"}
    assert set(gen.vocab.relations) == {"to the left of", "above"}
    pos, neg = gen(["a red square to the left of a small dog"] * 30, np.random.default_rng(0))
    assert set(pos) == {"a square to the left of a dog"}
    assert set(neg) == {"a square above a dog", "a cat to the left of a dog", "a kite to the left of a dog",
                        "a square to the left of a cat", "a square to the left of a kite"}
    out = sub(pairs.fetch(np.arange(8)), step=0, generator=torch.Generator().manual_seed(0))
    assert out["subcaption_rows"].tolist() == list(range(8)) and out["tokens_neg"].shape[0] == 8
    info, sub = generator(replace(cfg, negatives="full_caption", replacement_vocab="wordnet", vocab_size=200))
    assert info["replacement_vocab"] == "wordnet" and sub.gen.negatives == "full_caption"
    assert sub.gen.vocab == ReplacementVocab.from_wordnet(200, seed=0)


def test_subcaption_batch_leaves_out_pairs_without_a_replacement():
    """With a closed vocabulary too small for a caption (its two nouns and one relation are all
    there is), the pair gets no sub-captions instead of stopping the training."""
    from paperlib.models import get_tokenizer
    from paperlib.text.subcaptions import ReplacementVocab, SubcaptionGenerator
    pairs = _pairs(32)                  # "a <colour> square to the left of a small dog"
    vocab = ReplacementVocab.from_captions([t for ts in pairs.texts for t in ts])
    gen = SubcaptionGenerator(vocab)
    tf = SubcaptionBatch(gen, get_tokenizer("tiny-rn64"), n_pairs=32, steps_per_epoch=4,
                         fraction=1.0, minimum=1, seed=0)
    out = tf(pairs.fetch(np.arange(8)), step=0, generator=torch.Generator().manual_seed(0))
    assert out["subcaption_rows"].tolist() == [] and "tokens_neg" not in out and gen.n_skipped == 8
