"""Trigger visibility (issue 22's measured reason): the pixel and feature measures on hand-made inputs."""
import numpy as np
import pytest

from paperlib.experiments.trigger_visibility import pixel_change, separability


def test_pixel_change_counts_the_patch_and_nothing_else():
    clean = np.zeros((2, 3, 64, 64), np.uint8)
    trig = clean.copy()
    trig[:, :, -16:, -16:] = 255                       # a 16 px white corner patch
    m = pixel_change(clean, trig)
    assert m["pixel_changed"] == pytest.approx(100 * 256 / 4096)
    assert m["pixel_mean_abs"] == pytest.approx(255 * 256 / 4096)
    small = clean.copy()
    small[:, :, :4, :4] = 8                            # moved by 8 levels: not counted as changed
    assert pixel_change(clean, small)["pixel_changed"] == 0.0


def test_separability_is_high_for_a_visible_shift_and_chance_for_none():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=(200, 16))
    shifted = clean + np.r_[3.0, np.zeros(15)]           # the trigger moves one direction a lot
    seen = separability(clean, shifted)
    assert seen["probe_auroc"] > 95
    same = separability(clean, clean + rng.normal(scale=1e-6, size=clean.shape))
    assert 35 < same["probe_auroc"] < 65 and same["feature_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert seen["feature_cosine"] < same["feature_cosine"]
    with pytest.raises(ValueError, match="as many triggered as clean"):
        separability(clean, shifted[:10])


def test_shift_consistency_tells_a_patch_from_a_warp():
    """A patch moves every embedding the same way; an image-dependent change moves each its own way."""
    rng = np.random.default_rng(1)
    clean = rng.normal(size=(100, 16))
    patch = separability(clean, clean + np.r_[2.0, np.zeros(15)])
    warp = separability(clean, clean + rng.normal(scale=2.0, size=clean.shape))
    assert patch["shift_consistency"] > 0.99 and warp["shift_consistency"] < 0.3


def test_trigger_labels_say_pixels():
    from paperlib.experiments.trigger_visibility import trigger_label
    assert trigger_label("badclip", '{"patch_fraction": 0.15625}', 64) == "badclip 10 px"
    assert trigger_label("badnet", '{"patch_fraction": 0.25, "position": "bottom_right"}', 64) == "badnet 16 px"
    assert trigger_label("wanet", '{"k": 64, "s": 1.0}', 64) == "wanet k=64 s=1.0"
    assert trigger_label("sig", "{}", 64) == "sig (defaults)"


def test_smoke_run_writes_one_row_per_trigger_with_its_files(tmp_path, monkeypatch):
    """The whole measurement at smoke: one row per distinct trigger (a repeated setting once), the
    pixel share a 16 px corner patch changes at most its area, the table, markdown and figure."""
    from pathlib import Path

    import pandas as pd

    from paperlib.experiments.attacks import load
    from paperlib.experiments.trigger_visibility import run
    root = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = load(root / "params" / "attacks" / "smoke.yaml", {
        "results_dir": str(tmp_path / "out"), "pretrain_victims": [], "victims": [], "calibration": [],
        "trigger_checks": [{"attack": "badnet", "attack_params": {"patch_fraction": 0.25}},
                           {"attack": "badnet", "attack_params": {"patch_fraction": 0.25}},
                           {"attack": "blended", "attack_params": {}}]})
    rows = run(p, log=lambda *a: None, max_images=40)
    assert sorted(rows.attack) == ["badnet", "blended"] and rows.test_images_changed.all()
    bad = rows.set_index("attack").loc["badnet"]
    assert 0 < bad.pixel_changed <= 100 * 0.25 ** 2 + 1e-9 and 0 <= bad.probe_auroc <= 100
    assert (rows.victim_seeds == 0).all()                     # no victim trained: no ASR beside it
    out = tmp_path / "out" / "attacks"
    assert len(pd.read_csv(out / "trigger_visibility.csv")) == 2
    assert (out / "trigger_visibility.md").is_file() and (out / f"trigger_visibility_{p.scale}.png").is_file()
