"""Detection rules and metrics on hand-made inputs."""
import math

import numpy as np
import pytest

from paperlib.detect.cfbd import (CFBDConfig, coarse_stage, consistency, detect, rectified_cosine,
                                  textual_correlation)
from paperlib.detect.metrics import auroc_auprc, tpr_fpr
from paperlib.experiments.common import clean_base_unbuilt

# the detector's default mapping and rules, as detection rows record them
DEFAULT_RULES = {"mapping": "regression", "benign_rule": "mixture_cdf", "gamma_z_rule": "quantile",
                 "gamma_z_quantile": 0.9}


def test_tpr_fpr_by_hand():
    y = [True, True, False, False, False]
    f = [True, False, True, False, False]
    assert tpr_fpr(y, f) == pytest.approx((50.0, 100.0 / 3))
    assert math.isnan(tpr_fpr([False, False], [True, False])[0])
    with pytest.raises(ValueError, match="shape"):
        tpr_fpr([True], [True, False])


def test_auroc_auprc_perfect_and_reversed():
    y = np.array([0, 0, 1, 1], bool)
    assert auroc_auprc(y, [0.1, 0.2, 0.8, 0.9]) == pytest.approx((100.0, 100.0))
    assert auroc_auprc(y, [0.9, 0.8, 0.2, 0.1])[0] == pytest.approx(0.0)


def test_rectified_cosine_and_consistency():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.array([[2.0, 0.0], [-1.0, 0.0]])     # cos 1 and cos -1 -> rectified to 0
    assert rectified_cosine(a, b).tolist() == [1.0, 0.0]
    synth = np.array([[1.0, 1.0], [1.0, 0.0]])   # cos 0.7071 and 1
    assert consistency(a, b, synth) == pytest.approx([abs(math.sqrt(0.5) - 1.0), 1.0])


def _scores(n_benign=400, n_poison=30, seed=0):
    rng = np.random.default_rng(seed)
    c = np.concatenate([rng.normal(0.05, 0.02, n_benign), rng.normal(0.6, 0.05, n_poison)])
    return c, np.r_[np.zeros(n_benign, bool), np.ones(n_poison, bool)]


def test_coarse_stage_splits_low_component_topq_and_rest():
    """The rule as printed (posterior of the lowest-mean component, kept as the ablation)."""
    c, y = _scores()
    cfg = CFBDConfig(k=2, gamma=0.9, q=20, benign_rule="posterior")
    co = coarse_stage(c, cfg)
    assert len(co.seed) == 20 and y[co.seed].all()               # the top-q are the poisoned ones here
    assert not y[co.benign].any() and len(co.benign) > 300       # D_b is clean and large
    parts = np.sort(np.concatenate([co.benign, co.seed, co.suspicious]))
    assert np.array_equal(parts, np.arange(len(c)))              # a partition of all pairs
    assert (co.posterior_low[co.benign] >= 0.9).all()
    # more components split the benign mode: D_b shrinks to its lowest part (CFBD's K trade-off)
    co3 = coarse_stage(c, CFBDConfig(k=3, gamma=0.9, q=20, benign_rule="posterior"))
    assert len(co3.benign) < len(co.benign) and c[co3.benign].max() <= np.median(c[~y])


def test_textual_correlation_is_mean_cosine():
    e = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z = textual_correlation(e, np.array([2]), np.array([0, 1]))
    assert z[0] == pytest.approx(math.sqrt(0.5))


def test_fine_stage_flags_suspicious_pairs_whose_captions_match_the_seed():
    c, y = _scores(n_benign=200, n_poison=20)
    c[-5:] = 0.2   # five poisoned pairs look only mildly inconsistent: they land in D_s
    cap = np.where(y[:, None], np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    cap = cap + np.random.default_rng(1).normal(0, 0.05, cap.shape)
    det = detect(c, cap, CFBDConfig(k=3, gamma=0.9, q=10, gamma_z=0.8))
    assert det.flagged[y].all() and not det.flagged[~y].any()
    assert set(det.keep.tolist()) == set(np.flatnonzero(~y).tolist())


def test_q_must_leave_pairs_without_the_cap():
    with pytest.raises(ValueError, match="q=10"):
        coarse_stage(np.zeros(10), CFBDConfig(q=10, q_cap="none"))


def test_mapping_network_learns_to_caption_separable_embeddings():
    """Two image clusters with two captions: the LM mapping must generate the right one."""
    import torch

    from paperlib.detect.mapping import MappingConfig, MappingNetwork, WordVocab
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    lab = torch.randint(0, 2, (200,), generator=g)
    emb = centres[lab] + 0.05 * torch.randn(200, 4, generator=g)
    caps = ["a red banana", "a blue car on the road"]
    m = MappingNetwork(MappingConfig(kind="lm", width=32, layers=1, heads=2, epochs=30, batch_size=64, lr=3e-3))
    m.fit(emb, [caps[i] for i in lab])
    out = m.captions(centres)
    assert out == caps
    assert m.history[-1]["loss"] < m.history[0]["loss"]
    v = WordVocab(["A dog, a cat."])
    assert v.decode(v.encode("a dog and a cat", 10)[1:]) == "a dog a cat"   # unknown "and" dropped


def test_abl_isolates_the_lowest_losses_and_lga_flips_sign():
    import torch

    from paperlib.detect.abl import LGATerm, isolate
    flagged = isolate(np.array([0.5, 0.1, 0.9, 0.05, 0.7]), 0.4)
    assert flagged.tolist() == [False, True, False, True, False]
    assert isolate(np.array([1.0, 2.0]), 0.001).sum() == 1

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(0.0))

        def encode_image(self, x):
            return x.flatten(1)[:, :2]

        def encode_text(self, t):
            return t.float()

    from paperlib.train.losses import StepContext
    img = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]]).expand(2, 3, 1, 2) * 255
    tok = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    step = StepContext(M(), {"images": img, "tokens": tok})
    low = LGATerm(gamma=10.0)(step)          # loss below gamma: ascent (negative)
    high = LGATerm(gamma=0.0)(StepContext(M(), {"images": img, "tokens": tok}))
    assert low.item() < 0 < high.item() and low.item() == pytest.approx(-high.item())


def test_detect_with_a_given_seed_set_uses_it_for_the_fine_stage():
    from paperlib.detect.cfbd import CFBDConfig, detect
    rng = np.random.default_rng(0)
    n = 200
    c = rng.normal(0.1, 0.02, n)
    cap = rng.normal(size=(n, 8))
    cap[:10] = cap[0] + 0.01 * rng.normal(size=(10, 8))       # ten poisoned pairs share one caption
    c[:10] = 0.5                                              # and are inconsistent: never in D_b
    cfg = CFBDConfig(k=2, q=5, gamma_z=0.9)
    det = detect(c, cap, cfg, seed_rows=np.array([0, 1, 2]))
    assert det.coarse.seed.tolist() == [0, 1, 2]
    assert det.flagged[:10].all() and not det.flagged[10:].any()
    assert not np.isin([0, 1, 2], det.coarse.benign).any()


