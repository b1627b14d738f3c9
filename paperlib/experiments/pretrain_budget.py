"""Does more clean fine-tuning remove a backdoor learned in pre-training?  Table 3's defences at several budgets (issue 23).

EftCLIP's Table 3 defends a CLIP pre-trained on poisoned data by fine-tuning it on clean pairs, as
CleanCLIP does, and the paper's CleanCLIP brings BadNet's top-1 ASR to 10.60 there.  Ours, at the
defence matrix's budget (``defence.train`` of the EftCLIP file: 5 passes over 5,000 clean pairs,
195 steps at lr 1e-4), leaves 99.87 (``results/eftclip/tables.csv``, Table 3, seed 0).  Is that the budget?

This runs Table 3's two fine-tuning defences on each pre-training victim of the file
(``pretrain_victims`` at ``pretrain_seeds``) at the file's ``defence.train``: CleanCLIP on all
``defence.clean_scenes`` pairs and EftCLIP on its curated set (Algorithms 1-2 as Table 3 runs them;
the set does not depend on the budget), one budget per invocation, so that a budget is named on the
command line as any other setting::

    python -m paperlib.experiments.pretrain_budget params/eftclip/embedded.yaml results_dir=results
    python -m paperlib.experiments.pretrain_budget params/eftclip/embedded.yaml defence.train.epochs=25 results_dir=results
    python -m paperlib.experiments.pretrain_budget params/eftclip/embedded.yaml defence.train.lr=1e-3 results_dir=results

Each runs at every seed of ``pretrain_seeds``.  For BadNet's victim the first is Table 3's own two
models (the same calls as Table 3's, read from the cache where Table 3 made them); a file with other
pre-training victims (Table 5's) gets CleanCLIP on those too, which no table of the paper has.  The
budgets run so far are the rows of ``results/eftclip/pretrain_budget.csv``.  Each row
sets the defence's optimiser steps and learning rate beside the victim's pre-training
(``steps_vs_victim``, ``lr_vs_victim``): the paper's own ratio is printed in docs/deviations-eftclip.md
(Sec. 4.1's pre-training against its fine-tuning phase).

Rows: one per (victim, defence, budget), in ``<results_dir>/eftclip/pretrain_budget.csv``;
``finetune_set`` is the number of clean pairs the defence trained on (CleanCLIP's pool, EftCLIP's
curated set).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd

FILE = "pretrain_budget.csv"
DEFENCES = ("cleanclip", "eftclip")
# the defended model's cache key holds every other setting of the defence (warm-up, weight decay, its loss)
KEY = ("attack", "seed", "scale", "victim_model", "defence", "clean_scenes", "epochs", "lr", "batch_size", "model")
COLUMNS = (*KEY, "finetune_set", "steps", "victim_steps", "victim_lr", "steps_vs_victim", "lr_vs_victim",
           "ca_top1", "ca_top5", "asr_top1", "asr_top5", "asr_top10", "victim_ca_top1", "victim_asr_top1",
           "device", "train_seconds")


def budget_row(attack: str, seed: int, scale: str, victim, model, defence: str, train, clean_scenes: int,
               finetune_set: int, m_victim: dict, m: dict) -> dict:
    """One row: the defended model's metrics beside its victim's, and the defence's optimiser steps
    and learning rate as shares of the victim's pre-training (steps from both models' summaries, the
    victim's learning rate from its own cache key)."""
    steps, victim_steps = int(model.summary.get("steps", 0)), int(victim.summary.get("steps", 0))
    victim_lr = victim.key_params["train"]["lr"]
    return {"attack": attack, "seed": seed, "scale": scale, "victim_model": victim.path.name, "defence": defence,
            "clean_scenes": clean_scenes, "finetune_set": int(finetune_set), "epochs": float(train.epochs), "lr": float(train.lr),
            "batch_size": int(train.batch_size), "steps": steps, "victim_steps": victim_steps,
            "victim_lr": float(victim_lr),
            "steps_vs_victim": round(steps / victim_steps, 4) if victim_steps else None,
            "lr_vs_victim": round(float(train.lr) / float(victim_lr), 4),
            **{k: m[k] for k in ("ca_top1", "ca_top5", "asr_top1", "asr_top5", "asr_top10")},
            "victim_ca_top1": m_victim["ca_top1"], "victim_asr_top1": m_victim["asr_top1"],
            "model": model.path.name, "device": model.summary.get("device", ""),
            "train_seconds": round(model.summary.get("seconds", 0.0), 1)}


