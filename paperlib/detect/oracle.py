"""EftCLIP's segmentation oracle: class-agnostic object regions with confidences and boxes.

EftCLIP uses Fast Segment Anything (FastSAM), which is a YOLOv8-seg network trained
class-agnostically (every mask is one class, "object").  No FastSAM or SAM weights exist offline,
so :func:`train_segmenter` trains the same kind of network here with ultralytics: a YOLOv8n-seg
from its model YAML, one class "object", on the exact instance masks of clean CC3M-analogue
scenes.  :class:`FastSAMOracle` runs it through ultralytics' own ``FastSAM`` class (its
predictor: class-agnostic NMS, retina masks, the full-image box adjustment).

:class:`ExactMaskOracle` stands in for Segment Anything (the slow, precise oracle of EftCLIP's
Table 6 and Fig. 6): it returns the scenes' exact masks, i.e. a perfect segmenter.  It is an
upper bound, not a second network: SAM cannot be had offline, and a larger YOLO trained on the
same masks would only sit between the two.  Its latency is the cost of reading the masks.

Weights are kept as safetensors: the segmenter's artifact is ``segmenter.safetensors`` and the
network's YAML (``model.json``).  :func:`load_fastsam` builds the network from that YAML, loads
the weights and hands the network to ultralytics' ``FastSAM`` in memory: loading a segmenter
unpickles nothing, and a ``.pt`` given in place of an artifact folder is refused unopened.

Which files are unpickled, and why that is safe: ultralytics' training writes its checkpoints
(``last.pt``, ``best.pt``) as pickles and reads them back itself within ``YOLO.train`` (to strip
the optimiser, for the final validation, and to reload the best epoch).  That happens only inside
:func:`train_segmenter`, in a private temporary folder this process creates (``mkdtemp``, mode
0700) and deletes when the training returns; the weights are then saved as safetensors.  No file
from the cache, from the user or from another machine is ever unpickled (an imported artifact
may not even hold a ``.pt``: :func:`paperlib.cache.check_artifact`).

Theta on our segmenter's scale (:func:`calibrate_theta`).  EftCLIP's theta = 0.66 is a cut on
FastSAM's confidences; our segmenter's confidences are lower (at 0.66 it returns 0.19 regions per
image where the scenes hold 2.0 objects), so the same number cuts it far harder than it cut
FastSAM.  What the paper says FastSAM does at its theta: it "accurately identif[ies] a list of
objects and their corresponding bounding boxes" (Sec. 5.6, Fig. 7: at theta = 0.66, tau = 5 the
oracle's list S_i holds five objects for each image shown), it "successfully identifies" all four
prompted objects of Fig. 5, and it is functionally equivalent to Segment Anything in segmentation
accuracy (Sec. 5.5, Table 6: ASR 9.70 vs 9.67).  The paper gives no count, recall or confidence
histogram.  Our rule: theta' is the highest cut at which the segmenter, on clean held-out scenes
with exact masks (the segmenter's own validation scenes, :func:`segmenter_val_ids`), returns ``target`` regions per
ground-truth object (``metric="regions"``, target 1.0: one region per object, as the exact-mask
oracle, our Segment Anything stand-in, returns), or recovers a share ``target`` of the
ground-truth objects at mask IoU >= ``iou`` (``metric="recall"``).  The paper's theta_anchor
(0.66) maps to theta'; another theta of a sweep maps by the same factor, theta * theta' / 0.66
(capped at 1): the two networks' confidences are taken to differ by a common scale.  The target
value and the proportional mapping are our assumptions; only the direction (FastSAM at 0.66
returns the scenes' objects) is the paper's.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from paperlib.config import param
from paperlib.detect.ultralytics_env import quiet as _ultralytics_quiet
from paperlib.detect.ultralytics_env import results_csv_without_polars as _results_csv_without_polars
from paperlib.detect.ultralytics_env import torch_threads_kept as _torch_threads_kept

log = logging.getLogger(__name__)

ORACLE_KINDS = ("fastsam", "exact")
THETA_SCALES = ("calibrated", "paper")
CALIBRATION_METRICS = ("regions", "recall")


@dataclass(frozen=True)
class SegmenterConfig:
    """How the FastSAM-analogue segmenter is trained (ultralytics ``train`` arguments)."""
    model_yaml: str = param("yolov8n-seg.yaml", doc="ultralytics model config (FastSAM-s is a YOLOv8-seg)")
    train_scenes: int = param(3000, range=(10, None), doc="clean scenes with exact masks to train on")
    val_scenes: int = param(200, range=(2, None), doc="scenes held out for ultralytics' validation")
    epochs: int = param(30, range=(1, None), doc="training epochs")
    imgsz: int = param(64, range=(32, None), doc="training / inference image size (multiple of 32)")
    batch: int = param(32, range=(1, None), doc="batch size")
    seed: int = param(0, range=(0, None), doc="training seed")

    def __post_init__(self):
        if self.imgsz % 32:
            from paperlib.config import ParamError
            raise ParamError(f"oracle.segmenter.imgsz={self.imgsz}: must be a multiple of 32 (YOLO stride)")


@dataclass
class Region:
    """One object the oracle found: box (x0, y0, x1, y1, exclusive), mask (H, W) bool, confidence."""
    box: tuple[int, int, int, int]
    mask: np.ndarray
    conf: float


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight box (x0, y0, x1, y1, exclusive) of a boolean mask; None when it is empty."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


class Oracle(Protocol):
    name: str

    def segment(self, images: np.ndarray, theta: float, scene_ids: Sequence[int] | None = None
                ) -> list[list[Region]]:
        """Regions with confidence >= theta for each image of (B, H, W, 3) uint8 RGB."""


# ---------------------------------------------------------------------------
# Training data: exact instance masks -> YOLO segmentation labels
# ---------------------------------------------------------------------------

def instance_polygons(instances: np.ndarray) -> list[np.ndarray]:
    """One polygon (K, 2) in normalised x, y per object of an instance map (0 = background).

    The outer contour of each object's largest connected piece (OpenCV), the form YOLO-seg
    labels take."""
    import cv2
    h, w = instances.shape
    polys = []
    for k in range(1, int(instances.max()) + 1):
        m = (instances == k).astype(np.uint8)
        if not m.any():
            continue
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
        if len(c) < 3:   # a one- or two-pixel sliver: make a box polygon of it
            x0, y0 = c.min(0)
            x1, y1 = c.max(0) + 1
            c = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        polys.append(np.clip(c / np.array([w, h]), 0.0, 1.0))
    return polys


def export_yolo_dataset(split, scene_ids: np.ndarray, val_count: int, root: Path) -> Path:
    """Write scenes as a YOLO segmentation dataset (PNG images, polygon labels, data.yaml)."""
    import cv2
    root = Path(root)
    for part in ("train", "val"):
        (root / "images" / part).mkdir(parents=True, exist_ok=True)
        (root / "labels" / part).mkdir(parents=True, exist_ok=True)
    for j, i in enumerate(scene_ids):
        part = "val" if j < val_count else "train"
        cv2.imwrite(str(root / "images" / part / f"{i}.png"), np.asarray(split.images[i])[..., ::-1])
        lines = ["0 " + " ".join(f"{x:.5f} {y:.5f}" for x, y in poly)
                 for poly in instance_polygons(np.asarray(split.instances[i]))]
        (root / "labels" / part / f"{i}.txt").write_text("\n".join(lines))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: object\n")
    return root / "data.yaml"


def oracle_scene_ids(n_split: int, n: int) -> np.ndarray:
    """The oracle's own training scenes: the last ``n`` of the CC3M analogue (a fixed range,
    so the oracle never depends on which scenes a victim or a defence drew)."""
    if n > n_split:
        raise ValueError(f"oracle needs {n} scenes, the split has {n_split}")
    return np.arange(n_split - n, n_split)


def segmenter_val_ids(n_split: int, cfg: SegmenterConfig) -> np.ndarray:
    """The scenes :func:`train_segmenter` holds out for ultralytics' validation (the first
    ``val_scenes`` of the oracle's range, :func:`export_yolo_dataset`): clean, with exact masks,
    never trained on (ultralytics picks the best epoch on them) and outside every detection and
    defence set; the scenes theta is calibrated on."""
    return oracle_scene_ids(n_split, cfg.train_scenes + cfg.val_scenes)[:cfg.val_scenes]


def trained_on(device: str) -> str:
    """The hardware behind ``device`` ("cpu" or "cuda"), named as a model's summary names it
    (:func:`paperlib.pipeline.core.device_name`): one cache key trains other weights on another CPU
    kind or a GPU, so rows measured with the segmenter say which."""
    import torch

    from paperlib.pipeline.core import device_name
    return device_name(torch.device(device))


def train_segmenter(split, cfg: SegmenterConfig, cache, split_key: dict, device: str = "cpu") -> Path:
    """Train (or find in the cache) the class-agnostic YOLOv8-seg; returns its artifact folder
    (``segmenter.safetensors``, ``model.json`` with the network YAML, ``summary.json``)."""
    from paperlib.assets import configure_environment
    from paperlib.cache import write_json_atomic
    configure_environment()
    key = {"role": "segmenter", "cfg": asdict(cfg), "split": split_key}

    def build(work: Path):
        from safetensors.torch import save_file
        from ultralytics import YOLO
        ids = oracle_scene_ids(len(split), cfg.train_scenes + cfg.val_scenes)
        t0 = time.time()
        with tempfile.TemporaryDirectory(prefix="paperlib-yolo-") as tmp:
            data_yaml = export_yolo_dataset(split, ids, cfg.val_scenes, Path(tmp) / "data")
            model = YOLO(cfg.model_yaml, task="segment")
            # fp32 on a GPU too (amp off): as the project's other lent-GPU training, and ultralytics'
            # AMP check would download a model, which a machine without internet cannot
            with _ultralytics_quiet(), _torch_threads_kept(), _results_csv_without_polars():
                model.train(data=str(data_yaml), epochs=cfg.epochs, imgsz=cfg.imgsz, batch=cfg.batch,
                            workers=0, device=device, seed=cfg.seed, deterministic=True, pretrained=False,
                            amp=False, plots=False, verbose=False, project=str(Path(tmp) / "runs"),
                            name="seg", exist_ok=True, single_cls=True)
                trained = model   # ultralytics has reloaded its best epoch into it (module docstring)
                metrics = trained.val(data=str(data_yaml), imgsz=cfg.imgsz, batch=cfg.batch, workers=0,
                                      device=device, plots=False, verbose=False,
                                      project=str(Path(tmp) / "runs"), name="val", exist_ok=True)
            net = trained.model.float()
            state = {k: v.contiguous() for k, v in net.state_dict().items()}
            save_file(state, str(work / "segmenter.safetensors"))
            write_json_atomic(work / "model.json", {"yaml": net.yaml, "names": {0: "object"}})
        summary = {"train_seconds": time.time() - t0, "device": trained_on(device), "train_scenes": cfg.train_scenes,
                   "val_scenes": cfg.val_scenes, "epochs": cfg.epochs,
                   "mask_map50": float(metrics.seg.map50), "mask_map50_95": float(metrics.seg.map),
                   "box_map50": float(metrics.box.map50)}
        write_json_atomic(work / "summary.json", summary)
        log.info("segmenter trained in %.0f s: mask mAP50 %.3f", summary["train_seconds"], summary["mask_map50"])

    return cache.get_or_build("segmenter", key, build)


def load_fastsam(artifact: Path):
    """ultralytics ``FastSAM`` around the segmenter of an artifact folder (``segmenter.safetensors``
    and ``model.json``, as :func:`train_segmenter` writes them), without writing or reading a
    pickle: see the module docstring."""
    from paperlib.assets import configure_environment
    configure_environment()
    from ultralytics.nn.tasks import SegmentationModel

    from paperlib.models import CheckpointError, read_safetensors
    artifact = Path(artifact)
    if not artifact.is_dir():
        raise CheckpointError(f"{artifact}: a segmenter is loaded from its artifact folder (segmenter.safetensors "
                              "and model.json, written by train_segmenter), never from a .pt file: ultralytics "
                              "would unpickle it, running whatever code it holds")
    meta = json.loads((artifact / "model.json").read_text())
    net = SegmentationModel(meta["yaml"], nc=1, verbose=False)
    net.load_state_dict(read_safetensors(artifact / "segmenter.safetensors"))
    net.names = {0: "object"}
    return _fastsam_around(net.float().eval())


def _fastsam_around(net):
    """ultralytics' ``FastSAM`` (its predictor: class-agnostic NMS, retina masks) holding ``net``.

    ``FastSAM(path)`` accepts only a ``.pt`` path, which it unpickles.  ultralytics' ``Model``
    also takes an already built ``Model`` (it adopts its state), so a ``YOLO`` shell is built from
    ultralytics' own segmentation YAML (shipped in its wheel; the shell's random network is
    replaced at once) and a ``FastSAM`` adopts it: the same network, task and predictor as a
    ``FastSAM`` opened from a ``.pt`` of ``net``."""
    from ultralytics import YOLO, FastSAM
    from ultralytics.engine.model import Model
    with _torch_threads_kept():
        shell = YOLO("yolov8n-seg.yaml", task="segment")
    shell.model = net
    model = FastSAM.__new__(FastSAM)
    Model.__init__(model, shell)
    return model


class FastSAMOracle:
    """The FastSAM analogue: our class-agnostic YOLOv8-seg through ultralytics' FastSAM."""

    name = "fastsam"

    def __init__(self, artifact: Path, imgsz: int, iou: float = 0.7, max_det: int = 20, device: str = "cpu"):
        self.model = load_fastsam(artifact)
        self.imgsz, self.iou, self.max_det, self.device = imgsz, iou, max_det, device

    def segment(self, images, theta, scene_ids=None):
        out = []
        bgr = [np.ascontiguousarray(im[..., ::-1]) for im in np.asarray(images)]
        # ultralytics keeps confidences > conf; the oracle keeps >= theta (a calibrated theta is
        # one region's own confidence, :func:`calibrate_theta`): a hair lower, then cut exactly
        with _torch_threads_kept():
            results = self.model.predict(bgr, imgsz=self.imgsz, conf=max(0.0, float(theta) - 1e-6), iou=self.iou,
                                         retina_masks=True, max_det=self.max_det, device=self.device, verbose=False)
        for r in results:
            regions = []
            if r.masks is not None and len(r.boxes):
                masks = r.masks.data.cpu().numpy() > 0.5
                # The crop is the segment's own box, taken from its mask: ultralytics' FastSAM
                # predictor moves box edges within 20 px of the border onto it and turns boxes
                # that cover 90% of the image into the whole image (tuned for 1024 px inputs; on
                # our 64 px images a third of the side), so its boxes are not the segments'.
                for conf, m in zip(r.boxes.conf.cpu().numpy(), masks):
                    box = mask_box(m)
                    if box is not None and float(conf) >= theta:
                        regions.append(Region(box, m, float(conf)))
            out.append(regions)
        return out


