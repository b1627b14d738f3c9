"""CFBD's figures: Fig. 2 (score distributions), Fig. 4 (the GMM on the consistency values),
Fig. 5 (PR curves) and Fig. 6 (the K / gamma / q ablation); :mod:`paperlib.experiments.cfbd` makes
the data they draw.  Each takes ``p``, the experiment's CFBDParams (not imported here: that
module imports this one)."""
from __future__ import annotations

from pathlib import Path
import numpy as np
import pandas as pd

PAPER = "cfbd"      # the results folder (as in paperlib.experiments.cfbd, which imports this module)


def _seeds(seeds) -> str:
    seeds = sorted({int(x) for x in seeds})
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def plot_fig2(sc, det, p, seed: int | None = None):
    """Fig. 2: (a) textual correlation with the seed set, poisoned vs benign, per pair; (b) the
    image-caption cosine of benign and poisoned pairs; (c) the textual-correlation distributions."""
    import matplotlib.pyplot as plt

    from paperlib.results import save_figure
    cos = (sc.image_emb * sc.caption_emb).sum(1)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    idx = np.arange(len(det.z))
    axes[0].scatter(idx[~sc.truth], det.z[~sc.truth], s=1, alpha=.3, label="benign")
    axes[0].scatter(idx[sc.truth], det.z[sc.truth], s=2, c="tab:red", label="poisoned")
    axes[0].set_xlabel("pair")
    axes[0].set_ylabel("textual correlation z")
    axes[0].set_title("(a) z with the seed set", fontsize=9)
    for data, ax, xl, title in ((cos, axes[1], "cos(image, caption)", "(b) cosine similarity"),
                                (det.z, axes[2], "textual correlation z", "(c) z distribution")):
        ax.hist(data[~sc.truth], bins=60, alpha=.6, density=True, label="benign")
        ax.hist(data[sc.truth], bins=60, alpha=.6, density=True, label="poisoned", color="tab:red")
        ax.set_xlabel(xl)
        ax.set_ylabel("density")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, markerscale=4)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"CFBD Fig. 2 ({p.figure_attack}, {p.scale} scale, {_seeds([p.seeds[0] if seed is None else seed])}; "
                 "the paper's panels are not printed as numbers)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig2_{p.scale}.png")


