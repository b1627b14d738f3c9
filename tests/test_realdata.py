"""Real-data loaders: CC3M-style CSV, ImageNet-style folder, Fashion-MNIST idx."""

import gzip
import json
import logging
import os
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from paperlib.data import fashion_mnist as fm
from paperlib.data.realdata import (
    CaptionCSV,
    ImageFolderZeroShot,
    SkippingLoader,
    UnreadableImage,
    default_templates,
    parse_classes_py,
)


def _png(path, color, size=(40, 30)):
    Image.new("RGB", size, color).save(path)
    return path


# --------------------------------------------------------------------------- CSV
def test_csv_relative_paths_give_exact_pixels(tmp_path):
    (tmp_path / "imgs").mkdir()
    _png(tmp_path / "imgs" / "red.png", (200, 10, 30))
    _png(tmp_path / "imgs" / "blue.png", (5, 6, 250), size=(17, 60))
    (tmp_path / "train.csv").write_text("image,caption\nimgs/red.png,a red square\nimgs/blue.png,\"a blue, tall thing\"\n")
    ds = CaptionCSV(tmp_path / "train.csv", image_size=24)
    assert len(ds) == 2
    img, cap = ds[0]
    assert img.dtype == torch.uint8 and tuple(img.shape) == (3, 24, 24)
    assert cap == "a red square"
    assert img[0].unique().tolist() == [200] and img[1].unique().tolist() == [10]
    assert img[2].unique().tolist() == [30]
    img2, cap2 = ds[1]
    assert cap2 == "a blue, tall thing"
    assert tuple(img2.shape) == (3, 24, 24) and img2[2].unique().tolist() == [250]


def test_csv_resize_shorter_side_then_centre_crop(tmp_path):
    # left half black, right half white, 80x40: shorter side 40 -> 20, width 40, crop centre 20
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, 40:] = 255
    Image.fromarray(arr).save(tmp_path / "split.png")
    (tmp_path / "d.csv").write_text("image,caption\nsplit.png,x\n")
    img, _ = CaptionCSV(tmp_path / "d.csv", image_size=20)[0]
    assert tuple(img.shape) == (3, 20, 20)
    assert img[:, :, :8].max() < 20 and img[:, :, 12:].min() > 235  # boundary stays centred