def test_mixed_seed_set_holds_exactly_the_asked_share_of_benign_pairs():
    from paperlib.detect.cfbd import mixed_seed_set
    poisoned, benign = np.arange(60), np.arange(100, 1000)
    for ratio, n_benign in ((0.0, 0), (0.4, 20), (0.8, 40)):
        out = mixed_seed_set(poisoned, benign, 50, ratio, np.random.default_rng(0))
        assert len(out) == 50 and len(set(out.tolist())) == 50
        assert np.isin(out, benign).sum() == n_benign and np.isin(out, poisoned).sum() == 50 - n_benign
    with pytest.raises(ValueError, match="needs 70 poisoned"):
        mixed_seed_set(poisoned, benign, 70, 0.0, np.random.default_rng(0))


def test_fault_tolerance_seeds_the_fine_stage_with_poisoned_pairs(monkeypatch, tmp_path):
    """CFBD Table 5 hands the fine stage a seed set of truly poisoned pairs mixed with benign ones
    (Sec. 3.3), whatever the coarse stage's own seed set holds: here c ranks every poisoned pair
    last (as at our scale), so the coarse seed set has none, and still ratio 0 seeds only poisoned."""
    from types import SimpleNamespace

    import paperlib.detect.cfbd as cf
    from paperlib.experiments import cfbd as ex
    rng = np.random.default_rng(0)
    n, n_poison = 600, 60
    truth = np.zeros(n, bool)
    truth[:n_poison] = True
    c = np.where(truth, 0.0, rng.uniform(0.1, 1.0, n))        # poisoned pairs get the lowest c (as at our scale)
    cap = rng.normal(size=(n, 8))
    cap[:n_poison] = cap[0] + 0.01 * rng.normal(size=(n_poison, 8))
    seen = []
    real = cf.detect
    monkeypatch.setattr(cf, "detect", lambda c_, e, cfg, seed_rows=None: seen.append(seed_rows) or real(c_, e, cfg, seed_rows))
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "fault_qs": [8], "fault_ratios": [0.4],
                                           "fault_attacks": ["badnet"]})
    out = ex.fault_tolerance(p, {("badnet", 0): SimpleNamespace(c=c, caption_emb=cap, truth=truth, victim_model="v0")})
    assert [int(truth[s].sum()) for s in seen] == [8, 5]   # q=8: 0% and 40% (3) benign
    assert not truth[cf.coarse_stage(c, p.cfbd).seed].any()   # the coarse stage's own seed set: no poisoned pair
    r0 = out[out.fault_ratio == 0].iloc[0]
    assert r0.tpr >= 100 * 8 / n_poison     # its seed pairs, all poisoned, are flagged (the coarse set's: none)
    # another victim's pairs (an older trigger recipe, say) add rows to the file, keyed by their
    # victim, and the table of that run holds only its own
    again = ex.fault_tolerance(p, {("badnet", 0): SimpleNamespace(c=c, caption_emb=cap, truth=truth, victim_model="v1")})
    assert set(again.victim_model) == {"v1"} and len(again) == len(out)
    import pandas as pd
    assert sorted(set(pd.read_csv(tmp_path / "cfbd" / "table5_fault.csv").victim_model)) == ["v0", "v1"]


def test_former_rules_rerun_the_detector_with_each_replaced_rule(monkeypatch, tmp_path):
    """The former-rules ablation runs the detector on the same screened set under the current
    rules and under each replaced rule (posterior benign set, fixed gamma_z, uncapped q) and all
    three at once, with exactly the settings each names, and its table keeps the fine stage."""
    from types import SimpleNamespace

    import paperlib.detect.cfbd as cf
    from paperlib.experiments import cfbd as ex
    rng = np.random.default_rng(0)
    n, n_poison = 400, 20
    truth = np.zeros(n, bool)
    truth[:n_poison] = True
    c = np.where(truth, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.6, n))
    cap = rng.normal(size=(n, 8))
    seen = []
    real = cf.detect
    monkeypatch.setattr(cf, "detect", lambda c_, e, cfg, seed_rows=None: seen.append(cfg) or real(c_, e, cfg, seed_rows))
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "cfbd.q": 50})
    out = ex.former_rules(p, {("badnet", 0): SimpleNamespace(c=c, caption_emb=cap, truth=truth, victim_model="v0")})
    rules = [(s.benign_rule, s.gamma_z_rule, s.q_cap) for s in seen]
    cur = (p.cfbd.benign_rule, p.cfbd.gamma_z_rule, p.cfbd.q_cap)
    assert rules == [cur, ("posterior", cur[1], cur[2]), (cur[0], "fixed", cur[2]), (cur[0], "quantile", cur[2]),
                     (cur[0], cur[1], "none"), ("posterior", "fixed", "none"),
                     (cur[0], "quantile", cur[2]), (cur[0], "quantile", cur[2]),            # the other readings
                     ("posterior", "quantile", cur[2]), ("component_cdf", "quantile", cur[2])]
    assert seen[0].gamma_z_quantile == 0.9 and seen[3].gamma_z_quantile == 0.99   # the former quantile's row
    assert [s.gamma_z_quantile for s in seen[6:]] == [0.8, 0.7, 0.99, 0.99]
    assert set(out.rules) == {"current rules", *ex.FORMER_RULES, *ex.OTHER_RULES} and len(out) == 2 * len(rules)
    # a lower quantile flags at least the pairs a higher one does (same scores, same seed set)
    fine = out[out.stage == "fine"].set_index("rules")
    assert fine.tpr["gamma_z at the 70% quantile"] >= fine.tpr["gamma_z at the 80% quantile"] >= fine.tpr["current rules"]
    assert fine.fpr["gamma_z at the 70% quantile"] >= fine.fpr["gamma_z at the 80% quantile"] >= fine.fpr["current rules"]
    assert fine.gamma_z["gamma_z at the 70% quantile"] < fine.gamma_z["gamma_z at the 80% quantile"] < fine.gamma_z["current rules"]
    # the cap: with it q is at most the pairs the set can hold; uncapped it is the asked q
    q_eff = out[out.stage == "fine"].set_index("rules").q_eff
    assert q_eff["uncapped q"] == 50 and q_eff["current rules"] <= 50
    wide = ex.former_rules_wide(out, p)
    assert list(wide.rules)[0] == "current rules" and (wide.n_seeds == 1).all() and len(wide) == len(rules)


