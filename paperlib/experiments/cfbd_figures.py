"""CFBD's figures: Fig. 2 (score distributions), Fig. 4 (the GMM on the consistency values),
Fig. 5 (PR curves) and Fig. 6 (the K / gamma / q ablation).  Each draws from a results file
(:func:`fig24_data` and :func:`fig5_curves` write theirs from the sets screened here and read the
others' back; Fig. 6 from the ablation rows), so a set that stands in by its published rows
(:mod:`paperlib.experiments.cfbd_standin`) is drawn as if screened.  Each takes ``p``, the
experiment's CFBDParams (not imported here: that module imports this one)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.figures import seeds_caption
from paperlib.results import column_equals, read_results

PAPER = "cfbd"      # the results folder (as in paperlib.experiments.cfbd, which imports this module)


# the figures' data (results/cfbd/): written from the sets screened here, read back for the sets that
# stand in by their published rows (paperlib.experiments.cfbd_standin), so a figure is drawn the same
# from either
FIG24_PAIRS, FIG4_GMM, FIG5_CURVES = "fig2_fig4_pairs.csv", "fig4_gmm.csv", "fig5_pr_curves.csv"
BENIGN_SHOWN = 3000    # benign pairs kept for Figs. 2 and 4 (a seeded sample; every poisoned pair is kept)
CURVE_POINTS = 400     # points kept of each PR curve (evenly along it; AUPRC is of the whole curve)
RULES = ("mapping", "benign_rule", "gamma_z_rule", "gamma_z_quantile")
_OF = ("attack", "seed", "scale", "victim_model", *RULES)


def _rules(p) -> dict:
    return {"mapping": p.mapping.kind, "benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule,
            "gamma_z_quantile": p.cfbd.gamma_z_quantile}


def figure_seed(p) -> int:
    """The seed whose set Figs. 2 and 4 show: the figure attack's first."""
    return p.seeds_for(p.figure_attack)[0] if hasattr(p, "seeds_for") else p.seeds[0]


def _of_these(df: pd.DataFrame, p, victims: set[str]) -> pd.DataFrame:
    """The rows of a figure-data file made under ``p``'s scale and rules, of the sets ``victims``."""
    if df is None or not len(df):
        return pd.DataFrame()
    keep = (df.scale == p.scale) & df.victim_model.astype(str).isin(victims)
    for col, value in _rules(p).items():
        keep &= column_equals(df[col], value)
    return df[keep].reset_index(drop=True)


def _replace_set_rows(path: Path, rows: pd.DataFrame, sets: list[dict]) -> None:
    """Write ``rows`` into the figure-data file ``path`` in place of every row it holds of the same
    sets (each of ``sets`` the values of :data:`_OF`): a set screened again replaces all its points
    (a curve of fewer points, a mixture of fewer components leaves none of the old ones behind)."""
    from paperlib.results import write_csv_atomic
    old = read_results(path)
    if old is not None and len(old):
        drop = pd.Series(False, index=old.index)
        for of in sets:
            same = pd.Series(True, index=old.index)
            for col, value in of.items():
                same &= column_equals(old[col], value)
            drop |= same
        rows = pd.concat([old[~drop], rows], ignore_index=True)
    write_csv_atomic(rows, path)