def test_csv_absolute_paths_and_custom_keys(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    p = _png(other / "g.png", (0, 128, 0))
    sub = tmp_path / "csvdir"
    sub.mkdir()
    (sub / "d.tsv").write_text(f"filepath\ttitle\n{p}\tgreen\n")
    ds = CaptionCSV(sub / "d.tsv", 8, image_key="filepath", caption_key="title", delimiter="\t")
    img, cap = ds[0]
    assert cap == "green" and img[1].unique().tolist() == [128]


def test_csv_missing_column_error_names_file_and_columns(tmp_path):
    (tmp_path / "d.csv").write_text("filepath,caption\na.png,x\n")
    with pytest.raises(KeyError) as ei:
        CaptionCSV(tmp_path / "d.csv", 8)
    msg = str(ei.value)
    assert "d.csv" in msg and "'image'" in msg and "filepath" in msg and "caption" in msg


def test_csv_caption_literal_na_is_kept(tmp_path):
    _png(tmp_path / "a.png", (1, 2, 3))
    (tmp_path / "d.csv").write_text("image,caption\na.png,NA\n")
    assert CaptionCSV(tmp_path / "d.csv", 8)[0][1] == "NA"


def test_corrupt_and_missing_images_are_skipped_and_counted(tmp_path, caplog):
    for k in range(3):
        _png(tmp_path / f"ok{k}.png", (10 * k, 0, 0))
    (tmp_path / "corrupt.png").write_bytes(b"this is not a png at all")
    good = (tmp_path / "ok0.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(good[: len(good) // 2])
    rows = ["ok0.png", "corrupt.png", "ok1.png", "gone.png", "ok2.png", "truncated.png"]
    (tmp_path / "d.csv").write_text("image,caption\n" + "".join(f"{r},cap {r}\n" for r in rows))
    ds = CaptionCSV(tmp_path / "d.csv", 16)

    with pytest.raises(UnreadableImage) as ei:
        ds[1]
    assert ei.value.path.endswith("corrupt.png") and ei.value.index == 1

    loader = SkippingLoader(ds, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="paperlib.data.realdata"):
        batches = list(loader)
    captions = [c for _, caps in batches for c in caps]
    assert captions == ["cap ok0.png", "cap ok1.png", "cap ok2.png"]
    assert all(imgs.dtype == torch.uint8 for imgs, _ in batches)
    assert loader.n_skipped == 3
    assert {os.path.basename(p) for p in loader.skipped_files} == {"corrupt.png", "gone.png", "truncated.png"}
    assert "corrupt.png" in caplog.text and "gone.png" in caplog.text
    list(loader)  # a second epoch does not double count distinct files
    assert loader.n_skipped == 3

    assert ds.valid_indices("exists").tolist() == [0, 1, 2, 4, 5]
    valid = ds.valid_indices("decode")
    assert valid.tolist() == [0, 2, 4]
    clean = ds.select(valid)
    assert len(clean) == 3 and clean[2][1] == "cap ok2.png"


def test_skipping_loader_with_worker_process(tmp_path):
    _png(tmp_path / "a.png", (1, 1, 1))
    (tmp_path / "d.csv").write_text("image,caption\na.png,x\nmissing.png,y\na.png,z\n")
    loader = SkippingLoader(CaptionCSV(tmp_path / "d.csv", 8), batch_size=3, num_workers=1)
    (batch,) = list(loader)
    assert list(batch[1]) == ["x", "z"] and loader.n_skipped == 1


# --------------------------------------------------------------------------- ImageNet folder
CLASSES_PY = '''"""ImageNet-style metadata."""
classes = ["tench", "goldfish", "great white shark"]
templates = [
    lambda s: f"a photo of a {s}.",
    lambda c: f"itap of the {c}.",
    lambda c: "a sketch of " + c + " {braces}",
    lambda x: "art of the {}.".format(x),
]
'''


def _folder(tmp_path, meta_name, meta_text):
    root = tmp_path / "imagenet"
    root.mkdir()
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for k, c in enumerate(colors):
        _png(root / f"img{k}.png", c)
    (root / "labels.csv").write_text("image,label\nimg0.png,2\nimg1.png,0\nimg2.png,1\n")
    (root / meta_name).write_text(meta_text)
    return root


def test_imagenet_folder_classes_py(tmp_path):
    root = _folder(tmp_path, "classes.py", CLASSES_PY)
    ds = ImageFolderZeroShot(root, 12)
    assert ds.classnames == ["tench", "goldfish", "great white shark"]
    assert ds.templates == [
        "a photo of a {}.", "itap of the {}.", "a sketch of {} {{braces}}", "art of the {}.",
    ]
    assert ds.templates[2].format("dog") == "a sketch of dog {braces}"
    img, label = ds[0]
    assert label == 2 and isinstance(label, int)
    assert img.shape == (3, 12, 12) and img[0].unique().tolist() == [255] and img[1].max() == 0
    assert [ds[i][1] for i in range(3)] == [2, 0, 1]


def test_imagenet_folder_classes_json_and_default_templates(tmp_path):
    root = _folder(tmp_path, "classes.json", json.dumps({"classes": ["a", "b", "c"]}))
    ds = ImageFolderZeroShot(root, 8)
    assert ds.classnames == ["a", "b", "c"]
    assert len(ds.templates) == 80 and ds.templates == default_templates()
    assert all(t.count("{}") == 1 for t in ds.templates)
    assert "a bad photo of a {}." in ds.templates
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "templates": ["x {} y"]}))
    assert ImageFolderZeroShot(root, 8).templates == ["x {} y"]


def test_malicious_classes_py_is_rejected_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = f'import os\nos.system("touch {marker}")\nclasses = ["a", "b", "c"]\n'
    root = _folder(tmp_path, "classes.py", evil)
    with pytest.raises(ValueError, match=r"classes.py:1.*refusing"):
        ImageFolderZeroShot(root, 8)
    assert not marker.exists()


@pytest.mark.parametrize("body", [
    'classes = ["a", "b", "c"]\ntemplates = [lambda c: f"{__import__(\'os\').getcwd()} {c}"]\n',
    'classes = ["a", "b", "c"]\ntemplates = [lambda c: f"{c!r}"]\n',
    'classes = ["a", "b", "c"]\ntemplates = [lambda c: f"no placeholder"]\n',
    'classes = [str(1), "b", "c"]\n',
    'classes, templates = ["a"], []\n',
])
def test_classes_py_unsafe_or_malformed_expressions_rejected(tmp_path, body):
    (tmp_path / "classes.py").write_text(body)
    with pytest.raises(ValueError):
        parse_classes_py(tmp_path / "classes.py")


def test_imagenet_folder_errors_name_what_is_valid(tmp_path):
    root = _folder(tmp_path, "other.txt", "")
    with pytest.raises(FileNotFoundError, match="classes.json.*classes.py"):
        ImageFolderZeroShot(root, 8)
    (root / "classes.json").write_text(json.dumps({"names": ["a"]}))
    with pytest.raises(KeyError, match="'classes'"):
        ImageFolderZeroShot(root, 8)
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b"]}))
    with pytest.raises(ValueError, match=r"label 2 at row 0 is outside 0\.\.1"):
        ImageFolderZeroShot(root, 8)
    (root / "classes.json").write_text(json.dumps({"classes": ["a", "b", "c"], "templates": ["bad"]}))
    with pytest.raises(ValueError, match="exactly one"):
        ImageFolderZeroShot(root, 8)


