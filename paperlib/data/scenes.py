"""Composite scenes: backgrounds plus 1-3 alpha-matted objects, with exact masks and captions.

Each scene is drawn from its own random generator seeded by ``(seed, split_id, index)``, so a
scene does not depend on how rendering is split across processes, and any one scene can be
re-rendered alone.  Objects keep their exact visible masks (an instance map: 0 = background,
k = k-th object, later objects occlude earlier ones) and their visible boxes; EftCLIP's
segmentation oracle is trained and scored on them.
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from paperlib.data.captions import SceneObject, caption_scene

BACKGROUNDS = ("solid", "gradient", "noise", "stripes", "checker", "dots", "scenery")

# Colour words and representative RGB values (used to name and to draw colours).
COLOUR_RGB = {
    "red": (220, 40, 40), "orange": (240, 140, 30), "yellow": (240, 220, 50),
    "green": (60, 170, 60), "blue": (50, 90, 220), "purple": (140, 60, 190),
    "pink": (240, 130, 180), "brown": (130, 80, 40), "white": (245, 245, 245),
    "grey": (128, 128, 128), "black": (20, 20, 20),
}


@dataclass(frozen=True)
class SceneStyle:
    """How the scenes of one split look.  Every field is a parameter of the split."""

    image_size: int = 64
    n_objects: tuple[int, int] = (1, 3)
    scale: tuple[float, float] = (0.25, 0.6)   # longest object side / image side
    rotation: float = 15.0                     # degrees, uniform in [-r, r]
    flip: float = 0.5
    jitter: float = 0.2                        # brightness/contrast/saturation amplitude
    hue_shift: float = 0.04                    # small hue shift amplitude (fraction of circle)
    p_recolour: float = 0.1                    # chance of a large random hue shift
    backgrounds: tuple[str, ...] = ("solid", "gradient", "noise", "stripes", "checker", "dots")
    photo_noise: float = 0.0                   # std of pixel noise (0-255) added at the end
    blur: float = 0.0                          # chance of a slight blur (photo look)
    register: str = "plain"
    max_overlap: float = 0.3                   # IoU above which a placement is re-drawn


def colour_name(rgb: np.ndarray) -> str:
    """The dominant colour word of an (N, 3) uint8 array of pixels."""
    if len(rgb) == 0:
        return ""
    x = rgb.astype(np.float32) / 255.0
    mx, mn = x.max(1), x.min(1)
    v = mx
    s = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    delta = np.maximum(mx - mn, 1e-6)
    h = np.where(mx == r, ((g - b) / delta) % 6, np.where(mx == g, (b - r) / delta + 2, (r - g) / delta + 4))
    h = h * 60.0
    names = np.full(len(x), "grey", dtype=object)
    chroma = (s >= 0.25) & (v >= 0.2)
    names[~chroma & (v > 0.8)] = "white"
    names[v < 0.2] = "black"
    bins = [(15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (255, "blue"),
            (290, "purple"), (340, "pink"), (361, "red")]
    hue_name = np.empty(len(x), dtype=object)
    lo = 0
    for hi, name in bins:
        hue_name[(h >= lo) & (h < hi)] = name
        lo = hi
    brown = (hue_name == "orange") & (v < 0.6)
    hue_name[brown] = "brown"
    names[chroma] = hue_name[chroma]
    values, counts = np.unique(names.astype(str), return_counts=True)
    return str(values[np.argmax(counts)])


def _random_colour(rng) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _named_colour(rng) -> tuple[str, np.ndarray]:
    name = list(COLOUR_RGB)[rng.integers(len(COLOUR_RGB))]
    base = np.array(COLOUR_RGB[name], np.float32)
    return name, np.clip(base + rng.normal(0, 12, 3), 0, 255)


def make_background(kind: str, side: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """An (side, side, 3) float32 background and the phrase that describes it."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    if kind == "solid":
        name, c = _named_colour(rng)
        return np.broadcast_to(c, (side, side, 3)).copy(), name
    if kind == "gradient":
        (n1, c1), (n2, c2) = _named_colour(rng), _named_colour(rng)
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle))
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return c1 * (1 - t[..., None]) + c2 * t[..., None], f"{n1} and {n2}" if n1 != n2 else n1
    if kind == "noise":
        cells = int(rng.integers(2, 9))
        grid = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(grid).resize((side, side), Image.BICUBIC), np.float32)
        return img, "colourful"
    if kind in ("stripes", "checker", "dots"):
        (n1, c1), (n2, c2) = _named_colour(rng), _named_colour(rng)
        freq = rng.uniform(3, 10)
        if kind == "stripes":
            angle = rng.uniform(0, math.pi)
            t = np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle))) > 0
            word = "striped"
        elif kind == "checker":
            t = (np.floor(xx * freq) + np.floor(yy * freq)) % 2 > 0
            word = "checkered"
        else:
            fx, fy = (xx * freq) % 1 - 0.5, (yy * freq) % 1 - 0.5
            t = fx ** 2 + fy ** 2 < rng.uniform(0.04, 0.12)
            word = "dotted"
        return np.where(t[..., None], c1, c2).astype(np.float32), word
    if kind == "scenery":  # sky above a horizon, textured ground below: a "photo" look
        horizon = rng.uniform(0.35, 0.7)
        sky_top, sky_bottom = np.array([70, 120, 210.]), np.array([170, 200, 240.])
        sky = sky_top * (1 - yy[..., None]) + sky_bottom * yy[..., None]
        ground_name, ground = _named_colour(rng)
        cells = int(rng.integers(4, 12))
        tex = rng.normal(0, 25, size=(cells, cells, 1)).astype(np.float32)
        tex = np.asarray(Image.fromarray(tex[..., 0]).resize((side, side), Image.BICUBIC))[..., None]
        img = np.where((yy > horizon)[..., None], ground + tex, sky)
        return np.clip(img, 0, 255).astype(np.float32), "outdoor"
    raise ValueError(f"unknown background {kind!r}; valid: {', '.join(BACKGROUNDS)}")