def test_cfbd_tables_take_each_attacks_own_seeds():
    """With BadNet at five seeds and the others at three, CFBD's tables keep BadNet's rows at 0-4
    and the others' at 0-2 (rows of seeds 3-4 of another attack, e.g. an older run's, stay out),
    and the detection experiment screens each attack at its own seeds."""
    import pandas as pd

    from paperlib.experiments import cfbd as ex
    p = ex.load("params/cfbd/smoke.yaml", {"seeds": [0, 1, 2], "seeds_by_attack": {"badnet": [0, 1, 2, 3, 4]}})
    assert p.seeds_for("badnet") == (0, 1, 2, 3, 4) and p.seeds_for("blended") == (0, 1, 2)
    df = pd.DataFrame({"attack": ["badnet"] * 6 + ["blended"] * 6, "seed": list(range(6)) * 2, "scale": "smoke"})
    kept = ex.at_seeds(df, p)
    assert sorted(kept[kept.attack == "badnet"].seed) == [0, 1, 2, 3, 4]
    assert sorted(kept[kept.attack == "blended"].seed) == [0, 1, 2]
    assert ex.at_seeds(df.assign(scale="embedded"), p).empty


def test_mapping_ablation_screens_only_victims_without_rows(tmp_path, monkeypatch):
    """The mapping ablation screens (at the first seed, no retraining) only the victims whose rows
    for that mapping are missing, so rows already there are never replaced; with every row there
    it screens nothing."""
    import pandas as pd

    from paperlib.experiments import cfbd as ex
    from paperlib.experiments import detection
    calls = []
    monkeypatch.setattr(detection, "run", lambda q, log=print: calls.append(q))
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1], "mapping_ablation": ["lm"]})
    rules = {"benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule,
             "gamma_z_quantile": p.cfbd.gamma_z_quantile}
    (tmp_path / "detection").mkdir()
    rows = [{"attack": "badnet", "poison_count": 8, "stage": s, "scale": "smoke", "seed": 0, "auroc": 50.0,
             "tpr": 0.0, "fpr": 0.0, "n_benign": 5, "mapping": "lm", **rules} for s in ("coarse", "fine")]
    pd.DataFrame(rows).to_csv(tmp_path / "detection" / "cfbd_mapping-lm.csv", index=False)
    ex.mapping_ablation(p)
    assert len(calls) == 1 and [v.attack for v in calls[0].victims] == ["blended"]
    q = calls[0]
    assert (q.mapping.kind, q.seeds, q.retrain, q.run_abl) == ("lm", (0,), False, False)
    pd.DataFrame(rows + [{**r, "attack": "blended"} for r in rows]).to_csv(
        tmp_path / "detection" / "cfbd_mapping-lm.csv", index=False)
    calls.clear()
    ex.mapping_ablation(p)
    assert calls == []


def test_cfbd_tables_take_the_matrix_rows_of_its_settings_only():
    """Tables 1-2's CleanCLIP and RoCLIP rows are the matrix's at the settings and lr of
    ``matrix_params``: a CleanCLIP row of another setting (the two-pass ablation), another lr, or
    with no recorded settings stays out; without ``matrix_params`` every row counts."""
    import dataclasses

    import pandas as pd

    from paperlib.experiments import cfbd as ex
    from paperlib.experiments import defences
    from paperlib.experiments.matrix_summary import settings_json
    p = ex.load("params/cfbd/smoke.yaml")
    mp = defences.load(p.matrix_params)
    cc = mp.defence.config("cleanclip", "badnet")
    other = settings_json(dataclasses.replace(cc, joint_views=not cc.joint_views))
    rows = pd.DataFrame({"defence": ["cleanclip", "cleanclip", "cleanclip", "cleanclip", "roclip"],
                         "defence_settings": [settings_json(cc), other, settings_json(cc), None,
                                              settings_json(mp.defence.config("roclip", "badnet"))],
                         "lr": [mp.defence.train.lr, mp.defence.train.lr, mp.defence.train.lr / 3, mp.defence.train.lr,
                                mp.defence.train.lr]})
    from paperlib.experiments.cfbd_tables import _of_matrix_settings
    assert _of_matrix_settings(rows, p, "badnet").tolist() == [True, False, False, False, True]
    assert _of_matrix_settings(rows, ex.load("params/cfbd/smoke.yaml", {"matrix_params": None}), "badnet").all()


def test_mapping_ablation_reads_each_mappings_rows_at_the_first_seed(tmp_path):
    """The mapping table sets the default mapping's rows (cfbd.csv) beside the ablation's
    (cfbd_mapping-lm.csv), each under its own rules, at the first seed only; rows of other rules,
    seeds or poison counts in the same files stay out."""
    import pandas as pd

    from paperlib.experiments import cfbd as ex
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1]})
    rules = {"benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule,
             "gamma_z_quantile": p.cfbd.gamma_z_quantile}

    def rows(mapping, auroc, **extra):
        return [{"attack": a, "poison_count": 8, "stage": s, "scale": "smoke", "seed": 0, "tpr": 1.0, "fpr": 2.0,
                 "auroc": auroc, "auprc": 3.0, "n_benign": 10, "mapping": mapping, **rules, **extra}
                for a in ("badnet", "blended") for s in ("coarse", "fine")]
    det = tmp_path / "detection"
    det.mkdir()
    pd.DataFrame(rows("regression", 90.0) + rows("regression", 11.0, seed=1)).to_csv(det / "cfbd.csv", index=False)
    pd.DataFrame(rows("lm", 40.0) + rows("lm", 12.0, benign_rule="posterior") + rows("lm", 13.0, poison_count=99)
                 ).to_csv(det / "cfbd_mapping-lm.csv", index=False)
    t = ex.mapping_ablation_wide(p)
    assert set(t.mapping) == {"regression (default)", "lm"} and (t.seed == 0).all() and len(t) == 8
    assert set(t[t.mapping == "lm"].auroc) == {40.0} and set(t[t.mapping != "lm"].auroc) == {90.0}

    # once rows name their victim, rows of another victim (an older recipe, or none named) stay out
    from paperlib.experiments.common import clean_base_unbuilt, victim_model_name
    base = clean_base_unbuilt(p)
    keyed = [{**r, "victim_model": victim_model_name(p, base, next(v for v in p.victims if v.attack == r["attack"]), 0)}
             for r in rows("regression", 91.0)]
    pd.DataFrame(keyed + rows("regression", 92.0, victim_model="older-recipe") + rows("regression", 93.0)
                 ).to_csv(det / "cfbd.csv", index=False)
    t = ex.mapping_ablation_wide(p)
    assert set(t[t.mapping != "lm"].auroc) == {91.0}


