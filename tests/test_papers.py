"""The transcribed paper tables (paperlib/papers/*.csv) parse, use the agreed vocabulary and hold
the numbers the papers print. Light: reads four small CSV files, no models, no data."""
import csv
import math

import pytest

from paperlib import papers

COLUMNS = ["paper", "table", "row", "attack", "defence", "dataset", "metric", "k", "setting", "value", "note"]
METRICS = {"ca", "asr", "detection_rate", "tpr", "fpr", "auroc", "auprc", "accuracy", "size", "time", "similarity"}


def _rows(paper):
    with open(papers.HERE / f"{paper}.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS, reader.fieldnames
        return list(reader)


@pytest.mark.parametrize("paper", papers.PAPERS)
def test_csv_is_tidy_and_uses_the_vocabulary(paper):
    rows = _rows(paper)
    assert rows, paper
    keys = set()
    for r in rows:
        assert r["paper"] == paper
        assert r["table"] and r["row"] and r["metric"]
        v = float(r["value"])  # raises on a non-number
        assert math.isfinite(v) and "%" not in r["value"]
        assert r["attack"] == "" or r["attack"] in papers.ATTACKS, r
        assert r["defence"] in papers.DEFENCES | papers.EXTRA_DEFENCES, r
        assert r["metric"] in METRICS, r
        assert r["k"] in {"", "1", "3", "5", "10"}, r
        if r["setting"]:
            assert all("=" in part for part in r["setting"].split(";")), r
        key = (r["table"], r["row"], r["attack"], r["defence"], r["dataset"], r["metric"], r["k"], r["setting"])
        assert key not in keys, f"duplicate cell {key}"
        keys.add(key)


def _one(paper, table, **kw):
    df = papers.lookup(paper, table, **kw)
    assert len(df) == 1, (paper, table, kw, len(df))
    return df["value_str"].iloc[0]


def test_spot_checks_eftclip():
    # Table 1, row "Flickr30K 1000": trigger detection rate 89.7
    assert _one("eftclip", "Table 1", dataset="flickr30k", setting="n_backdoor=1000") == "89.7"
    # Table 5, row "CC3M CLIP (WaNet)", after EftCLIP fine-tuning: ASR 12.30
    assert _one("eftclip", "Table 5", attack="wanet", defence="eftclip", metric="asr") == "12.30"
    # Table 4, row "RoCLIP": CIFAR10 zero-shot CA 30.14
    assert _one("eftclip", "Table 4", defence="roclip", dataset="cifar10", metric="ca") == "30.14"


def test_spot_checks_cleanerclip():
    # Table 1, Top-1 block, row "CleanerCLIP", BadCLIP column: ASR 17.85
    assert _one("cleanerclip", "Table 1", attack="badclip", defence="cleanerclip", metric="asr", k=1) == "17.85"
    # Table 1, Top-3 block, row "FT", SIG column: BA 74.65
    assert _one("cleanerclip", "Table 1", attack="sig", defence="ft", metric="ca", k=3) == "74.65"
    # Table 2 (linear probe), row "CleanCLIP", SVHN column: 50.54
    assert _one("cleanerclip", "Table 2", defence="cleanclip", dataset="svhn") == "50.54"


def test_spot_checks_abd():
    # Table I, row "BadCLIP" ASR, column "Ours(ABD)": 35.96
    assert _one("abd", "Table I", attack="badclip", defence="abd", metric="asr") == "35.96"
    # Table III, row "Blended" CA, column "UAP": 54.05
    assert _one("abd", "Table III", attack="blended", defence="uap", metric="ca") == "54.05"


def test_spot_checks_cfbd():
    # Table 2, row "CFBD (coarse-grained)", LC column: ASR 36.72
    assert _one("cfbd", "Table 2", attack="lc", setting_contains="stage=coarse;") == "36.72"
    # Table 3, poison rate 0.5%, row "ABL", ISSBA column: TPR 11.28
    assert _one("cfbd", "Table 3", attack="ssba", defence="abl", setting="poison_rate=0.5%") == "11.28"
    # Table 5, row "WaNet", q=400, fault ratio 80%: AUROC 0.9909
    assert _one("cfbd", "Table 5", attack="wanet", setting="q=400;fault_ratio=80%") == "0.9909"


def test_numbers_agree_with_the_papers_own_arithmetic():
    """Differences the papers state in their text, recomputed from the transcribed cells."""
    def v(paper, table, **kw):
        return float(_one(paper, table, **kw))

    # CleanerCLIP abstract: vs CleanCLIP on BadCLIP, ASR lower by 52.02 (Top-1) and 63.88 (Top-10)
    for k, diff in [(1, 52.02), (10, 63.88)]:
        got = (v("cleanerclip", "Table 1", attack="badclip", defence="cleanclip", metric="asr", k=k)
               - v("cleanerclip", "Table 1", attack="badclip", defence="cleanerclip", metric="asr", k=k))
        assert got == pytest.approx(diff, abs=0.005)
    # ABD abstract: vs CleanCLIP, ASR lower by 8.66 / 10.52 / 53.64 (Table I)
    for attack, diff in [("badnet", 8.66), ("blended", 10.52), ("badclip", 53.64)]:
        got = (v("abd", "Table I", attack=attack, defence="cleanclip", metric="asr")
               - v("abd", "Table I", attack=attack, defence="abd", metric="asr"))
        assert got == pytest.approx(diff, abs=0.005)
    # ABD Sec. III-C: I_adv lowers ASR vs FT by 39.97 on average (Table II)
    attacks = ["badnet", "blended", "badclip"]
    got = sum(v("abd", "Table II", attack=a, defence="ft", metric="asr")
              - v("abd", "Table II", attack=a, defence="i_adv", metric="asr") for a in attacks) / 3
    assert got == pytest.approx(39.97, abs=0.005)


def test_loader_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="eftclip, cleanerclip, abd, cfbd"):
        papers.load("cleanclip")
    with pytest.raises(ValueError, match="Table I"):
        papers.lookup("abd", "Table 9")
    df = papers.load()
    assert set(df["paper"]) == set(papers.PAPERS)
