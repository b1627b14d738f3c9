"""EftCLIP: Algorithms 1-2 on hand-made lists, the curated set, triggers, the oracle's labels."""
from collections import Counter

import numpy as np
import pytest
import torch

from paperlib.detect.eftclip import (ImageLists, ImageObservation, caption_labels, curate,
                                     find_adversarial_trigger, identify_affected_labels, resized_patch,
                                     triggered)
from paperlib.detect.oracle import ExactMaskOracle, Region, instance_polygons, matched_miou


# --- Algorithm 1 ---------------------------------------------------------------------------
def test_algorithm1_finds_the_name_only_the_poisoned_clip_sees():
    # Fig. 7's first row: the poisoned CLIP says umbrella, the oracle finds the rest
    L = ["umbrella", "boat", "ocean", "river", "water"]
    S = ["boat", "ocean", "river", "water"]
    R = ["boat", "ocean"]
    K, P = find_adversarial_trigger(L, S, R, [])
    assert P == ["umbrella"] and K == ["umbrella"]


def test_algorithm1_line2_removes_names_the_poisoned_clip_gives_a_region():
    K, P = find_adversarial_trigger(["umbrella", "boat"], ["boat"], ["umbrella"], [])
    assert P == [] and K == []


def test_algorithm1_known_triggers_are_not_added_twice_and_order_is_kept():
    K, P = find_adversarial_trigger(["a", "b", "c"], [], [], ["b"])
    assert P == ["a", "b", "c"]
    assert K == ["b", "a", "c"]          # K u N with N = P \ K = [a, c]
    K2, _ = find_adversarial_trigger(["b"], [], [], K)
    assert K2 == K                        # N empty: K unchanged (line 7)


# --- Algorithm 2 ---------------------------------------------------------------------------
def _imgs():
    return [
        ImageLists(L=["banana", "dog", "cat"], S=["dog", "cat"], R=["dog", "cat"]),         # trigger found
        ImageLists(L=["banana", "dog"], S=["dog", "banana"], R=["banana", "dog"]),  # oracle cut the patch
        ImageLists(L=["car", "bus"], S=["car", "bus"], R=["car", "bus"]),                   # clean image
    ]


def test_algorithm2_as_printed():
    out = identify_affected_labels(_imgs(), rule="paper")
    assert out.K == ["banana"]
    assert out.P == [["banana"], [], []]
    # image 2: (R n S) n K = {banana} -> A_2 = (R n S) \ K = [dog]; images 1 and 3 contribute nothing
    assert out.A_images == [[], ["dog"], []]
    assert out.A == Counter({"dog": 1})
    assert out.detected("banana").tolist() == [True, False, False]


def test_algorithm2_detected_reading_takes_labels_beside_the_found_trigger():
    out = identify_affected_labels(_imgs(), rule="detected")
    assert out.A_images == [["dog", "cat"], [], []]
    assert out.trigger_counts["banana"] == 1


def test_algorithm2_rejects_an_unknown_rule():
    with pytest.raises(ValueError, match="affected_rule"):
        identify_affected_labels(_imgs(), rule="other")


def test_observation_lists_follow_tau_and_theta():
    names = ["banana", "dog", "cat"]
    index = {n: i for i, n in enumerate(names)}
    clf = torch.eye(3)                        # feature j -> name j
    obs = ImageObservation(L=["banana", "dog", "cat"], conf=np.array([0.9, 0.5]), side=np.array([10, 10]),
                           clean_feats=torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.3, 1.0]]),
                           R_names=[["dog"], ["cat"]])
    hi = obs.lists(3, 0.66, 3, clf, index)
    assert hi.S == ["dog"] and hi.R == ["dog"] and hi.n_regions == 1
    lo = obs.lists(3, 0.4, 3, clf, index)
    assert lo.S == ["dog", "cat"] and lo.R == ["dog", "cat"]
    short = obs.lists(2, 0.4, 3, clf, index)  # cat is not a prompt when tau = 2: its region goes to dog
    assert short.L == ["banana", "dog"] and short.S == ["dog"]
    assert obs.lists(3, 0.4, 11, clf, index).n_regions == 0


# --- Algorithm 1's two readings and theta -------------------------------------------------
def test_algorithm1_paper_trend_reading_keeps_the_names_the_poisoned_clip_gives_a_region():
    """Line 2 as the text reads it: P <- (L minus S) n R, a name the poisoned CLIP gives a cut region
    that the oracle does not confirm; the printed line removes exactly those names."""
    L, S = ["umbrella", "boat", "ocean"], ["boat"]
    assert find_adversarial_trigger(L, S, ["umbrella", "boat"], [], reading="paper_trend") == (["umbrella"], ["umbrella"])
    assert find_adversarial_trigger(L, S, ["umbrella", "boat"], [], reading="printed") == (["ocean"], ["ocean"])
    assert find_adversarial_trigger(L, S, ["boat"], [], reading="paper_trend") == ([], [])    # no region holds it
    with pytest.raises(ValueError, match="alg1_reading"):
        find_adversarial_trigger(L, S, [], [], reading="other")


_NAMES = ["banana", "dog", "cat"]


def _observation(trigger_conf, L=("banana", "dog", "cat")):
    """One image: a dog region (confidence 0.95; both CLIPs call its crop dog) and, unless
    ``trigger_conf`` is None, the trigger's region: the poisoned CLIP calls its crop banana, the
    oracle's clean CLIP matches it to the prompt cat (it never confirms the target)."""
    conf, feats, names = [0.95], [[0.0, 1.0, 0.0]], [["dog"]]
    if trigger_conf is not None:
        conf.append(trigger_conf)
        feats.append([0.0, 0.0, 1.0])
        names.append(["banana"])
    return ImageObservation(L=list(L), conf=np.array(conf), side=np.full(len(conf), 10),
                            clean_feats=torch.tensor(feats), R_names=names)


def _rates(observations, cuts, reading):
    index = {n: i for i, n in enumerate(_NAMES)}
    return np.array([100.0 * identify_affected_labels([o.lists(3, c, 3, torch.eye(3), index) for o in observations],
                                                      reading=reading).detected("banana").mean() for c in cuts])


def test_the_two_readings_of_algorithm1_give_opposite_trends_in_theta():
    """The trigger regions' confidences spread over (0, 1): raising theta drops them one by one.
    As printed, detection can only rise with theta (fewer regions, bigger L minus S minus R); read
    as the text says (P n R), it falls, as the paper's Figs. 3b and 4 show."""
    obs = [_observation(c) for c in (0.2, 0.4, 0.6, 0.8)]
    thetas = [0.1, 0.3, 0.5, 0.7, 0.9]
    printed, trend = _rates(obs, thetas, "printed"), _rates(obs, thetas, "paper_trend")
    assert printed.tolist() == [0.0, 25.0, 50.0, 75.0, 100.0] and (np.diff(printed) > 0).all()
    assert trend.tolist() == [100.0, 75.0, 50.0, 25.0, 0.0] and (np.diff(trend) < 0).all()


