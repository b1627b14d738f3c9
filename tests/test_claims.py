"""Claims checked seed by seed (paperlib.claims): the two-SEM verdict rule on hand-made per-seed
values, sets of comparisons, the claims table's columns, collecting the papers' files, and each
paper's claims function on small synthetic tables shaped like its real input.  Light: no models."""
import json
import math

import pandas as pd
import pytest

from paperlib.assets import repo_root
from paperlib.claims import (CLAIM_COLUMNS, AllOf, Claim, Compare, claims_table, per_seed, show_paper, verdict,
                             verdict_counts, within)


def s(*values, seeds=None):
    return pd.Series(values, index=list(seeds if seeds is not None else range(len(values))), dtype=float)


# --- the rule ---------------------------------------------------------------------------------
def test_a_clear_margin_over_three_seeds_holds():
    c = Compare(s(5.0, 6.0, 7.0), "<", s(15.0, 16.5, 17.0), names=("A", "B"))
    assert c.verdict == "holds" and c.n_seeds == 3
    assert c.ours == "6.0 vs 16.2"
    assert c.spread.startswith("A - B -10.2 ± 0.17 (SEM), 3 seeds paired; needs < 0")


def test_a_margin_within_two_sem_is_inconclusive():
    # diffs -1, +2, -4: mean -1.0, SEM sqrt(9)/sqrt(3) = 1.73; |mean| < 2 SEM
    c = Compare(s(10.0, 12.0, 6.0), "<", s(11.0, 10.0, 10.0))
    assert c.sem == pytest.approx(math.sqrt(3)) and c.verdict == "inconclusive"


def test_the_comparison_reversed_fails():
    c = Compare(s(15.0, 16.5, 17.0), "<", s(5.0, 6.0, 7.0))
    assert c.verdict == "fails"
    assert Compare(s(15.0, 16.5, 17.0), ">", s(5.0, 6.0, 7.0)).verdict == "holds"


def test_one_seed_is_inconclusive_and_says_so():
    c = Compare(s(1.0), "<", s(50.0))
    assert c.verdict == "inconclusive" and c.n_seeds == 1 and "1 seed" in c.spread
    assert verdict(gap=100.0, sem=float("nan"), n=1) == "inconclusive"


def test_pairing_by_seed_decides_where_the_unpaired_means_overlap():
    """The seeds move both methods together (a strong and a weak victim): unpaired, the means lie
    within each other's spread; paired, every seed has A below B by about a point."""
    a = s(10.0, 30.0, 50.0)
    b = s(11.0, 31.5, 51.2)
    sem_a = a.std(ddof=1) / math.sqrt(3)
    assert abs(a.mean() - b.mean()) < 2 * sem_a          # unpaired: no verdict possible
    c = Compare(a, "<", b, names=("A", "B"))
    assert c.verdict == "holds" and c.mean == pytest.approx(-3.7 / 3)


def test_only_seeds_both_sides_have_are_paired():
    c = Compare(s(1.0, 2.0, 3.0, seeds=[0, 1, 2]), "<", s(9.0, 9.5, seeds=[1, 2]))
    assert c.n_seeds == 2 and list(c.d.index) == [1, 2]
    assert Compare(s(1.0, seeds=[0]), "<", s(2.0, seeds=[5])).ours == "not measured"


def test_threshold_claims_and_non_strict_relations():
    assert Compare(s(0.4, 0.5, 0.6), "<", threshold=5.0).verdict == "holds"
    assert Compare(s(15.0, 16.0, 17.0), "<", threshold=5.0).verdict == "fails"
    assert Compare(s(4.0, 6.0, 5.5), "<", threshold=5.0).verdict == "inconclusive"
    # CA cost at most 3 points: A - B <= 3
    assert Compare(s(12.0, 12.1, 11.9), "<=", s(11.0, 11.0, 11.0), 3.0).verdict == "holds"
    # a tie with no spread is inconclusive whichever the strictness
    assert Compare(s(5.0, 5.0, 5.0), "<=", s(5.0, 5.0, 5.0)).verdict == "inconclusive"
    with pytest.raises(ValueError, match="relation"):
        Compare(s(1.0), "~")


def test_ours_is_written_in_the_papers_form():
    paper = show_paper(None, 13.87, 17.0)
    ours = Compare(s(8.0, 8.2), "<", s(12.3, 12.5)).ours
    assert paper == "13.87 vs 17.00" and ours == "8.1 vs 12.4"
    assert show_paper("{a} {rel} {b}", 5.36, 14.02) == "5.36 < 14.02"
    assert Compare(s(20.0, 21.0), "<", s(3.0, 4.0), form="{a} {rel} {b}").ours == "20.5 > 3.5"
    assert Compare(s(89.0, 90.0), ">", s(35.0, 36.0), form="{a} -> {b}").ours == "89.5 -> 35.5"
    assert Compare(s(8.0, 8.2), ">", s(9.0, 9.0), form="{a} - {b} = {d}").ours == "8.1 - 9.0 = -0.90"


