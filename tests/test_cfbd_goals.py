"""CFBD against issue 23's goals (paperlib.experiments.cfbd_goals), on hand-made per-seed rows."""
import pandas as pd

from paperlib.experiments import cfbd
from paperlib.experiments.cfbd_goals import goals_table, markdown


def _det(attack, seed, coarse_auroc, tpr, fpr):
    return [{"attack": attack, "stage": "coarse", "seed": seed, "tpr": 80.0, "fpr": 9.0, "auroc": coarse_auroc, "auprc": 1.0},
            {"attack": attack, "stage": "fine", "seed": seed, "tpr": tpr, "fpr": fpr, "auroc": 99.0, "auprc": 1.0}]


def _asr(attack, seed, victim, base, coarse, fine):
    return [{"attack": attack, "method": m, "seed": seed, "ca_top1": 25.0, "asr_top1": a}
            for m, a in (("none", victim), ("clean", base), ("cfbd_coarse", coarse), ("cfbd", fine))]


def test_goals_are_counted_per_seed_and_asked_only_where_the_victim_implants():
    p = cfbd.load("params/cfbd/smoke.yaml")
    attacks = [v.attack for v in p.victims]
    a, b = attacks[0], attacks[1]
    det = pd.DataFrame(_det(a, 0, 95.0, 92.0, 0.5) + _det(a, 1, 85.0, 95.0, 1.5) + _det(b, 0, 99.0, 99.0, 0.1))
    rows = pd.DataFrame(_asr(a, 0, 99.0, 5.0, 0.0, 6.9) + _asr(a, 1, 97.0, 5.0, 0.0, 7.1)
                        + _asr(b, 0, 10.0, 0.0, 0.0, 0.0)                        # b's victim does not implant
                        + _asr(b, 3, 90.0, 0.0, 0.0, 0.0))                       # a seed without detection rows
    t = goals_table(p, det, rows).set_index("attack")
    ra = t.loc[a]
    assert ra.seeds == "0 1" and ra.implants
    assert ra.coarse_goal == "1/2"                 # 95 >= 90 at seed 0, 85 not at seed 1
    assert ra.fine_goal == "1/2"                   # TPR 95 at FPR 1.5 misses the FPR bound
    assert ra.asr_goal == "1/2"                    # 6.9 <= 5 + 2, 7.1 not
    assert ra.victim_asr == 98.0 and ra.coarse_auroc == 90.0
    rb = t.loc[b]
    assert not rb.implants and rb.victim_asr == 10.0   # seed 3 (no detection rows) left out
    assert rb.coarse_goal == rb.fine_goal == rb.asr_goal == ""
    text = markdown(t.reset_index())
    assert "[1/2]" in text and "(does not implant)" in text
    rest = goals_table(p, det[det.attack == a], rows[rows.attack == a]).set_index("attack").loc[b]
    assert rest.seeds == "" and not rest.implants and rest.fine_goal == ""   # no row: no seeds, no goal


def test_a_missing_victim_or_base_asr_is_not_called_a_victim_that_does_not_implant():
    p = cfbd.load("params/cfbd/smoke.yaml")
    a = p.victims[0].attack
    det = pd.DataFrame(_det(a, 0, 95.0, 92.0, 0.5))                      # one seed: no std
    rows = pd.DataFrame([r for r in _asr(a, 0, 99.0, 0.0, 0.0, 1.0) if r["method"] != "clean"])
    t = goals_table(p, det, rows)
    r = t.set_index("attack").loc[a]
    assert r.implants is None and r.coarse_goal == r.fine_goal == r.asr_goal == ""
    text = markdown(t)
    assert "victim or base ASR missing" in text and "does not implant" not in text
    assert "95.0 [" not in text and "95.0 |" in text and "± " not in text    # no dangling ± at one seed