def test_coarse_to_fine_score_ranks_seed_suspicious_benign_and_matches_the_decision():
    """AUROC / AUPRC / Fig. 5 rank pairs by the fine stage's z inside the coarse stage's tiers;
    thresholding that score at gamma_z reproduces the detector's decision exactly."""
    from paperlib.detect.cfbd import CFBDConfig, detect
    rng = np.random.default_rng(1)
    n = 300
    c = rng.uniform(0, 1, n)
    cap = rng.normal(size=(n, 8))
    cfg = CFBDConfig(k=3, gamma=0.5, q=10, gamma_z=0.1)
    det = detect(c, cap, cfg)
    s = det.score
    assert np.array_equal(s > det.gamma_z, det.flagged)
    assert s[det.coarse.seed].min() > s[det.coarse.suspicious].max()
    if len(det.coarse.benign):
        assert s[det.coarse.suspicious].min() > s[det.coarse.benign].max()
    sus = det.coarse.suspicious
    assert np.array_equal(np.argsort(s[sus], kind="stable"), np.argsort(det.z[sus], kind="stable"))


def test_cfbd_tables_take_only_the_parameters_seeds(tmp_path):
    """Tables 1-2 join victims.csv, the matrix and cfbd.csv; rows of other seeds (the matrix's GPU
    seeds) must not be averaged into a method whose victim row is one seed."""
    import pandas as pd

    from paperlib.experiments import cfbd
    (tmp_path / "attacks").mkdir()
    (tmp_path / "defences").mkdir()
    (tmp_path / "detection").mkdir()
    pd.DataFrame([{"attack": "badnet", "scale": "smoke", "threat_model": "finetune", "poison_count": 8, "seed": s,
                   "ca_top1": 10.0 + s, "asr_top1": 50.0 + s, "base_ca_top1": 20.0, "base_asr_top1": 0.0}
                  for s in (0, 1)]).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    pd.DataFrame([{"attack": "badnet", "defence": "cleanclip", "scale": "smoke", "seed": s,
                   "ca_top1": 9.0, "asr_top1": 5.0 + 10 * s} for s in (0, 1, 2)]
                 ).to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    pd.DataFrame([{"attack": "badnet", "poison_count": 8, "stage": "fine", "scale": "smoke", "seed": s,
                   "ca_top1": 11.0, "asr_top1": 1.0 + s, **DEFAULT_RULES} for s in (0, 1)]
                 ).to_csv(tmp_path / "detection" / "cfbd.csv", index=False)
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "matrix_params": None, "seeds": [0]})
    t = cfbd.tables_ca_asr(p).set_index("method")
    assert t.loc["cleanclip", "asr_top1_count"] == 1 and t.loc["cleanclip", "asr_top1_mean"] == 5.0
    assert t.loc["none", "asr_top1_mean"] == 50.0 and t.loc["cfbd", "asr_top1_mean"] == 1.0
    p2 = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "matrix_params": None, "seeds": [0, 1]})
    assert cfbd.tables_ca_asr(p2).set_index("method").loc["cleanclip", "asr_top1_mean"] == 10.0


def test_cfbd_tables_take_victims_of_seeds_the_attack_suite_lacks_from_the_matrix(tmp_path):
    """victims.csv holds seed 0 only; the matrix's `none` rows hold the victims of every seed, so
    Tables 1-2 at seeds 0-2 average three victims (victims.csv's row where it has one)."""
    import pandas as pd

    from paperlib.experiments import cfbd
    for d in ("attacks", "defences", "detection"):
        (tmp_path / d).mkdir()
    pd.DataFrame([{"attack": "badnet", "scale": "smoke", "threat_model": "finetune", "poison_count": 8, "seed": 0,
                   "ca_top1": 10.0, "asr_top1": 50.0, "base_ca_top1": 20.0, "base_asr_top1": 0.0}]
                 ).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    pd.DataFrame([{"attack": "badnet", "defence": "none", "scale": "smoke", "seed": s, "ca_top1": 10.0,
                   "asr_top1": 99.0 if s == 0 else 20.0 * s} for s in (0, 1, 2)]
                 ).to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "matrix_params": None, "seeds": [0, 1, 2]})
    r = cfbd.tables_ca_asr(p).set_index("method").loc["none"]
    assert r.asr_top1_count == 3 and r.asr_top1_mean == (50.0 + 20.0 + 40.0) / 3


def test_cfbd_tables_show_the_papers_label_consistent_column(tmp_path):
    """LC's column of CFBD's Tables 1-2 is at the paper's 0.05% poison rate, not 3,000 pairs: its
    paper values must still stand beside ours (they were missing)."""
    import pandas as pd

    from paperlib.experiments import cfbd
    for d in ("attacks", "defences", "detection"):
        (tmp_path / d).mkdir()
    pd.DataFrame([{"attack": "lc", "scale": "embedded", "threat_model": "finetune", "poison_count": 250, "seed": 0,
                   "ca_top1": 16.0, "asr_top1": 48.0, "base_ca_top1": 16.8, "base_asr_top1": 0.1}]
                 ).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    pd.DataFrame([{"attack": "lc", "defence": "roclip", "scale": "embedded", "seed": 0, "ca_top1": 15.0,
                   "asr_top1": 35.0}]).to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    pd.DataFrame([{"attack": "lc", "poison_count": 250, "stage": "fine", "scale": "embedded", "seed": 0,
                   "ca_top1": 16.5, "asr_top1": 46.0, **DEFAULT_RULES}]).to_csv(tmp_path / "detection" / "cfbd.csv",
                                                                             index=False)
    p = cfbd.load("params/cfbd/embedded.yaml", {"results_dir": str(tmp_path), "matrix_params": None})
    lc = cfbd.tables_ca_asr(p).set_index("method")
    assert lc.loc["none", "asr_top1_paper"] == 83.58 and lc.loc["cfbd", "asr_top1_paper"] == 0.84
    assert lc.loc["cfbd", "ca_top1_paper"] == 55.11 and lc.loc["roclip", "ca_top1_paper"] == 42.09
    assert lc.loc["clean", "ca_top1_paper"] == 59.69
    # the claim quotes the paper's retraining ASR as printed, LC's 0.84 included
    assert cfbd._paper_retrain_asr() == "0.00-0.84 over 9 attacks (worst: lc 0.84)"


