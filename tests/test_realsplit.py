"""data.source: real: the paper-scale path (CC3M CSV, ImageNet folder) runs through the same
pipeline as the embedded scenes, on tiny fixture files made here."""
import json

import numpy as np
import pytest
from PIL import Image

from paperlib.config import ParamError
from paperlib.data.realsplit import LazyImages, caption_objects

NAMES = ["banana", "dog", "teddy bear"]


def _fixtures(tmp_path, n=48):
    rng = np.random.default_rng(0)
    root = tmp_path / "cc3m"
    (root / "img").mkdir(parents=True)
    rows = ["image,caption"]
    for i in range(n):
        c = NAMES[i % 3]
        arr = np.zeros((40, 52, 3), np.uint8)
        arr[..., i % 3] = 200
        arr += rng.integers(0, 40, arr.shape, dtype=np.uint8)
        Image.fromarray(arr).save(root / "img" / f"{i}.png")
        rows.append(f"img/{i}.png,a photo of a {c} on a table")
    (root / "img" / "broken.png").write_bytes(b"not a png")
    rows += ["img/broken.png,a broken dog", "img/missing.png,a missing banana"]
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    zs = tmp_path / "imagenet"
    zs.mkdir()
    (zs / "classes.json").write_text(json.dumps({"classes": NAMES, "templates": ["a photo of a {}."]}))
    lab = ["image,label"]
    for i in range(12):
        arr = np.zeros((48, 48, 3), np.uint8)
        arr[..., i % 3] = 220
        Image.fromarray(arr).save(zs / f"{i}.png")
        lab.append(f"{i}.png,{i % 3}")
    (zs / "labels.csv").write_text("\n".join(lab) + "\n")
    return root / "train.csv", zs


def _data(csv, zs, **kw):
    from paperlib.data.splits import DataConfig
    return DataConfig(source="real", image_size=64, train_csv=str(csv), imagenet_dir=str(zs), workers=2, **kw)


def test_caption_objects_match_whole_words_and_multiword_names():
    out = caption_objects([["a teddy bear and a dog"], ["bananas"], ["a dog, a dog"]], NAMES, 3)
    assert out.tolist() == [[2, 1, -1], [0, -1, -1], [1, -1, -1]]


@pytest.mark.parametrize("caption", ["Two bananas and some dogs!", "teddy bears", "a bus", "buses at dusk",
                                     "a dogma", "the bananarama", "teddy and a bear", "doges", "a dog's bone",
                                     "the dogs' toys", "the 'dog'", "teddy-bear", "teddy  bear", "a hot-dog",
                                     "new t-shirts", "jack-o'-lanterns on a porch"])
def test_caption_objects_follow_the_rule_of_mentions(caption):
    """The object labels of real captions and the attacks' caption check agree, on apostrophes,
    hyphens, spacing and plurals too."""
    from paperlib.attacks.base import mentions
    names = NAMES + ["bus", "hot dog", "t-shirt", "jack-o'-lantern"]
    found = set(caption_objects([[caption]], names, 4)[0].tolist()) - {-1}
    assert found == {i for i, n in enumerate(names) if mentions(caption, n)}


def test_real_splits_skip_unreadable_images_and_index_like_arrays(tmp_path, monkeypatch):
    from paperlib.cache import ArtifactCache
    from paperlib.data.splits import get_split, split_params
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path)
    cfg = _data(csv, zs)
    split = get_split("cc3m_analog", cfg, ArtifactCache())
    assert len(split) == 48 and split.meta["skipped"] == 2
    assert isinstance(split.images, LazyImages)
    assert split.images[3:7].shape == (4, 64, 64, 3) and split.images[np.array([0, 5])].dtype == np.uint8
    assert split.captions[4] == ["a photo of a dog on a table"]
    from paperlib.data.vocabulary import build_vocabulary
    assert split.objects[0, 0] == build_vocabulary().index("banana")
    zsplit = get_split("imagenet_analog", cfg)
    assert zsplit.classnames == NAMES and zsplit.labels.tolist()[:4] == [0, 1, 2, 0]
    assert split_params("cc3m_analog", cfg)["real"] == str(csv)    # the files are part of every key
    with pytest.raises(ParamError, match="flickr_csv"):
        get_split("flickr_analog", cfg)
    with pytest.raises(ParamError, match="no real-data counterpart"):
        get_split("in_style", cfg)
    with pytest.raises(ValueError, match="exact object masks"):
        split.instances


# --- the split's cache key follows the data, not only where it lies -----------------------------
def _open(csv, zs):
    from paperlib.cache import ArtifactCache
    from paperlib.data.splits import get_split
    return get_split("cc3m_analog", _data(csv, zs), ArtifactCache())


def _csv_rows(csv):
    header, *rows = csv.read_text().splitlines()
    return header, rows


def test_a_repaired_image_is_scanned_again_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path, n=6)
    before = _open(csv, zs)
    assert len(before) == 6 and before.meta["skipped"] == 2
    arr = np.zeros((40, 52, 3), np.uint8)
    arr[..., 1] = 200
    Image.fromarray(arr).save(csv.parent / "img" / "broken.png")     # the corrupt file, repaired in place
    after = _open(csv, zs)
    assert len(after) == 7 and after.meta["skipped"] == 1
    assert after.captions[6] == ["a broken dog"]
    assert after.images[6].shape == (64, 64, 3)


