"""Training-time defences in the pre-training threat model: RoCLIP from scratch on the poisoned set.

Parameters: the defence matrix's (``params/defences/<scale>.yaml``, schema
:class:`~paperlib.experiments.defences.DefenceMatrixParams`): its ``pretrain_victims`` and
``pretrain_defences``, with each defence's settings from ``defence.settings``.  For every
pre-training victim (CLIP trained from scratch on the CC3M analogue with some pairs poisoned; the
attack suite's victim, same cache key) the same poisoned pairs are trained from scratch again, with
the same recipe (``pretrain``) and seed, under each training-time defence, at ``pretrain_seeds``
(default: the first of ``seeds``; each seed is a training from scratch).  RoCLIP was designed for
this setting (Yang et al. 2023; EftCLIP's Table 4 and CFBD's Tables 1-2 compare with RoCLIP
retrained on the whole poisoned set); the defence matrix has RoCLIP as fine-tuning.

Output: ``results/defences/pretrain.csv``, one row per attack x defence x seed (``none`` is the
undefended victim): CA / ASR top-1/3/5/10, wall time, samples seen, the models' cache keys and
device.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from paperlib.experiments.defences import MATRIX_KEY, DefenceMatrixParams, load

PRETRAIN_COLUMNS = ("attack", "threat_model", "defence", "scale", "seed", "poison_count", "ca_top1", "ca_top3",
                    "ca_top5", "ca_top10", "asr_top1", "asr_top3", "asr_top5", "asr_top10", "wall_s", "samples",
                    "victim_model", "model", "device")


def run(p: DefenceMatrixParams, log=print) -> pd.DataFrame:
    """Train (or reuse) every pre-training victim and its defended twins; evaluate; write the table."""
    from paperlib.experiments.common import clean_base, pretrain_victim, victim_attack, victim_metrics
    from paperlib.results import Timer, upsert_csv, write_manifest

    if not p.pretrain_victims:
        raise SystemExit("pretrain_victims: this parameter file names no victim of the pre-training threat "
                         "model; add e.g. {attack: badnet, poison: {poison_count: 1000}}")
    timer = Timer()
    with timer("pretrain"):
        base = clean_base(p)   # fits the triggers of attacks that need a clean model; not trained on here
    results = Path(p.results_dir)
    rows = []
    for v in p.pretrain_victims:
        atk = victim_attack(p, base, v)
        for seed in p.pretrain_seed_list:
            with timer(f"victim_{v.attack}"):
                victim = pretrain_victim(p, base, v, seed, atk)
                m = victim_metrics(p, victim, atk, v)
            rows.append(_row(p, v, seed, "none", m, victim, victim))
            log(f"{v.attack:10s} seed {seed} none (from scratch)    CA {m['ca_top1']:5.1f}  ASR {m['asr_top1']:5.1f}")
            for d in p.pretrain_defences:
                with timer(f"{d}_{v.attack}"):
                    model = pretrain_victim(p, base, v, seed, atk, defence_id=d,
                                            defence_cfg=p.defence.config(d, v.attack))
                    m = victim_metrics(p, model, atk, v)
                rows.append(_row(p, v, seed, d, m, victim, model))
                log(f"{v.attack:10s} seed {seed} {d} (from scratch)  CA {m['ca_top1']:5.1f}  ASR {m['asr_top1']:5.1f}")
            upsert_csv(results / "defences" / "pretrain.csv", rows, MATRIX_KEY,
                       PRETRAIN_COLUMNS)
    table = upsert_csv(results / "defences" / "pretrain.csv", rows, MATRIX_KEY,
                       PRETRAIN_COLUMNS)
    write_manifest(results / "defences" / f"manifest_pretrain_{p.scale}.json", asdict(p), timer.sections,
                   extra={"base_model": base.path.name})
    return table


def _row(p, v, seed: int, defence: str, m: dict, victim, model) -> dict:
    """The defence matrix's row (metrics, wall time, samples, provenance) plus the threat model."""
    from paperlib.experiments.defences import matrix_row, provenance
    s = model.summary or {}
    return {**matrix_row(v.attack, defence, p.scale, seed, m, s.get("seconds", 0.0), s.get("samples", 0)),
            "threat_model": "pretrain", "poison_count": v.poison.poison_count, **provenance(victim, model)}


def main(argv=None) -> int:
    """``python -m paperlib.experiments.pretrain_defences params/defences/embedded.yaml [key=value ...]``"""
    from paperlib.experiments.common import cli
    return cli(load, run, argv, description=__doc__)


if __name__ == "__main__":
    raise SystemExit(main())

__all__ = ["PRETRAIN_COLUMNS", "run", "main"]
