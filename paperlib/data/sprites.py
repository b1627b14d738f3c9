"""Per-style banks of RGBA object sprites, normalised and cached as compressed .npz.

Why: the scene renderer pastes many sprites per image, so every sprite of a style is
decoded once, tight-cropped to its alpha bounding box (so an object's pixel size in a
scene means the same thing in every style) and centred on a transparent square canvas
whose side equals the sprite's longest side.  Decoding ~700 SVGs/PNGs/WebPs takes
seconds to a minute; the cache makes every later load a single file read.

Styles and sources (see ``ATTRIBUTION`` for licences):

* ``noto``      colour bitmaps (CBDT) of the Noto Color Emoji font, read with fontTools
* ``twemoji``   64 px PNGs of npm ``emoji-datasource-twitter`` (upsampled: the package
                ships no larger Twitter images)
* ``openmoji``  SVGs of npm ``openmoji``, rendered with resvg (PyPI ``resvg-py``)
* ``tuxpaint``  Tux Paint stamps (mostly photo cut-outs), several per class
* ``fluent3d``  256 px WebP renders of npm ``@lobehub/fluent-emoji-3d`` -- the held-out
                zero-shot style, never used for training (``vocabulary.HELD_OUT_STYLE``)
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from paperlib import assets
from paperlib.assets import AssetMissingError
from paperlib.data import vocabulary as vocab_mod
from paperlib.data.vocabulary import STYLES, Vocabulary

__all__ = ["ATTRIBUTION", "AssetMissingError", "SPRITES_VERSION", "SpriteBank", "load_sprite_bank",
           "normalise_sprite"]

#: Bump when decoding/normalisation changes, so stale caches are never reused.
SPRITES_VERSION = "1"

#: Alpha (0-255) below which a pixel counts as background when cropping: removes the
#: faint halo some cut-outs carry, which would otherwise make the crop loose.
ALPHA_THRESHOLD = 8

#: Licence and credit of each style (entries of paperlib.assets.ATTRIBUTION, keyed by style).
ATTRIBUTION: dict[str, dict[str, str]] = {
    "noto": assets.ATTRIBUTION["noto_color_emoji"],          # OFL-1.1
    "twemoji": assets.ATTRIBUTION["twemoji"],                # CC-BY-4.0
    "openmoji": assets.ATTRIBUTION["openmoji"],              # CC-BY-SA-4.0
    "tuxpaint": assets.ATTRIBUTION["tuxpaint_stamps"],       # GPL-2.0-or-later
    "fluent3d": assets.ATTRIBUTION["fluent_emoji"],          # MIT
}


@dataclass(frozen=True)
class SpriteBank:
    """All sprites of one style: ``images`` (N, size, size, 4) uint8 RGBA, ``class_ids`` (N,) int64.

    ``sources`` names where each sprite came from (codepoint or stamp path) for
    debugging and attribution; ``build_seconds`` is the time the bank took to build
    (stored in the cache, so it is reported even when loaded from it).
    """

    style: str
    images: np.ndarray
    class_ids: np.ndarray
    sources: tuple[str, ...]
    size: int
    build_seconds: float
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.class_ids)

    def indices_of(self, class_id: int) -> np.ndarray:
        """Sprite indices of one class (empty when the style lacks it)."""
        return np.flatnonzero(self.class_ids == class_id)

    def class_set(self) -> list[int]:
        return sorted(set(self.class_ids.tolist()))


# ---------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------
def _alpha_bbox(img: Image.Image, threshold: int) -> tuple[int, int, int, int] | None:
    alpha = img.getchannel("A").point(lambda a: 255 if a > threshold else 0)
    return alpha.getbbox()


def normalise_sprite(img: Image.Image, size: int, threshold: int = ALPHA_THRESHOLD) -> np.ndarray | None:
    """Crop to the alpha bounding box, scale the longest side to ``size``, centre on a square.

    Returns (size, size, 4) uint8, RGB zeroed where fully transparent, or None for an
    empty (all-transparent) image.  Pillow resizes RGBA with premultiplied alpha, so
    edges do not pick up the colour of transparent pixels.
    """
    img = img.convert("RGBA")
    box = _alpha_bbox(img, threshold)
    if box is None:
        return None
    img = img.crop(box)
    for _ in range(2):  # a second pass if resampling faded an edge row to zero alpha
        w, h = img.size
        scale = size / max(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        if new != img.size:
            img = img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
        box = img.getchannel("A").getbbox()
        if box is None:
            return None
        if box == (0, 0, *img.size):
            break
        img = img.crop(box)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(img, ((size - img.width) // 2, (size - img.height) // 2))
    arr = np.asarray(canvas, dtype=np.uint8).copy()
    arr[arr[..., 3] == 0, :3] = 0
    return arr


# ---------------------------------------------------------------------------
# Decoders: each yields (class id, source label, PIL image) for one style
# ---------------------------------------------------------------------------
def _emoji_jobs(vocab: Vocabulary, style: str) -> Iterator[tuple[int, str, str]]:
    """(class id, codepoint key, locator) for every emoji of every class that the style has."""
    index = vocab_mod.style_index(style)
    for cid, cls in enumerate(vocab.classes):
        for key in cls.codepoints:
            if key in index:
                yield cid, key, index[key]


def _decode_noto(vocab: Vocabulary, size: int) -> Iterator[tuple[int, str, Image.Image]]:
    from fontTools.ttLib import TTFont

    strike = TTFont(str(vocab_mod.noto_font()), lazy=True)["CBDT"].strikeData[0]
    for cid, key, glyph in _emoji_jobs(vocab, "noto"):
        bitmap = strike[glyph]
        bitmap.decompile()
        yield cid, key, Image.open(io.BytesIO(bitmap.imageData))


def _decode_files(style: str):
    """Decoder for styles whose images are plain raster files (PNG, WebP)."""

    def decode(vocab: Vocabulary, size: int) -> Iterator[tuple[int, str, Image.Image]]:
        for cid, key, path in _emoji_jobs(vocab, style):
            with Image.open(path) as im:
                yield cid, key, im.convert("RGBA")

    return decode


def _decode_openmoji(vocab: Vocabulary, size: int) -> Iterator[tuple[int, str, Image.Image]]:
    try:
        import resvg_py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("rendering OpenMoji SVGs needs the PyPI package resvg-py (pip install resvg-py)") from err
    # OpenMoji draws on a 72-unit canvas with ~10% margin; twice the target size keeps
    # the cropped object larger than `size`, so it is only ever downsampled.
    render = max(2 * size, 144)
    for cid, key, path in _emoji_jobs(vocab, "openmoji"):
        png = resvg_py.svg_to_bytes(svg_path=path, width=render, height=render)
        yield cid, key, Image.open(io.BytesIO(bytes(png)))


def _decode_tuxpaint(vocab: Vocabulary, size: int) -> Iterator[tuple[int, str, Image.Image]]:
    root = vocab_mod.tuxpaint_root()
    for cid, cls in enumerate(vocab.classes):
        for rel in cls.stamps:
            path = root / rel
            if not path.is_file():
                raise AssetMissingError(f"Tux Paint stamp {rel}", path,
                                        "install the Debian package tuxpaint-stamps-default")
            with Image.open(path) as im:
                yield cid, rel, im.convert("RGBA")


_DECODERS = {
    "noto": _decode_noto,
    "twemoji": _decode_files("twemoji"),
    "openmoji": _decode_openmoji,
    "tuxpaint": _decode_tuxpaint,
    "fluent3d": _decode_files("fluent3d"),
}


# ---------------------------------------------------------------------------
# Building and caching
# ---------------------------------------------------------------------------
def _build(style: str, vocab: Vocabulary, size: int) -> SpriteBank:
    start = time.perf_counter()
    images, class_ids, sources = [], [], []
    for cid, source, img in _DECODERS[style](vocab, size):
        arr = normalise_sprite(img, size)
        if arr is None:
            continue
        images.append(arr)
        class_ids.append(cid)
        sources.append(source)
    if not images:
        raise RuntimeError(f"style {style!r} produced no sprites for this vocabulary ({len(vocab)} classes)")
    return SpriteBank(
        style=style,
        images=np.stack(images),
        class_ids=np.asarray(class_ids, dtype=np.int64),
        sources=tuple(sources),
        size=size,
        build_seconds=time.perf_counter() - start,
    )


def _cache_path(style: str, size: int, vocab: Vocabulary, cache_dir: str | os.PathLike | None) -> Path:
    """Cache file name: style, size, code version and the vocabulary's fingerprint."""
    root = Path(cache_dir) if cache_dir is not None else assets.cache_root() / "sprites"
    return root / f"{style}-{size}px-v{SPRITES_VERSION}-{vocab.fingerprint()}.npz"


