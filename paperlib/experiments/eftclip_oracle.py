"""EftCLIP's oracles on clean scenes: latency one image at a time (Fig. 6), mask mIoU at every theta of
the sweep, and theta's calibration onto the segmenter's confidences (``detection/oracle.csv``,
``eftclip/fig6_latency.csv``, ``eftclip/theta_calibration.csv``), each row naming the machine whose
segmenter it measured.  Split from :mod:`paperlib.experiments.eftclip`, which re-exports it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.eftclip_setup import PAPER, EftCLIPParams, Workbench


def oracle_benchmark(p: EftCLIPParams, wb: Workbench | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Latency (one image at a time) and mask mIoU of each oracle on clean CC3M-analogue scenes.

    mIoU and regions per image at every theta of the sweep on each theta scale (``theta_oracle``:
    the cut on the oracle's confidences), latency at ``eftclip.theta`` on ``eftclip.theta_scale``;
    the calibration (theta' and what the segmenter returns on its validation scenes there) goes
    to ``eftclip/theta_calibration.csv``.  Every row names its ``device``, the machine whose
    segmenter it measured (rows of other machines stay in the files); returns this machine's."""
    from paperlib import pipeline as pl
    from paperlib.detect.oracle import matched_miou, timed_segment
    wb = wb or Workbench(p)
    split = pl.get_split("cc3m_analog", p.data)
    seed = p.seeds_for("badnet")[0]
    victim = wb.victim_unbuilt("badnet", seed, p.detection.victim)   # its key only: the scenes to leave out
    ids = wb.held_out_scenes("cc3m_analog", p.detection.latency_images, victim, seed)
    imgs = np.asarray(split.images[ids])
    # where the segmenter was trained: one cache key trains other weights on another CPU kind, so its
    # calibration and masks are rows of that machine (a segmenter from before its summary named one: this
    # machine's, where it was trained then); the latency is timed here
    import json
    summary = json.loads((wb.segmenter() / "summary.json").read_text())
    here = pl.device_name(pl.resolve_device(p.device))
    device = summary.get("device") or here
    rows, lat, calibrations = [], [], []
    thetas = sorted(set(p.detection.thetas) | {p.eftclip.theta})
    for kind in p.detection.oracles:
        oracle = wb.oracle(kind, "cc3m_analog")
        maps = {scale: wb.theta_map(kind, scale) for scale in p.detection.theta_scales}
        cut = maps[p.eftclip.theta_scale].to_oracle(p.eftclip.theta)
        oracle.segment(imgs[:2], cut, ids[:2])          # warm-up (first call loads kernels)
        regions, ms = timed_segment(oracle, imgs, cut, ids, batch=1)
        lat += [{"oracle": kind, "image": int(j), "ms": float(m), "scale": p.scale, "device": here}
                for j, m in enumerate(ms)]
        # mask quality at every confidence cut: segment once at the lowest, keep regions >= the cut
        cuts = {(scale, theta): m.to_oracle(theta) for scale, m in maps.items() for theta in thetas}
        low = oracle.segment(imgs, min(cuts.values()), ids)
        for (scale, theta), c in cuts.items():
            kept = [[r for r in regs if r.conf >= c] for regs in low]
            ious = [x for r, i in zip(kept, ids) for x in matched_miou(r, np.asarray(split.instances[i]))]
            rows.append({"oracle": kind, "theta": theta, "theta_scale": scale, "theta_oracle": c,
                         "ms_per_image": float(ms.mean()), "ms_std": float(ms.std()), "latency_theta": cut,
                         "miou": 100.0 * float(np.mean(ious)), "objects": len(ious),
                         "regions_per_image": float(np.mean([len(r) for r in kept])), "n_images": len(ids),
                         "device": device, "timed_on": here, "scale": p.scale})
        if maps.get("calibrated") is not None and maps["calibrated"].scale == "calibrated":
            calibrations.append({"oracle": kind, **maps["calibrated"].row(), "theta": p.eftclip.theta,
                                 "theta_oracle": maps["calibrated"].to_oracle(p.eftclip.theta), "scale": p.scale,
                                 "device": device})
    return write_oracle_rows(Path(p.results_dir), rows, lat, calibrations, device, here)


def write_oracle_rows(out: Path, rows: list[dict], lat: list[dict], calibrations: list[dict],
                      device: str, here: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Upsert the oracle benchmark's rows into ``detection/oracle.csv`` and
    ``eftclip/theta_calibration.csv`` (``device``: where the segmenter was trained) and
    ``eftclip/fig6_latency.csv`` (``here``: the machine that timed it; default ``device``) under
    ``out``, keyed by device too, so another machine's rows stay beside them; returns this run's mask
    and latency rows."""
    from paperlib.results import upsert_csv
    here = here or device
    if calibrations:
        upsert_csv(out / PAPER / "theta_calibration.csv", calibrations, ("oracle", "scale", "device"))
    oracle_rows = upsert_csv(out / "detection" / "oracle.csv", rows, ("oracle", "theta", "theta_scale", "scale", "device"))
    latency = upsert_csv(out / PAPER / "fig6_latency.csv", lat, ("oracle", "image", "scale", "device"))
    return oracle_rows[oracle_rows.device == device], latency[latency.device == here]