def fig24_data(scores: dict, p) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Figs. 2 and 4's data for the figure attack at :func:`figure_seed`: per pair (every poisoned
    pair and a seeded sample of ``BENIGN_SHOWN`` benign ones, ``weight`` the benign pairs each
    stands for) its consistency c, textual correlation z, image-caption cosine and the benign
    rule's score; and the fitted GMM's components with the D_b cut.  Written when that set is
    screened here (``results/cfbd/fig2_fig4_pairs.csv``, ``fig4_gmm.csv``), read back otherwise."""
    from paperlib.detect.cfbd import coarse_stage
    out = Path(p.results_dir) / PAPER
    key = (p.figure_attack, figure_seed(p))
    if key not in scores:
        return pd.DataFrame(), pd.DataFrame()
    s = scores[key]
    of = {"attack": key[0], "seed": key[1], "scale": p.scale, "victim_model": s["screened"].victim_model, **_rules(p)}
    if "detection" in s:      # screened here
        sc, det = s["screened"], s["detection"]
        truth = np.asarray(sc.truth, bool)
        benign, poisoned = np.flatnonzero(~truth), np.flatnonzero(truth)
        shown = np.random.default_rng([key[1], 24]).choice(benign, size=min(BENIGN_SHOWN, len(benign)), replace=False)
        idx = np.sort(np.concatenate([shown, poisoned]))
        co = coarse_stage(sc.c, p.cfbd)
        pairs = pd.DataFrame({**of, "pair": idx, "poisoned": truth[idx], "c": sc.c[idx], "z": det.z[idx],
                              "cos": (sc.image_emb[idx] * sc.caption_emb[idx]).sum(1),
                              "rule_score": co.rule_score[idx],
                              "weight": np.where(truth[idx], 1.0, len(benign) / max(1, len(shown)))})
        gmm = pd.DataFrame({**of, "component": np.arange(len(co.means)), "weight": co.weights, "mean": co.means,
                            "sigma": co.sigmas, "c_cut": co.c_cut, "k": p.cfbd.k, "gamma": p.cfbd.gamma,
                            "benign_share": len(co.benign) / len(sc.c), "n_pairs": len(sc.c)})
        _replace_set_rows(out / FIG24_PAIRS, pairs, [of])
        _replace_set_rows(out / FIG4_GMM, gmm, [of])
    victims = {of["victim_model"]}
    return _of_these(read_results(out / FIG24_PAIRS), p, victims), _of_these(read_results(out / FIG4_GMM), p, victims)


def fig5_curves(scores: dict, p) -> pd.DataFrame:
    """Fig. 5's PR curves of the coarse (c) and coarse-to-fine scores of every set at the first seed:
    ``CURVE_POINTS`` points of each (sklearn's closing point (recall 0, precision 1), which is no
    threshold, left out), its AUPRC and the chance level; written for the sets screened here
    (``results/cfbd/fig5_pr_curves.csv``), read back for the others."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    out = Path(p.results_dir) / PAPER
    rows, victims = [], set()
    for (a, seed), s in scores.items():
        if seed != p.seeds[0]:
            continue
        victims.add(s["screened"].victim_model)
        if "detection" not in s:
            continue
        truth = np.asarray(s["truth"]).astype(bool)
        for stage, score in (("coarse", s["c"]), ("coarse-to-fine", s["detection"].score)):
            prec, rec, _ = precision_recall_curve(truth, score)
            prec, rec = prec[:-1], rec[:-1]
            keep = np.unique(np.linspace(0, len(rec) - 1, min(len(rec), CURVE_POINTS)).round().astype(int))
            ap = 100 * average_precision_score(truth, score)
            rows += [{"attack": a, "seed": seed, "scale": p.scale, "victim_model": s["screened"].victim_model,
                      **_rules(p), "stage": stage, "point": j, "recall": rec[k], "precision": prec[k], "auprc": ap,
                      "chance": float(truth.mean())} for j, k in enumerate(keep)]
    if rows:
        new = pd.DataFrame(rows)
        _replace_set_rows(out / FIG5_CURVES, new, new[list(_OF)].drop_duplicates().to_dict("records"))
    curves = _of_these(read_results(out / FIG5_CURVES), p, victims)
    order = {v.attack: i for i, v in enumerate(getattr(p, "victims", ()))}   # the panels in the victims' order
    return curves.sort_values("attack", key=lambda a: a.map(order), kind="stable").reset_index(drop=True) \
        if len(curves) else curves


def plot_fig2(pairs: pd.DataFrame, p):
    """Fig. 2 from :func:`fig24_data`'s pairs: (a) textual correlation with the seed set, poisoned vs
    benign, per pair; (b) the image-caption cosine of benign and poisoned pairs; (c) the
    textual-correlation distributions (weighted: each benign pair shown stands for ``weight``)."""
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    pois = pairs.poisoned.astype(bool).to_numpy() if len(pairs) else np.zeros(0, bool)
    if len(pairs):
        b, q = pairs[~pois], pairs[pois]
        axes[0].scatter(b.pair, b.z, s=1, alpha=.3, label=f"benign ({len(b):,} shown)")
        axes[0].scatter(q.pair, q.z, s=2, c="tab:red", label="poisoned")
        for col, ax, xl, title in (("cos", axes[1], "cos(image, caption)", "(b) cosine similarity"),
                                   ("z", axes[2], "textual correlation z", "(c) z distribution")):
            ax.hist(b[col], bins=60, weights=b.weight, alpha=.6, density=True, label="benign")
            ax.hist(q[col], bins=60, alpha=.6, density=True, label="poisoned", color="tab:red")
            ax.set_xlabel(xl)
            ax.set_ylabel("density")
            ax.set_title(title, fontsize=9)
        axes[0].legend(fontsize=7, markerscale=4)
        axes[1].legend(fontsize=7)
    axes[0].set_xlabel("pair")
    axes[0].set_ylabel("textual correlation z")
    axes[0].set_title("(a) z with the seed set", fontsize=9)
    fig.suptitle(f"CFBD Fig. 2 ({p.figure_attack}, {p.scale} scale, {seeds_caption([figure_seed(p)])}; "
                 "the paper's panels are not printed as numbers)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig2_{p.scale}.png")