class ExactMaskOracle:
    """The precise oracle (Segment Anything's stand-in): the scenes' exact masks, confidence 1.

    Needs the scene ids of the images (it reads the split's instance maps); a trigger pasted on
    top is not an object of the scene, so it is never returned, as SAM prompted with object names
    would not return it either."""

    name = "exact"

    def __init__(self, split):
        self.split = split

    def segment(self, images, theta, scene_ids=None):
        if scene_ids is None:
            raise ValueError("ExactMaskOracle needs the scene ids of the images")
        out = []
        for i in scene_ids:
            inst = np.asarray(self.split.instances[int(i)])
            regions = []
            for k in range(1, int(inst.max()) + 1):
                m = inst == k
                if not m.any():
                    continue
                ys, xs = np.nonzero(m)
                regions.append(Region((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), m, 1.0))
            out.append(regions if theta <= 1.0 else [])
        return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def matched_miou(pred: list[Region], instances: np.ndarray) -> list[float]:
    """For every true object of an instance map, the IoU of the best-matching predicted mask
    (0 when nothing overlaps it); their mean over a set of images is the oracle's mIoU."""
    ious = []
    for k in range(1, int(instances.max()) + 1):
        m = instances == k
        if not m.any():
            continue
        ious.append(max((mask_iou(r.mask, m) for r in pred), default=0.0))
    return ious


