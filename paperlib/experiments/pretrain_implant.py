"""Does a victim poisoned during pre-training hold its backdoor here?  ASR against passes (issue 23).

EftCLIP's Tables 3-5 defend CLIPs pre-trained from scratch on poisoned CC3M; the paper's victims
hold their backdoors (top-1 ASR 94.17-99.99 %, ``paperlib/papers/eftclip.csv``, Table 5's "none"
rows).  Ours are pre-trained for 2.5 passes over the CC3M analogue (the files' ``pretrain`` block,
19 minutes of the 2-core EPYC by ``results/benchmarks/cache_costs.csv``), and BadNet's implants little there (top-1 ASR 11.24
in ``results/attacks/victims.csv``, 4.3 in Table 3), at a clean top-1 of 8.8-10.4 where the shipped
base, the same recipe at 6 passes, reaches 27.9.  Whether more passes make the backdoor is what
this measures: one pre-training victim per (attack, seed) of the file's ``pretrain_victims`` at
``pretrain.epochs`` passes, keeping each pass's weights (``epoch_checkpoints``: its own cache key),
each pass's clean and triggered top-k measured as every table measures them.

``python -m paperlib.experiments.pretrain_implant params/eftclip/embedded.yaml pretrain.epochs=6
[pretrain_seeds=[0]] [results_dir=results]`` writes ``<results_dir>/attacks/pretrain_implant.csv``,
one row per (victim, pass), keyed by the victim model and the recipe's passes; ``train_seconds`` is
the victim's whole pre-training (the same on each of its rows).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

FILE = "pretrain_implant.csv"
KEY = ("attack", "poison_count", "scale", "seed", "passes", "epoch", "victim_model")
COLUMNS = (*KEY, "poison_rate", "caption", "attack_params", "ca_top1", "ca_top5", "asr_top1", "asr_top5",
           "asr_top10", "device", "train_seconds")


def run(p, log=print) -> pd.DataFrame:
    """Every pre-training victim of ``p`` at every pre-training seed: this run's rows (also upserted
    into the file, which keeps other runs' rows)."""
    from paperlib.cache import artifact_key
    from paperlib.experiments.common import clean_base, pretrain_victim, victim_attack, victim_metrics
    from paperlib.experiments.victim_rows import params_json
    from paperlib.results import upsert_csv
    base = clean_base(p)
    n_pairs = p.data.train_scenes
    rows = []
    for v in p.pretrain_victims:
        attack = victim_attack(p, base, v)
        for seed in p.pretrain_seed_list:
            log(f"pretrain_implant {v.attack} seed {seed}: {p.pretrain.epochs:g} passes, {v.poison.poison_count} "
                f"of {n_pairs} pairs poisoned")
            model = pretrain_victim(p, base, v, seed, attack, epoch_checkpoints=True)
            stages = [(float(k), art) for k, art in model.epoch_weights() if k < p.pretrain.epochs]
            stages.append((float(p.pretrain.epochs), model))
            summary = model.summary
            for epoch, art in stages:
                m = victim_metrics(p, art, attack, v)
                rows.append({"attack": v.attack, "poison_count": v.poison.poison_count, "scale": p.scale, "seed": seed,
                             "passes": float(p.pretrain.epochs), "epoch": epoch,
                             "victim_model": artifact_key("model", model.key_params),
                             "poison_rate": round(100 * v.poison.poison_count / n_pairs, 3),
                             "caption": v.poison.caption, "attack_params": params_json(v.attack_params),
                             **{k: m[k] for k in ("ca_top1", "ca_top5", "asr_top1", "asr_top5", "asr_top10")},
                             "device": summary.get("device", ""), "train_seconds": round(summary.get("seconds", 0.0), 1)})
                log(f"  pass {epoch:g}: clean top-1 {m['ca_top1']:.1f}, ASR top-1 {m['asr_top1']:.1f}")
    upsert_csv(Path(p.results_dir) / "attacks" / FILE, rows, KEY, COLUMNS)
    return pd.DataFrame(rows, columns=list(COLUMNS))


if __name__ == "__main__":
    from paperlib.experiments import eftclip
    from paperlib.experiments.common import cli
    raise SystemExit(cli(eftclip.load, run, description=__doc__))