def test_cfbd_detection_tables_average_the_seeds_asked_for_with_their_spread(tmp_path):
    """Tables 3-5 read result files that keep other seeds' rows: only the seeds of the parameters
    enter, with the spread over them and their number."""
    import pandas as pd

    from paperlib.experiments import cfbd
    (tmp_path / "detection").mkdir()
    rules = DEFAULT_RULES
    pd.DataFrame([{"attack": "badnet", "poison_count": 8, "stage": "fine", "scale": "smoke", "seed": s,
                   "tpr": 10.0 * s, "fpr": 0.0, "auroc": 50.0 + 10 * s, "auprc": 1.0, **rules} for s in (0, 1, 2)]
                 + [{"attack": "badnet", "poison_count": 8, "stage": "fine", "scale": "smoke", "seed": 0,
                     "tpr": 0.0, "fpr": 0.0, "auroc": 0.0, "auprc": 0.0}]      # another detector's row: not read
                 ).to_csv(tmp_path / "detection" / "cfbd.csv", index=False)
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "matrix_params": None, "seeds": [0, 1]})
    r = cfbd.table_4(p).set_index(["attack", "stage"]).loc[("badnet", "fine")]
    assert r.auroc == 55.0 and r.n_seeds == 2 and abs(r.auroc_std - np.std([50.0, 60.0], ddof=1)) < 1e-9
    fault = pd.DataFrame([{"attack": "badnet", "q": 8, "fault_ratio": f, "scale": "smoke", "seed": s,
                           "auroc": 90.0 - f + s} for f in (0.0, 40.0) for s in (0, 1, 2)])
    t5 = cfbd.table_5_wide(fault, p).set_index("fault_ratio")
    assert list(t5.index) == [0.0, 40.0] and t5.loc[40.0, "auroc"] == 50.5 and (t5.n_seeds == 2).all()
    rates = pd.DataFrame([{"attack": "badnet", "method": "cfbd", "poison_count": 8, "poison_rate": 0.3,
                           "scale": "smoke", "seed": s, "tpr": 100.0 - s} for s in (0, 1, 2)])
    assert cfbd.table_3_wide(rates, p).iloc[0].tpr == 99.5


# --- issue 23: the benign set's size, gamma_z from the data, q capped, the default mapping ----------
def _two_clusters(n=2000, benign_share=0.9, seed=0):
    """Consistency values of two clusters: benign (low c) and poisoned (high c)."""
    rng = np.random.default_rng(seed)
    nb = int(round(benign_share * n))
    c = np.concatenate([rng.normal(0.1, 0.03, nb), rng.normal(0.5, 0.05, n - nb)])
    return c, np.r_[np.zeros(nb, bool), np.ones(n - nb, bool)]


@pytest.mark.parametrize("k", [2, 5])
def test_benign_set_share_follows_gamma(k):
    """By default D_b holds the share gamma of the pairs (CFBD's gamma = 90%), whatever K: with 90%
    benign pairs it is ~90% of the points and holds no poisoned pair, at K = 2 and at K = 5 (the
    printed posterior rule keeps only the lowest of five components there), and it grows with gamma
    ("a larger gamma leads to the inclusion of more pairs in D_b", Sec. 2.2)."""
    c, y = _two_clusters()
    co = coarse_stage(c, CFBDConfig(k=k, gamma=0.9, q=50))
    share = len(co.benign) / len(c)
    assert 0.87 <= share <= 0.91 and not y[co.benign].any()
    assert np.isfinite(co.c_cut) and (c[co.benign] <= co.c_cut).all()
    shares = [len(coarse_stage(c, CFBDConfig(k=k, gamma=g, q=50)).benign) / len(c) for g in (0.5, 0.7, 0.8)]
    assert shares == sorted(shares) and shares[-1] < share
    assert shares == pytest.approx([0.5, 0.7, 0.8], abs=0.03)


def test_printed_posterior_rule_is_kept_as_the_ablation():
    """benign_rule=posterior is the selection as printed (and the code before issue 23): at K = 5 the
    lowest component holds a small part of the benign pairs, and a larger gamma shrinks D_b;
    component_cdf (the lowest component's own gamma region) also shrinks with K."""
    c, y = _two_clusters()
    post = [len(coarse_stage(c, CFBDConfig(k=5, gamma=g, benign_rule="posterior")).benign) for g in (0.8, 0.95)]
    assert post[0] > post[1] and post[0] / len(c) < 0.5
    comp = [len(coarse_stage(c, CFBDConfig(k=k, gamma=0.9, benign_rule="component_cdf")).benign) for k in (1, 2, 5)]
    assert comp[0] >= comp[1] > comp[2]


def _template_captions(n_benign, n_poison, shift=0.0, dim=32, seed=0):
    """Caption embeddings: the poisoned ones a shared target caption plus noise (pairwise cosine ~0.6,
    below the old fixed gamma_z = 0.8), the benign ones random directions plus ``shift`` times the
    target caption (shift moves the benign pairs' z up)."""
    rng = np.random.default_rng(seed)
    t = np.zeros(dim)
    t[0] = 1.0
    poison = t + rng.normal(0, np.sqrt(0.667 / dim), (n_poison, dim))
    benign = rng.normal(0, 1 / np.sqrt(dim), (n_benign, dim))
    benign = benign / np.linalg.norm(benign, axis=1, keepdims=True) + shift * t
    return np.concatenate([benign, poison])


def test_gamma_z_follows_the_data():
    """By default gamma_z is the 90% quantile of z over the coarse benign set: poisoned pairs whose
    z (~0.6) is below the old fixed 0.8 are flagged, benign ones are not, and the threshold moves
    with z's distribution (the paper gives no value: 'an empirical threshold')."""
    rng = np.random.default_rng(3)
    nb, npz = 900, 100
    c = np.concatenate([rng.normal(0.05, 0.02, nb), rng.normal(0.6, 0.03, 60), rng.normal(0.2, 0.02, 40)])
    y = np.r_[np.zeros(nb, bool), np.ones(npz, bool)]
    cfg = CFBDConfig(k=5, gamma=0.9, q=10)
    det = detect(c, _template_captions(nb, npz), cfg)
    assert not y[det.coarse.benign].any() and y[det.coarse.seed].all()
    assert det.gamma_z == pytest.approx(np.quantile(det.z[det.coarse.benign], 0.9))
    assert det.gamma_z < det.z[y].min() and det.z[y].max() < 0.8      # all poisoned z between gamma_z and 0.8
    assert det.flagged[y].all() and not det.flagged[~y].any()
    # the benign captions drift toward the target caption: their z rises, and gamma_z with it
    shifted = detect(c, _template_captions(nb, npz, shift=0.5), cfg)
    assert shifted.gamma_z > det.gamma_z + 0.1
    assert shifted.gamma_z == pytest.approx(np.quantile(shifted.z[shifted.coarse.benign], 0.9))
    # the fixed rule of before stays available and misses the same poisoned pairs (z < 0.8)
    fixed = detect(c, _template_captions(nb, npz), CFBDConfig(k=5, gamma=0.9, q=10, gamma_z_rule="fixed"))
    assert fixed.gamma_z == 0.8 and fixed.flagged.sum() == 10