def plot_fig4(pairs: pd.DataFrame, gmm: pd.DataFrame, p):
    """Fig. 4 from :func:`fig24_data`: the consistency values, the fitted GMM, its lowest-mean
    component, the gamma cut (under ``p.cfbd.benign_rule``: the c where the mixture's or the lowest
    component's mass reaches gamma, or the posterior threshold of the printed rule)."""
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    from paperlib.figures import save_figure
    cfg = p.cfbd
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    if len(pairs) and len(gmm):
        pois = pairs.poisoned.astype(bool).to_numpy()
        b, q = pairs[~pois], pairs[pois]
        xs = np.linspace(pairs.c.min(), pairs.c.max(), 400)
        axes[0].hist(b.c, bins=80, weights=b.weight, alpha=.6, label="benign")
        axes[0].hist(q.c, bins=80, alpha=.8, label="poisoned", color="tab:red")
        axes[0].legend(fontsize=7)
        axes[1].hist(pairs.c, bins=80, weights=pairs.weight, density=True, alpha=.4, color="grey")
        for j, g in enumerate(gmm.sort_values("component").itertuples()):   # sorted by mean: 0 is the lowest
            axes[1].plot(xs, g.weight * norm.pdf(xs, g.mean, g.sigma), lw=2 if j == 0 else 1,
                         label=f"mu={g.mean:.3f}" + (" (lowest)" if j == 0 else ""))
        c_cut = float(gmm.c_cut.iloc[0])
        if np.isfinite(c_cut):
            axes[1].axvline(c_cut, color="k", ls="--", lw=1)
        axes[1].legend(fontsize=6)
        axes[2].scatter(pairs.c, pairs.rule_score, s=1, c=np.where(pois, "tab:red", "tab:blue"))
        share = f", {100 * float(gmm.benign_share.iloc[0]):.0f}% of pairs"
    else:
        share = ""
    axes[0].set_title("(a) consistency c", fontsize=9)
    axes[0].set_xlabel("consistency c")
    axes[0].set_ylabel("pairs")
    axes[1].set_title(f"(b, c) GMM, K={cfg.k}", fontsize=9)
    axes[1].set_xlabel("consistency c")
    axes[1].set_ylabel("density")
    axes[2].axhline(cfg.gamma, color="k", ls="--", lw=1)
    axes[2].set_xlabel("c")
    what = {"posterior": ("posterior of lowest component", ">="), "mixture_cdf": ("mixture CDF F(c)", "<="),
            "component_cdf": ("lowest component's CDF", "<=")}[cfg.benign_rule]
    axes[2].set_ylabel(what[0], fontsize=8)
    axes[2].set_title(f"(d) D_b ({cfg.benign_rule}): {what[1]} {cfg.gamma}{share}", fontsize=9)
    fig.suptitle(f"CFBD Fig. 4 ({p.figure_attack}, {p.scale} scale, {seeds_caption([figure_seed(p)])}; "
                 f"benign pairs: a sample of {BENIGN_SHOWN:,}, weighted)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig4_{p.scale}.png")


def plot_fig5(curves: pd.DataFrame, p):
    """Fig. 5 from :func:`fig5_curves`: precision-recall curves of the coarse (c) and
    coarse-to-fine scores per attack."""
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    attacks = list(dict.fromkeys(curves.attack)) if len(curves) else []
    n = max(1, len(attacks))
    cols = min(3, n)
    rows_ = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_, cols, figsize=(3.3 * cols, 2.8 * rows_), squeeze=False)
    for ax, a in zip(axes.flat, attacks):
        one = curves[curves.attack == a]
        for stage, g in one.groupby("stage", sort=False):
            g = g.sort_values("point")
            ax.step(g.recall, g.precision, where="post", label=f"{stage} (AUPRC {g.auprc.iloc[0]:.1f})")
        ax.axhline(float(one.chance.iloc[0]), color="grey", lw=0.8, ls=":", label="chance (poison rate)")
        ax.legend(fontsize=6)
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_ylim(0, 1.02)
    for ax in list(axes.flat)[len(attacks):]:
        ax.axis("off")
    fig.suptitle(f"CFBD Fig. 5: PR curves ({p.scale} scale, seed {p.seeds[0]}; the paper's curves are not "
                 "printed as numbers)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig5_{p.scale}.png")


def plot_fig6(abl: pd.DataFrame, p):
    import matplotlib.pyplot as plt
    import seaborn as sns

    from paperlib.figures import save_figure
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
    fig.suptitle(f"CFBD Fig. 6 ({p.scale} scale, {seeds_caption(a.seed) if len(a) else 'no rows'})",
                 fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig6_{p.scale}.png")