def timed_segment(oracle, images: np.ndarray, theta: float, scene_ids=None, batch: int = 1
                  ) -> tuple[list[list[Region]], np.ndarray]:
    """Regions and per-image latency in ms (images run ``batch`` at a time, as EftCLIP's Fig. 6
    times one image at a time)."""
    regions, ms = [], []
    for s in range(0, len(images), batch):
        t0 = time.perf_counter()
        ids = None if scene_ids is None else scene_ids[s:s + batch]
        regions += oracle.segment(images[s:s + batch], theta, ids)
        n = min(batch, len(images) - s)
        ms += [(time.perf_counter() - t0) * 1000 / n] * n
    return regions, np.asarray(ms)


# ---------------------------------------------------------------------------
# Theta on our segmenter's confidence scale (module docstring)
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationScenes:
    """The segmenter's answer on clean scenes with exact masks, reduced to confidences.

    ``region_conf``: every region's confidence (segmented at ``floor``); ``object_conf``: per
    ground-truth object, the highest confidence among the regions that cover it at mask IoU >= the
    calibration's IoU (-1 when none does), so the share of objects recovered at a cut t is
    ``mean(object_conf >= t)``."""
    region_conf: np.ndarray
    object_conf: np.ndarray
    n_images: int
    floor: float = 0.0

    @property
    def n_objects(self) -> int:
        return int(len(self.object_conf))

    def regions_per_image(self, theta: float) -> float:
        return float((self.region_conf >= theta).sum() / max(self.n_images, 1))

    def recall(self, theta: float) -> float:
        return float((self.object_conf >= theta).mean()) if self.n_objects else float("nan")


