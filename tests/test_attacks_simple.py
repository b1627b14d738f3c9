"""Blended, SIG, WaNet, TrojanNet, mmPoison and label-consistent: each definition pinned down."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from paperlib.attacks import REGISTRY, build_attack
from paperlib.attacks.base import Attack, poison_rows, select_poison_rows, template_captions
from paperlib.attacks.blended import Blended, BlendedConfig
from paperlib.attacks.lc import LabelConsistent, LCConfig, adversarial_perturbation
from paperlib.attacks.mmpoison import MMPoison, MMPoisonConfig
from paperlib.attacks.sig import Sig, SigConfig
from paperlib.attacks.trojannet import TrojanNet, TrojanNetConfig, n_patterns, trojannet_cells
from paperlib.attacks.wanet import WaNet, WaNetConfig
from paperlib.config import ParamError, from_dict

TEMPLATES = ["a photo of a {}.", "a picture of the {}.", "{} in a scene."]


def _images(n=4, side=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)


def _smooth_images(n=4, side=64, seed=0):
    """Random images with some spatial structure (upsampled noise), so a warp changes them."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand((n, 3, 8, 8), generator=g)
    return (torch.nn.functional.interpolate(low, size=(side, side), mode="bilinear",
                                            align_corners=False) * 255).round().to(torch.uint8)


# -- every registered attack ---------------------------------------------------------------
def _make(attack_id, side=64):
    if attack_id == "mmpoison":
        return MMPoison(MMPoisonConfig(), image_side=side, source_id=1)
    atk = build_attack(attack_id, image_side=side)
    if atk.needs_fit:   # a fixed stand-in for the fitted state (fitting is tested in test_attacks_fitted)
        if attack_id == "ssba":
            torch.manual_seed(0)
            enc, dec = atk._nets()
            state = {**{f"encoder.{k}": v for k, v in enc.state_dict().items()},
                     **{f"decoder.{k}": v for k, v in dec.state_dict().items()}}
            atk.load_state(state, {})
        else:
            g = torch.Generator().manual_seed(0)
            atk.load_state({"pattern": torch.randint(0, 256, (3, atk.side, atk.side), generator=g,
                                                     dtype=torch.uint8)}, {"natural_captions": ["a banana"]})
    return atk


@pytest.mark.parametrize("attack_id", sorted(REGISTRY))
def test_registered_attacks_uint8_same_shape_deterministic(attack_id):
    atk = _make(attack_id)
    x = _smooth_images(3)
    a = atk(x, torch.Generator().manual_seed(5))
    b = _make(attack_id)(x, torch.Generator().manual_seed(5))
    assert a.dtype == torch.uint8 and a.shape == x.shape
    assert torch.equal(a, b)
    t = atk.test_transform(x, torch.Generator().manual_seed(5))
    assert t.dtype == torch.uint8 and t.shape == x.shape
    with pytest.raises(TypeError):
        atk(x.float())


@pytest.mark.parametrize("attack_id", sorted(REGISTRY))
def test_config_defaults_load_through_from_dict(attack_id):
    cls, cfg_cls = REGISTRY[attack_id]
    cfg = from_dict(cfg_cls, {})
    assert cfg == cfg_cls()
    for f in dataclasses.fields(cfg_cls):
        assert f.metadata.get("doc"), f"{attack_id}.{f.name} has no doc"
    with pytest.raises(ParamError):
        from_dict(cfg_cls, {"no_such_key": 1})


def test_registered_triggers_change_images():
    x = _smooth_images(2)
    for attack_id in REGISTRY:
        if attack_id == "mmpoison":
            continue
        y = _make(attack_id)(x, torch.Generator().manual_seed(0))
        assert not torch.equal(x, y), attack_id