# --- sets and two-sided claims -----------------------------------------------------------------
def _held():
    return Compare(s(1.0, 1.1, 0.9), "<", s(10.0, 10.2, 9.9), form="{a} {rel} {b}", label="badnet")


def _failed():
    return Compare(s(10.0, 10.2, 9.9), "<", s(1.0, 1.1, 0.9), form="{a} {rel} {b}", label="blended")


def _open():
    return Compare(s(10.0, 12.0, 6.0), "<", s(11.0, 10.0, 10.0), form="{a} {rel} {b}", label="badclip")


def test_a_set_holds_only_if_every_member_holds_and_fails_if_any_fails():
    assert AllOf([_held(), _held()]).verdict == "holds"
    assert AllOf([_held(), _open()]).verdict == "inconclusive"
    assert AllOf([_held(), _open(), _failed()]).verdict == "fails"
    assert AllOf([]).verdict == "inconclusive"
    every = AllOf([_held(), _failed(), _open()], unit="attacks")
    assert every.ours == "1.0 < 10.0, 10.0 > 1.0, 9.3 < 10.3"
    assert every.spread.startswith("badnet: diff -9.0") and "blended: diff 9.0" in every.spread
    assert every.n_seeds == 3


def test_a_large_set_counts_its_members_and_names_the_worst():
    parts = [_held(), _held(), _open(), _failed()]
    every = AllOf(parts, form="range", unit="attacks")
    assert every.spread.startswith("4 attacks: 2 hold, 1 fail, 1 inconclusive; worst blended:")
    assert every.ours == "1.0-10.0"


def test_within_is_two_sided():
    assert within(s(10.0, 10.2, 10.1), s(10.1, 10.0, 10.3), 1.0).verdict == "holds"
    assert within(s(13.0, 13.2, 13.1), s(10.1, 10.0, 10.3), 1.0).verdict == "fails"
    assert within(s(7.0, 7.2, 7.1), s(10.1, 10.0, 10.3), 1.0).verdict == "fails"
    w = within(s(10.0, 12.0, 8.0), s(10.0, 10.0, 10.0), 1.0)
    assert w.verdict == "inconclusive" and w.spread.endswith("needs |diff| <= 1")


# --- claims as data ------------------------------------------------------------------------------
def test_claims_table_has_the_columns_and_marks_what_was_not_measured():
    rows = pd.DataFrame([{"attack": "badnet", "defence": d, "scale": "embedded", "seed": seed, "asr_top1": v}
                         for d, vals in (("abd", (0.0, 0.5, 0.2)), ("cleanclip", (7.9, 26.4, 5.3)))
                         for seed, v in enumerate(vals)])

    def v(defence, attack="badnet"):
        return per_seed(rows, "asr_top1", scale="embedded", attack=attack, defence=defence)
    cl = [Claim("ABD below CleanCLIP", "5.36 vs 14.02", lambda: Compare(v("abd"), "<", v("cleanclip"))),
          Claim("absent attack", "1.00", lambda: Compare(v("abd", "wanet"), "<", threshold=1.0)),
          Claim("one seed", "1.00", lambda: Compare(per_seed(rows, "asr_top1", [0], defence="abd"), "<", threshold=1.0))]
    out = claims_table(cl, "embedded")
    assert tuple(out.columns) == CLAIM_COLUMNS and out.n_seeds.dtype.kind == "i"
    assert out.verdict.tolist() == ["inconclusive", "inconclusive", "inconclusive"]   # 13 ± 6 over three seeds
    assert out.ours.tolist() == ["0.23 vs 13.2", "not measured", "0.0"]
    assert out.n_seeds.tolist() == [3, 0, 1]
    assert out.spread.iloc[1].startswith("not measured: no rows for scale=embedded, attack=wanet, defence=abd with asr_top1")
    assert verdict_counts(out) == {"holds": 0, "fails": 0, "inconclusive": 3}