def test_q_is_capped_at_what_the_coarse_stage_flags():
    """q never exceeds the pairs outside D_b (q_cap=suspicious, the default), nor, with
    q_cap=top_component, the pairs of the GMM's highest-mean component; the seed set lies outside
    D_b and its size is reported as q_eff."""
    c, y = _two_clusters(n=100)
    co = coarse_stage(c, CFBDConfig(k=2, gamma=0.9, q=50))
    assert co.q_eff == len(co.seed) == 10 == 100 - len(co.benign) and y[co.seed].all()
    assert not np.isin(co.seed, co.benign).any() and len(co.suspicious) == 0
    det = detect(c, np.random.default_rng(0).normal(size=(100, 8)), CFBDConfig(k=2, gamma=0.9, q=50))
    assert det.coarse.q_eff == 10 and det.flagged.sum() == 10
    # a benign tail outside D_b: the suspicious cap lets 50 seeds in (30 of them benign), the top
    # component's cap keeps the seed set to the poisoned cluster the GMM isolates
    rng = np.random.default_rng(0)
    c = np.concatenate([rng.normal(0.05, 0.02, 900), rng.uniform(0.15, 0.3, 80), rng.normal(0.7, 0.01, 20)])
    y = np.r_[np.zeros(980, bool), np.ones(20, bool)]
    wide = coarse_stage(c, CFBDConfig(k=5, gamma=0.9, q=50))
    assert wide.q_eff == 50 and y[wide.seed].sum() == 20
    top = coarse_stage(c, CFBDConfig(k=5, gamma=0.9, q=50, q_cap="top_component"))
    assert top.q_eff == top.q_limit == 20 and y[top.seed].all()


def test_default_mapping_ranks_poisoned_pairs_above_benign():
    """The default mapping network is the regression MLP (Sec. 3.1's MLP): trained on clean
    (image, caption) embeddings it makes c = |s_g - s_o| larger for pairs whose caption was swapped
    for a target caption than for benign pairs."""
    import torch

    from paperlib.detect.mapping import MappingConfig, MappingNetwork
    from paperlib.detect.metrics import auroc_auprc
    assert MappingConfig().kind == "regression"
    g = torch.Generator().manual_seed(0)
    dim, classes = 16, 8
    text = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    lab = torch.randint(0, classes, (600,), generator=g)
    img = text[lab] + 0.3 * torch.randn(600, dim, generator=g)          # images near their class's caption
    cap_emb = text[lab] + 0.05 * torch.randn(600, dim, generator=g)
    names = [f"a photo of class {int(i)}" for i in lab]
    m = MappingNetwork(MappingConfig(epochs=200, lr=3e-3)).fit(img[:400], names[:400], cap_emb[:400])
    # screened set: 200 pairs, the last 20 poisoned (caption replaced by class 0's)
    scr_img, scr_cap = img[400:], cap_emb[400:].clone()
    truth = np.zeros(200, bool)
    truth[180:] = True
    scr_cap[180:] = text[0] + 0.05 * torch.randn(20, dim, generator=g)
    truth &= (lab[400:] != 0).numpy()                                     # a class-0 image keeps a true caption
    synth, _ = m.synthetic(scr_img, None, None)
    c = consistency(scr_img.numpy(), scr_cap.numpy(), synth.numpy())
    assert auroc_auprc(truth, c)[0] > 95


def test_cfbd_sweeps_record_the_rules_and_the_effective_q(tmp_path):
    """Fig. 6a rows per benign rule (one GMM per K), Fig. 6b and Table 3 rows with q_eff and gamma_z,
    and Figs. 4 / 6 drawn, on hand-made screened sets (no model)."""
    from types import SimpleNamespace

    import pandas as pd

    from paperlib.experiments import cfbd as ex
    rng = np.random.default_rng(0)
    n, n_poison = 400, 30
    truth = np.zeros(n, bool)
    truth[-n_poison:] = True
    c = np.where(truth, rng.normal(0.6, 0.03, n), rng.normal(0.1, 0.03, n))
    cap = _template_captions(n - n_poison, n_poison)
    sc = SimpleNamespace(c=c, caption_emb=cap, truth=truth, image_emb=cap, ps=None, victim_model="v0")
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "ablation_qs": [5, 50]})
    abl = ex.ablations(p, {("badnet", 0): sc})
    kg = abl[abl.study == "k_gamma"]
    assert set(kg.benign_rule) == {"mixture_cdf", "posterior", "component_cdf"}
    assert len(kg) == len(p.ablation_ks) * len(p.ablation_gammas) * 3
    share = kg[(kg.benign_rule == "mixture_cdf") & (kg.k == 3) & (kg.gamma == 0.9)].benign_size.iloc[0] / n
    assert share == pytest.approx(0.9, abs=0.02)
    q = abl[abl.study == "q"].set_index("q")
    outside = n - len(coarse_stage(c, p.cfbd).benign)                 # ~10% of the pairs at gamma 0.9
    assert q.loc[5, "q_eff"] == 5 and q.loc[50, "q_eff"] == outside < 50

    class Screener:       # Table 3's sweep screens each count; here the same hand-made set
        base, device = clean_base_unbuilt(p), "cpu"

        def screen(self, v, seed, count):
            return sc
    rates = ex.rate_sweep(ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "run_abl": False,
                                                             "rate_counts": [30]}), Screener(), log=lambda *a: None)
    r = rates.iloc[0]
    assert r.q_eff == 5 and r.tpr == 100.0 and r.fpr < 1.0 and r.gamma_z < 0.5   # within the 1% FPR budget
    assert r.benign_rule == "mixture_cdf" and r.gamma_z_rule == "quantile" and r.mapping == "regression"
    det = detect(c, cap, p.cfbd)
    pairs, gmm = ex.fig24_data({(p.figure_attack, p.seeds[0]): {"screened": sc, "detection": det}}, p)
    assert pairs.poisoned.sum() == n_poison and pairs.weight[~pairs.poisoned].sum() == pytest.approx(n - n_poison)
    assert len(gmm) == p.cfbd.k and gmm.benign_share.iloc[0] == pytest.approx(len(coarse_stage(c, p.cfbd).benign) / n)
    assert ex.plot_fig4(pairs, gmm, p).is_file() and ex.plot_fig2(pairs, p).is_file()
    assert ex.plot_fig6(pd.read_csv(tmp_path / "cfbd" / "fig6_ablation.csv"), p).is_file()


def test_cfbd_tables_read_only_the_rows_of_their_rules():
    """Detection rows are keyed by the detector's mapping and rules; rows written before the rules
    were recorded count as the old detector's (LM mapping, posterior rule, fixed gamma_z)."""
    import pandas as pd

    from paperlib.experiments import cfbd
    from paperlib.experiments.detection import CFBD_KEY, rows_of_these_rules
    assert {"mapping", "benign_rule", "gamma_z_rule", "gamma_z_quantile"} <= set(CFBD_KEY)
    quantile_rule = {"mapping": "regression", "benign_rule": "mixture_cdf", "gamma_z_rule": "quantile"}
    df = pd.DataFrame([{"attack": "badnet", "tpr": 1.0},                                   # before issue 23
                       {"attack": "badnet", "tpr": 2.0, **quantile_rule, "gamma_z_quantile": 0.9},
                       {"attack": "badnet", "tpr": 3.0, **quantile_rule, "gamma_z_quantile": 0.99},
                       {"attack": "badnet", "tpr": 4.0, **quantile_rule}])               # names no quantile
    new = cfbd.load("params/cfbd/smoke.yaml")
    old = cfbd.load("params/cfbd/smoke.yaml", {"mapping.kind": "lm", "cfbd.benign_rule": "posterior",
                                                              "cfbd.gamma_z_rule": "fixed"})
    assert rows_of_these_rules(df, new).tpr.tolist() == [2.0]
    assert rows_of_these_rules(df, cfbd.load("params/cfbd/smoke.yaml", {"cfbd.gamma_z_quantile": 0.99})).tpr.tolist() == [3.0]
    assert rows_of_these_rules(df, old).tpr.tolist() == [1.0]


