"""EftCLIP's figures: Figs. 3-4 (detection rates over the sweep), 5 (the two oracles on the same
images), 6 (oracle latency) and 7 (what the poisoned CLIP and the oracle each see).

Split from :mod:`paperlib.experiments.eftclip_report` (tables and claims), whose rows it draws;
:mod:`paperlib.experiments.eftclip` re-exports every public name here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.eftclip_report import _full_sweep, main_rows
from paperlib.experiments.eftclip_setup import PAPER, EftCLIPParams, Workbench
from paperlib.figures import seeds_caption


def _save_rate_figure(fig, axes, title: str, path: Path) -> Path:
    """The detection-rate panels' shared axes (0-100%), legends and title; written as PNG."""
    from paperlib.figures import save_figure
    for ax in axes:
        ax.set_ylim(0, 100)
        ax.set_ylabel("detection rate (%)")
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def _paper_detection_lines(ax, p: EftCLIPParams) -> None:
    """The paper's Table 1 detection rates at its largest n (its default setting) as dotted lines."""
    from paperlib.papers import lookup
    t1 = lookup(PAPER, "Table 1")
    n = t1.setting.str.extract(r"n_backdoor=(\d+)")[0].astype(int)
    for row, colour in zip(t1[n == n.max()].itertuples(), ("grey", "black")):
        ax.axhline(row.value, color=colour, ls=":", lw=1, label=f"paper Table 1, {row.row} (its default setting only)")


def plot_fig3(det: pd.DataFrame, p: EftCLIPParams):
    """Fig. 3: (a) detection rate by rho and mu at theta = default (Algorithm 1 in
    ``eftclip.alg1_reading``); (b) by theta per mu, one line style per Algorithm 1 reading (the
    datasets averaged): the printed reading can only rise with theta, the paper's falls."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = main_rows(_full_sweep(det, p), p, reading=False)
    d = d[(d.oracle == "fastsam") & (d.tau == p.eftclip.tau)
          & (d.n_backdoor == max(p.detection.n_backdoor))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    a = d[np.isclose(d.theta, p.eftclip.theta) & (d.alg1_reading == p.eftclip.alg1_reading)].copy()
    a["setting"] = a["dataset"].str.replace("_analog", "") + " rho=" + a["rho"].astype(str)
    sns.barplot(a, x="mu", y="detection_rate", hue="setting", ax=axes[0], errorbar=None)
    axes[0].set_title(f"(a) rho x mu, theta={p.eftclip.theta}", fontsize=9)
    b = d[d.rho == p.detection.default_rho]
    sns.lineplot(b, x="theta", y="detection_rate", hue="mu", style="alg1_reading", markers=True, ax=axes[1],
                 errorbar=None)
    axes[1].set_title(f"(b) theta ({p.eftclip.theta_scale} scale), rho={p.detection.default_rho}", fontsize=9)
    for ax in axes:
        _paper_detection_lines(ax, p)
    return _save_rate_figure(fig, axes, f"EftCLIP Fig. 3 at the {p.scale} scale (FastSAM-analogue oracle; "
                                        f"{seeds_caption(d.seed)})",
                             Path(p.results_dir) / PAPER / f"fig3_{p.scale}.png")


def plot_fig4(det: pd.DataFrame, p: EftCLIPParams):
    """Fig. 4: (a) detection rate by theta for each tau and dataset; (b) mu x tau on the CC3M analogue."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = main_rows(_full_sweep(det, p), p)
    d = d[(d.oracle == "fastsam") & (d.rho == p.detection.default_rho)
          & (d.n_backdoor == max(p.detection.n_backdoor))]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    a = d[d.mu == p.detection.default_position].copy()
    a["tau"] = "tau=" + a["tau"].astype(str)
    sns.lineplot(a, x="theta", y="detection_rate", hue="tau", style="dataset", markers=True, ax=axes[0], errorbar=None)
    axes[0].set_title("(a) theta x tau", fontsize=9)
    b = d[d.dataset == "cc3m_analog"].copy()
    b["setting"] = b["mu"] + " tau=" + b["tau"].astype(str)
    sns.lineplot(b, x="theta", y="detection_rate", hue="setting", markers=True, ax=axes[1], errorbar=None)
    axes[1].set_title("(b) mu x tau, CC3M analogue", fontsize=9)
    for ax in axes:
        _paper_detection_lines(ax, p)
    return _save_rate_figure(fig, axes, f"EftCLIP Fig. 4 at the {p.scale} scale ({p.eftclip.theta_scale} theta, "
                                        f"Algorithm 1 {p.eftclip.alg1_reading}; {seeds_caption(d.seed)})",
                             Path(p.results_dir) / PAPER / f"fig4_{p.scale}.png")


