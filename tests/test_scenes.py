"""Scene rendering: determinism, exact masks and boxes, captions that name what is visible."""
import numpy as np
import pytest

from paperlib.data.captions import SceneObject, caption_scene, frame_position, relation
from paperlib.data.scenes import SceneStyle, colour_name, make_background, render_scene


def _sprite(colour, size=32):
    s = np.zeros((size, size, 4), np.uint8)
    s[4:28, 8:24, :3] = colour
    s[4:28, 8:24, 3] = 255
    return s


def _render(seed, n=2, **kw):
    style = SceneStyle(image_size=64, jitter=0.0, hue_shift=0.0, p_recolour=0.0, **kw)
    sprites = [_sprite((220, 30, 30)), _sprite((40, 60, 220))][:n]
    return render_scene(sprites, list(range(n)), ["apple", "car"][:n], style, np.random.default_rng(seed))


def test_render_is_deterministic_for_a_seed():
    a, b, c = _render(3), _render(3), _render(4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.instances, b.instances)
    assert not np.array_equal(a.image, c.image)


def test_instance_map_matches_boxes_and_pixels():
    for seed in range(10):
        s = _render(seed)
        for k, box in enumerate(s.boxes, start=1):
            ys, xs = np.nonzero(s.instances == k)
            if len(xs) == 0:
                continue
            assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        # object pixels carry the sprite's colour (no jitter): red object where instance == 1
        red = s.image[s.instances == 1]
        if len(red):
            assert (red[:, 0] > 150).mean() > 0.9


def test_colour_names_by_hand():
    assert colour_name(np.array([[230, 20, 20]] * 5)) == "red"
    assert colour_name(np.array([[30, 60, 230]] * 5)) == "blue"
    assert colour_name(np.array([[250, 250, 250]] * 5)) == "white"
    assert colour_name(np.array([[10, 10, 10]] * 5)) == "black"
    assert colour_name(np.array([[240, 220, 40]] * 3 + [[30, 60, 230]])) == "yellow"  # the mode


def test_relations_and_positions():
    a = SceneObject("apple", "red", "", (0, 20, 10, 30), 1)
    b = SceneObject("car", "blue", "", (40, 20, 50, 30), 2)
    assert relation(a, b) == "to the left of" and relation(b, a) == "to the right of"
    top = SceneObject("sun", "", "", (20, 0, 30, 8), 1)
    assert relation(top, a) == "above"
    assert frame_position((0, 0, 10, 10), 64) == "in the top left corner"
    assert frame_position((27, 27, 37, 37), 64) == "in the centre"


def test_captions_name_every_object():
    s = _render(5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        cap = caption_scene(s.objects, s.background, 64, rng)
        assert "apple" in cap and "car" in cap


def test_descriptive_register_is_a_sentence():
    s = _render(5, register="descriptive")
    cap = caption_scene(s.objects, s.background, 64, np.random.default_rng(1), register="descriptive")
    assert cap[0].isupper() and cap.endswith(".")


@pytest.mark.parametrize("kind", ["solid", "gradient", "noise", "stripes", "checker", "dots", "scenery"])
def test_backgrounds(kind):
    img, word = make_background(kind, 32, np.random.default_rng(0))
    assert img.shape == (32, 32, 3) and img.min() >= 0 and img.max() <= 255 and word


def test_unknown_background():
    with pytest.raises(ValueError, match="solid"):
        make_background("marble", 32, np.random.default_rng(0))