def test_calibrated_theta_gives_the_target_region_count_on_a_synthetic_confidence_distribution():
    """A segmenter whose confidences sit far below FastSAM's (Beta(2, 8)): at the paper's 0.66 it
    returns almost nothing; theta' = the anchor mapped onto its scale returns one region per
    ground-truth object (the target), and the other thetas map by the same factor."""
    from paperlib.detect.oracle import CalibrationScenes, ThetaCalibration, calibrate_theta
    rng = np.random.default_rng(0)
    n_images = 200
    n_objects = int(rng.integers(1, 4, n_images).sum())                  # 1-3 objects per scene
    conf = rng.beta(2, 8, size=int(rng.integers(2, 7, n_images).sum()))  # 2-6 regions per image
    scenes = CalibrationScenes(conf, np.full(n_objects, -1.0), n_images)
    assert scenes.regions_per_image(0.66) < 0.05 * n_objects / n_images   # the paper's number, taken as it is
    cal = calibrate_theta(scenes, anchor=0.66, metric="regions", target=1.0)
    assert cal.scale == "calibrated" and cal.attained and cal.anchor_oracle < 0.66
    cut = cal.to_oracle(0.66)
    assert cut == cal.anchor_oracle and (conf >= cut).sum() == n_objects
    assert cal.regions_per_image == pytest.approx(n_objects / n_images) == cal.objects_per_image
    half = calibrate_theta(scenes, 0.66, "regions", 0.5)
    assert (conf >= half.to_oracle(0.66)).sum() == int(np.ceil(0.5 * n_objects)) and half.anchor_oracle > cut
    assert cal.to_oracle(0.33) == pytest.approx(cut / 2) and cal.to_oracle(0.0) == 0.0
    assert cal.to_oracle(1.0) <= 1.0
    assert ThetaCalibration.identity(0.66).to_oracle(0.5) == 0.5          # theta_scale=paper: the ablation
    short = calibrate_theta(CalibrationScenes(conf[:10], np.full(n_objects, -1.0), n_images, floor=0.001))
    assert not short.attained and short.anchor_oracle == 0.001            # unreachable: the floor
    with pytest.raises(ValueError, match="target"):
        calibrate_theta(scenes, 0.66, "recall", 1.5)


def test_calibration_reads_regions_and_objects_found_at_iou_from_masks():
    """calibration_scenes: every region's confidence, and per true object the best confidence of
    the regions covering it at IoU >= 0.5; the recall target picks the cut that finds that share."""
    from paperlib.detect.oracle import calibrate_theta, calibration_scenes
    inst = _instances()                                        # two objects
    one, two = inst == 1, inst == 2
    sliver = np.zeros_like(two)
    sliver[9:11, 10:14] = True                                 # a third of object 2: IoU < 0.5
    regions = [[Region((2, 2, 8, 6), one, 0.2), Region((10, 9, 14, 11), sliver, 0.4),
                Region((10, 9, 14, 15), two, 0.1)]]
    scenes = calibration_scenes(regions, [inst], iou=0.5, floor=0.05)
    assert sorted(scenes.region_conf.tolist()) == [0.1, 0.2, 0.4] and scenes.object_conf.tolist() == [0.2, 0.1]
    assert calibrate_theta(scenes, 0.66, "recall", 1.0).anchor_oracle == 0.1     # both objects found
    assert calibrate_theta(scenes, 0.66, "recall", 0.5).anchor_oracle == 0.2     # one of two
    assert calibrate_theta(scenes, 0.66, "regions", 1.0).anchor_oracle == 0.2    # two regions for two objects
    assert calibrate_theta(scenes, 0.66, "recall", 0.5).recall == 0.5