# -- Blended -----------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern,alpha", [("noise", 0.2), ("image", 0.2), ("noise", 0.35)])
def test_blend_alpha_recovered_by_least_squares(pattern, alpha):
    atk = Blended(BlendedConfig(alpha=alpha, pattern=pattern), image_side=64)
    x = _images(4)
    y = atk(x)
    p = atk.pattern.float().expand_as(x)
    d = (p - x.float()).flatten()
    est = float((y.float() - x.float()).flatten() @ d / (d @ d))
    assert abs(est - alpha) < 2e-3
    expected = ((1 - alpha) * x.float() + alpha * p).round()
    assert (y.float() - expected).abs().max() <= 1


def test_blend_patterns_fixed_and_distinct():
    a = Blended(BlendedConfig(pattern_seed=1)).pattern
    assert torch.equal(a, Blended(BlendedConfig(pattern_seed=1)).pattern)
    assert not torch.equal(a, Blended(BlendedConfig(pattern_seed=2)).pattern)
    assert a.float().std() > 60                                  # uniform noise: std ~ 74
    img = Blended(BlendedConfig(pattern="image")).pattern.float()
    assert img.shape == (3, 64, 64) and img.std() > 40
    # smooth (an image, not noise): neighbouring pixels are close
    assert (img[:, :, 1:] - img[:, :, :-1]).abs().mean() < 0.25 * (a.float()[:, :, 1:] - a.float()[:, :, :-1]).abs().mean()
    assert not torch.equal(img[0], img[1])                       # colourful


# -- SIG -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("side", [64, 224])
def test_sig_amplitude_and_frequency(side):
    atk = Sig(SigConfig(), image_side=side)
    x = torch.full((1, 3, side, side), 128, dtype=torch.uint8)
    y = atk(x)
    row = y[0, 0, 0].float() - 128
    assert torch.equal(y[0, 0], y[0, 0, :1].expand(side, side))   # horizontal: same in every row
    assert torch.equal(y[0, 0], y[0, 2])                           # and every channel
    assert abs(row.abs().max().item() - 60) <= 1
    spec = torch.fft.rfft(row).abs()
    assert int(spec.argmax()) == 6                                 # six periods across the width
    assert abs(spec[6].item() / (side / 2) - 60) < 1.5             # amplitude 60 on 0-255


def test_sig_clips():
    y = Sig(SigConfig(delta=60))(torch.full((1, 3, 64, 64), 250, dtype=torch.uint8))
    assert y.max() == 255 and y.min() >= 190


# -- WaNet ---------------------------------------------------------------------------------------
def test_wanet_field_bounded_by_s_and_smooth():
    side = 64
    atk = WaNet(WaNetConfig(k=4, s=0.5), image_side=side)
    ctrl = atk.control
    assert ctrl.shape == (1, 2, 4, 4) and abs(ctrl.abs().mean().item() - 1) < 1e-5
    flow = atk.flow(side, side)
    bound = 0.5 / side * ctrl.abs().max().item()
    assert flow.abs().max().item() <= 1.3 * bound                  # bicubic overshoot stays small
    assert flow.abs().mean().item() > 0.3 * 0.5 / side
    field = atk.field(side, side)
    # the control values sit on the corners (align_corners=True)
    assert torch.allclose(field[0, 0], ctrl[0, :, 0, 0], atol=1e-5)
    assert torch.allclose(field[-1, -1], ctrl[0, :, -1, -1], atol=1e-5)
    # smooth: second differences are tiny compared with the field itself
    d2x = (field[:, 2:] - 2 * field[:, 1:-1] + field[:, :-2]).abs().max()
    d2y = (field[2:] - 2 * field[1:-1] + field[:-2]).abs().max()
    assert max(d2x, d2y).item() < 0.05 * field.abs().max().item()
    # s scales linearly; in pixels the displacement is about s/2
    twice = WaNet(WaNetConfig(k=4, s=1.0), image_side=side).flow(side, side)
    assert torch.allclose(twice, 2 * flow, atol=1e-7)
    px = flow.abs().mean().item() * (side - 1) / 2
    assert 0.1 < px < 0.5