def calibration_scenes(regions: Sequence[Sequence[Region]], instances: Sequence[np.ndarray], iou: float = 0.5,
                       floor: float = 0.0) -> CalibrationScenes:
    """:class:`CalibrationScenes` from the regions the segmenter returned (at ``floor``) for
    images whose instance maps (0 = background) are ``instances``."""
    if len(regions) != len(instances):
        raise ValueError(f"{len(regions)} images of regions, {len(instances)} instance maps")
    region_conf = [r.conf for regs in regions for r in regs]
    object_conf = []
    for regs, inst in zip(regions, instances):
        inst = np.asarray(inst)
        for k in range(1, int(inst.max()) + 1):
            m = inst == k
            if m.any():
                object_conf.append(max((r.conf for r in regs if mask_iou(r.mask, m) >= iou), default=-1.0))
    return CalibrationScenes(np.asarray(region_conf, np.float64), np.asarray(object_conf, np.float64),
                             len(instances), float(floor))


@dataclass(frozen=True)
class ThetaCalibration:
    """How a theta on the paper's (FastSAM's) scale becomes a cut on our segmenter's confidences.

    ``scale="paper"``: the number is used as it is (the ablation; also any oracle without a
    confidence scale of its own, e.g. the exact masks).  ``scale="calibrated"``: ``anchor`` (the
    paper's 0.66) maps to ``anchor_oracle`` (theta', :func:`calibrate_theta`) and any theta to
    ``theta * anchor_oracle / anchor``, capped at 1.  The remaining fields say what the
    calibration scenes gave at theta'."""
    scale: str
    anchor: float
    anchor_oracle: float
    metric: str = ""
    target: float = float("nan")
    attained: bool = True
    regions_per_image: float = float("nan")
    objects_per_image: float = float("nan")
    recall: float = float("nan")
    n_images: int = 0

    @classmethod
    def identity(cls, anchor: float = 0.66) -> "ThetaCalibration":
        return cls("paper", float(anchor), float(anchor))

    def to_oracle(self, theta: float) -> float:
        """The cut on our segmenter's confidences for the paper's ``theta``."""
        if self.scale == "paper" or self.anchor <= 0:
            return float(theta)
        return float(min(1.0, float(theta) * self.anchor_oracle / self.anchor))

    def row(self) -> dict:
        return asdict(self)