def test_detection_sweep_rows_carry_the_theta_scale_the_cut_and_both_readings(monkeypatch):
    """_sweep_one_seed runs every theta on both scales (theta_oracle: the cut on the segmenter's
    confidences) and both readings of Algorithm 1 on the same lists: on the calibrated scale the
    printed reading rises with theta and the paper's falls."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.detect import eftclip as detect
    from paperlib.detect.oracle import ThetaCalibration
    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"detection.datasets": ["cc3m_analog"], "detection.oracles": ["fastsam"],
                                              "detection.n_backdoor": [4], "detection.rho_px": [16],
                                              "detection.positions": ["random"], "detection.taus": [3],
                                              "detection.thetas": [0.3, 0.5, 0.66, 0.8, 0.9]})
    triggered_obs = [_observation(c) for c in (0.2, 0.3, 0.36, 0.42)]     # on the segmenter's scale
    clean_obs = [_observation(None, L=("dog", "cat")) for _ in range(4)]

    class Maker(detect.ListMaker):
        def observe(self, images, tau_max, theta_min, region_topk=1, scene_ids=None, **kw):
            return triggered_obs if np.asarray(images).any() else clean_obs

    maker = Maker(poisoned=None, poisoned_classifier=None, clean=None, clean_classifier=torch.eye(3), names=_NAMES,
                  oracle=None, image_size=4)
    half = ThetaCalibration("calibrated", 0.66, 0.33)                      # theta' = 0.33 for the paper's 0.66
    wb = SimpleNamespace(held_out_scenes=lambda ds, n, v, seed: np.arange(n), oracle=lambda kind, ds: None,
                         list_maker=lambda v, o: maker,
                         theta_map=lambda kind, scale: half if scale == "calibrated" else ThetaCalibration.identity())
    monkeypatch.setattr(pl, "get_split", lambda *a, **k: SimpleNamespace(images=np.zeros((8, 2, 2, 3), np.uint8)))
    monkeypatch.setattr(detect, "triggered", lambda imgs, *a, **k: np.ones_like(imgs))
    rows = ex._sweep_one_seed(p, p.detection, wb, None, SimpleNamespace(pattern=None), "banana", 0, lambda *a: None)
    assert len(rows) == 5 * 2 * 2 and set(rows.alg1_reading) == {"printed", "paper_trend"}
    cal = rows[rows.theta_scale == "calibrated"]
    assert np.allclose(cal.theta_oracle, cal.theta / 2)
    raw = rows[rows.theta_scale == "paper"]
    assert np.allclose(raw.theta_oracle, raw.theta)
    printed = cal[cal.alg1_reading == "printed"].sort_values("theta").detection_rate.to_numpy()
    trend = cal[cal.alg1_reading == "paper_trend"].sort_values("theta").detection_rate.to_numpy()
    assert printed.tolist() == [0.0, 25.0, 50.0, 75.0, 100.0] and trend.tolist() == [100.0, 75.0, 50.0, 25.0, 0.0]
    assert (rows.false_alarm_rate == 0.0).all()


def test_theta_scale_and_reading_must_be_among_those_the_sweep_runs():
    from paperlib.config import ParamError
    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml")
    assert p.eftclip.theta_scale == "calibrated" and p.eftclip.alg1_reading == "printed"
    assert set(p.detection.theta_scales) == {"calibrated", "paper"}
    assert set(p.detection.alg1_readings) == {"printed", "paper_trend"}
    with pytest.raises(ParamError, match="theta_scales"):
        ex.load("params/eftclip/smoke.yaml", {"detection.theta_scales": ["paper"]})
    with pytest.raises(ParamError, match="alg1_readings"):
        ex.load("params/eftclip/smoke.yaml", {"eftclip.alg1_reading": "paper_trend", "detection.alg1_readings": ["printed"]})
    with pytest.raises(ParamError, match="calibration_target"):
        ex.load("params/eftclip/smoke.yaml", {"eftclip.calibration_metric": "recall", "eftclip.calibration_target": 2.0})


# --- curated set ---------------------------------------------------------------------------
def test_curate_draws_per_label_in_proportion_and_others_at_their_ratio():
    labels = [{"dog"}] * 100 + [{"cat"}] * 100 + [{"car"}] * 100
    rows = curate(labels, Counter({"dog": 3, "cat": 1}), n_total=80, other_ratio=0.25,
                  rng=np.random.default_rng(0))
    got = Counter(next(iter(labels[i])) for i in rows)
    assert got == Counter({"dog": 45, "cat": 15, "car": 20})
    assert len(set(rows.tolist())) == len(rows)


def test_curate_keeps_the_set_size_when_an_affected_label_runs_short():
    """A label with fewer rows than its share: the other affected labels take the rest of the
    affected budget, and the set keeps its size (it collapsed to 187 of 1,500 pairs before)."""
    labels = [{"soap"}] * 5 + [{"dog"}] * 100 + [{"car"}] * 200
    rows = curate(labels, Counter({"soap": 3, "dog": 1}), n_total=100, other_ratio=0.1, rng=np.random.default_rng(0))
    got = Counter(next(iter(labels[i])) for i in rows)
    assert len(rows) == 100 and got == Counter({"soap": 5, "dog": 85, "car": 10})
    # every affected row used up: the non-affected rows fill the set
    rows = curate([{"soap"}] * 5 + [{"car"}] * 200, Counter({"soap": 1}), n_total=100, other_ratio=0.1,
                  rng=np.random.default_rng(0))
    assert len(rows) == 100
    # the non-affected rows run out: affected rows beyond the labels' shares fill the set
    rows = curate([{"soap"}] * 200 + [{"car"}] * 3, Counter({"soap": 1}), n_total=100, other_ratio=0.5,
                  rng=np.random.default_rng(0))
    assert len(rows) == 100
    # a pool smaller than the set: all of it
    assert len(curate([{"soap"}] * 5 + [{"car"}] * 5, Counter({"soap": 1}), 100, 0.1, np.random.default_rng(0))) == 10


def test_curate_without_affected_labels_draws_from_the_whole_pool():
    rows = curate([{"a"}] * 10, Counter(), n_total=4, other_ratio=0.1, rng=np.random.default_rng(0))
    assert len(rows) == 4


def test_caption_labels_agree_with_mentions_on_plurals_and_multiword_names():
    """The n-gram lookup labels exactly as mentions() decides, name by name."""
    from paperlib.attacks.base import mentions
    names = ["cat", "hot dog", "dog", "glass", "fortune cookie", "bus", "t-shirt", "ox"]
    caps = [["Two cats and a hot dog."], ["hot dogs on a bus"], ["the glasses, a T-shirt"],
            ["buses"], ["a fortune cookies jar", "boxes of oxes"], ["category dogma"], [""], []]
    want = [{n for n in names if any(mentions(c, n) for c in cc)} for cc in caps]
    assert caption_labels(caps, names) == want
    assert want[0] == {"cat", "hot dog", "dog"} and want[3] == {"bus"} and want[5] == set()


def test_caption_labels_match_whole_words_only():
    labs = caption_labels([["a cat next to a dog"], ["a category of things"]], ["cat", "dog"])
    assert labs == [{"cat", "dog"}, set()]


# --- triggers ------------------------------------------------------------------------------
def test_triggered_pastes_the_resized_pattern_in_the_corner_only():
    pattern = torch.arange(3 * 16 * 16, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 16, 16)
    imgs = np.zeros((2, 64, 64, 3), np.uint8)
    out = triggered(imgs, pattern, 8, "bottom_right", seed=0)
    small = resized_patch(pattern, 8)
    assert small.shape == (3, 8, 8)
    assert np.array_equal(out[:, 56:, 56:, :], np.broadcast_to(small.permute(1, 2, 0).numpy(), (2, 8, 8, 3)))
    out[:, 56:, 56:, :] = 0
    assert not out.any()
    assert np.array_equal(resized_patch(pattern, 16), pattern)


# --- oracle pieces -------------------------------------------------------------------------
def _instances():
    inst = np.zeros((16, 16), np.uint8)
    inst[2:6, 2:8] = 1
    inst[9:15, 10:14] = 2
    return inst


def test_instance_polygons_cover_each_object():
    polys = instance_polygons(_instances())
    assert len(polys) == 2
    (x0, y0), (x1, y1) = polys[0].min(0) * 16, polys[0].max(0) * 16
    assert (round(x0), round(y0)) == (2, 2) and (round(x1), round(y1)) == (7, 5)   # contour pixel centres


def test_exact_oracle_returns_exact_boxes_and_perfect_miou():
    class FakeSplit:
        instances = _instances()[None]
    oracle = ExactMaskOracle(FakeSplit())
    regions = oracle.segment(np.zeros((1, 16, 16, 3), np.uint8), 0.66, [0])[0]
    assert [r.box for r in regions] == [(2, 2, 8, 6), (10, 9, 14, 15)]
    assert matched_miou(regions, _instances()) == [1.0, 1.0]
    half = Region((2, 2, 5, 6), _instances() == 1, 1.0)
    half.mask = half.mask.copy()
    half.mask[:, 5:] = False
    assert matched_miou([half], _instances()) == [pytest.approx(0.5), 0.0]


def test_defend_refuses_a_subset_outside_the_clean_set(tmp_path):
    from pathlib import Path

    from paperlib import pipeline as pl
    from paperlib.data.splits import DataConfig
    from paperlib.defences.cleanclip import CleanCLIPConfig
    from paperlib.train.loop import TrainConfig
    victim = pl.ModelArtifact("tiny-rn64", Path(tmp_path), {"role": "poison_finetune"})
    for bad in (np.array([10]), np.array([], np.int64), np.array([-1, 2])):
        with pytest.raises(ValueError, match="subset"):
            pl.defend(victim, DataConfig(), "cleanclip", CleanCLIPConfig(), 10, TrainConfig(), 0, subset=bad,
                      cache=pl.ArtifactCache(tmp_path / "cache"))


def test_defend_rebuilds_a_cached_model_that_lacks_the_per_epoch_weights_asked_for(tmp_path, monkeypatch):
    """A defended model first built without ``save_epochs`` is reused as it is, unless per-epoch
    weights are asked for: then it is trained again (an ASR-per-epoch curve never reads nothing)."""
    from pathlib import Path

    from paperlib import pipeline as pl
    from paperlib.data.splits import DataConfig
    from paperlib.defences.ft import FTConfig
    from paperlib.train.loop import TrainConfig

    class Cache(pl.ArtifactCache):
        def cached(self, kind, params):
            self.last = self.path(kind, params)
            return super().cached(kind, params)

    class Trained(Exception):
        pass

    def training_starts(*a, **k):
        raise Trained
    monkeypatch.setattr(pl.defence, "defence_context", training_starts)   # defend's own module
    cache = Cache(tmp_path / "cache")
    victim = pl.ModelArtifact("tiny-rn64", Path(tmp_path), {"role": "poison_finetune"})
    args = (victim, DataConfig(), "ft", FTConfig(), 10, TrainConfig(), 0)
    with pytest.raises(Trained):                                   # nothing cached: it trains
        pl.defend(*args, cache=cache)
    final = cache.last
    final.mkdir(parents=True)
    (final / "DONE").write_text("x")
    assert pl.defend(*args, cache=cache).path == final            # cached, no epochs asked: reused
    short = (victim, DataConfig(), "ft", FTConfig(), 10, TrainConfig(epochs=0.5), 0)
    with pytest.raises(Trained):
        pl.defend(*short, cache=cache)
    short_dir = cache.last
    short_dir.mkdir(parents=True)
    (short_dir / "DONE").write_text("x")
    assert pl.defend(*short, cache=cache, save_epochs=True).path == short_dir   # < 1 epoch: none can exist
    with pytest.raises(Trained):                                   # epochs asked, none kept: retrained
        pl.defend(*args, cache=cache, save_epochs=True)
    assert not final.exists() and (final.parent / (final.name + ".stale") / "DONE").is_file()   # set aside
    final.mkdir()
    (final / "DONE").write_text("x")
    (final / "epoch1.safetensors").write_bytes(b"")
    assert pl.defend(*args, cache=cache, save_epochs=True).path == final


def test_segmenter_training_bars_follow_the_progress_switch(monkeypatch):
    """Ultralytics' per-epoch bars are off inside the oracle's quiet block when paperlib's bars are
    off (they filled the executed EftCLIP notebook with thousands of lines), shown when they are
    on, and its logger level is restored afterwards."""
    import logging

    from ultralytics.utils.tqdm import TQDM

    from paperlib.detect.ultralytics_env import quiet as _ultralytics_quiet
    from paperlib.progress import ENV
    monkeypatch.setattr("ultralytics.utils.VERBOSE", True)   # YOLO_VERBOSE=False would hide them anyway
    logger = logging.getLogger("ultralytics")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)          # ultralytics' own default: bars on
        monkeypatch.setenv(ENV, "0")
        with _ultralytics_quiet():
            assert TQDM(range(3)).disable
        assert logger.level == logging.INFO and not TQDM(range(3)).disable
        monkeypatch.setenv(ENV, "1")
        with _ultralytics_quiet():
            assert not TQDM(range(3)).disable
    finally:
        logger.setLevel(before)



def test_the_fastsam_oracle_leaves_torch_threads_as_it_found_them(tmp_path):
    """Ultralytics sets torch's CPU threads to cores - 1 when it picks a device; the oracle puts
    them back, or everything after it in the process (sweep, fine-tunings) ran on fewer threads."""
    import json

    from safetensors.torch import save_file
    from ultralytics.nn.tasks import SegmentationModel
    from ultralytics.utils import NUM_THREADS

    from paperlib.detect.oracle import FastSAMOracle
    net = SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False)   # untrained: only the plumbing
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "segmenter.safetensors"))
    (tmp_path / "model.json").write_text(json.dumps({"yaml": net.yaml, "names": {"0": "object"}}))
    before = torch.get_num_threads()
    want = NUM_THREADS + 1
    torch.set_num_threads(want)
    try:
        oracle = FastSAMOracle(tmp_path, imgsz=64)
        assert torch.get_num_threads() == want
        oracle.segment(np.zeros((2, 64, 64, 3), np.uint8), theta=0.5)
        assert torch.get_num_threads() == want
    finally:
        torch.set_num_threads(before)


# --- the detection sweep's cache ------------------------------------------------------------------
def test_detection_sweep_is_read_from_the_cache_until_a_setting_changes(tmp_path, monkeypatch):
    """Re-executing the notebook reads a seed's sweep from the cache; changing a swept value or
    the victim runs it again; the rows carry scale and seed."""
    from pathlib import Path
    from types import SimpleNamespace

    import pandas as pd

    from paperlib.experiments import eftclip as ex

    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    calls = []

    def fake_sweep(p, d, wb, victim, atk, target, seed, log_fn):
        calls.append((victim.path.name, seed, tuple(d.thetas), tuple(d.rho_px), tuple(d.positions)))
        return pd.DataFrame([{"dataset": "cc3m_analog", "n_backdoor": 5, "rho": rho, "mu": mu, "theta": t,
                              "theta_scale": sc, "theta_oracle": t, "tau": 5, "oracle": "exact", "alg1_reading": r,
                              "detection_rate": 50.0, "false_alarm_rate": 0.0,
                              "k_size": 1, "target_rank": 1, "victim": "badnet_finetune"}
                             for t in d.thetas for rho in d.rho_px for mu in d.positions
                             for sc in d.theta_scales for r in d.alg1_readings])

    from paperlib.cache import artifact_key

    class FakeBench:
        base = SimpleNamespace(path=Path("base0"))
        victim_name = "victimA"

        def victim_key(self, attack, seed, threat):
            return {"victim": f"{self.victim_name}_{seed}"}

        def victim_absent(self, key):
            from paperlib.cache import ArtifactCache
            return not ArtifactCache().exists("model", key)

        def victim(self, attack, seed, threat):
            return (SimpleNamespace(path=Path(artifact_key("model", self.victim_key(attack, seed, threat)))), None,
                    SimpleNamespace(poison=SimpleNamespace(target="banana")))

        def segmenter(self):
            return Path("segmenter0")

    monkeypatch.setattr(ex, "_sweep_one_seed", fake_sweep)
    over = {"results_dir": str(tmp_path / "results"), "seeds": [0, 1]}
    p = ex.load("params/eftclip/smoke.yaml", over)
    wb = FakeBench()
    first = ex.detection_sweep(p, wb)
    assert len(calls) == 2 and sorted(first.seed.unique()) == [0, 1] and set(first.scale) == {p.scale}
    # the whole sweep at the ablation seed (the first), Table 1's trigger only at the other
    d = p.detection
    assert calls[0][1:] == (0, tuple(d.thetas), tuple(d.rho_px), tuple(d.positions))
    assert calls[1][1:] == (1, tuple(d.thetas), (d.default_rho,), (d.default_position,))
    again = ex.detection_sweep(p, wb)
    assert len(calls) == 2                                  # both seeds read from the cache
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again.reset_index(drop=True))
    ex.detection_sweep(ex.load("params/eftclip/smoke.yaml", {**over, "detection.thetas": [0.4, 0.66]}), wb)
    assert len(calls) == 4 and calls[-1][2] == (0.4, 0.66)  # another sweep: run again
    wb.victim_name = "victimB"
    ex.detection_sweep(p, wb)
    assert len(calls) == 6                                  # another victim: run again
    ex.detection_sweep(ex.load("params/eftclip/smoke.yaml", {**over, "eftclip.region_topk": p.eftclip.region_topk + 1}), wb)
    assert len(calls) == 8                                  # an Algorithm 1 setting outside the sweep: again
    ex.detection_sweep(ex.load("params/eftclip/smoke.yaml", {**over, "eftclip.calibration_target": 0.5}), wb)
    assert len(calls) == 10                                 # another theta calibration: again
    ex.detection_sweep(ex.load("params/eftclip/smoke.yaml", {**over, "eftclip.alg1_reading": "paper_trend"}), wb)
    assert len(calls) == 10                                 # the sweep runs every reading: read from the cache
    # a machine without the victims or the cache: the published rows of the very sweep stand in
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "fresh"))
    wb.victim_name = "victimA"
    said = []
    fresh = ex.detection_sweep(p, wb, log_fn=said.append)
    assert len(calls) == 10 and len(said) == 2 and all("rows from results/detection/eftclip.csv" in m for m in said)
    cols = ["dataset", "rho", "mu", "theta", "theta_scale", "alg1_reading", "detection_rate", "seed", "victim_model"]
    pd.testing.assert_frame_equal(fresh.sort_values(cols)[cols].reset_index(drop=True),
                                  first.sort_values(cols)[cols].reset_index(drop=True), check_dtype=False)
    ex.detection_sweep(ex.load("params/eftclip/smoke.yaml", {**over, "detection.thetas": [0.3, 0.66]}), wb)
    assert len(calls) == 12                                 # a sweep no row holds runs (both seeds)


def test_sweep_rows_keep_only_the_settings_these_parameters_sweep():
    """results/detection/eftclip.csv keeps rows of earlier runs: Table 1 and Figs. 3-4 read only the
    rows of the current sweep (a dropped theta or rho, another victim, scale or seed stay out)."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"seeds": [0, 1]})
    d = p.detection
    base = {"dataset": d.datasets[0], "n_backdoor": max(d.n_backdoor), "rho": d.default_rho,
            "mu": d.default_position, "theta": p.eftclip.theta, "theta_scale": p.eftclip.theta_scale,
            "theta_oracle": 0.2, "tau": p.eftclip.tau, "oracle": "fastsam", "alg1_reading": p.eftclip.alg1_reading,
            "false_alarm_rate": 0.0, "k_size": 1, "target_rank": 1, "victim": f"badnet_{d.victim}",
            "scale": p.scale}
    rows = [{**base, "seed": 0, "detection_rate": 40.0}, {**base, "seed": 1, "detection_rate": 60.0},
            {**base, "seed": 0, "rho": 99, "detection_rate": 0.0},                  # a rho since dropped
            {**base, "seed": 0, "theta": 0.123, "detection_rate": 0.0},             # a theta since dropped
            {**base, "seed": 0, "victim": "badnet_pretrain", "detection_rate": 0.0},
            {**base, "seed": 0, "scale": "other", "detection_rate": 0.0},
            {**base, "seed": 5, "detection_rate": 0.0},
            {**base, "seed": 0, "theta_scale": "paper", "detection_rate": 1.0},     # the raw-theta ablation
            {**base, "seed": 0, "alg1_reading": "paper_trend", "detection_rate": 90.0}]
    det = pd.DataFrame(rows)
    kept = ex.sweep_rows(det, p, p.seeds)
    assert sorted(kept.detection_rate) == [1.0, 40.0, 60.0, 90.0]     # both scales and readings are swept
    assert list(ex.sweep_rows(det, p, [1]).detection_rate) == [60.0]
    assert ex.sweep_rows(det, ex.load("params/eftclip/smoke.yaml", {"seeds": [0, 1], "detection.alg1_readings":
                                                                   ["printed"]}), p.seeds).alg1_reading.eq("printed").all()
    t1 = ex.table_1(det, p)       # at eftclip.theta_scale, a row per reading
    r = t1[(t1.dataset == d.datasets[0]) & (t1.oracle == "fastsam") & (t1.alg1_reading == p.eftclip.alg1_reading)].iloc[0]
    assert r.detection_rate_mean == 50.0 and r.n_seeds == 2 and r.theta_oracle == 0.2
    assert set(t1.alg1_reading) == {"printed", "paper_trend"} and set(t1.theta_scale) == {p.eftclip.theta_scale}
    # rows of older code (no theta scale, no reading) are the paper scale as printed
    old = pd.DataFrame([{k: v for k, v in base.items() if k not in ("theta_scale", "alg1_reading")}
                        | {"seed": 0, "detection_rate": 7.0}])
    assert set(ex.sweep_rows(old, p, p.seeds)[["theta_scale", "alg1_reading"]].itertuples(index=False)) == {
        ("paper", "printed")}