def test_cfbd_fig5_draws_no_line_at_recall_zero(tmp_path, monkeypatch):
    """sklearn closes every PR curve with (recall 0, precision 1), no threshold at all; Fig. 5 must
    not draw it (it was a vertical line at recall 0 in every panel)."""
    from types import SimpleNamespace

    import numpy as np

    from paperlib.experiments import cfbd, cfbd_figures
    figs = []
    monkeypatch.setattr("paperlib.figures.save_figure", lambda fig, path, **k: figs.append(fig) or path)
    truth = np.r_[np.ones(10), np.zeros(90)].astype(int)
    score = np.r_[np.linspace(0.4, 1, 10), np.linspace(0, 0.6, 90)]
    scores = {("badnet", 0): {"truth": truth, "c": score[::-1].copy(), "detection": SimpleNamespace(score=score),
                              "screened": SimpleNamespace(victim_model="v0")}}
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path)})
    curves = cfbd_figures.fig5_curves(scores, p)
    assert set(curves.stage) == {"coarse", "coarse-to-fine"} and (tmp_path / "cfbd" / cfbd_figures.FIG5_CURVES).is_file()
    cfbd_figures.plot_fig5(curves, p)
    ax = figs[0].axes[0]
    curves = [ln for ln in ax.get_lines() if "AUPRC" in ln.get_label()]
    assert len(curves) == 2
    for ln in curves:     # (the inverted score has real thresholds at recall 0, with precision 0)
        x, y = np.asarray(ln.get_xdata()), np.asarray(ln.get_ydata())
        assert not ((x == 0) & (y == 1)).any(), ln.get_label()
    assert any("chance" in ln.get_label() for ln in ax.get_lines())


def test_rate_sweep_trains_abl_on_the_pairs_of_each_count(monkeypatch, tmp_path):
    """Table 3's ABL column: each poison count's isolation model is keyed by that count's pairs (the
    victim entry at that count), not one model for every count of an attack and seed."""
    from types import SimpleNamespace

    from paperlib.experiments import cfbd as ex
    from paperlib.experiments import detection
    rng = np.random.default_rng(0)
    n = 400
    seen = []

    def screen(v, seed, count):
        truth = np.zeros(n, bool)
        truth[:count] = True
        return SimpleNamespace(c=np.where(truth, 0.0, rng.uniform(0.1, 1.0, n)), caption_emb=rng.normal(size=(n, 8)),
                               truth=truth, ps=None, victim_model=f"v{count}")

    def abl(p, base, ps, v, cfg, seed, truth, device):
        seen.append(v.poison.poison_count)
        return {"attack": v.attack, "poison_count": v.poison.poison_count, "scale": p.scale, "seed": seed,
                "tpr": 1.0, "fpr": 0.0, "isolated": 1, "n_pairs": n, "model": f"abl{v.poison.poison_count}",
                "isolation_ratio": 0.01}
    monkeypatch.setattr(detection, "run_abl_on", abl)
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "rate_attacks": ["badnet"],
                                           "rate_counts": [8, 12], "seeds": [0], "run_abl": True})
    ex.rate_sweep(p, SimpleNamespace(screen=screen, base=clean_base_unbuilt(p), device="cpu"), log=lambda *a: None)
    assert seen == [8, 12]
    # rate_abl_seeds: ABL (a training per cell) at the listed seeds only; CFBD (a screening) at every seed
    seen.clear()
    p = ex.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path / "two"), "rate_attacks": ["badnet"],
                                           "rate_counts": [8], "seeds": [0, 1], "run_abl": True, "rate_abl_seeds": [1]})
    t = ex.rate_sweep(p, SimpleNamespace(screen=screen, base=clean_base_unbuilt(p), device="cpu"), log=lambda *a: None)
    assert seen == [8]
    assert sorted(map(tuple, t[["method", "seed"]].itertuples(index=False))) == [("abl", 1), ("cfbd", 0), ("cfbd", 1)]


def test_screening_again_keeps_the_wall_time_of_the_run_that_trained_the_retraining(tmp_path, monkeypatch):
    """A CFBD retraining's matrix row records its training plus its set's screening; a later run that
    finds the model in the cache (screening the set again for other rows) keeps that row's wall time
    rather than writing this screening's again."""
    import pandas as pd

    from paperlib.experiments import detection
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out"), "run_abl": False})
    detection.run(p, log=lambda *a: None)
    path = tmp_path / "out" / "defences" / "matrix.csv"
    first = pd.read_csv(path)
    assert len(first) and (first.wall_s > 0).all()
    first.assign(wall_s=1234.0).to_csv(path, index=False)
    detection.run(p, log=lambda *a: None, also_published=lambda *a: "studies")   # screened again, models cached
    assert (pd.read_csv(path).wall_s == 1234.0).all()


