"""Tests of the merged object vocabulary and of the per-style sprite banks.

Tests that need the emoji/Tux Paint assets skip (with the missing package named)
when they are not installed; the pure helpers are tested everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paperlib.assets import AssetMissingError
from paperlib.data import sprites
from paperlib.data import vocabulary as vocabulary_module
from paperlib.data.vocabulary import (
    CIFAR10_CLASSES,
    HELD_OUT_STYLE,
    STYLES,
    TRAIN_STYLES,
    build_vocabulary,
    codepoint_key,
    parse_caption,
)

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def vocab():
    try:
        return build_vocabulary()
    except AssetMissingError as err:
        pytest.skip(f"sprite assets not installed (run `make setup`): {err}")


@pytest.fixture(scope="module")
def bank_dir(tmp_path_factory):
    """One cache folder per test module, so each bank is built once and then reloaded."""
    return tmp_path_factory.mktemp("sprites")


def _bank(style, vocab, cache_dir, size=32):
    try:
        return sprites.load_sprite_bank(style, vocab, size=size, cache_dir=cache_dir)
    except AssetMissingError as err:
        pytest.skip(f"{style} asset not installed: {err}")


# ---------------------------------------------------------------------------
# Pure helpers (no assets needed)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "caption, expected",
    [
        ("A banana.", "banana"),
        ("A pair of closed scissors.", "closed scissors"),
        ("A \u201cFuji\u201d apple.", "fuji apple"),
        ("Two wild boars.", "wild boars"),
        ("A plumber\u2019s wrench.", "plumber's wrench"),
        ("A dumper. It carries its load in the front.", "dumper"),
        ("Mercury\u2014the planet closest to the Sun.", "mercury"),
        ("Remember to flush the toilet and wash your hands with soap!", None),
        ("", None),
    ],
)
def test_parse_caption(caption, expected):
    assert parse_caption(caption) == expected


def test_codepoint_key_ignores_variation_selector_and_case():
    assert codepoint_key("2708-fe0f") == "2708"
    assert codepoint_key("2708") == "2708"
    assert codepoint_key("1f415-200d-1f9ba") == "1F415-200D-1F9BA"


def test_normalise_sprite_crops_to_alpha_and_centres():
    img = Image.new("RGBA", (100, 100), (255, 255, 255, 0))
    img.paste(Image.new("RGBA", (10, 30), (200, 10, 10, 255)), (70, 5))  # tall, off-centre
    out = sprites.normalise_sprite(img, 60)
    assert out.shape == (60, 60, 4) and out.dtype == np.uint8
    ys, xs = np.nonzero(out[..., 3])
    assert ys.min() == 0 and ys.max() == 59          # long side fills the canvas
    assert 19 <= xs.min() and xs.max() <= 40         # 1:3 aspect kept, centred horizontally
    assert abs((xs.min() + xs.max()) / 2 - 29.5) <= 1
    assert (out[out[..., 3] == 0, :3] == 0).all()    # transparent pixels carry no colour


def test_normalise_sprite_rejects_empty_image():
    assert sprites.normalise_sprite(Image.new("RGBA", (20, 20)), 16) is None


def test_attribution_covers_every_style():
    assert set(sprites.ATTRIBUTION) == set(STYLES)
    licences = {style: entry["licence"] for style, entry in sprites.ATTRIBUTION.items()}
    assert licences["noto"] == "OFL-1.1"
    assert licences["twemoji"] == "CC-BY-4.0"
    assert licences["openmoji"] == "CC-BY-SA-4.0"
    assert licences["fluent3d"] == "MIT"
    assert licences["tuxpaint"].startswith("GPL-2.0")


def test_held_out_style_is_not_a_training_style():
    assert HELD_OUT_STYLE == "fluent3d"
    assert HELD_OUT_STYLE not in TRAIN_STYLES
    assert set(TRAIN_STYLES) | {HELD_OUT_STYLE} == set(STYLES)


def test_unknown_style_is_rejected_with_choices():
    with pytest.raises(ValueError, match="valid styles"):
        sprites.load_sprite_bank("comic-sans", vocab=None)


def test_missing_npm_assets_raise_asset_missing_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path))
    with pytest.raises(AssetMissingError, match="openmoji"):
        build_vocabulary()


# ---------------------------------------------------------------------------
# The vocabulary
# ---------------------------------------------------------------------------
def test_required_classes_present(vocab):
    for name in ["banana", "umbrella", *CIFAR10]:
        assert name in vocab, name
    assert len(vocab) >= 500


def test_names_are_unique_clean_lowercase(vocab):
    names = vocab.names
    assert len(names) == len(set(names))
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9][a-z0-9 '\-]*[a-z0-9]", n)]
    assert not bad, bad


def test_cifar10_mapping_is_valid(vocab):
    assert list(CIFAR10_CLASSES) == CIFAR10
    for cifar_name, vocab_name in CIFAR10_CLASSES.items():
        i = vocab.index(vocab_name)
        train = set(vocab.styles_of(i)) & set(TRAIN_STYLES)
        assert len(train) >= 3, (cifar_name, vocab.styles_of(i))
        assert HELD_OUT_STYLE in vocab.styles_of(i), cifar_name  # testable zero-shot


def test_index_error_suggests_close_names(vocab):
    with pytest.raises(KeyError, match="banana"):
        vocab.index("bananna")


def test_animal_faces_merge_into_the_animal(vocab):
    cat = vocab[vocab.index("cat")]
    assert cat.codepoint == "1F408"                   # the full-body cat is the representative
    assert "1F431" in cat.codepoints                  # cat face merged in
    assert "cat face" not in vocab and "dog face" not in vocab


def test_excluded_categories_are_absent(vocab):
    for name in ["grinning face", "twelve o'clock", "first quarter moon", "spade suit", "sparkles", "bar chart"]:
        assert name not in vocab, name
    assert all(c.group not in {"smileys-emotion", "people-body", "flags", "symbols"} for c in vocab.classes)
    assert all(c.codepoint is None or "-" not in c.codepoint for c in vocab.classes)


def test_tuxpaint_stamps_merge_into_emoji_classes(vocab):
    banana = vocab[vocab.index("banana")]
    assert "tuxpaint" in banana.styles and any("banana" in s for s in banana.stamps)
    apple = vocab[vocab.index("apple")]
    assert len(apple.stamps) >= 3                     # red, green, Fuji ... apples in one class
    tux_only = [c for c in vocab.classes if c.codepoint is None]
    assert tux_only and all(c.styles == ("tuxpaint",) for c in tux_only)


def test_fluent3d_covers_most_emoji_classes(vocab):
    emoji = [i for i, c in enumerate(vocab.classes) if c.codepoint is not None]
    covered = set(vocab.classes_with_style(HELD_OUT_STYLE))
    assert len(covered & set(emoji)) >= 0.9 * len(emoji)


def test_every_class_is_learnable(vocab):
    for i, cls in enumerate(vocab.classes):
        assert set(vocab.styles_of(i)) & set(TRAIN_STYLES), cls.name


def test_build_is_deterministic(vocab):
    again = build_vocabulary()
    assert again == vocab
    assert again.fingerprint() == vocab.fingerprint()


def test_yaml_typo_fails_loudly(vocab, tmp_path):
    text = vocabulary_module.ALIASES_FILE.read_text(encoding="utf-8")
    bad = tmp_path / "aliases.yaml"
    bad.write_text(text.replace("  rename:\n", "  rename:\n    bananna split: banana\n", 1), encoding="utf-8")
    with pytest.raises(ValueError, match="bananna split"):
        build_vocabulary(bad)


# ---------------------------------------------------------------------------
# Sprite banks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("style", ["twemoji", "tuxpaint"])
def test_sprite_bank_shapes_ids_and_tight_alpha(style, vocab, bank_dir):
    bank = _bank(style, vocab, bank_dir)
    n = len(bank)
    assert bank.images.shape == (n, 32, 32, 4) and bank.images.dtype == np.uint8
    assert bank.class_ids.shape == (n,) and bank.class_ids.dtype == np.int64
    assert bank.class_set() == vocab.classes_with_style(style)
    alpha = bank.images[..., 3] > 0
    rows, cols = alpha.any(axis=2), alpha.any(axis=1)     # (N, 32) each
    touches_tb = rows[:, 0] & rows[:, -1]
    touches_lr = cols[:, 0] & cols[:, -1]
    assert (touches_tb | touches_lr).all()                # the long side spans the canvas


def test_sprite_bank_is_cached_and_reloaded_identically(vocab, tmp_path):
    try:
        first = sprites.load_sprite_bank("fluent3d", vocab, size=16, cache_dir=tmp_path)
    except AssetMissingError as err:
        pytest.skip(f"fluent3d asset not installed: {err}")
    files = list(Path(tmp_path).glob("fluent3d-16px-*.npz"))
    assert len(files) == 1 and not first.from_cache
    second = sprites.load_sprite_bank("fluent3d", vocab, size=16, cache_dir=tmp_path)
    assert second.from_cache
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.class_ids, second.class_ids)
    assert first.sources == second.sources


def test_several_sprites_per_class_in_tuxpaint(vocab, bank_dir):
    bank = _bank("tuxpaint", vocab, bank_dir)
    assert len(bank.indices_of(vocab.index("apple"))) >= 3


def test_missing_font_names_the_debian_package(vocab, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_NOTO_FONT", str(tmp_path / "absent.ttf"))
    with pytest.raises(AssetMissingError, match="fonts-noto-color-emoji"):
        sprites.load_sprite_bank("noto", vocab, size=16, cache_dir=tmp_path)


def test_vocabulary_snapshot_roundtrip_replaces_the_assets(tmp_path, monkeypatch):
    from paperlib.data.vocabulary import build_vocabulary, load_vocabulary, save_vocabulary
    vocab = build_vocabulary()
    path = save_vocabulary(vocab, tmp_path / "vocab.json")
    assert load_vocabulary(path) == vocab and load_vocabulary(path).names == vocab.names
    monkeypatch.setenv("PAPERLIB_VOCABULARY", str(path))
    monkeypatch.setenv("PAPERLIB_ASSETS", str(tmp_path / "no_assets"))   # the packages are not read
    assert build_vocabulary() == vocab
    monkeypatch.setenv("PAPERLIB_VOCABULARY", str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError, match="PAPERLIB_VOCABULARY"):
        build_vocabulary()