def jitter_sprite(rgba: np.ndarray, style: SceneStyle, rng: np.random.Generator) -> np.ndarray:
    """Brightness / contrast / saturation / hue jitter of an RGBA sprite (alpha kept)."""
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:]
    a = style.jitter
    if a > 0:
        rgb = rgb * rng.uniform(1 - a, 1 + a)                                   # brightness
        mean = rgb[alpha[..., 0] > 0].mean() if (alpha > 0).any() else rgb.mean()
        rgb = (rgb - mean) * rng.uniform(1 - a, 1 + a) + mean                    # contrast
        grey = rgb.mean(-1, keepdims=True)
        rgb = (rgb - grey) * rng.uniform(1 - a, 1 + a) + grey                    # saturation
    shift = rng.uniform(0, 1) if rng.random() < style.p_recolour else rng.uniform(-style.hue_shift, style.hue_shift)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    if abs(shift) > 1e-3:
        hsv = np.asarray(Image.fromarray(rgb).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256
        rgb = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    return np.concatenate([rgb, alpha], -1)


def _transform_sprite(sprite: np.ndarray, target: int, style: SceneStyle, rng) -> np.ndarray:
    """Resize (longest side = target px), flip, rotate and colour-jitter one RGBA sprite."""
    img = Image.fromarray(sprite, "RGBA")
    bbox = img.getbbox() or (0, 0, img.width, img.height)
    img = img.crop(bbox)
    w, h = img.size
    scale = target / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
    if rng.random() < style.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if style.rotation > 0:
        img = img.rotate(rng.uniform(-style.rotation, style.rotation), Image.BILINEAR, expand=True)
    return jitter_sprite(np.asarray(img), style, rng)


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Scene:
    image: np.ndarray                 # (H, W, 3) uint8
    instances: np.ndarray             # (H, W) uint8, 0 = background, k = object k (1-based)
    class_ids: list[int]
    boxes: list[tuple[int, int, int, int]]  # visible boxes, x0 y0 x1 y1 (exclusive)
    objects: list[SceneObject] = field(default_factory=list)
    background: str = ""


def render_scene(sprites: list[np.ndarray], class_ids: list[int], names: list[str],
                 style: SceneStyle, rng: np.random.Generator, centred: bool = False) -> Scene:
    """Render one scene from the given RGBA sprites (one per object)."""
    side = style.image_size
    kind = style.backgrounds[rng.integers(len(style.backgrounds))]
    canvas, bg_word = make_background(kind, side, rng)
    instances = np.zeros((side, side), np.uint8)
    placed_boxes: list[tuple[int, int, int, int]] = []
    sizes = []
    for k, sprite in enumerate(sprites, start=1):
        frac = rng.uniform(*style.scale)
        obj = _transform_sprite(sprite, max(4, round(frac * side)), style, rng)
        h, w = obj.shape[:2]
        for _attempt in range(10):
            if centred:
                x0 = int(round((side - w) / 2 + rng.uniform(-0.1, 0.1) * side))
                y0 = int(round((side - h) / 2 + rng.uniform(-0.1, 0.1) * side))
            else:
                x0 = int(rng.integers(min(0, side - w), max(1, side - w + 1)))
                y0 = int(rng.integers(min(0, side - h), max(1, side - h + 1)))
            box = (x0, y0, x0 + w, y0 + h)
            if all(_iou(box, b) <= style.max_overlap for b in placed_boxes):
                break
        placed_boxes.append(box)
        # paste the part of the sprite that falls inside the canvas
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(side, x0 + w), min(side, y0 + h)
        if cx1 <= cx0 or cy1 <= cy0:
            sizes.append(frac)
            continue
        patch = obj[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].astype(np.float32)
        alpha = patch[..., 3:] / 255.0
        region = canvas[cy0:cy1, cx0:cx1]
        canvas[cy0:cy1, cx0:cx1] = region * (1 - alpha) + patch[..., :3] * alpha
        instances[cy0:cy1, cx0:cx1][alpha[..., 0] >= 0.5] = k
        sizes.append(frac)
    if style.blur > 0 and rng.random() < style.blur:
        from PIL import ImageFilter
        canvas = np.asarray(Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
                            .filter(ImageFilter.GaussianBlur(0.6)), np.float32)
    if style.photo_noise > 0:
        canvas = canvas + rng.normal(0, style.photo_noise, canvas.shape)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    boxes, objects = [], []
    for k, (cid, name, frac) in enumerate(zip(class_ids, names, sizes), start=1):
        ys, xs = np.nonzero(instances == k)
        if len(xs) == 0:
            box = (0, 0, 0, 0)
        else:
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        boxes.append(box)
        size_word = "tiny" if frac < 0.22 else "small" if frac < 0.33 else (
            "large" if frac > 0.55 else "big" if frac > 0.47 else "")
        objects.append(SceneObject(name=name, colour=colour_name(image[instances == k]),
                                   size=size_word, box=box, depth=k))
    return Scene(image=image, instances=instances, class_ids=list(class_ids), boxes=boxes,
                 objects=objects, background=bg_word)


def scene_captions(scene: Scene, n: int, style: SceneStyle, rng: np.random.Generator) -> list[str]:
    """``n`` captions of a scene, naming only objects that remain visible."""
    visible = [o for o in scene.objects if o.box[2] > o.box[0]]
    return [caption_scene(visible or scene.objects[:1], scene.background, style.image_size, rng,
                          register=style.register) for _ in range(n)]


def hsv_to_rgb(h, s, v):  # small helper for tests and palettes
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h, s, v))