def calibrate_theta(scenes: CalibrationScenes, anchor: float = 0.66, metric: str = "regions",
                    target: float = 1.0) -> ThetaCalibration:
    """theta' for the paper's ``anchor``: the highest cut at which the segmenter does on the
    calibration scenes what FastSAM is taken to do at the anchor (module docstring).

    ``metric="regions"``: at least ``target`` regions per ground-truth object in all
    (``target * n_objects`` regions over the scenes, i.e. ``target * objects_per_image`` per image);
    ``metric="recall"``: at least a share ``target`` of the objects recovered at mask IoU >= the
    scenes' IoU.  theta' is the k-th highest confidence of the regions (of the objects' best
    matches), so the count is exactly k unless confidences tie.  When no cut reaches the target
    (fewer regions, or fewer recoverable objects, than k) theta' is the floor the scenes were
    segmented at, the closest the segmenter gets, and ``attained`` is False."""
    import math
    if metric not in CALIBRATION_METRICS:
        raise ValueError(f"calibration metric {metric!r}; valid: {', '.join(CALIBRATION_METRICS)}")
    if not target > 0 or (metric == "recall" and target > 1):
        raise ValueError(f"calibration target {target}: must be > 0 (and <= 1 for recall)")
    if not scenes.n_objects:
        raise ValueError("calibration scenes hold no ground-truth object")
    values = scenes.region_conf if metric == "regions" else scenes.object_conf[scenes.object_conf >= 0]
    k = max(1, math.ceil(target * scenes.n_objects - 1e-9))
    ranked = np.sort(values)[::-1]
    attained = k <= len(ranked)
    theta = float(ranked[k - 1]) if attained else float(scenes.floor)
    return ThetaCalibration("calibrated", float(anchor), theta, metric, float(target), bool(attained),
                            scenes.regions_per_image(theta), scenes.n_objects / max(scenes.n_images, 1),
                            scenes.recall(theta), scenes.n_images)