def test_collect_claims_gathers_the_papers_files_and_leaves_out_old_ones(tmp_path, capsys):
    from paperlib.compare import COLLECTED_COLUMNS, collect_claims, main
    new = pd.DataFrame([{"scale": "embedded", "claim": "c", "paper_value": "1 vs 2", "ours": "3 vs 4",
                         "spread": "diff -1 ± 0.1 (SEM), 3 seeds paired", "n_seeds": 3, "verdict": "holds"}])
    for paper in ("abd", "cfbd"):
        (tmp_path / paper).mkdir()
        new.to_csv(tmp_path / paper / "claims.csv", index=False)
    (tmp_path / "eftclip").mkdir()
    pd.DataFrame([{"scale": "embedded", "claim": "old", "paper_value": "1", "ours": 2.0, "holds": "no"}]).to_csv(
        tmp_path / "eftclip" / "claims.csv", index=False)
    out = collect_claims(tmp_path)
    assert tuple(out.columns) == COLLECTED_COLUMNS and list(out.paper) == ["abd", "cfbd"]
    on_disk = pd.read_csv(tmp_path / "claims.csv")
    assert list(on_disk.columns) == list(COLLECTED_COLUMNS) and on_disk.n_seeds.tolist() == [3, 3]
    assert "eftclip (old yes/no verdicts" in capsys.readouterr().out
    (tmp_path / "claims.csv").unlink()
    assert main(["--collect", "--results", str(tmp_path)]) == 0 and (tmp_path / "claims.csv").is_file()
    empty = tmp_path / "none"
    empty.mkdir()
    assert collect_claims(empty).empty and not (empty / "claims.csv").exists()



def test_collect_into_the_committed_folder_is_refused_from_a_modified_checkout(tmp_path, monkeypatch, capsys):
    """--collect --results results rewrites a committed file, so it passes the publishing check every
    run passes: refused (exit 2, the file untouched) when the checkout differs from its commit."""
    import shutil

    from paperlib import assets, results
    from paperlib.compare import main
    # a copy of the repository's committed claims as the checkout: a broken refusal rewrites the copy only
    (tmp_path / "repo" / "results").mkdir(parents=True)
    shutil.copy(repo_root() / "results" / "claims.csv", tmp_path / "repo" / "results" / "claims.csv")
    monkeypatch.setattr(assets, "repo_root", lambda: tmp_path / "repo")
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "s"))
    monkeypatch.delenv(results.PUBLISH_DIRTY_ENV, raising=False)
    monkeypatch.delenv(results.RUN_COMMIT_ENV, raising=False)
    monkeypatch.setattr(results, "_START_COMMIT", None)
    monkeypatch.setattr(results, "git_commit", lambda repo_dir=None: "0123456789abcdef+dirty")
    committed = tmp_path / "repo" / "results" / "claims.csv"
    before = committed.read_bytes()
    assert main(["--collect", "--results", "results"]) == 2
    assert "PAPERLIB_PUBLISH_DIRTY=1" in capsys.readouterr().out
    assert committed.read_bytes() == before

# --- each paper's claims on synthetic per-seed tables ------------------------------------------------
NEW_COLUMNS = list(CLAIM_COLUMNS)


def _matrix(values: dict, seeds=(0, 1, 2), scale="smoke"):
    """Defence-matrix rows: values[(attack, defence)] = (asr per seed, ca per seed)."""
    return pd.DataFrame([{"attack": a, "defence": d, "scale": scale, "seed": seed, "asr_top1": asr[i], "ca_top1": ca[i]}
                         for (a, d), (asr, ca) in values.items() for i, seed in enumerate(seeds)])