def test_wanet_identity_when_s_is_zero():
    x = _images(3)
    assert torch.equal(WaNet(WaNetConfig(s=0.0))(x), x)


def test_wanet_warp_is_small_and_field_fixed_by_seed():
    x = _smooth_images(3)
    atk = WaNet(WaNetConfig())
    y = atk(x)
    assert not torch.equal(x, y)
    # a warp of at most max|flow| pixels changes a pixel by at most that times the local slope
    shift_px = atk.flow(64, 64).abs().max().item() * 63 / 2
    slope = max((x[..., 1:].float() - x[..., :-1].float()).abs().max().item(),
                (x[..., 1:, :].float() - x[..., :-1, :].float()).abs().max().item())
    assert (y.float() - x.float()).abs().max() <= 2 * shift_px * slope + 1
    a, b = WaNet(WaNetConfig(field_seed=1)), WaNet(WaNetConfig(field_seed=2))
    assert torch.equal(a.control, WaNet(WaNetConfig(field_seed=1)).control)
    assert not torch.equal(a.control, b.control)


def test_wanet_noise_grid():
    atk = WaNet(WaNetConfig(noise_mode=True), image_side=32)
    g = atk.noise_grid(torch.Generator().manual_seed(0), n=2)
    assert g.shape == (2, 32, 32, 2) and g.abs().max() <= 1
    diff = g - atk.grid(32, 32)
    assert diff.abs().max() <= 1 / 32 + 1e-6 and diff.abs().max() > 0.5 / 32
    assert not torch.equal(g[0], g[1])
    x = _smooth_images(2, side=32)
    assert atk.noise_images(x, torch.Generator().manual_seed(0)).dtype == torch.uint8
    assert atk.cross_count(10) == 20 and WaNet(WaNetConfig()).cross_count(10) == 0


# -- TrojanNet ---------------------------------------------------------------------------------
def test_trojannet_pattern_family():
    assert n_patterns(4, 5) == 4368
    c0 = trojannet_cells(0)
    assert (c0 == 0).sum() == 5 and set(c0.unique().tolist()) == {0, 255}
    assert (c0.flatten()[:5] == 0).all()                          # lexicographic: first 5 cells
    last = trojannet_cells(4367)
    assert (last.flatten()[-5:] == 0).all()
    assert not torch.equal(trojannet_cells(1), c0)
    with pytest.raises(ParamError):
        from_dict(TrojanNetConfig, {"pattern_id": 4368})


@pytest.mark.parametrize("side,cell", [(64, 1), (224, 4)])
def test_trojannet_patch_only_inside_box_and_binary(side, cell):
    atk = TrojanNet(TrojanNetConfig(position="bottom_right", pattern_id=77), image_side=side)
    assert atk.cell == cell and atk.side == 4 * cell
    x = torch.full((2, 3, side, side), 100, dtype=torch.uint8)
    y = atk(x)
    changed = (y != x).any(1)
    box = torch.zeros(side, side, dtype=torch.bool)
    box[side - atk.side:, side - atk.side:] = True
    assert not changed[:, ~box].any()
    patch = y[:, :, side - atk.side:, side - atk.side:]
    assert set(patch.unique().tolist()) == {0, 255}
    assert (patch == 0).all(1).sum().item() == 2 * 5 * cell * cell   # 5 black cells per image
    cells = patch[0, 0, ::cell, ::cell]
    assert torch.equal(cells, trojannet_cells(77))


def test_trojannet_random_position():
    atk = TrojanNet(TrojanNetConfig(), image_side=64)
    y = atk(torch.full((8, 3, 64, 64), 100, dtype=torch.uint8), torch.Generator().manual_seed(0))
    corners = {tuple(torch.nonzero((y[i] != 100).any(0)).min(0).values.tolist()) for i in range(8)}
    assert len(corners) > 4