# --------------------------------------------------------------------------- Fashion-MNIST
def _write_idx(path, arr, code):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def _tiny_fmnist(root, n=12):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    _write_idx(root / "t10k-images-idx3-ubyte.gz", images, 0x08)
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", labels, 0x08)
    return images, labels


def test_read_idx_roundtrip_and_bad_magic(tmp_path):
    arr = np.arange(24, dtype=np.int32).reshape(2, 3, 4) - 5
    _write_idx(tmp_path / "x.gz", arr, 0x0C)
    out = fm.read_idx(tmp_path / "x.gz")
    assert out.shape == (2, 3, 4) and np.array_equal(out, arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="magic"):
        fm.read_idx(tmp_path / "bad")


def test_fashion_mnist_tiny_files(tmp_path):
    images, labels = _tiny_fmnist(tmp_path)
    ds = fm.load_fashion_mnist("test", image_size=28, root=tmp_path)
    assert len(ds) == 12 and ds.classnames[0] == "t-shirt" and ds.classnames[9] == "ankle boot"
    assert all(t.count("{}") == 1 for t in ds.templates)
    img, label = ds[3]
    assert img.dtype == torch.uint8 and img.shape == (3, 28, 28) and label == 3
    assert np.array_equal(img[0].numpy(), images[3]) and torch.equal(img[0], img[2])
    big, _ = fm.load_fashion_mnist("test", image_size=56, root=tmp_path)[3]
    assert big.shape == (3, 56, 56)
    assert abs(big.float().mean().item() - float(images[3].mean())) < 3.0

    sub = fm.load_fashion_mnist("test", image_size=28, root=tmp_path, limit=5, seed=7)
    again = fm.load_fashion_mnist("test", image_size=28, root=tmp_path, limit=5, seed=7)
    other = fm.load_fashion_mnist("test", image_size=28, root=tmp_path, limit=5, seed=8)
    assert len(sub) == 5 and np.array_equal(sub.indices, again.indices)
    assert not np.array_equal(sub.indices, other.indices)
    assert np.array_equal(sub.labels, labels[sub.indices])


def test_fashion_mnist_missing_files_name_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist.*make setup"):
        fm.load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="valid"):
        fm.load_fashion_mnist("validation", root=tmp_path)


@pytest.mark.skipif(not os.path.isfile(os.path.join(fm.DEFAULT_ROOT, "train-labels-idx1-ubyte.gz")),
                    reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_real_files():
    train = fm.load_fashion_mnist("train", image_size=32, root=fm.DEFAULT_ROOT)
    test = fm.load_fashion_mnist("test", image_size=32, root=fm.DEFAULT_ROOT)
    assert len(train) == 60000 and len(test) == 10000
    assert sorted(np.unique(test.labels).tolist()) == list(range(10))
    assert np.bincount(test.labels).tolist() == [1000] * 10
    img, _ = test[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.uint8 and img.max() > 100


def test_loader_pairs_skip_and_count_unreadable_images(tmp_path):
    """Training on a CSV with a corrupt image: the row is skipped and counted, not fatal."""
    import numpy as np
    from PIL import Image

    from paperlib.data.realdata import CaptionCSV
    from paperlib.models import get_tokenizer
    from paperlib.train.pairs import LoaderPairs
    rows = []
    for i in range(8):
        Image.fromarray(np.full((20, 20, 3), i * 20, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,a picture number {i}")
    (tmp_path / "3.png").write_bytes(b"not a png")
    (tmp_path / "data.csv").write_text("image,caption\n" + "\n".join(rows) + "\n")
    ds = CaptionCSV(tmp_path / "data.csv", image_size=16)
    pairs = LoaderPairs(ds, get_tokenizer("tiny-rn64"), workers=0)
    batches = list(pairs.epoch_batches(0, 4, seed=0))
    assert sum(len(b["index"]) for b in batches) == 7
    assert 3 not in torch.cat([b["index"] for b in batches]).tolist()
    assert pairs.n_skipped == 1
    assert batches[0]["images"].dtype == torch.uint8 and batches[0]["images"].shape[1:] == (3, 16, 16)


def test_an_unreadable_image_stays_unreadable_after_ultralytics_patches_pil(tmp_path):
    """Importing ultralytics (the EftCLIP oracle) replaces PIL's Image.open process-wide; offline its
    wrapper turned a corrupt file into ModuleNotFoundError (pi-heif), which no loader skips."""
    import ultralytics.utils.patches  # noqa: F401  (applies the patch, as the oracle's import does)

    from paperlib.data.realdata import load_image
    (tmp_path / "corrupt.png").write_bytes(b"this is not a png at all")
    with pytest.raises(UnreadableImage, match="corrupt.png"):
        load_image(str(tmp_path / "corrupt.png"), 16)
    _png(tmp_path / "ok.png", (10, 20, 30))
    assert load_image(str(tmp_path / "ok.png"), 16).shape == (3, 16, 16)