def test_abd_claims_from_per_seed_matrix_rows(tmp_path):
    from paperlib.experiments import abd
    p = abd.load("params/abd/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2]})
    attacks = [v.attack for v in p.victims]
    vals = {}
    for a in attacks:
        vals[(a, "cleanclip")] = ((20.0, 22.0, 21.0), (10.0, 10.2, 9.8))
        vals[(a, "abd")] = ((1.0, 2.0, 1.5), (9.0, 9.1, 9.2))
        vals[(a, "roclip")] = ((40.0, 45.0, 42.0), (10.0, 10.0, 10.0))
    for d in ("abd_i_adv", "abd_t_eda", "abd_uap"):
        vals[("badnet", d)] = ((5.0, 5.0, 5.0), (9.0, 9.0, 9.0))
    out = abd.claims(None, p, matrix=_matrix(vals))
    assert list(out.columns) == NEW_COLUMNS and (tmp_path / "abd" / "claims.csv").is_file()
    first = out.iloc[0]
    assert first.verdict == "holds" and first.n_seeds == 3 and "<" in first.ours
    assert first.paper_value.count("<") == first.ours.count("<") == len(attacks)   # the paper's shape
    cost = out[out.claim.str.startswith("ABD costs at most 3 points")].iloc[0]
    assert cost.verdict == "holds" and cost.paper_value == "55.85 vs 53.47" and cost.ours == "10.0 vs 9.1"
    ablation = out[out.claim.str.contains("I_adv")].iloc[0]       # ablation variants: ablation_seeds, one seed
    assert ablation.verdict == "inconclusive" and ablation.n_seeds == 1 and "1 seed" in ablation.spread
    assert set(out.verdict) <= {"holds", "fails", "inconclusive"}
    assert (abd.claims(None, p, matrix=None).verdict == "inconclusive").all()


def test_cleanerclip_claims_from_per_seed_rows(tmp_path):
    from paperlib.experiments import cleanerclip
    p = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2]})
    vals = {}
    for a in [v.attack for v in p.victims]:
        vals[(a, "cleanclip")] = ((20.0, 22.0, 21.0), (10.0, 10.2, 9.8))
        vals[(a, "cleanerclip")] = ((30.0, 33.0, 31.0), (9.9, 10.1, 9.8))
        vals[(a, "ft")] = ((40.0, 45.0, 42.0), (10.0, 10.0, 10.0))
    t2 = pd.DataFrame([{"attack": "badnet", "defence": d, "probe": pr, "scale": p.scale, "seed": 0, "top1": 80.0}
                       for d in ("cleanclip", "cleanerclip") for pr in ("heldout_style", "fashion_mnist")])
    f4 = pd.DataFrame([{"study": "n_aug", "value": str(n), "attack": "badnet", "scale": p.scale, "seed": 0,
                        "ca_top1": ca, "asr_top1": 10.0} for n, ca in ((50, 9.0), (3000, 8.5))])
    out = cleanerclip.claims(None, p, t2, f4, matrix=_matrix(vals))
    assert list(out.columns) == NEW_COLUMNS
    every = out[out.claim.str.contains("on every attack")].iloc[0]
    assert every.verdict == "fails" and ">" in every.ours                   # CleanerCLIP above CleanCLIP here
    ft = out[out.claim.str.startswith("FT alone")].iloc[0]
    assert ft.verdict == "holds" and ft.paper_value == "62.14"
    probe = out[out.claim.str.contains("linear-probe")].iloc[0]
    assert probe.verdict == "inconclusive" and probe.n_seeds == 1 and probe.ours.startswith("+0.0 (mean over 2 probes)")
    fig4 = out[out.claim.str.contains("Fig. 4c")].iloc[0]
    assert fig4.ours == "8.5 - 9.0 = -0.50 (badnet)" and fig4.paper_value == "51.29 - 51.53 = -0.24 (BadCLIP)"
    # with BadCLIP's rows beside BadNet's, the claim reads BadCLIP's, as the paper does
    f4b = pd.concat([f4, f4.assign(attack="badclip", ca_top1=[7.0, 6.0])])
    fig4 = cleanerclip.claims(None, p, t2, f4b, matrix=_matrix(vals))
    assert fig4[fig4.claim.str.contains("Fig. 4c")].iloc[0].ours == "6.0 - 7.0 = -1.0 (badclip)"


def test_cfbd_claims_from_per_seed_rows(tmp_path):
    from paperlib.experiments import cfbd
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2]})
    seeds = [0, 1, 2]
    rates = pd.DataFrame([{"attack": a, "poison_count": c, "poison_rate": 0.3, "method": m, "scale": p.scale,
                           "seed": sd, "tpr": (99.0 + 0.1 * sd) if m == "cfbd" else 20.0 + sd, "fpr": 0.0}
                          for a in ("badnet", "blended") for c in (3, 6) for m in ("cfbd", "abl") for sd in seeds])
    fault = pd.DataFrame([{"attack": a, "q": 400, "fault_ratio": 80.0, "scale": p.scale, "seed": sd,
                           "auroc": 99.5 + 0.1 * sd} for a in ("badnet", "blended") for sd in seeds])
    rows12 = pd.DataFrame([{"attack": a, "method": "cfbd", "seed": sd, "ca_top1": 10.0, "asr_top1": 30.0 + sd}
                           for a in ("badnet", "blended") for sd in seeds])
    det = pd.DataFrame([{"attack": a, "stage": st, "seed": sd, "tpr": 0.0, "fpr": 0.0, "auroc": 50.0 + sd,
                         "auprc": (20.0 if st == "fine" else 10.0) + sd}
                        for a in ("badnet", "blended") for st in ("coarse", "fine") for sd in seeds])
    out = cfbd.claims(p, rates, fault, rows12=rows12, det=det)
    assert list(out.columns) == NEW_COLUMNS
    out = out.set_index("claim")
    v = out.verdict
    assert v.filter(like="TPR >= 98%").iloc[0] == "holds"
    assert v.filter(like="beats ABL").iloc[0] == "holds"
    assert v.filter(like="AUROC >= 99% on every attack").iloc[0] == "fails"
    assert v.filter(like="raises AUPRC").iloc[0] == "holds"
    assert v.filter(like="Retraining").iloc[0] == "fails"
    assert v.filter(like="80% benign").iloc[0] == "holds"
    assert out.ours.filter(like="beats ABL").iloc[0] == "ABL 21.0-21.0 vs CFBD 99.1-99.1"
    assert (out.n_seeds == 3).all()
    # ABL at fewer seeds than CFBD (rate_abl_seeds): compared at the seeds both have, as pairs
    two = cfbd.claims(p, rates[(rates.method == "cfbd") | (rates.seed < 2)], fault, rows12=rows12, det=det).set_index("claim")
    assert two.verdict.filter(like="beats ABL").iloc[0] == "holds" and two.n_seeds.filter(like="beats ABL").iloc[0] == 2
    assert two.ours.filter(like="beats ABL").iloc[0] == "ABL 20.5-20.5 vs CFBD 99.0-99.0"   # CFBD at seeds 0-1 too
    one = cfbd.claims(p, rates[(rates.method == "cfbd") | (rates.seed == 0)], fault, rows12=rows12, det=det).set_index("claim")
    assert one.verdict.filter(like="beats ABL").iloc[0] == "inconclusive" and one.n_seeds.filter(like="beats ABL").iloc[0] == 1
    # nothing run: every claim not measured
    empty = cfbd.claims(p, None, None, rows12=pd.DataFrame(columns=rows12.columns), det=pd.DataFrame(columns=det.columns))
    assert (empty.verdict == "inconclusive").all() and (empty.n_seeds == 0).all()


