"""Our numbers beside the papers': seed summaries, the paper lookup join, and claims as data."""
import math

import pandas as pd
import pytest

from paperlib.compare import Claim, beside_paper, claims_table, metric, seed_summary, wide_top1


def _rows():
    out = []
    for seed, (ca, asr) in enumerate([(50.0, 10.0), (52.0, 14.0)]):
        for d, shift in (("none", 0.0), ("cleanclip", -5.0)):
            out.append({"attack": "badnet", "defence": d, "scale": "embedded", "seed": seed,
                        "ca_top1": ca + shift, "ca_top5": ca + 20, "asr_top1": asr + 3 * shift, "asr_top5": asr + 30})
    return pd.DataFrame(out)


def test_seed_summary_mean_std_n():
    s = seed_summary(_rows(), ["attack", "defence"], ["ca_top1", "asr_top1"])
    r = s[(s.defence == "none") & (s.metric == "ca") & (s.k == 1)].iloc[0]
    assert r.ours_mean == 51.0 and r.ours_std == pytest.approx(math.sqrt(2)) and r.n_seeds == 2


def test_beside_paper_joins_the_transcribed_value():
    t = beside_paper(_rows(), "cleanerclip", "Table 1", {"none": "none", "cleanclip": "cleanclip"}, "embedded")
    r = t[(t.defence == "none") & (t.metric == "asr") & (t.k == 1)].iloc[0]
    assert r.paper == pytest.approx(91.28)          # CleanerCLIP Table 1, NoDefense, BadNet, ASR top-1
    assert r.ours_mean == 12.0
    assert metric(t, "badnet", "cleanclip", "asr") == pytest.approx(-3.0)
    w = wide_top1(t, ["none", "cleanclip"])
    assert "ASR top-1 (paper)" in w.columns and len(w) == 2


def test_beside_paper_maps_renamed_defences_and_unk_k_to_top1():
    rows = _rows().replace({"defence": {"cleanclip": "abd_uap"}})
    t = beside_paper(rows, "abd", "Table III", {"none": "none", "abd_uap": "uap"}, "embedded")
    r = t[(t.defence == "abd_uap") & (t.metric == "asr") & (t.k == 1)].iloc[0]
    assert r.paper == pytest.approx(18.39)          # ABD Table III, UAP, BadNet, ASR (printed without k)


def test_compare_re_exports_the_seed_by_seed_claims():
    """Claims are checked seed by seed (paperlib.claims, tested in test_claims.py); compare keeps the
    names importable from where they were."""
    from paperlib import claims
    assert Claim is claims.Claim and claims_table is claims.claims_table


def test_share_of_pairs_counts_attack_seed_pairs_where_the_claim_holds():
    from paperlib.compare import share_of_pairs
    rows = pd.DataFrame([
        # attack, defence, seed, asr
        ("badnet", "cleanclip", 0, 10.0), ("badnet", "abd", 0, 0.0),      # abd lower
        ("badnet", "cleanclip", 1, 5.0), ("badnet", "abd", 1, 5.0),       # equal
        ("blended", "cleanclip", 0, 1.0), ("blended", "abd", 0, 30.0),    # abd higher
        ("blended", "cleanclip", 1, 2.0),                                  # no abd row: not counted
        ("sig", "cleanclip", 0, 50.0), ("sig", "abd", 0, 1.0),            # attack not asked for
    ], columns=["attack", "defence", "seed", "asr_top1"]).assign(scale="embedded")
    assert share_of_pairs(rows, "abd", "cleanclip", ["badnet", "blended"], "embedded") == pytest.approx(100 / 3)
    assert share_of_pairs(rows, "abd", "cleanclip", ["badnet", "blended"], "embedded", strict=False) == pytest.approx(200 / 3)
    assert math.isnan(share_of_pairs(rows, "abd", "cleanclip", ["badnet"], "smoke"))   # no rows at that scale
    assert math.isnan(share_of_pairs(rows, "abd", "ft", ["badnet"], "embedded"))        # no FT rows