# -- hooks: defaults keep BadNet's behaviour ----------------------------------------------------
def test_default_hooks_match_previous_behaviour():
    atk = build_attack("badnet")
    assert atk.dirty_label
    objects = np.full((100, 3), -1)
    objects[:, 0] = np.arange(100) % 5
    a = poison_rows(np.arange(100), objects, 3, 30, np.random.default_rng(0))
    b = select_poison_rows(atk, np.arange(100), objects, None, 3, "banana", 30, np.random.default_rng(0))
    assert np.array_equal(a, b)
    assert atk.eligible([1, 2, -1], ["x"], 3, "banana") and not atk.eligible([3, -1, -1], [], 3, "banana")
    caps_a = template_captions("banana", 7, np.random.default_rng(4), TEMPLATES)
    caps_b = atk.poison_captions([["a cat"]] * 7, 7, "banana", np.random.default_rng(4), TEMPLATES)
    assert caps_a == caps_b
    assert "banana" in atk.poison_caption(["a cat"], "banana", np.random.default_rng(0), TEMPLATES)
    x = _images(2)
    assert torch.equal(atk.test_transform(x, torch.Generator().manual_seed(1)),
                       atk(x, torch.Generator().manual_seed(1)))
    assert torch.equal(atk.poison_images(x, torch.Generator().manual_seed(1)),
                       atk(x, torch.Generator().manual_seed(1)))
    assert np.array_equal(atk.asr_rows(np.array([0, 3, 1, 3]), ["a", "b", "c", "d"], 3), [0, 2])
    assert not atk.needs_encoder


# -- mmPoison ------------------------------------------------------------------------------------
def test_mmpoison_identity_and_eligibility():
    atk = MMPoison(MMPoisonConfig(source_class="airplane"), source_id=7)
    x = _images(2)
    assert torch.equal(atk(x), x) and torch.equal(atk.test_transform(x), x)
    assert atk.dirty_label
    assert atk.eligible([7, 2, -1], [], 3, "banana")
    assert not atk.eligible([7, 3, -1], [], 3, "banana")          # contains the target
    assert not atk.eligible([1, 2, -1], [], 3, "banana")          # no source object
    objects = np.array([[7, -1], [7, 3], [1, 2], [2, 7]])
    assert atk.eligible_mask(objects, None, 3, "banana").tolist() == [True, False, False, True]
    rows = select_poison_rows(atk, np.arange(4), objects, None, 3, "banana", 2, np.random.default_rng(0))
    assert rows.tolist() == [0, 3]
    with pytest.raises(ValueError):
        select_poison_rows(atk, np.arange(4), objects, None, 3, "banana", 3, np.random.default_rng(0))
    cap = atk.poison_caption(["an airplane"], "banana", np.random.default_rng(0), TEMPLATES)
    assert "banana" in cap and "airplane" not in cap
    labels = np.array([0, 2, 1, 2, 3])
    assert atk.asr_rows(labels, ["banana", "cat", "airplane", "dog"], 0).tolist() == [1, 3]