def test_eftclip_claims_from_per_seed_rows(tmp_path):
    from paperlib.experiments import eftclip as ex
    victim = {"poison": {"poison_count": 8}, "finetune_scenes": 300,
              "finetune": {"epochs": 1, "batch_size": 64, "lr": 5.0e-4, "warmup_steps": 1}}
    p = ex.load("params/eftclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                              "pretrain_seeds": [0, 1, 2], "ablation_seeds": [0, 1, 2],
                                              "victims": [{"attack": "badnet", **victim}, {"attack": "wanet", **victim}],
                                              "table5_attacks": ["badnet", "wanet"]})
    seeds = [0, 1, 2]
    rows = []
    for sd in seeds:
        for model, ca, asr in (("cleanclip", 8.0, 10.0 + sd), ("eftclip", 9.0 + 0.1 * sd, 2.0 + sd)):
            rows.append({"table": "Table 2", "attack": "badnet", "model": model, "scale": p.scale, "seed": sd,
                         "ca_top1": ca, "asr_top1": asr})
        for a in p.table5_attacks:   # the last attack's victims have no backdoor (10%) and its defence 40%
            weak = a == p.table5_attacks[-1]
            for model, ca, asr in (("none", 10.0, 10.0 if weak else 90.0),
                                   ("eftclip", 9.8 + 0.01 * sd, 40.0 if weak else 5.0 + sd)):
                rows.append({"table": "Table 5", "attack": a, "model": model, "scale": p.scale, "seed": sd,
                             "ca_top1": ca, "asr_top1": asr})
        for model, ca, asr in (("roclip", 5.0, 0.0), ("eftclip", 9.0, 3.0 + sd)):
            rows.append({"table": "Table 4", "attack": "badnet", "model": model, "scale": p.scale, "seed": sd,
                         "ca_top1": ca, "asr_top1": asr, "threat_model": "pretrain"})
    tables = pd.DataFrame(rows)
    d = p.detection
    base = {"n_backdoor": max(d.n_backdoor), "rho": d.default_rho, "mu": d.default_position,
            "theta_scale": p.eftclip.theta_scale, "theta_oracle": 0.2, "tau": p.eftclip.tau, "oracle": "fastsam",
            "alg1_reading": p.eftclip.alg1_reading, "false_alarm_rate": 0.0, "k_size": 1, "target_rank": 1,
            "victim": f"badnet_{d.victim}", "scale": p.scale}
    det = pd.DataFrame([{**base, "dataset": ds, "theta": th, "seed": sd, "detection_rate": 40.0 + sd + 10 * th}
                        for ds in d.datasets for th in d.thetas for sd in seeds])
    (tmp_path / "eftclip").mkdir()
    pd.DataFrame([{"attack": "badnet", "threat_model": "finetune", "oracle": "fastsam", "seed": sd, "scale": p.scale,
                   "rule": p.eftclip.affected_rule, "theta_scale": p.eftclip.theta_scale,
                   "alg1_reading": p.eftclip.alg1_reading, "n_affected": 0} for sd in seeds]).to_csv(
        tmp_path / "eftclip" / "curation.csv", index=False)
    out = ex.claims(tables, det, p)
    assert list(out.columns) == NEW_COLUMNS
    out = out.set_index("claim")
    v = out.verdict
    assert v.filter(like="Table 2, EftCLIP vs CleanCLIP").tolist() == ["holds", "holds"]
    assert out.ours.filter(like="lowers BadNet top-1 ASR").iloc[0] == "3.0 vs 11.0"
    # the weak victim's attack is left out of "ASR below 15%" (its 40% would fail it) and named
    below = out.filter(like="below 15% on every attack", axis=0)
    assert below.verdict.iloc[0] == "holds"
    assert f"left out, victims under 50% top-1 ASR: {p.table5_attacks[-1]} 10.0" in below.index[0]
    assert v.filter(like="Table 1").iloc[0] == "fails"                       # 47-49% against >= 87%
    assert v.filter(like="Detection falls as theta rises").iloc[0] == "fails"  # it rises here
    assert v.filter(like="Algorithm 2 as printed").iloc[0] == "fails"         # no label on any seed
    assert v.filter(like="RoCLIP's top-1 CA").iloc[0] == "holds"
    assert v.filter(like="at most RoCLIP's").iloc[0] == "fails"
    assert v.filter(like="precise oracle").iloc[0] == "inconclusive"          # both curated sets random
    assert out.ours.filter(like="precise oracle").iloc[0] == "not measured"
    assert (tmp_path / "eftclip" / "claims.csv").is_file()
    with pytest.raises(TypeError, match="per-seed rows"):
        ex.claims({"Table 2": tables}, det, p)


