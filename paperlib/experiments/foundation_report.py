"""The foundation notebook's presentation: descriptions of the splits and the vocabulary, the scene
gallery, the zero-shot and victim tables, the poison curve, the targets and our victims beside the
papers'.  ``p`` is a :class:`paperlib.experiments.foundation.FoundationParams`; ``out`` what its
``run`` returned.  Re-exported by :mod:`paperlib.experiments.foundation`, which the notebook calls.
"""
from __future__ import annotations

from pathlib import Path

from paperlib.experiments.victim_rows import VICTIM_COLUMNS

SPLIT_ANALOGUES = {
    "cc3m_analog": "CC3M (training pairs)",
    "flickr_analog": "Flickr30K (second captioned set)",
    "imagenet_analog": "ImageNet-1K (zero-shot, unseen style)",
    "in_style": "- (same classes, training styles)",
    "cifar10_analog": "CIFAR-10 (zero-shot, unseen style)",
    "probe_train": "linear probe, held-out style (train)",
    "probe_test": "linear probe, held-out style (test)",
}


def describe_splits(p, names=("cc3m_analog", "flickr_analog", "imagenet_analog",
                                                  "in_style", "cifar10_analog")):
    """One row per split: analogue, size, classes, styles, rendering throughput."""
    import pandas as pd
    from paperlib.data.splits import get_split
    rows = []
    for name in names:
        s = get_split(name, p.data)
        rows.append({"split": name, "analogue of": SPLIT_ANALOGUES[name], "kind": s.kind,
                     "images": len(s), "classes": len(s.classnames) if s.classnames else None,
                     "styles": ", ".join(s.meta["styles"]),
                     "scenes/s rendered": round(s.meta["scenes_per_second"]),
                     "render workers": p.data.workers, "scale": p.scale})
    df = pd.DataFrame(rows)
    from paperlib.results import write_csv_atomic
    write_csv_atomic(df, Path(p.results_dir) / "foundation" / f"benchmark_{p.scale}.csv")
    return df


def describe_vocabulary(p):
    """Classes and sprites per style, with licences: results/foundation/vocabulary_<scale>.csv."""
    import pandas as pd
    from paperlib.data.sprites import ATTRIBUTION, load_sprite_bank
    from paperlib.data.vocabulary import STYLES, build_vocabulary
    from paperlib.results import write_csv_atomic
    vocab = build_vocabulary()
    rows = []
    for style in STYLES:
        bank = load_sprite_bank(style, vocab, size=p.data.sprite_size)
        role = "held out (zero-shot)" if style == p.data.heldout_style else (
            "training" if style in p.data.train_styles else "unused")
        credit = ATTRIBUTION.get(style, {})
        rows.append({"style": style, "role": role, "classes": len(set(bank.class_ids.tolist())),
                     "sprites": len(bank.images),
                     "licence": credit.get("licence", "") if isinstance(credit, dict) else str(credit)})
    rows.append({"style": "all", "role": "vocabulary", "classes": len(vocab), "sprites": None, "licence": ""})
    df = pd.DataFrame(rows)
    write_csv_atomic(df, Path(p.results_dir) / "foundation" / f"vocabulary_{p.scale}.csv")
    return df


