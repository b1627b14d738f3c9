"""CleanerCLIP's tables and figures from the defence matrix.

Parameters: ``params/cleanerclip/<scale>.yaml`` (schema :class:`CleanerCLIPParams`, the defence
matrix's schema plus this paper's extras).  Table 1 is the matrix restricted to NoDefense / FT /
CleanCLIP / CleanerCLIP over the paper's six attacks, our seeds summarised beside the paper's
numbers; Fig. 3 is top-1 ASR after every defence epoch (CleanCLIP vs CleanerCLIP); the claims
table checks the paper's headline claims on our numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from paperlib.config import load_params, param
from paperlib.experiments.defences import DefenceMatrixParams

PAPER = "cleanerclip"
DEFENCES = {"none": "none", "ft": "ft", "cleanclip": "cleanclip", "cleanerclip": "cleanerclip"}  # ours -> paper's


@dataclass(frozen=True)
class CleanerCLIPParams(DefenceMatrixParams):
    epoch_curve_attacks: tuple[str, ...] = param(("badnet", "sig", "badclip"),
                                                 doc="attacks of Fig. 3 (ASR per defence epoch)")


def load(path: str | Path | None = None, overrides: dict | None = None) -> CleanerCLIPParams:
    return load_params(CleanerCLIPParams, path, overrides)


def run_matrix(p: CleanerCLIPParams, log=print) -> pd.DataFrame:
    """The defence matrix rows this paper needs (cached models are reused)."""
    from paperlib.experiments import defences
    out = defences.run(p, log=log)
    m = out["matrix"]
    return m[(m.scale == p.scale) & m.attack.isin([v.attack for v in p.victims])
             & m.defence.isin(list(DEFENCES))]


def table_1(matrix: pd.DataFrame, p: CleanerCLIPParams) -> pd.DataFrame:
    """Table 1: top-1/3/5/10 CA and ASR, ours (mean, std over seeds) beside the paper's."""
    from paperlib.compare import beside_paper
    from paperlib.results import upsert_csv
    t = beside_paper(matrix, PAPER, "Table 1", DEFENCES, p.scale)
    out = Path(p.results_dir) / PAPER
    upsert_csv(out / "table1.csv", t.to_dict("records"), ("scale", "attack", "defence", "metric", "k"))
    return t


def asr_per_epoch(p: CleanerCLIPParams) -> pd.DataFrame:
    """Fig. 3: top-1 ASR (and CA) after each epoch of CleanCLIP and CleanerCLIP fine-tuning.

    Needs the defended models' per-epoch weights (``defence.save_epochs: true``).
    """
    from paperlib import pipeline as pl
    from paperlib.experiments.common import clean_base, finetune_victim, victim_attack, victim_metrics
    from paperlib.results import upsert_csv
    rows = []
    base = clean_base(p)
    for v in p.victims:
        if v.attack not in p.epoch_curve_attacks:
            continue
        atk = victim_attack(p, base, v)
        for seed in p.seeds:
            victim = finetune_victim(p, base, v, seed)
            for d in ("cleanclip", "cleanerclip"):
                model = pl.defend(victim, p.data, d, p.defence.config(d, v.attack), p.defence.clean_scenes,
                                  p.defence.train, seed, clean_base=base, device=p.device, save_epochs=True)
                for f in sorted(model.path.glob("epoch*.safetensors"), key=lambda x: int(x.stem[5:])):
                    art = pl.ModelArtifact(model.name, model.path, {**model.key_params, "epoch_file": f.name}, f.name)
                    m = victim_metrics(p, art, atk, v)
                    rows.append({"attack": v.attack, "defence": d, "epoch": int(f.stem[5:]), "scale": p.scale,
                                 "seed": seed, "asr_top1": m["asr_top1"], "ca_top1": m["ca_top1"]})
    if not rows:
        return pd.DataFrame(rows)
    return upsert_csv(Path(p.results_dir) / PAPER / "fig3_asr_per_epoch.csv", rows,
                      ("attack", "defence", "epoch", "scale", "seed"))


def plot_fig3(curve: pd.DataFrame, p: CleanerCLIPParams):
    import matplotlib.pyplot as plt

    from paperlib.results import save_figure
    attacks = list(dict.fromkeys(curve.attack))
    fig, axes = plt.subplots(1, max(1, len(attacks)), figsize=(3.2 * max(1, len(attacks)), 2.8), squeeze=False)
    for ax, a in zip(axes[0], attacks):
        for d, style in (("cleanclip", "--o"), ("cleanerclip", "-s")):
            s = curve[(curve.attack == a) & (curve.defence == d)].groupby("epoch")["asr_top1"].agg(["mean", "std"])
            ax.errorbar(s.index, s["mean"], yerr=s["std"].fillna(0), fmt=style, label=d, capsize=2)
        ax.set_title(a)
        ax.set_xlabel("defence epoch")
        ax.set_ylim(-2, 102)
    axes[0, 0].set_ylabel("ASR top-1 (%)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"ASR per defence epoch ({p.scale} scale; CleanerCLIP Fig. 3)", fontsize=9)
    return save_figure(fig, Path(p.results_dir) / PAPER / f"fig3_{p.scale}.png")


def claims(t: pd.DataFrame, p: CleanerCLIPParams) -> pd.DataFrame:
    """The paper's headline claims, evaluated on our Table 1 (``results/cleanerclip/claims.csv``)."""
    from paperlib.compare import Claim, claims_table, metric
    from paperlib.results import write_csv_atomic
    attacks = sorted(set(t.attack))
    cl = [
        Claim("CleanerCLIP lowers BadCLIP top-1 ASR below CleanCLIP's", "69.87 -> 17.85",
              lambda t: metric(t, "badclip", "cleanclip", "asr") - metric(t, "badclip", "cleanerclip", "asr"),
              lambda v: v > 0),
        Claim("CleanerCLIP's top-1 ASR <= CleanCLIP's on every attack (difference, worst attack)",
              "holds on all 6 attacks",
              lambda t: min(metric(t, a, "cleanclip", "asr") - metric(t, a, "cleanerclip", "asr") for a in attacks),
              lambda v: v >= 0),
        Claim("CleanerCLIP brings BadNet top-1 ASR near zero (< 5%)", "0.45",
              lambda t: metric(t, "badnet", "cleanerclip", "asr"), lambda v: v < 5),
        Claim("FT alone leaves BadNet partly alive (top-1 ASR > 20%)", "62.14",
              lambda t: metric(t, "badnet", "ft", "asr"), lambda v: v > 20),
        Claim("CleanerCLIP costs at most 1 point of top-1 CA against CleanCLIP (worst attack)", "52.62 vs 52.64 (BadNet)",
              lambda t: max(metric(t, a, "cleanclip", "ca") - metric(t, a, "cleanerclip", "ca") for a in attacks),
              lambda v: v <= 1.0),
    ]
    out = claims_table(cl, t)
    out.insert(0, "scale", p.scale)
    write_csv_atomic(out, Path(p.results_dir) / PAPER / "claims.csv")
    return out


__all__ = ["CleanerCLIPParams", "load", "run_matrix", "table_1", "asr_per_epoch", "plot_fig3", "claims"]