def run(p, log=print) -> pd.DataFrame:
    """CleanCLIP and EftCLIP at ``p.defence``'s budget on every pre-training victim of ``p`` at every
    pre-training seed: this run's rows (also upserted into the file, which keeps other budgets')."""
    from paperlib.experiments.common import clean_base, pretrain_victim, victim_attack, victim_metrics
    from paperlib.experiments.eftclip import curated_defence, pretrain_cleanclip
    from paperlib.experiments.eftclip_setup import Workbench
    from paperlib.results import upsert_csv
    if not p.pretrain_victims:
        raise ValueError("pretrain_victims: empty; this study defends pre-training victims (give at least one)")
    base, wb = clean_base(p), Workbench(p)
    train = p.defence.train
    rows, started = [], time.time()
    total = len(p.pretrain_victims) * len(p.pretrain_seed_list)
    for v in p.pretrain_victims:
        attack = victim_attack(p, base, v)
        for seed in p.pretrain_seed_list:
            victim = pretrain_victim(p, base, v, seed, attack)
            log(f"pretrain_budget {v.attack} seed {seed}: {train.epochs:g} passes at lr {train.lr:g}, "
                f"batch {train.batch_size}")
            m_victim = victim_metrics(p, victim, attack, v)
            # Table 3's calls: CleanCLIP on the whole pool, EftCLIP's curated set (eftclip.defence_tables)
            cleanclip = pretrain_cleanclip(p, victim, v.attack, seed)
            curated = curated_defence(p, wb, v.attack, "pretrain", seed)
            for defence, model, n in (("cleanclip", cleanclip, p.defence.clean_scenes),
                                      ("eftclip", curated["model"], curated["curated"])):
                m = victim_metrics(p, model, attack, v)
                row = budget_row(v.attack, seed, p.scale, victim, model, defence, train, p.defence.clean_scenes,
                                 n, m_victim, m)
                rows.append(row)
                log(f"  {defence} on {n} pairs, {row['steps']} steps (the victim's: {row['victim_steps']}): "
                    f"ASR top-1 {m_victim['asr_top1']:.1f} -> {m['asr_top1']:.1f}, "
                    f"clean top-1 {m_victim['ca_top1']:.1f} -> {m['ca_top1']:.1f}")
            done = len(rows) // len(DEFENCES)
            elapsed = time.time() - started
            log(f"  {done}/{total} victims in {elapsed:.0f} s; about "
                f"{elapsed / done * (total - done):.0f} s left (the cache may hold some)")
    upsert_csv(Path(p.results_dir) / "eftclip" / FILE, rows, KEY, COLUMNS)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def rows_so_far(p) -> pd.DataFrame:
    """Every budget's row so far for the pre-training victims of ``p`` (each at ``pretrain_seeds``),
    from the committed file and this run's results folder, found by the victims' cache keys: nothing
    is trained (the notebook shows them beside Table 3; a budget is added by running this module)."""
    from paperlib.assets import repo_root
    from paperlib.cache import artifact_key
    from paperlib.experiments.common import clean_base_unbuilt, pretrain_victim_key
    from paperlib.results import read_results
    base = clean_base_unbuilt(p)
    victims = {artifact_key("model", pretrain_victim_key(p, base, v, seed))
               for v in p.pretrain_victims for seed in p.pretrain_seed_list}
    committed, this_run = repo_root() / "results" / "eftclip" / FILE, Path(p.results_dir) / "eftclip" / FILE
    files = [committed] + ([this_run] if this_run.resolve() != committed.resolve() else [])
    found = [t for t in map(read_results, files) if t is not None]   # this run's rows win a tie (keep last)
    if not found:
        return pd.DataFrame(columns=list(COLUMNS))
    rows = pd.concat(found, ignore_index=True)
    rows = rows[rows.victim_model.isin(victims)].drop_duplicates(subset=list(KEY), keep="last")
    return rows.sort_values(["attack", "seed", "defence", "lr", "steps"]).reset_index(drop=True)