def plot_scene_gallery(p, n: int = 6) -> Path:
    """A grid of example images with their first caption / label: results/foundation/scenes.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from paperlib.data.splits import get_split
    names = ("cc3m_analog", "flickr_analog", "imagenet_analog", "in_style")
    fig, axes = plt.subplots(len(names), n, figsize=(2.2 * n, 2.6 * len(names)))
    for r, name in enumerate(names):
        s = get_split(name, p.data)
        idx = np.linspace(0, len(s) - 1, n).astype(int)
        for c, i in enumerate(idx):
            ax = axes[r, c]
            ax.imshow(s.images[i], interpolation="nearest")
            text = s.captions[i][0] if s.kind == "captioned" else s.classnames[s.labels[i]]
            ax.set_title("\n".join(_wrap(text, 28)), fontsize=7)
            ax.axis("off")
        axes[r, 0].text(-0.1, 0.5, name, transform=axes[r, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=9)
    fig.suptitle(f"Example images of each split ({p.scale} scale, data seed {p.data.seed}; {n} evenly spaced "
                 "indices per split)", fontsize=10)
    return _save_figure(fig, p, f"scenes_{p.scale}.png", dpi=110)


def _save_figure(fig, p, name: str, dpi: int) -> Path:
    """Lay out, write results/foundation/<name> and close the figure; returns the path."""
    from paperlib.figures import save_figure
    return save_figure(fig, Path(p.results_dir) / "foundation" / name, dpi)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width)[:3]


def zeroshot_table(out: dict, p) -> str:
    from paperlib.results import to_markdown
    df = out["zeroshot"]
    df = df[df["scale"] == p.scale]
    path = Path(p.results_dir) / "base" / "zeroshot.md"
    return f"Scale: **{p.scale}**\n\n" + to_markdown(df, path)


def victim_table(out: dict, p) -> str:
    from paperlib.results import to_markdown
    df = out["victims"]
    df = df[df["scale"] == p.scale][list(VICTIM_COLUMNS) + ["base_ca_top1", "base_asr_top1"]]
    path = Path(p.results_dir) / "attacks" / "victims.md"
    return f"Scale: **{p.scale}**\n\n" + to_markdown(df, path)


def plot_poison_curve(out: dict, p) -> Path:
    """ASR top-1/5 and CA top-1 against the poison count: results/foundation/poison_curve_<scale>.png."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    df = out["curve"]
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # rows read back from the file carry 4 significant digits, rows made here full precision: one curve
    df = df.assign(patch_fraction=df["patch_fraction"].astype(float).round(4))
    for i, (frac, sub) in enumerate(sorted(df.groupby("patch_fraction"), key=lambda kv: kv[0])):
        g = sub.groupby("poison_count")
        px = round(frac * p.data.image_size)
        for col, style, label in (("asr_top1", "-o", "ASR top-1"), ("asr_top5", "--s", "ASR top-5")):
            m, sd = g[col].mean(), g[col].std().fillna(0)
            ax.errorbar(m.index, m.values, yerr=sd.values, fmt=style, color=colours[i % len(colours)],
                        capsize=3, label=f"{label}, patch {px} px ({frac:.3f} of side)")
    base_ca = df["base_ca_top1"].mean()
    ax.axhline(base_ca, color="grey", lw=1, ls=":", label=f"clean base CA top-1 ({base_ca:.1f})")
    from paperlib.experiments.regime import papers_band
    try:   # the papers' NoDefense top-1 ASR of this attack, each at its own poison rate (0.3 % and up)
        low, high, _ = papers_band(p.victim.attack)
        ax.axhspan(low, high, color="tab:green", alpha=0.12,
                   label=f"papers' NoDefense ASR top-1 ({low:.0f}-{high:.0f}), at their own poison rates")
    except KeyError:
        pass
    papers_rate = 0.003 * p.victim.finetune_scenes   # ABD's and CleanerCLIP's 1,500 of 500K pairs
    ax.axvline(papers_rate, color="tab:green", lw=1, ls="--", label=f"0.3 % of the fine-tuning pairs ({papers_rate:g})")
    ax.set_xscale("symlog", linthresh=10)
    # the counts measured are the ticks: a symlog axis puts its own at decades, none of them in 150-500
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(df["poison_count"].astype(float)) | {papers_rate})))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(f"poisoned pairs (of {p.victim.finetune_scenes} fine-tuning pairs)")
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    from paperlib.figures import seeds_caption
    seeds = seeds_caption(df.seed) if "seed" in df else "seeds not recorded"
    spread = " (std as error bars)" if "seed" in df and df.seed.nunique() > 1 else ""
    ax.set_title(f"{p.victim.attack}, target '{p.victim.poison.target}', scale {p.scale}, {seeds}{spread}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save_figure(fig, p, f"poison_curve_{p.scale}.png", dpi=120)


def curve_markdown(curve, p) -> str:
    """The poison curve as a Markdown table: per patch size and poison count, the BadNet victims' top-1
    ASR / clean top-1 at each of ``p.seeds`` and their mean, from ``curve`` (rows as in
    ``results/foundation/poison_curve.csv``) of the clean base ``p.base_checkpoint`` names (its
    shipped record's ``base_model``) and ``p``'s fine-tuning pool."""
    from paperlib.compare import mean_std_text
    from paperlib.pipeline.bases import shipped_base_name
    from paperlib.result_rows import column_equals
    base = shipped_base_name(p.base_checkpoint)
    v = p.victim
    rows = curve[(curve.base_model.astype(str) == base) & (curve.scale == p.scale) & curve.seed.isin(p.seeds)
                 & (curve.attack == v.attack) & (curve.threat_model == "finetune")
                 & (curve.finetune_scenes.astype(float) == v.finetune_scenes)
                 & column_equals(curve.finetune_lr, v.finetune.lr)           # as the file writes it
                 & column_equals(curve.finetune_epochs, v.finetune.epochs)]
    rows = rows.assign(frac=rows.patch_fraction.astype(float).round(4))
    seeds = sorted(set(rows.seed.astype(int)))
    lines = ["| patch | poisoned pairs | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± std |",
             "|---|---|" + "---|" * (len(seeds) + 1)]
    for (frac, count), g in sorted(rows.groupby(["frac", "poison_count"]), key=lambda kv: (-kv[0][0], kv[0][1])):
        px = round(frac * p.data.image_size)
        by_seed = g.set_index(g.seed.astype(int))
        cells = [f"{by_seed.asr_top1[s]:.1f} / {by_seed.ca_top1[s]:.1f}" if s in by_seed.index else "-" for s in seeds]
        mean = (mean_std_text(g.asr_top1.mean(), g.asr_top1.std(), len(g)) + " / "
                + mean_std_text(g.ca_top1.mean(), g.ca_top1.std(), len(g)))
        lines.append(f"| {px} px | {int(count)} ({100 * count / p.victim.finetune_scenes:g}%) | "
                     + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def check_targets(out: dict, p):
    """The foundation issue's targets, checked against the measured numbers (one row each)."""
    import pandas as pd
    zs = out["zeroshot"]
    # the files keep rows of other bases and attacks: only this run's base and victim count
    base = zs[(zs["model"] == "clean_base") & (zs["split"] == "imagenet_analog") & (zs["scale"] == p.scale)
              & (zs["base_model"].astype(str) == out["base_model"])]
    vic = out["victims"]
    vic = vic[vic["victim_model"].astype(str).isin(out["victim_models"])]
    minutes = out["base_summary"].get("seconds", float("nan")) / 60
    rows = [
        ("clean base zero-shot top-1 >= 20% (imagenet_analog)", 20.0, float(base["top1"].mean())),
        ("clean base zero-shot top-5 >= 45% (imagenet_analog)", 45.0, float(base["top5"].mean())),
        ("shipped clean base zero-shot top-1 >= 25% (imagenet_analog; issue 22)", 25.0, float(base["top1"].mean())),
        ("clean pre-training <= 30 minutes", 30.0, minutes),
        ("BadNet victim ASR top-1 >= 90%", 90.0, float(vic["asr_top1"].mean())),
        ("victim clean top-1 within 2 points of the base", 2.0,
         float((vic["base_ca_top1"] - vic["ca_top1"]).abs().mean())),
    ]
    df = pd.DataFrame(rows, columns=["target", "threshold", "measured"])
    df["holds"] = [m >= t if "<=" not in name and "within" not in name else m <= t
                   for name, t, m in rows]
    from paperlib.figures import seeds_caption
    # what a victim's number is: the mean over this run's victims, one per seed
    victims = seeds_caption(vic["seed"]) if "seed" in vic else "this run's victims"
    df["over"] = [victims if name.startswith(("BadNet victim", "victim")) else "the base" for name, _, _ in rows]
    df["scale"] = p.scale
    from paperlib.results import write_csv_atomic
    write_csv_atomic(df, Path(p.results_dir) / "foundation" / f"targets_{p.scale}.csv")
    return df


def paper_victims():
    """The papers' own BadNet victims (no defence): CA and ASR top-1 on ImageNet, as transcribed
    in paperlib/papers/*.csv (paper, table, row named on each line)."""
    from paperlib.papers import load as load_papers
    df = load_papers()
    sel = df[(df.attack == "badnet") & (df.defence == "none") & (df.dataset == "imagenet")
             & (df.metric.isin(["ca", "asr"])) & (df.k.isna() | (df.k == 1))]
    wide = sel.pivot_table(index=["paper", "table", "row", "setting"], columns="metric", values="value",
                           aggfunc="first").reset_index()
    wide.columns.name = None
    return wide.rename(columns={"ca": "paper_ca_top1", "asr": "paper_asr_top1"})[
        ["paper", "table", "row", "setting", "paper_ca_top1", "paper_asr_top1"]]


def victims_beside_papers(out: dict, p):
    """Our BadNet victim(s) next to the papers' NoDefense BadNet rows (one table, two sources)."""
    import pandas as pd
    ours = out["victims"]
    ours = ours[(ours["scale"] == p.scale) & (ours["attack"] == "badnet")
                & ours["victim_model"].astype(str).isin(out["victim_models"])]   # this run's victims only
    rows = [{"source": f"ours ({p.scale}, seed {r.seed}, {r.poison_count} poisoned)",
             "ca_top1": r.ca_top1, "asr_top1": r.asr_top1} for r in ours.itertuples()]
    for r in paper_victims().itertuples():
        rows.append({"source": f"{r.paper} {r.table}, row '{r.row}' ({r.setting})",
                     "ca_top1": r.paper_ca_top1, "asr_top1": r.paper_asr_top1})
    df = pd.DataFrame(rows)
    from paperlib.results import write_csv_atomic
    write_csv_atomic(df, Path(p.results_dir) / "foundation" / f"victims_vs_papers_{p.scale}.csv")
    return df