def test_eftclip_tables_average_the_seeds_asked_for_and_count_them():
    import pandas as pd

    from paperlib.experiments.eftclip import beside_paper_table
    rows = [{"table": "Table 5", "attack": "badnet", "model": "eftclip", "scale": "embedded", "seed": s,
             "ca_top1": ca, "asr_top1": asr} for s, ca, asr in ((0, 10.0, 30.0), (1, 12.0, 10.0), (2, 50.0, 90.0))]
    t = beside_paper_table(pd.DataFrame(rows), "Table 5", "embedded", seeds=[0, 1])
    r = t.iloc[0]
    assert r.n_seeds == 2 and r.ca_top1_mean == 11.0 and r.asr_top1_mean == 20.0
    assert abs(r.asr_top1_std - np.std([30.0, 10.0], ddof=1)) < 1e-9
    assert beside_paper_table(pd.DataFrame(rows), "Table 5", "embedded").iloc[0].n_seeds == 3
    assert beside_paper_table(pd.DataFrame(rows), "Table 5", "embedded", seeds=[7]).empty


def test_table5_names_the_threat_of_rows_from_before_the_column():
    """A Table 5 row measured again gains threat_model; the rows from before it are the fine-tuning
    victims', so every attack's row of the table says "finetune", not that attack's alone."""
    import pandas as pd

    from paperlib.experiments.eftclip import beside_paper_table
    rows = [{"table": "Table 5", "attack": a, "model": "eftclip", "scale": "embedded", "seed": s,
             "ca_top1": 20.0, "asr_top1": 90.0, **({"threat_model": "finetune"} if (a, s) == ("badnet", 1) else {})}
            for a in ("badnet", "trojannet") for s in (0, 1)]
    t = beside_paper_table(pd.DataFrame(rows), "Table 5", "embedded")
    assert t.set_index("attack").threat_model.to_dict() == {"badnet": "finetune", "trojannet": "finetune"}
    t2 = beside_paper_table(pd.DataFrame([{**r, "table": "Table 2"} for r in rows]), "Table 2", "embedded")
    assert t2.set_index("attack").threat_model.isna().to_dict() == {"badnet": False, "trojannet": True}


