"""BadNet trigger geometry: the patch is exactly where mu says and nowhere else."""
import numpy as np
import pytest
import torch

from paperlib.attacks import build_attack
from paperlib.attacks.badnet import BadNet, BadNetConfig, patch_side


def _images(n=4, side=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("position,corner", [("top_left", (0, 0)), ("bottom_right", (59, 59)),
                                             ("centre", (29, 29))])
def test_fixed_positions(position, corner):
    atk = BadNet(BadNetConfig(position=position), image_side=64)
    assert atk.side == patch_side(64, 16 / 224) == 5
    x = _images()
    y = atk(x)
    changed = (y != x).any(1)  # (n, H, W)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    r, c = corner
    mask[r:r + 5, c:c + 5] = True
    assert not changed[:, ~mask].any(), "pixels outside the patch changed"
    assert torch.equal(y[:, :, r:r + 5, c:c + 5], atk.pattern.expand(4, 3, 5, 5))


def test_margin_moves_corner_patch():
    atk = BadNet(BadNetConfig(position="bottom_right", margin=3), image_side=64)
    y = atk(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert torch.equal(y[0, :, 56:61, 56:61], atk.pattern)
    assert y[0, :, 61:, :].sum() == 0


def test_random_position_varies_but_patch_is_the_same_pattern():
    atk = BadNet(BadNetConfig(position="random", pattern="checkerboard"), image_side=64)
    x = torch.zeros(16, 3, 64, 64, dtype=torch.uint8)
    y = atk(x, torch.Generator().manual_seed(1))
    corners = set()
    for i in range(16):
        ys, xs = torch.nonzero(y[i].any(0), as_tuple=True)
        corners.add((int(ys.min()), int(xs.min())))
        assert int(ys.max() - ys.min()) <= 4 and int(xs.max() - xs.min()) <= 4
    assert len(corners) > 8


def test_pattern_is_clipped_uint8_and_fixed_by_seed():
    a = BadNet(BadNetConfig(pattern_seed=3), image_side=224)
    b = BadNet(BadNetConfig(pattern_seed=3), image_side=224)
    assert a.side == 16 and a.pattern.dtype == torch.uint8
    assert torch.equal(a.pattern, b.pattern)
    assert a.pattern.float().std() > 30  # noise, not a flat patch


def test_float_images_are_refused():
    atk = build_attack("badnet")
    with pytest.raises(TypeError):
        atk(torch.rand(1, 3, 64, 64))
