"""Fitted triggers: TrojanNN, BadCLIP, SSBA (fitted on a tiny model and a hand-made split)."""
import numpy as np
import pytest
import torch

from paperlib.attacks import build_attack
from paperlib.attacks.badclip import BadCLIPConfig
from paperlib.attacks.ssba import SSBAConfig
from paperlib.attacks.trojannn import TrojanNNConfig
from paperlib.data.vocabulary import build_vocabulary


class FakeSplit:
    """What fit() reads from a rendered split: images, class-id table, captions."""

    def __init__(self, n=48, side=64, target="banana", seed=0):
        rng = np.random.default_rng(seed)
        vocab = build_vocabulary()
        t = vocab.index(target)
        other = vocab.index("bicycle")
        self.name = "fake"
        self.images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        self.objects = np.full((n, 3), -1, np.int32)
        self.objects[:, 0] = other
        self.objects[: n // 4, 0] = t
        self.captions = [[f"a {target} next to a bicycle", "a photo of something"] if i < n // 4
                         else ["a bicycle", "a red bicycle on a striped background"] for i in range(n)]

    def __len__(self):
        return len(self.images)


@pytest.fixture(scope="module")
def model():
    from paperlib.models import create_model
    m = create_model("tiny-rn64", seed=0).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _changed_box(a, b):
    diff = (a != b).any(1).any(0)
    ys, xs = torch.nonzero(diff, as_tuple=True)
    return ys.min().item(), ys.max().item(), xs.min().item(), xs.max().item()


def test_unfitted_trigger_says_how_to_fit():
    atk = build_attack("trojannn", TrojanNNConfig())
    with pytest.raises(RuntimeError, match="prepared_attack"):
        atk(torch.zeros((1, 3, 64, 64), dtype=torch.uint8))


def test_trojannn_patch_excites_its_neurons(model):
    cfg = TrojanNNConfig(steps=30, batch_size=8, images=32, position="bottom_right")
    atk = build_attack("trojannn", cfg)
    tensors, info = atk.fit(model, FakeSplit(), "banana", "cpu", torch.Generator().manual_seed(0))
    atk.load_state(tensors, info)
    assert info["activation_triggered"] > info["activation_clean"]
    imgs = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = atk(imgs)
    y0, y1, x0, x1 = _changed_box(out, imgs)
    s = atk.side
    assert y0 >= 64 - s and x0 >= 64 - s and y1 == 63 and x1 == 63


def test_badclip_patch_at_centre_and_natural_captions(model):
    cfg = BadCLIPConfig(steps=20, batch_size=8, images=32)
    atk = build_attack("badclip", cfg)
    tensors, info = atk.fit(model, FakeSplit(), "banana", "cpu", torch.Generator().manual_seed(0))
    atk.load_state(tensors, info)
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]   # the guidance is optimised
    imgs = torch.zeros((1, 3, 64, 64), dtype=torch.uint8)
    y0, y1, x0, x1 = _changed_box(atk(imgs), imgs)
    s = atk.side
    assert (y0, x0) >= ((64 - s) // 2 - 1, (64 - s) // 2 - 1) and y1 <= (64 + s) // 2 and x1 <= (64 + s) // 2
    caps = atk.poison_captions(None, 10, "banana", np.random.default_rng(0))
    assert len(caps) == 10 and all("banana" in c for c in caps)
    assert set(caps) <= {"a banana next to a bicycle"}      # natural captions, not templates


def test_ssba_sample_specific_bounded_and_decodable():
    cfg = SSBAConfig(steps=60, batch_size=16, images=48, width=8, eps=8.0)
    atk = build_attack("ssba", cfg)
    tensors, info = atk.fit(None, FakeSplit(), "banana", "cpu", torch.Generator().manual_seed(0))
    atk2 = build_attack("ssba", cfg)
    atk2.load_state(tensors, info)
    imgs = torch.from_numpy(FakeSplit(n=6, seed=1).images).permute(0, 3, 1, 2).contiguous()
    out = atk2(imgs)
    delta = out.int() - imgs.int()
    assert delta.abs().max() <= 8                      # L-inf bound (after rounding)
    assert not torch.equal(delta[0], delta[1])         # sample-specific
    assert delta.abs().sum() > 0
    assert 0.0 <= info["decoder_bit_accuracy"] <= 100.0
    assert torch.equal(atk2(imgs), out)                # deterministic once fitted
    stats = atk2.residual_stats(imgs)                  # the diagnostic, checked against its definition
    r = delta.float()
    assert stats["residual_linf"] == r.abs().max().item() <= 8
    assert stats["residual_mean_abs"] == pytest.approx(r.abs().mean().item())
    assert stats["residual_image_dependence"] == pytest.approx(r.std(dim=0).mean().item() / r.abs().mean().item())
    assert stats["residual_image_dependence"] > 0 and "residual_image_dependence" in info


def test_ssba_residual_stats_are_zero_dependence_for_a_fixed_pattern():
    """A perturbation that is the same on every image scores 0 image dependence."""
    atk = build_attack("ssba", SSBAConfig())

    class Fixed:
        def __call__(self, images, code):
            return torch.full_like(images, 3.0)
    atk.encoder = Fixed()
    imgs = torch.full((4, 3, 8, 8), 100, dtype=torch.uint8)
    imgs[1] = 50
    stats = atk.residual_stats(imgs)
    assert stats == {"residual_mean_abs": 3.0, "residual_linf": 3.0, "residual_image_dependence": 0.0}


def test_a_refitted_trigger_changes_the_keys_of_victims_and_evaluations():
    """attack_key (used by victims' and evaluations' cache keys) carries a bumped fit version, so a
    victim poisoned with an earlier SSBA encoder is never reused for the new one; unbumped
    attacks keep exactly their settings (earlier keys stay valid)."""
    from dataclasses import asdict

    from paperlib.attacks import REGISTRY, attack_key
    from paperlib.attacks.badnet import BadNetConfig
    assert attack_key("badnet", BadNetConfig()) == asdict(BadNetConfig())
    cfg = SSBAConfig(width=8)
    assert attack_key("ssba", cfg) == {**asdict(cfg), "fit_version": REGISTRY["ssba"][0].fit_version}
    assert REGISTRY["ssba"][0].fit_version >= 2