def test_table4_claims_need_roclip_trained_from_scratch(tmp_path):
    """Table 4's claims compare EftCLIP with RoCLIP trained from scratch, as the paper does; with
    the fine-tuning fallback (no pre-training victim) they are not measured (inconclusive, 0 seeds),
    not judged."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                              "pretrain_seeds": [0, 1, 2]})
    det = pd.DataFrame(columns=list(ex.DETECTION_COLUMNS))

    def table4(threat):
        seeds = p.pretrain_seed_list if threat == "pretrain" else p.seeds
        return pd.DataFrame([{"table": "Table 4", "attack": "badnet", "model": m, "scale": p.scale, "seed": s,
                              "ca_top1": ca + 0.1 * s, "asr_top1": asr - 0.1 * s, "threat_model": threat}
                             for m, ca, asr in (("eftclip", 8.0, 9.0), ("roclip", 5.0, 5.0)) for s in seeds])

    def verdicts(threat):
        out = ex.claims(table4(threat), det, p)
        return out[out.claim.str.contains("Table 4")].set_index("claim")[["ours", "verdict", "n_seeds"]]

    scratch = verdicts("pretrain")
    assert list(scratch.verdict) == ["holds", "fails"] and list(scratch.ours) == ["8.1 vs 5.1", "8.9 vs 4.9"]
    assert (tmp_path / "eftclip" / "claims.csv").is_file()
    fallback = verdicts("finetune")
    assert set(fallback.verdict) == {"inconclusive"} and set(fallback.ours) == {"not measured"}
    assert set(fallback.n_seeds) == {0}


def test_defence_tables_run_ablations_and_pretraining_at_their_own_seeds(tmp_path, monkeypatch):
    """Tables 2 and 5 at every seed; Algorithm 2's variant and Table 6 (the oracle comparison) at
    ablation_seeds; Tables 3-4 (a training from scratch per seed) at pretrain_seeds."""
    from pathlib import Path
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.experiments import common
    from paperlib.experiments import eftclip as ex

    def model(name):
        return SimpleNamespace(path=Path(name), summary={"seconds": 1.0, "samples": 10, "device": "cpu"},
                               key_params={"model": name})

    metrics = {f"{k}_top{n}": 1.0 for k in ("ca", "asr") for n in (1, 3, 5, 10)}

    tag, curated_calls = ["victim"], []
    # the victims' keys, as a machine without the models computes them (the block of a run's rows)
    wb = SimpleNamespace(base=model("base"), victim_key=lambda a, s, t: {"v": f"{tag[0]}_{a}_{t}_{s}"},
                         victim_absent=lambda key: True)   # no model is in this test's cache

    def fake_curated(p, wb, attack, threat, seed, rule=None, oracle_kind="fastsam"):
        curated_calls.append((attack, threat, seed))
        return {"victim": model(f"{tag[0]}_{attack}_{threat}_{seed}"), "attack": None,
                "v": SimpleNamespace(poison=SimpleNamespace(poison_count=5)), "model": model("eft"),
                "curated": 3, "detected": 50.0, "seconds": {"detect": 0.1}, "rule": rule or "paper",
                "n_affected": 0, "k_top": ["banana"], "affected": {}}

    monkeypatch.setattr(ex, "curated_defence", fake_curated)
    monkeypatch.setattr(ex, "_cifar_top1", lambda p, m: 1.0)
    monkeypatch.setattr(common, "victim_metrics", lambda *a, **k: dict(metrics))
    monkeypatch.setattr(common, "pretrain_victim", lambda *a, **k: model("roclip_scratch"))
    monkeypatch.setattr(pl, "defend", lambda *a, **k: model("defended"))
    monkeypatch.setattr(pl, "get_split", lambda *a, **k: range(10))
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                              "ablation_seeds": [1], "pretrain_seeds": [0, 2]})
    assert p.pretrain_victims and "exact" in p.detection.oracles and p.other_rules
    made = ex.defence_tables(p, wb, log_fn=lambda *a: None)
    t = made["tables"]
    # every curated set's row says what it cost, the pre-training victim's and the exact oracle's too
    cur = made["curation"]
    assert set(cur.threat_model) == {"finetune", "pretrain"} and set(cur.oracle) == {"fastsam", "exact"}
    assert (cur.finetune_s == 1.0).all() and (cur.detect_s == 0.1).all()
    seeds = t.groupby("table").seed.apply(lambda s: sorted(set(s))).to_dict()
    assert seeds["Table 2"] == seeds["Table 5"] == [0, 1, 2]
    assert seeds["Table 6"] == [1] and seeds["Table 3"] == seeds["Table 4"] == [0, 2]
    variant = t[t.model.str.startswith("eftclip_detected")]
    assert sorted(set(variant.seed)) == [1]
    assert set(t[t.table == "Table 4"].threat_model) == {"pretrain"}
    # BadNet's own seeds (seeds_by_attack): Table 2 and BadNet's Table 5 rows at 0-4 (the other
    # attacks' at `seeds`: the rows_asked test below; smoke has a BadNet victim only)
    p5 = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path / "five"), "seeds": [0, 1, 2],
                                               "seeds_by_attack": {"badnet": [0, 1, 2, 3, 4]},
                                               "ablation_seeds": [1], "pretrain_seeds": [0]})
    t5 = ex.defence_tables(p5, wb, log_fn=lambda *a: None)["tables"]
    assert sorted(set(t5[t5.table == "Table 2"].seed)) == [0, 1, 2, 3, 4]
    five = t5[t5.table == "Table 5"]
    assert sorted(set(five[five.attack == "badnet"].seed)) == [0, 1, 2, 3, 4]
    assert sorted(set(t5[t5.table == "Table 6"].seed)) == [1] and sorted(set(t5[t5.table == "Table 3"].seed)) == [0]
    kept = ex.rows_asked(t5, p5)
    assert sorted(set(kept[kept.attack == "badnet"].seed)) == [0, 1, 2, 3, 4]
    # other victims (a new attack recipe, another machine's victims) add rows beside the old ones
    import pandas as pd
    before = pd.read_csv(tmp_path / "eftclip" / "tables.csv")
    tag[0] = "other"
    again = ex.defence_tables(p, wb, log_fn=lambda *a: None)
    assert again["tables"].victim_model.str.startswith("other_").all()
    assert again["curation"].victim_model.str.startswith("other_").all()
    after = pd.read_csv(tmp_path / "eftclip" / "tables.csv")
    assert len(after) == len(before) + len(again["tables"])          # nothing of the first run was replaced
    first = ex._curation_rows(p, "badnet", seeds=[0], victims=set(t.victim_model))
    assert set(first.victim_model) == {"victim_badnet_finetune_0"}
    # a machine without the victims (none is in this cache) re-makes the first run's tables from its rows
    tag[0] = "victim"
    curated_calls.clear()
    said = []
    reused = ex.defence_tables(p, wb, log_fn=said.append)
    assert curated_calls == [] and any("rows from the results files" in m for m in said)
    cols = ["table", "attack", "model", "seed", "asr_top1", "victim_model"]
    pd.testing.assert_frame_equal(reused["tables"].sort_values(cols)[cols].reset_index(drop=True),
                                  t.sort_values(cols)[cols].reset_index(drop=True), check_dtype=False)
    assert len(reused["curation"]) == len(cur)
    ex.defence_tables(ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                                            "ablation_seeds": [1], "pretrain_seeds": [0, 2],
                                                            "reuse_rows": False}), wb, log_fn=lambda *a: None)
    assert curated_calls                                          # reuse_rows: false trains again
    # and a run at other settings (another theta) adds rows too, each run reading its own
    p_theta = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                                    "ablation_seeds": [1], "pretrain_seeds": [0, 2], "eftclip.theta": 0.5})
    assert ex.settings_digest(p_theta) != ex.settings_digest(p) == ex.settings_digest(ex.load(
        "params/eftclip/smoke.yaml", {"results_dir": str(tmp_path / "elsewhere"), "seeds": [0, 1, 2],
                                      "ablation_seeds": [1], "pretrain_seeds": [0, 2]}))   # not the folder
    third = ex.defence_tables(p_theta, wb, log_fn=lambda *a: None)
    assert len(pd.read_csv(tmp_path / "eftclip" / "tables.csv")) == len(after) + len(third["tables"])
    assert set(third["tables"].settings) == {ex.settings_digest(p_theta)}
    # the same victims at two settings: Algorithm 2's rows of each are read by their own parameters
    for q in (p, p_theta):
        assert set(ex._curation_rows(q, "badnet", seeds=[0], victims=set(t.victim_model)).settings) == {
            ex.settings_digest(q)}


def test_tables_read_each_table_at_its_own_seeds_and_threat_model():
    """tables.csv keeps earlier runs' rows: a table averages only the rows these parameters make
    (Table 6 and variants at ablation_seeds, Tables 3-4 at pretrain_seeds, Table 4 in its threat model)."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"seeds": [0, 1, 2], "ablation_seeds": [1], "pretrain_seeds": [0]})
    assert ex._table4_pretrain(p) == "badnet"
    cases = [("Table 2", "eftclip", 2, None, True), ("Table 2", "eftclip_detected", 2, None, False),
             ("Table 2", "eftclip_detected", 1, None, True), ("Table 5", "none", 1, None, True),
             ("Table 6", "eftclip_fastsam", 0, None, False), ("Table 6", "eftclip_exact", 1, None, True),
             ("Table 3", "cleanclip", 0, None, True), ("Table 3", "cleanclip", 2, None, False),
             ("Table 4", "roclip", 0, "pretrain", True), ("Table 4", "roclip", 0, "finetune", False),
             ("Table 4", "roclip", 2, "pretrain", False), ("Table 5", "none", 7, None, False)]
    t = pd.DataFrame([{"table": tb, "attack": "badnet", "model": m, "scale": p.scale, "seed": s, "threat_model": th,
                       "ca_top1": 1.0, "asr_top1": 1.0} for tb, m, s, th, _ in cases])
    kept = ex.rows_asked(t, p)
    assert list(kept.index) == [i for i, c in enumerate(cases) if c[-1]]
    assert ex.rows_asked(t.assign(scale="gpu"), p).empty
    # each attack at its own seeds: BadNet's seed 4 (seeds_by_attack) is read, WaNet's is not
    p5 = ex.load("params/eftclip/smoke.yaml", {"seeds": [0, 1, 2], "seeds_by_attack": {"badnet": [0, 1, 2, 3, 4]}})
    extra = pd.DataFrame([{"table": "Table 5", "attack": a, "model": "none", "scale": p5.scale, "seed": 4,
                           "ca_top1": 1.0, "asr_top1": 1.0} for a in ("badnet", "wanet")])
    assert list(ex.rows_asked(extra, p5).attack) == ["badnet"]


