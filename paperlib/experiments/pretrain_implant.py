"""Does a victim poisoned during pre-training hold its backdoor here?  ASR against passes (issue 23).

EftCLIP's Tables 3-5 defend CLIPs pre-trained from scratch on poisoned CC3M; the paper's victims
hold their backdoors (top-1 ASR 94.17-99.99 %, ``paperlib/papers/eftclip.csv``, Table 5's "none"
rows).  Ours are pre-trained for ``pretrain.epochs`` passes over the CC3M analogue.  This takes one
pre-training victim per (attack, seed) of the file's ``pretrain_victims``, keeps each pass's weights
(``epoch_checkpoints``: its own cache key; the plain victim is then copied from it,
:func:`paperlib.pipeline.core.copied_from_epoch_twin`) and measures each pass's clean and triggered
top-k as every table measures them.

``results/attacks/pretrain_implant.csv`` holds two recipes of BadNet at 1,000 of 130,000 pairs, seed 0:

* the older one (a patch anywhere, CleanCLIP's template captions), six passes, implants almost nothing::

    python -m paperlib.experiments.pretrain_implant params/eftclip/embedded.yaml pretrain.epochs=6 'pretrain_seeds=[0]' \
        'pretrain_victims=[{attack: badnet, attack_params: {patch_fraction: 0.25, position: random},
          poison: {target: banana, poison_count: 1000, caption: template}}]' results_dir=results

  (state ``position`` and ``caption``: a partial entry is completed from the embedded scale's attack
  suite, whose victim has the fixed corner and natural captions);
* the file's own (the fine-tuning victims' fixed corner and natural captions), 2.5 passes, implants::

    python -m paperlib.experiments.pretrain_implant params/eftclip/embedded.yaml 'pretrain_seeds=[0]' results_dir=results

(the rows were made at seed 0; the file's ``pretrain_seeds`` would pre-train each recipe at every seed)

Rows: one per (victim, pass), keyed by the victim model and the recipe's passes, in
``<results_dir>/attacks/pretrain_implant.csv``; ``train_seconds`` is the victim's whole pre-training
(the same on each of its rows).
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