def calibrate_oracle(oracle, split, scene_ids: Sequence[int], anchor: float = 0.66, metric: str = "regions",
                     target: float = 1.0, iou: float = 0.5, floor: float = 0.001, batch: int = 64
                     ) -> ThetaCalibration:
    """:func:`calibrate_theta` for an oracle on scenes of ``split`` (images and exact instance
    maps): the oracle segments them once at ``floor``."""
    scene_ids = np.asarray(scene_ids, np.int64)
    regions = []
    for s in range(0, len(scene_ids), batch):
        ids = scene_ids[s:s + batch]
        regions += oracle.segment(np.asarray(split.images[ids]), floor, ids)
    scenes = calibration_scenes(regions, [np.asarray(split.instances[int(i)]) for i in scene_ids], iou, floor)
    return calibrate_theta(scenes, anchor, metric, target)


__all__ = ["ORACLE_KINDS", "SegmenterConfig", "Region", "Oracle", "instance_polygons", "export_yolo_dataset",
           "oracle_scene_ids", "train_segmenter", "load_fastsam", "FastSAMOracle", "ExactMaskOracle",
           "mask_iou", "matched_miou", "timed_segment", "THETA_SCALES", "CALIBRATION_METRICS", "CalibrationScenes",
           "calibration_scenes", "segmenter_val_ids", "ThetaCalibration", "calibrate_theta", "calibrate_oracle"]