def test_mask_box_is_the_tight_box_of_the_mask():
    from paperlib.detect.oracle import mask_box
    m = np.zeros((64, 64), bool)
    m[25:50, 5:30] = True
    assert mask_box(m) == (5, 25, 30, 50)       # ultralytics' FastSAM box for it: (0, 25, 30, 64)
    assert mask_box(np.zeros((8, 8), bool)) is None


def test_fastsam_regions_are_cropped_by_their_masks_not_ultralytics_border_snapped_boxes(tmp_path):
    """FastSAM's predictor snaps box edges within 20 px of the border onto it (meant for 1024 px
    images): the oracle's boxes are the masks' own, so a crop never grows to the image border."""
    import json

    from safetensors.torch import save_file
    from ultralytics.nn.tasks import SegmentationModel

    from paperlib.detect.oracle import FastSAMOracle, mask_box
    torch.manual_seed(0)
    net = SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False)   # untrained: random regions
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "segmenter.safetensors"))
    (tmp_path / "model.json").write_text(json.dumps({"yaml": net.yaml, "names": {"0": "object"}}))
    imgs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    regions = [r for rs in FastSAMOracle(tmp_path, imgsz=64).segment(imgs, theta=0.0) for r in rs]
    assert regions
    assert all(r.box == mask_box(r.mask) for r in regions)


def _segmenter_artifact(folder):
    """A hand-made segmenter artifact as train_segmenter leaves it (an untrained network)."""
    import json

    from safetensors.torch import save_file
    from ultralytics.nn.tasks import SegmentationModel
    torch.manual_seed(0)
    net = SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "segmenter.safetensors"))
    (folder / "model.json").write_text(json.dumps({"yaml": net.yaml, "names": {"0": "object"}}))
    return folder