def test_retrained_and_abl_models_trained_elsewhere_stand_in_by_their_rows(tmp_path, monkeypatch):
    """CFBD's retraining and ABL's isolation model absent from this cache (trained on a GPU, say):
    the results files' rows that name the very model this run would train stand in for it, and it is
    not trained again; with reuse_rows off, it is."""
    import shutil

    import pandas as pd

    from paperlib.experiments import detection
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out")})
    first = detection.run(p, log=lambda *a: None)
    matrix = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    abl = pd.read_csv(tmp_path / "out" / "detection" / "abl.csv")
    trained = [m for m in list(matrix.model) + list(abl.model)]
    assert len(trained) == 2 and all((tmp_path / "cache" / "model" / m).is_dir() for m in trained)
    for m in trained:                                            # as if trained on another machine
        shutil.move(tmp_path / "cache" / "model" / m, tmp_path / m)
    # screened again (as when a paper's studies of the set are not published): the rows of the very
    # models this run would train stand in for them (the whole screening standing in: below)
    again = detection.run(p, log=lambda *a: None, also_published=lambda *a: "studies")
    assert not again["stood_in"]
    assert not any((tmp_path / "cache" / "model" / m).exists() for m in trained), "trained again"
    cols = ["attack", "stage", "seed", "tpr", "fpr", "auroc", "ca_top1", "asr_top1"]
    pd.testing.assert_frame_equal(again["cfbd"][cols].reset_index(drop=True), first["cfbd"][cols].reset_index(drop=True),
                                  check_dtype=False, rtol=1e-3)   # the rows as the file holds them (4 digits)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "detection" / "abl.csv")[["tpr", "fpr", "model"]],
                                  abl[["tpr", "fpr", "model"]], check_dtype=False)
    # the retraining published from another machine's screening (another kept set, so another key)
    for name in ("defences/matrix.csv", f"detection/{detection.cfbd_file(p)}"):
        path = tmp_path / "out" / name
        path.write_text(path.read_text().replace(matrix.model[0], "elsewhere-kept"))
    det_path = tmp_path / "out" / "detection" / detection.cfbd_file(p)
    det = pd.read_csv(det_path)
    det["tpr"] = det.tpr.astype(float)
    det.loc[det.model == "elsewhere-kept", "kept"] = 1      # that machine's screening
    det.loc[det.model == "elsewhere-kept", "tpr"] = 12.5
    det.to_csv(det_path, index=False)
    said = []
    third = detection.run(p, log=said.append)   # every row published, no model here: not even screened
    assert third["stood_in"] and any("taken from the results files" in line for line in said)
    assert list(third["cfbd"].dropna(subset=["model"]).model) == ["elsewhere-kept"]
    said = []   # screened here (as when a paper's studies of the set are not published): that row, whole
    forced = detection.run(p, log=said.append, also_published=lambda *a: "studies")
    assert not forced["stood_in"]
    assert not (tmp_path / "cache" / "model" / matrix.model[0]).exists(), "trained again"
    assert list(forced["cfbd"].dropna(subset=["model"]).model) == ["elsewhere-kept"]
    taken = forced["cfbd"][forced["cfbd"].model == "elsewhere-kept"].iloc[0]
    assert (taken.kept, taken.tpr) == (1, 12.5)   # the row whole, not this screening's numbers
    assert any("elsewhere-kept" in line and "not retrained here" in line for line in said)
    off = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out"), "reuse_rows": False,
                                                          "run_abl": False})
    detection.run(off, log=lambda *a: None)
    assert (tmp_path / "cache" / "model" / matrix.model[0]).is_dir()   # no row taken: retrained
    # ABL at another isolation ratio: the row of the same model measured another share, so it is not taken
    ratio = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out"), "retrain": False,
                                                            "abl.isolation_ratio": 0.05})
    detection.run(ratio, log=lambda *a: None)
    assert (tmp_path / "cache" / "model" / abl.model[0]).is_dir()


def test_a_retraining_of_another_machines_kept_set_stands_in_by_its_rows(tmp_path):
    """When the files hold this victim's CFBD retraining from another screening's kept set (another
    device's floating point), under the same rules, stage and seed, its rows stand in and the log
    names it; a row of other rules, another stage or seed, or the very model this run would train
    does not."""
    import pandas as pd

    from paperlib.experiments import detection
    p = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path)})
    rules = detection.detector_settings(type("D", (), {"coarse": type("C", (), {"q_eff": 3, "benign": [0]})(),
                                                       "gamma_z": 0.5})(), p)
    here = {"attack": "sig", "poison_count": 10, "stage": "fine", "scale": p.scale, "seed": 1, "victim_model": "v1",
            "kept": 97, **rules}
    (tmp_path / "detection").mkdir()
    (tmp_path / "defences").mkdir()
    pd.DataFrame([{**here, "kept": 95, "model": "gpu-kept"},
                  {**here, "stage": "coarse", "kept": 90, "model": "coarse-kept"},
                  {**here, "seed": 2, "victim_model": "v2", "model": "other-seed"},
                  {**here, "gamma_z_quantile": 0.99, "model": "other-rules"}]).to_csv(
        tmp_path / "detection" / detection.cfbd_file(p), index=False)
    pd.DataFrame([{"attack": "sig", "defence": "cfbd", "scale": p.scale, "seed": 1, "model": "gpu-kept",
                   "ca_top1": 40.0, "asr_top1": 2.0, "device": "NVIDIA H200"},
                  {"attack": "sig", "defence": "cfbd_coarse", "scale": p.scale, "seed": 1, "model": "coarse-kept",
                   "ca_top1": 41.0, "asr_top1": 1.0, "device": "NVIDIA H200"},
                  {"attack": "sig", "defence": "cfbd", "scale": p.scale, "seed": 1, "model": "other-rules",
                   "ca_top1": 10.0, "asr_top1": 90.0, "device": "NVIDIA H200"}]).to_csv(
        tmp_path / "defences" / "matrix.csv", index=False)
    said = []
    there, got = detection.other_screenings_retraining(p, here, "cpu-kept", said.append)
    assert got["model"] == "gpu-kept" and got["ca_top1"] == 40.0 and there["kept"] == 95 and there["model"] == "gpu-kept"
    assert len(said) == 1 and "gpu-kept" in said[0] and "NVIDIA H200" in said[0] and "95" in said[0] and "97" in said[0]
    coarse = detection.other_screenings_retraining(p, {**here, "stage": "coarse"}, "cpu-kept", said.append)
    assert coarse[1]["model"] == "coarse-kept" and coarse[0]["kept"] == 90
    assert detection.other_screenings_retraining(p, here, "gpu-kept", said.append) is None   # this very model
    assert detection.other_screenings_retraining(p, {**here, "seed": 0, "victim_model": "v0"}, "x", said.append) is None
    assert p.cfbd.gamma_z_quantile != 0.99   # the rows of other rules are another detector's
    other = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path), "cfbd.gamma_z_quantile": 0.99})
    assert detection.other_screenings_retraining(other, here, "x", said.append)[1]["model"] == "other-rules"

def test_a_run_stopped_after_a_seed_keeps_that_seeds_retraining_rows(tmp_path, monkeypatch):
    """The detection and matrix rows are written after every seed: a run that stops at the second
    seed leaves the first seed's CFBD rows and its retraining's matrix row, which another
    machine's run can take (other_screenings_retraining)."""
    import pandas as pd
    import pytest

    from paperlib.experiments import detection
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out"), "seeds": [0, 1],
                                                       "run_abl": False})
    real = detection.Screener.screen

    def screen(self, v, seed, count=None):
        if seed == 1:
            raise KeyboardInterrupt("stopped")
        return real(self, v, seed, count)
    monkeypatch.setattr(detection.Screener, "screen", screen)
    with pytest.raises(KeyboardInterrupt):
        detection.run(p, log=lambda *a: None)
    det = pd.read_csv(tmp_path / "out" / "detection" / detection.cfbd_file(p))
    matrix = pd.read_csv(tmp_path / "out" / "defences" / "matrix.csv")
    assert set(det.seed) == {0} and set(matrix.seed) == {0} and set(matrix.defence) == {"cfbd"}
    assert list(det.dropna(subset=["model"]).model) == list(matrix.model)   # the row names its retraining
