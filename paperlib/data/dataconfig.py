"""What a split is: the data parameters (``data:`` section), the split names and each split's cache key."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from paperlib.config import param
from paperlib.data.scenes import BACKGROUNDS

TRAIN_STYLES = ("noto", "twemoji", "openmoji", "tuxpaint")
HELDOUT_STYLE = "fluent3d"
SPLIT_NAMES = ("cc3m_analog", "flickr_analog", "imagenet_analog", "in_style", "cifar10_analog",
               "probe_train", "probe_test")
MAX_OBJECTS = 3
CC3M_BACKGROUNDS = ("solid", "gradient", "noise", "stripes", "checker", "dots")


def _styles():
    from paperlib.data.vocabulary import STYLES
    return STYLES


@dataclass(frozen=True)
class DataConfig:
    """Parameters of the embedded benchmark (``data:`` section of a parameter file)."""

    source: str = param("embedded", choices=("embedded", "real"),
                        doc="embedded scenes, or the user's real data (paper scale)")
    seed: int = param(0, range=(0, None), doc="seed of every rendered split")
    image_size: int = param(64, range=(16, 1024), doc="side of every image in pixels")
    sprite_size: int = param(128, range=(32, 512), doc="side of the cached sprite canvases")
    train_scenes: int = param(100_000, range=(1, None), doc="scenes in cc3m_analog")
    flickr_scenes: int = param(10_000, range=(1, None), doc="scenes in flickr_analog")
    captions_per_scene: int = param(3, range=(1, 10), doc="captions rendered per scene")
    zeroshot_per_class: int = param(5, range=(1, None), doc="images per class in imagenet_analog / in_style")
    cifar_per_class: int = param(100, range=(1, None), doc="images per class in cifar10_analog")
    probe_train_per_class: int = param(10, range=(1, None), doc="held-out style linear-probe training images per class")
    probe_test_per_class: int = param(5, range=(1, None), doc="held-out style linear-probe test images per class")
    train_styles: tuple[str, ...] = param(TRAIN_STYLES, choices=_styles, doc="sprite styles seen in training")
    heldout_style: str = param(HELDOUT_STYLE, choices=_styles, doc="style of the zero-shot sets, never trained on")
    max_classes: int = param(0, range=(0, None), doc="use N classes: targets, CIFAR-10, then the best-covered (0 = all 771)")
    train_backgrounds: tuple[str, ...] = param(CC3M_BACKGROUNDS, choices=BACKGROUNDS,
                                               doc="background kinds of cc3m_analog scenes")
    train_object_weights: tuple[float, float, float] = param(
        (1.0, 1.0, 1.0), range=(0.0, None),
        doc="relative frequency of 1-, 2- and 3-object scenes in cc3m_analog")
    workers: int = param(2, range=(1, 64), doc="rendering processes (embedded); image-decoding threads (real data)")
    train_csv: str | None = param(None, doc="real data: CSV of image,caption (paper scale)")
    imagenet_dir: str | None = param(None, doc="real data: ImageNet-style folder with labels.csv")
    flickr_csv: str | None = param(None, doc="real data: CSV of image,caption for the second captioned set")
    cifar10_dir: str | None = param(None, doc="real data: CIFAR-10 as an ImageNet-style folder")

    def validate(self):
        from paperlib.config import ParamError
        if self.heldout_style in self.train_styles:
            raise ParamError(f"heldout_style {self.heldout_style!r} must not be one of train_styles")
        if self.source == "real" and not (self.train_csv and self.imagenet_dir):
            raise ParamError("source 'real' needs train_csv and imagenet_dir")
        if len(self.train_object_weights) != MAX_OBJECTS or sum(self.train_object_weights) <= 0:
            raise ParamError(f"data.train_object_weights needs {MAX_OBJECTS} non-negative weights "
                             f"(1, 2, 3 objects) with a positive sum, got {self.train_object_weights}")
        if not self.train_backgrounds:
            raise ParamError(f"data.train_backgrounds needs at least one of {', '.join(BACKGROUNDS)}")


_SPLIT_FIELDS = {
    "cc3m_analog": ("train_scenes", "captions_per_scene"),
    "flickr_analog": ("flickr_scenes", "captions_per_scene"),
    "imagenet_analog": ("zeroshot_per_class", "heldout_style"),
    "in_style": ("zeroshot_per_class", "heldout_style"),
    "cifar10_analog": ("cifar_per_class", "heldout_style"),
    "probe_train": ("probe_train_per_class", "heldout_style"),
    "probe_test": ("probe_test_per_class", "heldout_style"),
}
_KEYED_IF_SET = {"cc3m_analog": ("train_backgrounds", "train_object_weights")}
_COMMON_FIELDS = ("source", "seed", "image_size", "sprite_size", "train_styles", "max_classes")


def split_params(name: str, cfg: DataConfig, dataset=None) -> dict:
    """What determines a split's content, and nothing else (its cache key).  For real data that
    includes what the files hold (:func:`paperlib.data.realsplit.content_key`); ``dataset`` is the
    real split's opened dataset when the caller has one, so the key describes the rows it read."""
    from paperlib.cache import CODE_VERSIONS
    d = asdict(cfg)
    # the renderer's version is part of every key built on a split (tokens, models, evaluations)
    key = {"split": name, "version": CODE_VERSIONS["split"],
           **{k: d[k] for k in _COMMON_FIELDS + _SPLIT_FIELDS[name]}}
    # knobs added after artifacts were built enter the key only when set, so those stay valid
    if cfg.source == "real":   # the user's files: where they are and what they hold is what the split is
        from paperlib.data.realkey import REAL_SPLITS, real_key
        if name in REAL_SPLITS:
            key.update(real_key(name, cfg, dataset))
    defaults = asdict(DataConfig())
    for k in _KEYED_IF_SET.get(name, ()):
        if tuple(d[k]) != tuple(defaults[k]):
            key[k] = d[k]
    return key


__all__ = ["DataConfig", "split_params", "SPLIT_NAMES", "TRAIN_STYLES", "HELDOUT_STYLE", "MAX_OBJECTS",
           "CC3M_BACKGROUNDS"]
