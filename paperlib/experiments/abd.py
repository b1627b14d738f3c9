"""ABD's tables and figure from the defence matrix.

Parameters: ``params/abd/<scale>.yaml`` (the defence matrix's schema; ABD's ablations are matrix
``variants``: ``abd_i_adv`` (adversarial images only), ``abd_t_eda`` (EDA captions only),
``abd_uap`` (the patch without ABD's backdoor loss, adversarial images only), ``abd_lbd10`` /
``abd_lbd50`` (L_bd weight 10 / 50, images only), ``abd_random`` (the control: a random patch of the
same size and place, never trained, images only), ``abd_eval_patch`` (full ABD with the patch read
off the generator in eval mode: the read this code used before issue 23, kept as an ablation row)).
Table I: victim, RoCLIP, CleanCLIP, ABD; Table II: FT, I_adv, T_eda, both, the random-patch control
beside I_adv and the eval-mode read beside ABD; Table III: UAP vs
UAP + L_bd at weights 1 (``abd_i_adv``), 10 and 50, and the random-patch control, all with
adversarial images only and no EDA captions (the paper's UAP(L_bd) column repeats Table II's I_adv
numbers, 10.49 / 18.15 / 46.03, so its Table III is the images-only setting); Fig. 2: the similarity bars.
The paper states no L_bd weight; 10 and 50 are AdvCLIP's weights of its two InfoNCE terms
(alpha = 10; alpha * beta = 50: anchors.md), the scale L_bd competes with in the generator's loss.
The rows without a paper counterpart (other weights, the control) have no paper value.
ABD prints one accuracy per cell (its top-1); ours are top-1 too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.config import load_params
from paperlib.experiments.defences import DefenceMatrixParams
from paperlib.experiments.victims import complete_victims

PAPER = "abd"
# our row label -> the paper's defence id; ids the paper does not print ("... (ours)") get no paper value
TABLES = {
    "Table I": {"none": "none", "roclip": "roclip", "cleanclip": "cleanclip", "abd": "abd"},
    "Table II": {"none": "none", "ft": "ft", "abd_i_adv": "i_adv", "abd_t_eda": "t_eda", "abd": "abd",
                 "abd_random": "random patch (ours)", "abd_eval_patch": "abd, eval-mode patch (ours)"},
    "Table III": {"none": "none", "abd_uap": "uap", "abd_i_adv": "uap+lbd",
                  "abd_lbd10": "uap+lbd x10 (ours)", "abd_lbd50": "uap+lbd x50 (ours)",
                  "abd_random": "random patch (ours)"},
}


@dataclass(frozen=True)
class ABDParams(DefenceMatrixParams):
    pass


def load(path: str | Path | None = None, overrides: dict | None = None) -> ABDParams:
    return load_params(ABDParams, path, overrides, complete=complete_victims)


def run_matrix(p: ABDParams, log=print) -> pd.DataFrame:
    from paperlib.experiments import defences
    m = defences.run(p, log=log, manifest=False)["matrix"]
    return m[(m.scale == p.scale) & defences.in_seeds(m, p) & m.attack.isin([v.attack for v in p.victims])]


def table(matrix: pd.DataFrame, p: ABDParams, name: str) -> pd.DataFrame:
    """One of ABD's tables: our top-1 CA / ASR (mean, std over seeds) beside the paper's."""
    from paperlib.compare import beside_paper
    from paperlib.results import upsert_csv
    if name != "Table I":
        # the ablation tables compare variant rows, which exist at the ablation seeds only
        matrix = matrix[matrix.seed.isin(list(p.ablation_seed_list))]
    t = beside_paper(matrix, PAPER, name, TABLES[name], p.scale)
    t = t[t.k == 1].assign(table=name)
    slug = name.lower().replace(" ", "_")
    upsert_csv(Path(p.results_dir) / PAPER / f"{slug}.csv", t.to_dict("records"),
               ("scale", "table", "attack", "defence", "metric", "k"))
    return t


FIG2_KEY = ("pair", "attack", "scale", "seed", "n_images", "victim_model", "abd_settings")
FIG2_PAIRS = ("original images, original captions", "backdoor images, backdoor captions",
              "adversarial images, original captions", "adversarial images, backdoor captions",
              "adversarial images, unrelated captions")


def similarity_bars(p: ABDParams, attack: str = "badnet", seeds=None, n: int = 512, log=print) -> pd.DataFrame:
    """Fig. 2: mean cosine similarity (x100, as the paper prints) on the victim between
    (1) clean images and their captions, (2) triggered images and the target captions,
    (3) ABD-patched images and their captions, (4) patched images and the target captions,
    (5) patched images and unrelated captions (another pair's caption), at each of ``seeds``
    (default: the ablation seeds), one row per bar and seed, upserted into
    ``<results>/abd/fig2_similarity_<scale>.csv`` by victim and ABD settings.  A seed whose victim
    is absent from this cache stands in by its rows there (issue 24: a fresh machine trains no
    victim for a figure)."""
    from paperlib.cache import artifact_key, note_model_stood_in
    from paperlib.experiments.common import clean_base, victim_config, victim_key
    from paperlib.experiments.matrix_summary import settings_json
    from paperlib.results import upsert_csv
    base = clean_base(p)
    v = victim_config(p, attack)
    settings = settings_json(p.defence.config("abd", attack))
    path = Path(p.results_dir) / PAPER / f"fig2_similarity_{p.scale}.csv"
    rows = []
    for seed in (p.ablation_seed_list if seeds is None else seeds):
        key = victim_key(p, base, v, seed)
        ident = {"attack": attack, "scale": p.scale, "seed": seed, "n_images": n,
                 "victim_model": artifact_key("model", key), "abd_settings": settings}
        there = _published_bars(p, path, key, ident)
        if there is not None:
            note_model_stood_in(ident["victim_model"], "poison_finetune")
            rows += there
            log(f"Fig. 2 {attack} seed {seed}: rows from {path.name} (the victim is not in this cache)")
            continue
        sims, device = _similarities(p, base, v, seed, n)
        rows += [{"pair": pair, "similarity_x100": sims[pair], **ident, "device": device} for pair in FIG2_PAIRS]
    upsert_csv(path, rows, FIG2_KEY)
    return pd.DataFrame(rows)


def _published_bars(p: ABDParams, path: Path, victim_key: dict, ident: dict) -> list[dict] | None:
    """Every bar's row of ``ident`` (victim, seed, settings) in the results file, in Fig. 2's order,
    when the victim is absent from this cache and ``reuse_rows`` allows it; else None."""
    from paperlib.cache import ArtifactCache
    from paperlib.results import row_naming_model
    if not p.reuse_rows or ArtifactCache().exists("model", victim_key):
        return None
    match = {k: v for k, v in ident.items() if k != "victim_model"}
    rows = [row_naming_model(path, ident["victim_model"], column="victim_model", pair=pair, **match)
            for pair in FIG2_PAIRS]
    return None if any(r is None for r in rows) else rows


def _similarities(p: ABDParams, base, v, seed: int, n: int) -> tuple[dict[str, float], str]:
    """The five similarities of Fig. 2 on the victim of ``v`` at ``seed`` (trained or loaded), and
    what trained that victim (one cache key trains other weights on another CPU kind)."""
    import torch

    from paperlib import pipeline as pl
    from paperlib.data.splits import zero_shot_templates
    from paperlib.defences.abd import abd_patch, apply_patch
    from paperlib.eval.zeroshot import encode_images
    from paperlib.experiments.common import finetune_victim, victim_attack
    device = pl.resolve_device(p.device)
    atk = victim_attack(p, base, v)
    victim = finetune_victim(p, base, v, seed)
    ctx = pl.defence_context(victim, p.data, p.defence.clean_scenes, p.defence.train.batch_size, seed,
                             base, device)
    pairs, tok = ctx.pairs, ctx.tokenizer
    patch, info = abd_patch(p.defence.config("abd", v.attack), ctx)
    model = victim.load(device)
    b = pairs.fetch(np.arange(min(n, len(pairs))))
    imgs = b["images"]
    g = torch.Generator().manual_seed(0)
    cap = pl.encode_token_rows(model, b["tokens"].numpy(), device)
    other = cap.roll(1, 0)
    rng = np.random.default_rng(0)
    templates = zero_shot_templates()
    target_caps = pl.encode_token_rows(model, tok([templates[i].format(v.poison.target)
                                                   for i in rng.integers(0, len(templates), len(imgs))]).numpy(), device)
    f_clean = encode_images(model, imgs, device=device)
    f_trig = encode_images(model, atk.test_transform(imgs, g), device=device)
    f_adv = encode_images(model, apply_patch(imgs, patch, info["offset"]), device=device)
    cos = lambda a, b: float((a * b).sum(1).mean() * 100)  # noqa: E731
    sims = dict(zip(FIG2_PAIRS, (cos(f_clean, cap), cos(f_trig, target_caps), cos(f_adv, cap),
                                 cos(f_adv, target_caps), cos(f_adv, other))))
    return sims, str(victim.summary.get("device", ""))


def patch_trigger_overlap(p: ABDParams, n: int = 64) -> pd.DataFrame:
    """Where ABD's patch sits against each victim's trigger: the share of the trigger's pixels
    (those its test-time transform changes, in any channel, on more than half of ``n`` random uint8
    images) inside ABD's
    patch box, and the share of the box the trigger changes.  ABD's patch is AdvCLIP's bottom-right
    square (``patch_geometry``); a victim whose trigger sits under it is cleaned partly by
    occlusion, which the random-patch control (``abd_random``) measures and this names.
    Writes ``<results>/abd/patch_trigger_overlap_<scale>.csv``."""
    import torch

    from paperlib.defences.abd import patch_geometry
    from paperlib.experiments.common import clean_base, victim_attack
    from paperlib.results import write_csv_atomic
    base = clean_base(p)
    side = p.data.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)
    rows = []
    for v in p.victims:
        cfg = p.defence.config("abd", v.attack)
        ps, off = patch_geometry(side, cfg.patch_area, cfg.margin_fraction)
        box = torch.zeros(side, side, dtype=torch.bool)
        box[off:off + ps, off:off + ps] = True
        trig = victim_attack(p, base, v).test_transform(images, torch.Generator().manual_seed(1))
        changed = (trig.to(torch.int16) - images.to(torch.int16)).abs().amax(1) > 0   # (n, H, W)
        share = changed.float().mean(0) > 0.5        # pixels the trigger changes on most images
        n_trig = int(share.sum())
        rows.append({"attack": v.attack, "scale": p.scale, "image_side": side, "patch_side": ps, "patch_offset": off,
                     "trigger_pixels": n_trig,
                     "trigger_in_patch_pct": 100.0 * float((share & box).sum()) / n_trig if n_trig else float("nan"),
                     "patch_changed_by_trigger_pct": 100.0 * float((share & box).sum()) / float(box.sum())})
    out = pd.DataFrame(rows)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / f"patch_trigger_overlap_{p.scale}.csv")
    return out


def fig2_summary(bars: pd.DataFrame) -> pd.DataFrame:
    """Fig. 2's bars over the seeds of ``bars`` (:func:`similarity_bars`): per pair, in the figure's
    order, the mean and std of the similarity (x100) and the seeds."""
    g = bars.groupby("pair")["similarity_x100"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(), "n_seeds": g.size()}).reindex(list(FIG2_PAIRS))
    out = out.dropna(subset=["mean"]).reset_index()
    return out.assign(seeds=" ".join(str(int(x)) for x in sorted(bars.seed.unique())))


def plot_fig2(bars: pd.DataFrame, p: ABDParams):
    """Fig. 2: ours (mean, and std over seeds as error bars) beside the paper's bars."""
    import matplotlib.pyplot as plt

    from paperlib.papers import lookup
    from paperlib.figures import save_figure
    summ = fig2_summary(bars)
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    x = np.arange(len(summ))
    seeds = summ.seeds.iloc[0]
    ax.bar(x - 0.2, summ["mean"], 0.4, yerr=summ["std"].fillna(0.0), capsize=3,
           label=f"ours ({p.scale}; mean ± std over seeds {seeds})")
    try:
        ref = lookup(PAPER, "Fig 2")
        if len(ref) == len(summ):
            ax.bar(x + 0.2, ref["value"].to_numpy(), 0.4, label="paper", alpha=0.6)
    except ValueError:
        pass
    ax.set_xticks(x)
    ax.set_xticklabels([s.replace(", ", ",\n") for s in summ["pair"]], fontsize=6)
    ax.set_ylabel("cosine x 100")
    ax.set_xlabel("images, captions")
    ax.set_title(f"ABD Fig. 2 on the {bars['attack'].iloc[0]} victim: {p.scale} scale, seeds {seeds}", fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig2_{p.scale}.png")


def claims(tables: dict[str, pd.DataFrame] | None, p: ABDParams, matrix: pd.DataFrame | None = None) -> pd.DataFrame:
    """The paper's headline claims, checked seed by seed on the defence ``matrix`` rows
    (:func:`run_matrix`: one row per attack x defence x seed), paired by seed, with the two-SEM
    rule of :mod:`paperlib.claims` (``results/abd/claims.csv``).  Table I's claims read each attack's seeds (``seeds_for``),
    Tables II-III's (ABD's ablation variants) ``ablation_seeds``.  ``tables`` (the seed summaries)
    is not needed and kept for callers; without ``matrix`` every claim is not measured."""
    from paperlib.claims import AllOf, Claim, Compare, claims_table, live_attacks, per_seed, show_paper
    from paperlib.papers import lookup
    from paperlib.results import write_csv_atomic
    m = matrix if matrix is not None else pd.DataFrame(columns=["attack", "defence", "scale", "seed"])
    abl_seeds = list(p.ablation_seed_list)
    t1_attacks = [a for a in ("badnet", "blended", "badclip") if a in {v.attack for v in p.victims}]

    def v(attack, defence, col="asr_top1", at=None):
        return per_seed(m, col, p.seeds_for(attack) if at is None else at, scale=p.scale, attack=attack,
                        defence=defence)

    def paper(table, attack, defence, metric="asr"):
        return float(lookup(PAPER, table, attack=attack, defence=defence, metric=metric)["value"].iloc[0])

    def pair(table, attack, lo, hi, form):
        return show_paper(form, paper(table, attack, lo), paper(table, attack, hi))

    # an ASR comparison needs a backdoor to remove: attacks whose victims miss the floor are left out
    live, left_out = live_attacks(m, t1_attacks, p.seeds_for, scale=p.scale)
    every = ", ".join(pair("Table I", a, "abd", "cleanclip", "{a} {rel} {b}") for a in live)
    cl = [
        Claim("ABD's top-1 ASR is below CleanCLIP's on every attack of Table I (ABD vs CleanCLIP per attack, "
              "paired by seed)" + left_out, every,
              lambda: AllOf([Compare(v(a, "abd"), "<", v(a, "cleanclip"), names=("ABD", "CleanCLIP"),
                                     form="{a} {rel} {b}", label=a) for a in live], unit="attacks")),
        Claim("ABD lowers BadCLIP top-1 ASR below CleanCLIP's (CleanCLIP -> ABD)",
              pair("Table I", "badclip", "cleanclip", "abd", "{a} -> {b}"),
              lambda: Compare(v("badclip", "cleanclip"), ">", v("badclip", "abd"), names=("CleanCLIP", "ABD"),
                              form="{a} -> {b}")),
        Claim("RoCLIP (as fine-tuning) leaves BadNet top-1 ASR above CleanCLIP's (RoCLIP vs CleanCLIP)",
              pair("Table I", "badnet", "roclip", "cleanclip", "{a} vs {b}"),
              lambda: Compare(v("badnet", "roclip"), ">", v("badnet", "cleanclip"), names=("RoCLIP", "CleanCLIP"))),
        Claim("Adversarial images alone (I_adv) lower BadNet ASR more than EDA alone (T_eda) (I_adv vs T_eda)",
              pair("Table II", "badnet", "i_adv", "t_eda", "{a} vs {b}"),
              lambda: Compare(v("badnet", "abd_i_adv", at=abl_seeds), "<", v("badnet", "abd_t_eda", at=abl_seeds),
                              names=("I_adv", "T_eda"))),
        Claim("The backdoor loss L_bd lowers BadNet ASR against the plain UAP, images only (UAP -> UAP + L_bd)",
              pair("Table III", "badnet", "uap", "uap+lbd", "{a} -> {b}"),
              lambda: Compare(v("badnet", "abd_uap", at=abl_seeds), ">", v("badnet", "abd_i_adv", at=abl_seeds),
                              names=("UAP", "UAP+L_bd"), form="{a} -> {b}")),
        Claim("ABD costs at most 3 points of top-1 CA against CleanCLIP on BadNet (CleanCLIP vs ABD)",
              show_paper(None, paper("Table I", "badnet", "cleanclip", "ca"), paper("Table I", "badnet", "abd", "ca")),
              lambda: Compare(v("badnet", "cleanclip", "ca_top1"), "<=", v("badnet", "abd", "ca_top1"), 3.0,
                              names=("CleanCLIP", "ABD"))),
    ]
    out = claims_table(cl, p.scale)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / "claims.csv")
    return out


__all__ = ["ABDParams", "TABLES", "load", "run_matrix", "table", "similarity_bars", "fig2_summary", "patch_trigger_overlap", "plot_fig2", "claims"]