def plot_fig4(sc, p, seed: int | None = None):
    """Fig. 4: the consistency values, the fitted GMM, its lowest-mean component, the gamma cut
    (under ``p.cfbd.benign_rule``: the c where the mixture's or the lowest component's mass reaches
    gamma, or the posterior threshold of the printed rule)."""
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    from paperlib.detect.cfbd import coarse_stage
    from paperlib.results import save_figure
    c = sc.c
    cfg = p.cfbd
    co = coarse_stage(c, cfg)
    xs = np.linspace(c.min(), c.max(), 400)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    axes[0].hist(c[~sc.truth], bins=80, alpha=.6, label="benign")
    axes[0].hist(c[sc.truth], bins=80, alpha=.8, label="poisoned", color="tab:red")
    axes[0].set_title("(a) consistency c", fontsize=9)
    axes[0].set_xlabel("consistency c")
    axes[0].set_ylabel("pairs")
    axes[0].legend(fontsize=7)
    axes[1].hist(c, bins=80, density=True, alpha=.4, color="grey")
    for j, (w, m, s) in enumerate(zip(co.weights, co.means, co.sigmas)):   # sorted by mean: 0 is the lowest
        axes[1].plot(xs, w * norm.pdf(xs, m, s), lw=2 if j == 0 else 1, label=f"mu={m:.3f}" + (" (lowest)" if j == 0 else ""))
    if np.isfinite(co.c_cut):
        axes[1].axvline(co.c_cut, color="k", ls="--", lw=1)
    axes[1].set_title(f"(b, c) GMM, K={cfg.k}", fontsize=9)
    axes[1].set_xlabel("consistency c")
    axes[1].set_ylabel("density")
    axes[1].legend(fontsize=6)
    axes[2].scatter(c, co.rule_score, s=1, c=np.where(sc.truth, "tab:red", "tab:blue"))
    axes[2].axhline(cfg.gamma, color="k", ls="--", lw=1)
    axes[2].set_xlabel("c")
    what = {"posterior": ("posterior of lowest component", ">="), "mixture_cdf": ("mixture CDF F(c)", "<="),
            "component_cdf": ("lowest component's CDF", "<=")}[cfg.benign_rule]
    axes[2].set_ylabel(what[0], fontsize=8)
    axes[2].set_title(f"(d) D_b ({cfg.benign_rule}): {what[1]} {cfg.gamma}, {100 * len(co.benign) / len(c):.0f}% of pairs",
                      fontsize=9)
    fig.suptitle(f"CFBD Fig. 4 ({p.figure_attack}, {p.scale} scale, {_seeds([p.seeds[0] if seed is None else seed])})",
                 fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig4_{p.scale}.png")


def plot_fig5(scores: dict, p):
    """Fig. 5: precision-recall curves of the coarse (c) and coarse-to-fine scores per attack."""
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve

    from paperlib.results import save_figure
    items = [(a, s) for (a, seed), s in scores.items() if seed == p.seeds[0]]
    n = max(1, len(items))
    cols = min(3, n)
    rows_ = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(3.3 * cols, 2.8 * rows_), squeeze=False)
    for ax, (a, s) in zip(axes.flat, items):
        det = s["detection"]
        for label, score in (("coarse", s["c"]), ("coarse-to-fine", det.score)):
            prec, rec, _ = precision_recall_curve(s["truth"], score)
            # sklearn ends every curve with the point (recall 0, precision 1), which is no threshold:
            # drawn, it is a vertical line at recall 0 in every panel
            ap = 100 * average_precision_score(s["truth"], score)
            ax.step(rec[:-1], prec[:-1], where="post", label=f"{label} (AUPRC {ap:.1f})")
        ax.axhline(float(np.mean(s["truth"])), color="grey", lw=0.8, ls=":", label="chance (poison rate)")
        ax.legend(fontsize=6)
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.suptitle(f"CFBD Fig. 5: PR curves ({p.scale} scale, seed {p.seeds[0]}; the paper's curves are not "
                 "printed as numbers)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig5_{p.scale}.png")


def plot_fig6(abl: pd.DataFrame, p):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from paperlib.results import save_figure
    a = abl[(abl.scale == p.scale) & abl.seed.isin(list(p.seeds))]
    # rows of the configured rules only (rows written before the rules existed have none)
    rule = a["benign_rule"] if "benign_rule" in a else pd.Series(np.nan, index=a.index)
    a = a[rule == p.cfbd.benign_rule]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    kg = a[(a.study == "k_gamma")].groupby(["k", "gamma"])["poisoned_in_benign"].mean().reset_index()
    kg["K"] = "K=" + kg["k"].astype(str)
    sns.lineplot(kg, x="gamma", y="poisoned_in_benign", hue="K", marker="o", ax=axes[0])
    axes[0].set_xlabel("gamma")
    axes[0].set_ylabel("poisoned pairs in D_b (mean over attacks)")
    axes[0].set_title(f"(a) K and gamma ({p.cfbd.benign_rule})", fontsize=9)
    q = a[a.study == "q"]
    sns.lineplot(q, x="q", y="tpr", hue="attack", marker="o", ax=axes[1])
    axes[1].set_xlabel("q (seed-set size)")
    axes[1].set_ylabel("TPR (%)")
    axes[1].set_title("(b) seed-set size q", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=6)
    fig.suptitle(f"CFBD Fig. 6 ({p.scale} scale, {_seeds(a.seed) if len(a) else 'no rows'}; mean over seeds)",
                 fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig6_{p.scale}.png")