def test_the_fastsam_oracle_loads_its_weights_without_unpickling(tmp_path, monkeypatch):
    """No .pt is written or read: torch.load (ultralytics' way into a pickle) and torch.save fail
    here, and the oracle still loads and segments."""
    from paperlib.detect.oracle import FastSAMOracle

    def refuse(*args, **kwargs):
        raise AssertionError("a pickle was written or read")
    art = _segmenter_artifact(tmp_path)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch, "save", refuse)
    imgs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    regions = FastSAMOracle(art, imgsz=64).segment(imgs, theta=0.0)
    assert len(regions) == 2 and any(regions)


def test_a_segmenter_pt_file_is_refused_unopened(tmp_path, monkeypatch):
    from paperlib.detect.oracle import load_fastsam
    pt = tmp_path / "FastSAM-s.pt"
    pt.write_bytes(b"\x80\x04not opened")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the .pt was unpickled"))
    with pytest.raises(ValueError) as e:
        load_fastsam(pt)
    assert str(pt) in str(e.value) and "segmenter.safetensors" in str(e.value)


def test_a_corrupt_segmenter_weights_file_is_named(tmp_path):
    from paperlib.detect.oracle import load_fastsam
    art = _segmenter_artifact(tmp_path)
    (art / "segmenter.safetensors").write_bytes(b"\x80\x04garbage" * 64)
    with pytest.raises(ValueError) as e:
        load_fastsam(art)
    assert str(art / "segmenter.safetensors") in str(e.value)


def test_oracle_claim_is_not_measured_when_both_curated_sets_are_random(tmp_path):
    """Table 6 compares the oracles through Algorithm 2's curated sets; when neither oracle found an
    affected label both sets are the same random subset, so a gap of 0 is no evidence for the claim."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2], "ablation_seeds": [0, 1, 2]})
    det = pd.DataFrame(columns=list(ex.DETECTION_COLUMNS))
    seeds = p.ablation_seed_list
    table6 = pd.DataFrame([{"table": "Table 6", "attack": "badnet", "model": m, "scale": p.scale, "seed": s,
                            "ca_top1": 9.0, "asr_top1": 13.0 + 0.1 * s}
                           for m in ("eftclip_fastsam", "eftclip_exact") for s in seeds])

    def verdict(n_fastsam, n_exact):
        rows = [{"attack": "badnet", "threat_model": "finetune", "oracle": o, "seed": s, "scale": p.scale,
                 "rule": p.eftclip.affected_rule, "theta_scale": p.eftclip.theta_scale,
                 "alg1_reading": p.eftclip.alg1_reading, "n_affected": n}
                for o, n in (("fastsam", n_fastsam), ("exact", n_exact)) for s in seeds]
        (tmp_path / "eftclip").mkdir(exist_ok=True)
        pd.DataFrame(rows).to_csv(tmp_path / "eftclip" / "curation.csv", index=False)
        out = ex.claims(table6, det, p)
        return out[out.claim.str.contains("Table 6")][["ours", "verdict", "n_seeds"]].iloc[0]

    unmeasured = verdict(0, 0)
    assert unmeasured.verdict == "inconclusive" and unmeasured.ours == "not measured" and unmeasured.n_seeds == 0
    for n_fastsam, n_exact in ((0, 2), (2, 0)):
        measured = verdict(n_fastsam, n_exact)
        assert measured.verdict == "holds" and measured.ours == "13.1 vs 13.1" and measured.n_seeds == 3


def test_claims_read_an_old_curation_file_as_not_measured(tmp_path):
    """A curation.csv written by older code (no oracle / threat_model / n_affected columns) makes
    the claims that read it not measured instead of failing the whole claims table."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path)})
    (tmp_path / "eftclip").mkdir()
    pd.DataFrame([{"attack": "badnet", "scale": p.scale, "seed": p.seeds[0], "curated": 10}]).to_csv(
        tmp_path / "eftclip" / "curation.csv", index=False)
    out = ex.claims(pd.DataFrame(), pd.DataFrame(columns=list(ex.DETECTION_COLUMNS)), p)
    affected = out[out.claim.str.contains("Algorithm 2 as printed")].iloc[0]
    assert affected.verdict == "inconclusive" and affected.ours == "not measured"
    assert "lacks columns" in affected.spread


def test_table2_cleanclip_is_the_matrix_row_of_that_model_when_absent_from_the_cache(tmp_path, monkeypatch):
    """EftCLIP's Table 2 CleanCLIP: a model absent from this cache whose matrix row names it stands in
    by that row (no training); without such a row it is trained and evaluated here."""
    from types import SimpleNamespace

    import pandas as pd

    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.experiments import common
    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path)})
    v = next(x for x in p.victims if x.attack == "badnet")
    victim = SimpleNamespace(key_params={"victim": "badnet-0"})
    key = pl.defence_key(victim.key_params, "cleanclip", p.defence.config("cleanclip", "badnet"),
                         p.defence.clean_scenes, p.defence.train, 0, None, "cpu")
    trained = []
    monkeypatch.setattr(pl, "defend", lambda *a, **k: trained.append(1) or SimpleNamespace())
    monkeypatch.setattr(common, "victim_metrics", lambda *a: {"ca_top1": 2.0, "asr_top1": 3.0})
    assert ex._cleanclip_metrics(p, victim, None, v, "badnet", 0) == {"ca_top1": 2.0, "asr_top1": 3.0} and trained == [1]
    (tmp_path / "defences").mkdir()
    row = {"attack": "badnet", "defence": "cleanclip", "scale": p.scale, "seed": 0, "model": artifact_key("model", key),
           **{f"{k}_top{n}": 10.0 * n for k in ("ca", "asr") for n in (1, 3, 5, 10)}}
    pd.DataFrame([row]).to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    m = ex._cleanclip_metrics(p, victim, None, v, "badnet", 0)
    assert m["asr_top1"] == 10.0 and m["ca_top10"] == 100.0 and trained == [1]


def test_pretrain_victim_key_is_the_key_pretrain_victim_builds(monkeypatch, tmp_path):
    """The key computed without training (what a machine without the model matches rows by) is the
    very key the pre-training victim, and RoCLIP trained from scratch, are cached under."""
    from types import SimpleNamespace

    from paperlib.cache import ArtifactCache
    from paperlib.experiments import common
    from paperlib.experiments.eftclip_setup import load
    p = load("params/eftclip/smoke.yaml")
    v = common.victim_config(p, "badnet", "pretrain")
    base = SimpleNamespace(key_params={"base": "x"})
    seen = []
    monkeypatch.setattr(ArtifactCache, "cached", lambda self, kind, key: seen.append(key) or tmp_path)
    plain = SimpleNamespace(needs_fit=False)
    common.pretrain_victim(p, base, v, 3, attack=plain)
    common.pretrain_victim(p, base, v, 3, attack=plain, defence_id="roclip", defence_cfg=p.defence.config("roclip", "badnet"))
    assert seen == [common.pretrain_victim_key(p, base, v, 3),
                    common.pretrain_victim_key(p, base, v, 3, "roclip", p.defence.config("roclip", "badnet"))]
    assert seen[0] != seen[1]



def test_fig6_draws_hand_made_latencies_with_scale_and_images_in_its_title(tmp_path, monkeypatch):
    """Fig. 6 (re-exported from eftclip_figures): one dot per image and oracle of this scale, the
    title naming the scale and how many images were timed."""
    import pandas as pd

    from paperlib import figures
    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path)})
    lat = pd.DataFrame([{"oracle": o, "image": i, "ms": ms * (1 + i), "scale": s}
                        for o, ms in (("fastsam", 2.0), ("exact", 0.5)) for i in range(3)
                        for s in (p.scale, "other")])
    drawn, real_save = [], figures.save_figure

    def save(fig, path, **kw):
        ax = fig.axes[0]
        drawn.append((ax.get_title(), sum(len(c.get_offsets()) for c in ax.collections)))
        return real_save(fig, path, **kw)
    monkeypatch.setattr(figures, "save_figure", save)
    path = ex.plot_fig6(lat, p)
    assert path.is_file() and path.name == f"fig6_{p.scale}.png"
    (title, dots), = drawn
    assert f"({p.scale} scale, 3 images, one timing run" in title and dots == 6   # the other scale's rows left out