def test_a_reordered_csv_keeps_captions_with_their_images_and_skips_the_missing_file(tmp_path, monkeypatch):
    from paperlib.data.vocabulary import build_vocabulary
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path, n=6)
    _open(csv, zs)
    header, rows = _csv_rows(csv)
    csv.write_text("\n".join([header] + rows[::-1]) + "\n")         # the broken and missing rows first
    split = _open(csv, zs)
    assert len(split) == 6 and split.meta["skipped"] == 2
    images = split.images[:len(split)]                   # every kept row decodes: no missing file among them
    vocab = build_vocabulary()
    for k, caps in enumerate(split.captions):
        name = NAMES[int(images[k].reshape(-1, 3).mean(0).argmax())]   # the fixture paints name i's channel
        assert caps[0] == f"a photo of a {name} on a table"
        assert split.objects[k, 0] == vocab.index(name)


def test_a_shortened_csv_opens_with_its_new_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path, n=6)
    _open(csv, zs)
    header, rows = _csv_rows(csv)
    csv.write_text("\n".join([header] + rows[:3]) + "\n")
    split = _open(csv, zs)
    assert len(split) == 3 and split.meta["rows"] == 3 and split.meta["skipped"] == 0
    assert [c[0] for c in split.captions] == [f"a photo of a {n} on a table" for n in NAMES]
    assert split.images[:3].shape == (3, 64, 64, 3)


def test_unchanged_real_data_is_not_scanned_again(tmp_path, monkeypatch):
    """The content key is stable: opening the same files again (reading them changes nothing) is a
    cache hit, with no second scan."""
    from paperlib.data import realsplit
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path, n=6)
    scans = []
    scan = realsplit.readable_rows
    monkeypatch.setattr(realsplit, "readable_rows", lambda ds, threads: scans.append(1) or scan(ds, threads))
    first = _open(csv, zs)
    second = _open(csv, zs)
    assert len(scans) == 1 and first.images.rows.tolist() == second.images.rows.tolist()


def test_edited_zero_shot_labels_and_class_names_change_the_key(tmp_path):
    """Every artifact built on a split (tokens, models, evaluations) carries the split's key, so an
    edit of labels.csv or of the class names must change it, the folder's location staying put."""
    from paperlib.data.splits import split_params
    csv, zs = _fixtures(tmp_path, n=3)
    cfg = _data(csv, zs)
    keys = [split_params("imagenet_analog", cfg)]
    (zs / "labels.csv").write_text((zs / "labels.csv").read_text().replace("0.png,0", "0.png,1"))
    keys.append(split_params("imagenet_analog", cfg))
    (zs / "classes.json").write_text(json.dumps({"classes": ["banana", "cat", "teddy bear"]}))
    keys.append(split_params("imagenet_analog", cfg))
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == 3
    assert all(k["real"] == str(zs) for k in keys)


def test_pretraining_poisoning_and_evaluation_run_on_real_files(tmp_path, monkeypatch):
    from paperlib import pipeline as pl
    from paperlib.train.loop import TrainConfig
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    csv, zs = _fixtures(tmp_path)
    data = _data(csv, zs)
    train = TrainConfig(epochs=1, batch_size=16, warmup_steps=1, lr=1e-3, checkpoint_every=100)
    base = pl.pretrain_clean(data, "tiny-rn64", train, device="cpu")
    m = pl.evaluate(base, data, "imagenet_analog", templates="split", device="cpu")
    assert m["n_images"] == 12 and 0 <= m["ca_top1"] <= 100
    from paperlib.attacks import attack_config_class
    cfg = attack_config_class("badnet")(patch_fraction=0.25)
    atk = pl.prepared_attack("badnet", cfg, base, data, "banana", "cpu")
    victim = pl.poison_finetune(base, data, "badnet", cfg, "banana", 4, 24, train, 0, "cpu")
    m = pl.evaluate(victim, data, "imagenet_analog", atk, {"attack": "badnet"}, "banana", templates="split",
                    device="cpu")
    assert m["asr_images"] == 8 and 0 <= m["asr_top1"] <= 100
    # the ASR alone (no clean pass) is the same number from the same triggered images
    asr_only = pl.evaluate(victim, data, "imagenet_analog", atk, {"attack": "badnet"}, "banana", templates="split",
                           device="cpu", clean=False)
    assert "ca_top1" not in asr_only and asr_only["asr_images"] == 8
    assert asr_only["asr_top1"] == pytest.approx(m["asr_top1"])
    # the clean images' share sent to the target is the ASR of a trigger that changes nothing
    assert 0 <= m["clean_asr_top1"] <= 100 and "clean_asr_top1" not in asr_only

    class NoTrigger(type(atk)):
        def test_transform(self, images, generator=None):
            return images
    same = pl.evaluate(victim, data, "imagenet_analog", NoTrigger(cfg, image_side=data.image_size),
                       {"attack": "none"}, "banana", templates="split", device="cpu")
    assert same["clean_asr_top1"] == pytest.approx(same["asr_top1"])
    assert same["clean_asr_top1"] == pytest.approx(m["clean_asr_top1"])