def _save(bank: SpriteBank, path: Path) -> None:
    """Write atomically (temporary file, then rename) so readers never see half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                images=bank.images,
                class_ids=bank.class_ids,
                sources=np.asarray(bank.sources, dtype=str),
                build_seconds=np.float64(bank.build_seconds),
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path, style: str, size: int) -> SpriteBank:
    with np.load(path) as data:
        return SpriteBank(
            style=style,
            images=data["images"],
            class_ids=data["class_ids"].astype(np.int64),
            sources=tuple(data["sources"].tolist()),
            size=size,
            build_seconds=float(data["build_seconds"]),
            from_cache=True,
        )


def load_sprite_bank(style: str, vocab: Vocabulary, size: int = 128,
                     cache_dir: str | os.PathLike | None = None) -> SpriteBank:
    """The sprite bank of ``style`` for ``vocab``, built on first use and cached.

    ``cache_dir`` defaults to ``<PAPERLIB_CACHE or <repo>/.cache/paperlib>/sprites``.
    Raises AssetMissingError (naming the apt/npm package) when the style's source is
    absent, ValueError for an unknown style or a bad size.
    """
    if style not in STYLES:
        raise ValueError(f"unknown sprite style {style!r}; valid styles: {list(STYLES)}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"sprite size must be an int >= 8, got {size!r}")
    path = _cache_path(style, size, vocab, cache_dir)
    if path.is_file():
        return _load(path, style, size)
    bank = _build(style, vocab, size)
    _save(bank, path)
    return bank