def test_run_all_gathers_the_claims_of_its_output_folder(tmp_path, monkeypatch):
    """At the end of a run the papers' claims.csv of that run's folder become <out>/claims.csv."""
    from paperlib import run_all
    monkeypatch.setenv("PAPERLIB_SCRATCH", str(tmp_path / "scratch"))
    monkeypatch.setattr(run_all, "run_notebook", lambda *a, **k: 0.0)
    out = tmp_path / "out"
    (out / "abd").mkdir(parents=True)
    pd.DataFrame([{"scale": "smoke", "claim": "c", "paper_value": "1", "ours": "2", "spread": "1 seed",
                   "n_seeds": 1, "verdict": "inconclusive"}]).to_csv(out / "abd" / "claims.csv", index=False)
    assert run_all.main(["--scale", "smoke", "--out", str(out), "--only", "abd"]) == 0
    got = pd.read_csv(out / "claims.csv")
    assert got.paper.tolist() == ["abd"] and got.verdict.tolist() == ["inconclusive"]


def test_cleanerclip_fig4c_runs_on_every_subset_attack(tmp_path, monkeypatch):
    """Fig. 4a-b on ``fig4.attack``; Fig. 4c's counts on each of ``fig4.subset_attacks`` (BadNet and
    BadCLIP in the paper), each row naming its victim and defended model."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.experiments import cleanerclip, common
    p = cleanerclip.load("params/cleanerclip/smoke.yaml", {
        "results_dir": str(tmp_path), "victims": [{"attack": "badnet"}, {"attack": "sig"}],
        "fig4.subset_attacks": ["badnet", "sig"], "fig4.subset_sizes": [50, 3000]})
    from paperlib.cache import artifact_key
    calls, victims = [], []
    monkeypatch.setattr(common, "clean_base", lambda p_: SimpleNamespace(key_params={"base": 1}))
    monkeypatch.setattr(common, "victim_key", lambda p_, b, v, s: {"victim": v.attack, "seed": s})
    monkeypatch.setattr(common, "victim_attack", lambda *a: None)
    monkeypatch.setattr(common, "finetune_victim", lambda p_, b, v, s: victims.append(v.attack) or
                        SimpleNamespace(path=tmp_path / f"victim-{v.attack}"))
    monkeypatch.setattr(pl, "defend", lambda victim, *a, **k: calls.append(victim.path.name) or
                        SimpleNamespace(path=tmp_path / f"model{len(calls)}"))
    monkeypatch.setattr(common, "victim_metrics", lambda *a: {"ca_top1": 10.0, "asr_top1": 5.0})
    (tmp_path / "cleanerclip").mkdir()
    old_row = {"study": "n_aug", "value": "50", "attack": "badnet", "scale": p.scale, "seed": 0, "ca_top1": 1.0,
               "asr_top1": 1.0}     # a row of an older run: kept in the file, left out of this run's rows
    pd.DataFrame([old_row]).to_csv(tmp_path / "cleanerclip" / "fig4_ablation.csv", index=False)
    rows = cleanerclip.fig_4(p, log=lambda *a: None)
    assert len(pd.read_csv(tmp_path / "cleanerclip" / "fig4_ablation.csv")) == len(rows) + 1   # kept in the file
    assert (rows.ca_top1 == 10.0).all()                                                          # not in the rows
    f = p.fig4
    n_ab = len(f.lambda_ratios) + len(f.temperature_pairs)
    assert sorted(zip(rows.study, rows.attack)).count(("n_aug", "sig")) == 2
    assert set(rows[rows.study != "n_aug"].attack) == {f.attack} and len(rows[rows.study != "n_aug"]) == n_ab
    assert set(rows.victim_model) == {artifact_key("model", {"victim": a, "seed": 0}) for a in ("badnet", "sig")}
    assert rows.model.nunique() == len(rows) and sorted(victims) == ["badnet", "sig"]


def test_cleanerclip_figure_data_stand_in_for_models_absent_from_the_cache(tmp_path, monkeypatch):
    """A fresh machine (no model in its cache) re-makes Fig. 4 from the rows naming the models these
    parameters would train: nothing is trained, not even the victims, and the log says so; a model
    whose row is missing is trained (its victim with it)."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.experiments import cleanerclip, common
    p = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path)})
    trained = []
    monkeypatch.setattr(common, "clean_base", lambda p_: SimpleNamespace(key_params={"base": 1}))
    monkeypatch.setattr(common, "victim_key", lambda p_, b, v, s: {"victim": v.attack, "seed": s})
    monkeypatch.setattr(common, "victim_attack", lambda *a: None)
    monkeypatch.setattr(common, "finetune_victim", lambda *a: trained.append("victim") or SimpleNamespace(path=tmp_path / "v"))
    monkeypatch.setattr(common, "victim_metrics", lambda *a: {"ca_top1": 10.0, "asr_top1": 5.0})
    monkeypatch.setattr(pl, "defend", lambda victim, data, d, cfg, *a, **k: trained.append(d) or SimpleNamespace(
        path=tmp_path / artifact_key("model", pl.defence_key({"victim": "badnet", "seed": 0}, "cleanerclip", cfg,
                                                             p.defence.clean_scenes, p.defence.train, 0, None, "cpu"))))
    first = cleanerclip.fig_4(p, log=lambda *a: None)
    assert trained.count("cleanerclip") == len(first) and trained.count("victim") == 1
    trained.clear()
    said = []
    again = cleanerclip.fig_4(p, log=said.append)
    cols = ["study", "value", "attack", "seed", "ca_top1", "asr_top1", "model"]
    assert trained == []
    pd.testing.assert_frame_equal(again.sort_values(["model", "study"])[cols].reset_index(drop=True),
                                  first.sort_values(["model", "study"])[cols].reset_index(drop=True), check_dtype=False)
    assert any(f"{len(first)} rows from the results files" in m for m in said)
    # without reuse_rows every model is trained again
    cleanerclip.fig_4(cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path),
                                                                         "reuse_rows": False}), log=lambda *a: None)
    assert trained.count("cleanerclip") == len(first)