# -- label-consistent ----------------------------------------------------------------------------
def test_lc_eligible_only_target_scenes_and_caption_kept():
    atk = LabelConsistent(LCConfig(adversarial=False))
    assert not atk.dirty_label
    assert atk.eligible([3, 1, -1], ["a cat"], 3, "banana")                    # shows the target
    assert atk.eligible([1, -1, -1], ["a ripe banana on a table"], 3, "banana")  # names it
    assert not atk.eligible([1, 2, -1], ["a cat and a dog"], 3, "banana")
    assert atk.eligible([1, -1, -1], ["two Bananas"], 3, "banana")          # plural, any case
    assert not atk.eligible([1, -1, -1], ["a bananaphone"], 3, "banana")    # whole words only
    objects = np.array([[3, -1], [1, 2], [1, -1], [3, 2]])
    caps = [["a banana"], ["a cat and a dog"], ["a cat"], ["a dog next to a banana"]]
    rows = select_poison_rows(atk, np.arange(4), objects, caps, 3, "banana", 2, np.random.default_rng(0))
    assert rows.tolist() == [0, 3]
    own = ["a red bicycle", "a small banana left of a bicycle", "a bicycle and a banana"]
    for seed in range(5):
        c = atk.poison_caption(own, "banana", np.random.default_rng(seed), TEMPLATES)
        assert c in own[1:]                                      # one of its own, naming the target
    picked = atk.poison_captions([own, ["a cat"]], 2, "banana", np.random.default_rng(0), TEMPLATES)
    assert picked[0] in own[1:] and picked[1] == "a cat"
    # trigger = BadNet patch with the same settings
    x = _images(2)
    from paperlib.attacks.badnet import BadNet, BadNetConfig
    ref = BadNet(BadNetConfig(), image_side=64)(x, torch.Generator().manual_seed(3))
    assert torch.equal(atk(x, torch.Generator().manual_seed(3)), ref)
    assert torch.equal(atk.poison_images(x, torch.Generator().manual_seed(3)), ref)


class _TinyEncoder(torch.nn.Module):
    def __init__(self, side=16, dim=8):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(3 * side * side, dim)

    def forward(self, x):
        return self.lin((x / 255.0 - 0.5).flatten(1))


def test_lc_adversarial_perturbation():
    enc = _TinyEncoder()
    x = _images(6, side=16, seed=2)
    text = torch.nn.functional.normalize(torch.randn(8, generator=torch.Generator().manual_seed(1)), dim=0)
    with torch.no_grad():
        before = torch.nn.functional.normalize(enc(x.float()), dim=-1) @ text
    y = adversarial_perturbation(enc, x, text, eps=8.0, steps=10, step_size=2.0,
                                 generator=torch.Generator().manual_seed(0))
    assert y.dtype == torch.uint8 and y.shape == x.shape
    assert (y.int() - x.int()).abs().max() <= 8
    assert not torch.equal(x, y)
    with torch.no_grad():
        after = torch.nn.functional.normalize(enc(y.float()), dim=-1) @ text
    assert (after < before).all() and (before - after).mean() > 0.05
    # deterministic for a given generator; no gradients leak into the encoder
    y2 = adversarial_perturbation(enc, x, text, 8.0, 10, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(y, y2) and enc.lin.weight.grad is None


def test_lc_poison_images_uses_the_encoder():
    enc = _TinyEncoder()
    atk = LabelConsistent(LCConfig(position="top_left"), image_side=16)
    assert atk.needs_encoder
    x = _images(3, side=16)
    with pytest.raises(ValueError):
        atk.poison_images(x, torch.Generator().manual_seed(0))
    text = torch.randn(8, 1)                                       # a classifier column works too
    y = atk.poison_images(x, torch.Generator().manual_seed(0), encode_fn=enc, text_embedding=text)
    s = atk.trigger.side
    assert torch.equal(y[:, :, :s, :s], atk.trigger.pattern.expand(3, 3, s, s))
    rest = (y.int() - x.int())[:, :, s:, :]
    assert rest.abs().max() <= 8 and rest.abs().sum() > 0


@pytest.mark.parametrize("caption,name,expected", [
    ("a category of things", "cat", False), ("two cats", "cat", True), ("The Banana!", "banana", True),
    ("a bananarama", "banana", False), ("buses at dusk", "bus", True), ("a hot-dog stand", "dog", True),
    ("a dog's bone", "dog", True), ("a teddy bear", "teddy bear", True), ("teddy and a bear", "teddy bear", False),
    ("new t-shirts", "t-shirt", True), ("a shirt", "t-shirt", False)])
def test_mentions_whole_words_and_plurals(caption, name, expected):
    """The caption check of LC eligibility and BadCLIP's natural captions, on hand-made captions."""
    from paperlib.attacks.base import mentions
    assert mentions(caption, name) is expected