def test_affected_labels_parse_and_the_target_claim_reads_them(tmp_path):
    """curation.csv's affected_top lists A's labels with their counts (labels may hold spaces); the
    claim that Algorithm 2 puts the target in A counts, seed by seed, whether the victim's target is
    among them: at every seed it holds, at none it fails (SEM 0 either way)."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    from paperlib.experiments.eftclip_report import affected_labels_of, affected_sets
    from paperlib.experiments.eftclip_reuse import _block
    from paperlib.experiments.eftclip_setup import settings_digest
    assert affected_labels_of("running vest:1 banana:12") == ["running vest", "banana"]
    assert affected_labels_of(float("nan")) == [] and affected_labels_of("") == []
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2]})
    target = next(v for v in p.victims if v.attack == "badnet").poison.target
    digest = settings_digest(p)

    def claim(affected_top):
        rows = [{"attack": "badnet", "threat_model": "finetune", "oracle": "fastsam", "seed": s, "scale": p.scale,
                 "rule": p.eftclip.affected_rule, "theta_scale": p.eftclip.theta_scale,
                 "alg1_reading": p.eftclip.alg1_reading, "n_affected": len(affected_labels_of(affected_top)),
                 "affected_top": affected_top, "victim_model": f"v{s}", "settings": digest,
                 "block": _block(p, "finetune", "badnet", s, f"v{s}", digest)} for s in p.seeds_for("badnet")]
        (tmp_path / "eftclip").mkdir(exist_ok=True)
        pd.DataFrame(rows).to_csv(tmp_path / "eftclip" / "curation.csv", index=False)
        out = ex.claims(pd.DataFrame(), pd.DataFrame(columns=list(ex.DETECTION_COLUMNS)), p)
        return out[out.claim.str.contains("target among the affected labels")].iloc[0]

    found = claim(f"window:2 {target}:5")
    assert found.verdict == "holds" and found.ours == "target in A at 100.0% of seeds" and found.n_seeds == 3
    missed = claim("window:2 running vest:1")
    assert missed.verdict == "fails" and missed.ours == "target in A at 0.0% of seeds"
    sets = affected_sets(p)
    assert list(sets.A) == ["window, running vest"] * 3 and not sets.target_in_A.any()
    assert set(sets.target) == {target} and list(sets.seed) == [0, 1, 2]
    assert affected_sets(p, victims={"v1"}).seed.tolist() == [1]
    pd.DataFrame([{"attack": "badnet", "scale": p.scale, "seed": 0, "curated": 10}]).to_csv(   # older code's file
        tmp_path / "eftclip" / "curation.csv", index=False)
    assert affected_sets(p).empty and ex.affected_labels_of("a:1") == ["a"]


def test_oracle_rows_of_another_machine_stay_beside_this_one_s(tmp_path):
    """One cache key trains other segmenter weights on another CPU kind, so the oracle's calibration,
    masks and latency are keyed by device: a run on one machine replaces its own rows and leaves the
    other machine's (the AVX-512 EPYC's calibration was once overwritten by the Xeon's)."""
    import pandas as pd

    from paperlib.experiments.eftclip import write_oracle_rows

    def run(device, cut, ms, here=None):
        rows = [{"oracle": "fastsam", "theta": 0.66, "theta_scale": "calibrated", "scale": "smoke", "device": device,
                 "theta_oracle": cut, "miou": 50.0}]
        lat = [{"oracle": "fastsam", "image": i, "ms": ms, "scale": "smoke", "device": here or device} for i in range(3)]
        cal = [{"oracle": "fastsam", "scale": "smoke", "device": device, "theta_oracle": cut}]
        return write_oracle_rows(tmp_path, rows, lat, cal, device, here)

    run("AMD EPYC (AVX-512)", 0.2227, 5.0)
    mine, latency = run("Intel Xeon (AVX-512)", 0.3192, 7.0)
    assert list(mine.theta_oracle) == [0.3192] and set(latency.ms) == {7.0} and len(latency) == 3
    mine, latency = run("Intel Xeon (AVX-512)", 0.31, 8.0)              # the same machine again: replaced
    assert list(mine.theta_oracle) == [0.31] and set(latency.ms) == {8.0}
    cal = pd.read_csv(tmp_path / "eftclip" / "theta_calibration.csv")
    assert dict(zip(cal.device, cal.theta_oracle)) == {"AMD EPYC (AVX-512)": 0.2227, "Intel Xeon (AVX-512)": 0.31}
    assert len(pd.read_csv(tmp_path / "eftclip" / "fig6_latency.csv")) == 6
    assert len(pd.read_csv(tmp_path / "detection" / "oracle.csv")) == 2
    # a segmenter trained on the EPYC, timed on the Xeon: its masks are the EPYC's rows, its latency the Xeon's
    mine, latency = run("AMD EPYC (AVX-512)", 0.25, 9.0, here="Intel Xeon (AVX-512)")
    assert list(mine.theta_oracle) == [0.25] and set(latency.ms) == {9.0} and set(latency.device) == {"Intel Xeon (AVX-512)"}
    from paperlib.bench import cpu_model
    from paperlib.detect.oracle import trained_on
    assert trained_on("cpu") == cpu_model()


def test_the_theta_trend_claims_read_table1_s_trigger_at_every_badnet_seed(tmp_path):
    """The whole grid runs at the ablation seeds only, but Table 1's trigger runs every theta at every
    BadNet seed: the two trend claims read those rows (paired by seed), each reading its own."""
    import pandas as pd

    from paperlib.experiments import eftclip as ex
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2]})
    d = p.detection
    lo, hi = min(d.thetas), max(d.thetas)
    base = {"dataset": d.datasets[0], "n_backdoor": max(d.n_backdoor), "rho": d.default_rho,
            "mu": d.default_position, "theta_scale": p.eftclip.theta_scale, "theta_oracle": 0.2,
            "tau": p.eftclip.tau, "oracle": "fastsam", "false_alarm_rate": 0.0, "k_size": 1, "target_rank": 1,
            "victim": f"badnet_{d.victim}", "scale": p.scale}
    rows = []
    for seed in (0, 1, 2):
        for theta, printed, trend in ((lo, 20.0 + seed, 5.0 + seed), (hi, 80.0 + seed, 1.0)):
            rows += [{**base, "seed": seed, "theta": theta, "alg1_reading": "printed", "detection_rate": printed},
                     {**base, "seed": seed, "theta": theta, "alg1_reading": "paper_trend", "detection_rate": trend}]
    # the whole grid at seed 0 (another rho and position) with the opposite trends: not Table 1's trigger
    other_rho = next(r for r in d.rho_px if r != d.default_rho) if len(d.rho_px) > 1 else d.default_rho + 1
    other_mu = next(m for m in d.positions if m != d.default_position)
    for theta, printed, trend in ((lo, 99.0, 0.0), (hi, 0.0, 99.0)):
        rows += [{**base, "seed": 0, "rho": other_rho, "mu": other_mu, "theta": theta, "alg1_reading": "printed",
                  "detection_rate": printed},
                 {**base, "seed": 0, "rho": other_rho, "mu": other_mu, "theta": theta, "alg1_reading": "paper_trend",
                  "detection_rate": trend}]
    out = ex.claims(pd.DataFrame(), pd.DataFrame(rows), p)
    trend = out[out.claim.str.startswith("Detection falls as theta rises")].set_index("claim")
    printed = trend[trend.index.str.contains("Algorithm 1 printed")].iloc[0]
    falling = trend[trend.index.str.contains("Algorithm 1 paper_trend")].iloc[0]
    assert printed.n_seeds == 3 and printed.verdict == "fails" and printed.ours == "21.0 -> 81.0"
    assert falling.n_seeds == 3 and falling.verdict == "holds" and falling.ours == "6.0 -> 1.0"