def test_live_attacks_leave_out_victims_without_a_backdoor_and_say_so():
    import pandas as pd

    from paperlib.claims import live_attacks
    rows = pd.DataFrame({"attack": ["badnet", "badnet", "wanet", "wanet", "wanet", "sig"],
                         "defence": ["none", "none", "none", "none", "ft", "ft"], "scale": "embedded",
                         "seed": [0, 1, 0, 1, 0, 0], "asr_top1": [97.0, 99.0, 9.0, 12.0, 1.0, 3.0]})
    live, note = live_attacks(rows, ["badnet", "wanet", "sig"], lambda a: [0, 1], scale="embedded")
    assert live == ["badnet", "sig"]               # sig: no victim row, kept (its claims are not measured)
    assert note == " (left out, victims under 50% top-1 ASR: wanet 10.5)"
    # the seeds asked for count: at seed 0 alone WaNet's victim is 9.0
    assert live_attacks(rows, ["wanet"], lambda a: [0])[1].endswith("wanet 9.0)")
    assert live_attacks(rows, ["badnet"], lambda a: None) == (["badnet"], "")


def test_cleanerclip_fig3_and_table2_rows_stand_in_and_keep_other_victims_rows(tmp_path, monkeypatch):
    """Fig. 3's per-epoch rows and Table 2's probe rows name their model and victim: a fresh machine
    reuses them (nothing trained), and a run on another victim adds rows beside them."""
    from types import SimpleNamespace

    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.experiments import cleanerclip, common
    p = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path),
                                                           "epoch_curve_attacks": ["badnet"]})
    trained, victim_name = [], {"v": "first"}

    def defend(victim, data, d, cfg, *a, **k):
        trained.append(d)
        key = pl.defence_key({"victim": victim_name["v"]}, d, cfg, p.defence.clean_scenes, p.defence.train, 0, None, "cpu")
        path = tmp_path / "models" / artifact_key("model", key)
        path.mkdir(parents=True, exist_ok=True)
        for e in range(1, int(p.defence.train.epochs) + 1):
            (path / f"epoch{e}.safetensors").write_bytes(b"")
        (path / "summary.json").write_text(json.dumps({"device": "a test CPU"}))
        return pl.ModelArtifact("tiny", path, key)

    monkeypatch.setattr(common, "clean_base", lambda p_: SimpleNamespace(key_params={"base": 1}))
    monkeypatch.setattr(common, "victim_key", lambda p_, b, v, s: {"victim": victim_name["v"]})
    monkeypatch.setattr(common, "victim_attack", lambda *a: None)
    monkeypatch.setattr(common, "finetune_victim", lambda *a: trained.append("victim") or SimpleNamespace(path=tmp_path / "v", summary={}))
    monkeypatch.setattr(common, "victim_metrics", lambda *a: {"ca_top1": 10.0, "asr_top1": 5.0})
    monkeypatch.setattr(pl, "defend", defend)
    monkeypatch.setattr(pl, "linear_probe_eval", lambda *a, **k: {"top1": 70.0, "top5": 90.0})
    curve, probes = cleanerclip.asr_per_epoch(p, log=lambda m: None), cleanerclip.table_2(p, log=lambda m: None)
    assert len(curve) == 2 * int(p.defence.train.epochs) and len(probes) == 4 * len(p.probe.probes)
    assert set(probes[probes.defence != "none"].device) == {"a test CPU"}   # where each probed model was made
    trained.clear()
    said = []
    again = cleanerclip.asr_per_epoch(p, log=said.append), cleanerclip.table_2(p, log=said.append)
    assert trained == [] and len(again[0]) == len(curve) and len(again[1]) == len(probes) and len(said) == 2
    victim_name["v"] = "second"                                 # another victim: rows beside the first's
    cleanerclip.asr_per_epoch(p, log=lambda m: None), cleanerclip.table_2(p, log=lambda m: None)
    assert len(pd.read_csv(tmp_path / "cleanerclip" / "fig3_asr_per_epoch.csv")) == 2 * len(curve)
    assert len(pd.read_csv(tmp_path / "cleanerclip" / "table2_linear_probe.csv")) == 2 * len(probes)