def plot_fig6(lat: pd.DataFrame, p: EftCLIPParams):
    """Fig. 6: per-image oracle latency (ms), one dot per image."""
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure

    lat = lat[lat.scale == p.scale]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    for (kind, g), colour in zip(lat.groupby("oracle"), ("tab:blue", "tab:red", "tab:green")):
        ax.scatter(g["image"], g["ms"], s=3, c=colour, label=f"{kind} (mean {g['ms'].mean():.1f} ms)")
        ax.axhline(g["ms"].mean(), color=colour, ls="--", lw=1)
    from paperlib.papers import lookup
    for row in lookup(PAPER, "Fig 6").itertuples():   # the paper's "around" numbers (caption of its Fig. 6)
        ax.axhline(row.value, color="grey", ls=":", lw=1)
        ax.annotate(f"paper: {row.row}, ~{row.value:g} ms", (0, row.value), fontsize=6, color="grey",
                    xytext=(2, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xlabel("image")
    ax.set_ylabel("ms per image")
    ax.legend(fontsize=7)
    where = ", ".join(sorted(set(lat["device"].dropna().astype(str)))) if "device" in lat else ""
    ax.set_title(f"Oracle latency ({p.scale} scale, {lat['image'].nunique()} images, one timing run"
                 + (f" on {where}" if where else "") + "; EftCLIP Fig. 6)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig6_{p.scale}.png")


def _figure_images(p: EftCLIPParams, wb: Workbench):
    """(victim, scene ids, triggered images, seed) that Figs. 5 and 7 draw: held-out scenes of the
    CC3M analogue with the first seed's BadNet trigger."""
    from paperlib import pipeline as pl
    from paperlib.detect.eftclip import triggered
    seed = p.seeds_for("badnet")[0]
    victim, atk, _ = wb.victim("badnet", seed, p.detection.victim)
    split = pl.get_split("cc3m_analog", p.data)
    ids = wb.held_out_scenes("cc3m_analog", p.detection.figure_images, victim, seed)
    imgs = triggered(np.asarray(split.images[ids]), atk.pattern, p.detection.default_rho,
                     p.detection.default_position, seed=seed)
    return victim, ids, imgs, seed


def plot_fig5(p: EftCLIPParams, wb: Workbench | None = None):
    """Fig. 5: the two oracles on the same triggered images, asked with the poisoned CLIP's list.

    The paper sets FastSAM (a) beside SAM (b); here the FastSAM analogue (our class-agnostic
    YOLOv8-seg, at the calibrated cut of ``eftclip.theta``) stands beside the exact masks of the
    composite scenes, the most precise segmenter there can be (SAM's part)."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    wb = wb or Workbench(p)
    victim, ids, imgs, seed = _figure_images(p, wb)
    panels = []
    for kind, colour, what in (("fastsam", "red", "(a) FastSAM analogue"), ("exact", "yellow", "(b) exact masks")):
        oracle = wb.oracle(kind, "cc3m_analog")
        cut = wb.theta_map(kind).to_oracle(p.eftclip.theta)
        maker = wb.list_maker(victim, oracle)
        lists = maker.lists(maker.observe(imgs, p.eftclip.tau, cut, p.eftclip.region_topk, ids),
                            p.eftclip.tau, cut, p.eftclip.min_region_side)
        panels.append((what, colour, cut, oracle.segment(imgs, cut, ids), lists))
    n = len(ids)
    fig, axes = plt.subplots(n, 2, figsize=(6, 2.6 * n), squeeze=False)
    for j, (what, colour, cut, regions, lists) in enumerate(panels):
        for i in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[i])
            ax.axis("off")
            for r in regions[i]:
                x0, y0, x1, y1 = r.box
                ax.add_patch(patches.Rectangle((x0 - .5, y0 - .5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=1))
            ax.set_title(f"{what} (cut {cut:.2f}): {len(regions[i])} regions\nC_p: {', '.join(lists[i].L)}\n"
                         f"O: {', '.join(lists[i].S) or '-'}", fontsize=5)
    fig.suptitle(f"EftCLIP Fig. 5 ({p.scale} scale, seed {seed}): the two oracles on the same BadNet-triggered "
                 f"images at theta={p.eftclip.theta} ({p.eftclip.theta_scale})", fontsize=8)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig5_{p.scale}.png")


def plot_fig7(p: EftCLIPParams, wb: Workbench | None = None):
    """Fig. 7: triggered images with the poisoned CLIP's list L_i and the oracle's S_i and boxes."""
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    wb = wb or Workbench(p)
    victim, ids, imgs, seed = _figure_images(p, wb)
    oracle = wb.oracle("fastsam", "cc3m_analog")
    maker = wb.list_maker(victim, oracle)
    cut = wb.theta_map("fastsam").to_oracle(p.eftclip.theta)
    lists = maker.lists(maker.observe(imgs, p.eftclip.tau, cut, p.eftclip.region_topk, ids),
                        p.eftclip.tau, cut, p.eftclip.min_region_side)
    regions = oracle.segment(imgs, cut, ids)
    n = len(ids)
    fig, axes = plt.subplots(n, 2, figsize=(6, 2.6 * n), squeeze=False)
    for i in range(n):
        for j in range(2):
            axes[i, j].imshow(imgs[i])
            axes[i, j].axis("off")
        axes[i, 0].set_title("C_p: " + ", ".join(lists[i].L), fontsize=6)
        for r in regions[i]:
            x0, y0, x1, y1 = r.box
            axes[i, 1].add_patch(patches.Rectangle((x0 - .5, y0 - .5), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1))
        axes[i, 1].set_title("O: " + (", ".join(lists[i].S) or "-"), fontsize=6)
    fig.suptitle(f"EftCLIP Fig. 7 ({p.scale} scale, seed {seed}): poisoned CLIP's list vs the oracle's at theta={p.eftclip.theta} "
                 f"({p.eftclip.theta_scale}: cut {cut:.3f})", fontsize=8)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig7_{p.scale}.png")


__all__ = ["plot_fig3", "plot_fig4", "plot_fig5", "plot_fig6", "plot_fig7"]