BUDGET = ("attack", "defence", "clean_scenes", "batch_size", "epochs", "lr", "finetune_set", "steps")   # one budget's seeds share these


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per victim attack, defence and budget: the seeds it ran at, the mean and (pandas')
    std over them of clean top-1 and top-1 ASR, and each seed's top-1 ASR."""
    out = []
    ordered = rows.sort_values(["attack", "defence", "lr", "epochs", "seed"])
    for key, g in ordered.groupby(list(BUDGET), sort=False):
        if not g.seed.is_unique:   # another setting (a weight decay, a second victim of the attack) is not a column
            raise ValueError(f"budget rows {dict(zip(BUDGET, key))} repeat seeds {sorted(g.seed[g.seed.duplicated()])} "
                             f"(models {', '.join(g.model)}): they differ in a setting these columns do not "
                             "name; summarise them apart")
        out.append({**dict(zip(BUDGET, key)), "seeds": [int(s) for s in g.seed], "n_seeds": len(g),
                    "ca_top1": g.ca_top1.mean(), "ca_top1_std": g.ca_top1.std(),
                    "asr_top1": g.asr_top1.mean(), "asr_top1_std": g.asr_top1.std(),
                    "asr_top1_per_seed": [float(a) for a in g.asr_top1]})
    return pd.DataFrame(out, columns=[*BUDGET, "seeds", "n_seeds", "ca_top1", "ca_top1_std", "asr_top1",
                                      "asr_top1_std", "asr_top1_per_seed"])


def summary_markdown(table: pd.DataFrame, shared_budget: tuple[float, float] | None = None) -> str:
    """``table`` (:func:`summary`) as a Markdown table; ``shared_budget`` (epochs, lr) marks the
    defence matrix's budget, the one Tables 3-4 use (at the file's batch size and clean pairs, the
    only ones run so far).  The spread is the sample standard deviation over the seeds."""
    names = {"cleanclip": "CleanCLIP", "eftclip": "EftCLIP"}

    def num(v):
        return f"{v:.4g}"

    def rate(lr):   # 0.0001 -> 1e-4, 0.00025 -> 2.5e-4, as the parameter files and docs write them
        import numpy as np
        return np.format_float_scientific(float(lr), trim="-", exp_digits=1)

    def spread(mean, std):
        return num(mean) + ("" if pd.isna(std) else f" ± {std:.2g}")
    lines = ["| victim | defence (clean pairs) | passes, lr | steps | seeds | clean top-1 | top-1 ASR | top-1 ASR per seed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        pool = f"{int(r.finetune_set):,}" + (" curated" if r.defence == "eftclip" else "")
        mark = " (the matrix's)" if shared_budget and all(
            math.isclose(float(a), float(b)) for a, b in zip((r.epochs, r.lr), shared_budget)) else ""
        lines.append(f"| {r.attack} | {names.get(r.defence, r.defence)} ({pool}) | {num(r.epochs)}, {rate(r.lr)}{mark} | "
                     f"{int(r.steps)} | {', '.join(map(str, r.seeds))} | {spread(r.ca_top1, r.ca_top1_std)} | "
                     f"{spread(r.asr_top1, r.asr_top1_std)} | {' / '.join(num(a) for a in r.asr_top1_per_seed)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from paperlib.experiments import eftclip
    from paperlib.experiments.common import cli
    raise SystemExit(cli(eftclip.load, run, description=__doc__))