def test_cleanerclip_table2_claim_reads_probe_seeds_not_ablation_seeds(tmp_path):
    """Table 2 may run at more seeds than the ablations (issue 24): its claim pairs CleanCLIP and
    CleanerCLIP over ``probe.seeds``, and without them over the ablation seeds."""
    from paperlib.experiments import cleanerclip
    t2 = pd.DataFrame([{"attack": "badnet", "defence": d, "probe": pr, "scale": "smoke", "seed": s,
                        "top1": 80.0 + s + (0.5 if d == "cleanclip" else 0.0)}
                       for s in (0, 1) for d in ("cleanclip", "cleanerclip") for pr in ("heldout_style", "digits")])
    both = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1],
                                                              "probe.seeds": [0, 1]})
    first = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1]})
    assert both.probe_seed_list == (0, 1) and first.probe_seed_list == first.ablation_seed_list == (0,)
    row = {n: out[out.claim.str.contains("linear-probe")].iloc[0]
           for n, out in (("both", cleanerclip.claims(None, both, t2)), ("first", cleanerclip.claims(None, first, t2)))}
    assert row["both"].n_seeds == 2 and row["first"].n_seeds == 1
    assert row["both"].ours == "+0.50 (mean over 2 probes)" and row["both"].verdict == "holds"


def test_cleanerclip_table2_view_shows_mean_and_std_over_probe_seeds(tmp_path):
    from paperlib.experiments import cleanerclip
    p = cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path), "seeds": [0, 1, 2],
                                                           "probe.seeds": [0, 1]})
    t2 = pd.DataFrame([{"defence": d, "probe": pr, "scale": "smoke", "seed": s, "top1": top1}
                       for d in ("none", "cleanerclip") for s in (0, 1, 2)
                       for pr, top1 in (("digits", 50.0 + 2 * s), ("heldout_style", 70.0))])
    view = cleanerclip.table_2_view(t2, p)                       # seed 2 is not a probe seed: left out
    assert list(view.index) == ["none", "cleanerclip"] and "seeds [0, 1]" in view.index.name
    assert view.loc["none", "digits"] == "51.0 ± 1.4" and view.loc["none", "heldout_style"] == "70.0 ± 0.0"
    assert view.loc["cleanerclip", "mean over probes"] == "60.5 ± 0.7"
    one = cleanerclip.table_2_view(t2, cleanerclip.load("params/cleanerclip/smoke.yaml", {"results_dir": str(tmp_path)}))
    assert one.loc["none", "digits"] == "50.0"                    # one seed: no std
