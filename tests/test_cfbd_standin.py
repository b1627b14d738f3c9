"""CFBD's screenings standing in by their published rows (issue 25: the main job on a fresh machine)."""
import shutil

import pandas as pd
import pytest

from paperlib.experiments import cfbd, detection
from paperlib.experiments.cfbd_standin import has_rows, published_screening, studies_published

CFBD_CSV = {"rows_file": "cfbd.csv", "retrain": True}   # the detection file and a run that retrains


def test_has_rows_wants_every_row_with_the_fixed_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame([{"attack": "badnet", "seed": 0, "victim_model": "0012e4", "q": 4, "ratio": 0.1 + 0.2},
                  {"attack": "badnet", "seed": 0, "victim_model": "0012e4", "q": 8, "ratio": 0.3},
                  {"attack": "sig", "seed": 0, "victim_model": "0012e4", "q": 16, "ratio": 0.3}]).to_csv(path, index=False)
    want = [{"q": 4, "ratio": 0.3}, {"q": 8, "ratio": 0.3}]
    assert has_rows(path, want, attack="badnet", seed=0, victim_model="0012e4")   # 0.1 + 0.2 is 0.3 here
    assert not has_rows(path, want + [{"q": 16, "ratio": 0.3}], attack="badnet", victim_model="0012e4")
    assert not has_rows(path, want, attack="badnet", victim_model="12e4")   # a key is text, never a number
    assert not has_rows(path, want, attack="badnet", seed=1)
    assert not has_rows(tmp_path / "none.csv", want)


def _published(tmp, p, model="m-fine", abl="a-0"):
    """Hand-made results files holding one screening of badnet seed 0 (victim v0)."""
    (tmp / "detection").mkdir(parents=True, exist_ok=True)
    (tmp / "defences").mkdir(exist_ok=True)
    rules = {"mapping": p.mapping.kind, "benign_rule": p.cfbd.benign_rule, "gamma_z_rule": p.cfbd.gamma_z_rule,
             "gamma_z_quantile": p.cfbd.gamma_z_quantile}
    row = {"attack": "badnet", "poison_count": 8, "scale": p.scale, "seed": 0, "victim_model": "v0", "n_pairs": 300,
           "tpr": 50.0, "fpr": 1.0, "kept": 290, "detector": "d0", **rules}
    pd.DataFrame([{**row, "stage": "coarse"}, {**row, "stage": "fine", "ca_top1": 20.0, "asr_top1": 3.0,
                                                "model": model}]).to_csv(tmp / "detection" / "cfbd.csv", index=False)
    pd.DataFrame([{"attack": "badnet", "defence": "cfbd", "scale": p.scale, "seed": 0, "model": model,
                   "ca_top1": 20.0, "asr_top1": 3.0}]).to_csv(tmp / "defences" / "matrix.csv", index=False)
    pd.DataFrame([{"attack": "badnet", "poison_count": 8, "scale": p.scale, "seed": 0, "tpr": 9.0, "fpr": 1.0,
                   "model": abl, "isolation_ratio": p.abl.isolation_ratio}]).to_csv(tmp / "detection" / "abl.csv",
                                                                                   index=False)


def test_a_screening_stands_in_only_when_everything_it_made_is_published_and_no_model_is_here(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out")})
    v = p.victims[0]
    assert v.attack == "badnet" and v.poison.poison_count == 8 and p.retrain_stages == ("fine",)
    _published(tmp_path / "out", p)
    there = published_screening(p, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV)
    assert there is not None and [r["stage"] for r in there.rows] == ["coarse", "fine"]
    assert there.matrix_rows[0]["model"] == "m-fine" and there.abl_row["tpr"] == 9.0
    assert published_screening(p, v, 0, "v0", abl_model="a-0", digest="d1", **CFBD_CSV) is None   # another detector's rows
    assert published_screening(p, v, 1, "v0", abl_model="a-0", digest="d0", **CFBD_CSV) is None   # no rows of that seed
    assert published_screening(p, v, 0, "v1", abl_model="a-0", digest="d0", **CFBD_CSV) is None   # nor of another victim
    assert published_screening(p, v, 0, "v0", abl_model="a-other", digest="d0", **CFBD_CSV) is None   # ABL's of another model
    said = []
    assert published_screening(p, v, 0, "v0", said.append, also=lambda *a: "Table 5 rows", abl_model="a-0",
                               digest="d0", **CFBD_CSV) is None
    assert "Table 5 rows" in said[0]
    off = detection.load("params/detection/smoke.yaml", {"results_dir": str(tmp_path / "out"), "reuse_rows": False})
    assert published_screening(off, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV) is None
    for name in ("m-fine", "a-0"):            # a model of the screening in this cache: screened here
        (tmp_path / "cache" / "model" / name).mkdir(parents=True)
        (tmp_path / "cache" / "model" / name / "DONE").touch()
        assert published_screening(p, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV) is None
        shutil.rmtree(tmp_path / "cache" / "model" / name)
    _published(tmp_path / "out", p, model="m-gone")
    pd.DataFrame([{"attack": "badnet", "defence": "cfbd", "scale": p.scale, "seed": 0, "model": "m-fine"}]).to_csv(
        tmp_path / "out" / "defences" / "matrix.csv", index=False)
    assert published_screening(p, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV) is None   # its retraining's row is missing
    # a stage that kept fewer pairs than one batch was not retrained: no model, and none is needed
    det = pd.read_csv(tmp_path / "out" / "detection" / "cfbd.csv")
    det.loc[det.stage == "fine", ["model", "ca_top1", "kept"]] = [None, None, v.finetune.batch_size - 1]
    det.to_csv(tmp_path / "out" / "detection" / "cfbd.csv", index=False)
    assert published_screening(p, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV).matrix_rows == ()
    # rows written before the files named their victim and detector stand in for nothing (and break nothing)
    det.drop(columns=["victim_model", "detector"]).to_csv(tmp_path / "out" / "detection" / "cfbd.csv", index=False)
    assert published_screening(p, v, 0, "v0", abl_model="a-0", digest="d0", **CFBD_CSV) is None


def test_table_3_rows_stand_in_only_with_their_abl_models_row(tmp_path):
    from paperlib.experiments.cfbd_standin import published_rates
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path)})
    v = p.victims[0]
    (tmp_path / "cfbd").mkdir()
    (tmp_path / "detection").mkdir()
    path = tmp_path / "cfbd" / "table3_rates.csv"
    pd.DataFrame([{"attack": v.attack, "poison_count": 8, "method": "cfbd", "scale": p.scale, "seed": 0,
                   "tpr": 1.0}]).to_csv(path, index=False)    # before rows named their victim
    assert published_rates(p, v, 0, "v0", "a-0", "d0") is None
    row = {"attack": v.attack, "poison_count": 8, "scale": p.scale, "seed": 0, "victim_model": "v0"}
    pd.DataFrame([{**row, "method": "cfbd", "tpr": 90.0, "detector": "d0"},
                  {**row, "method": "abl", "tpr": 9.0}]).to_csv(path, index=False)
    assert published_rates(p, v, 0, "v0", None, "d0")[0]["tpr"] == 90.0   # no ABL asked for
    assert published_rates(p, v, 0, "v0", None, "d1") is None              # another detector's row
    assert published_rates(p, v, 0, "v0", "a-0", "d0") is None             # ABL's model has no row
    pd.DataFrame([{**{k: row[k] for k in ("attack", "poison_count", "scale", "seed")}, "tpr": 9.0, "fpr": 1.0,
                   "model": "a-0", "isolation_ratio": p.abl.isolation_ratio}]).to_csv(tmp_path / "detection" / "abl.csv",
                                                                                      index=False)
    assert [r["method"] for r in published_rates(p, v, 0, "v0", "a-0", "d0")] == ["cfbd", "abl"]
    ratio = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "abl.isolation_ratio": 0.05})
    assert published_rates(ratio, v, 0, "v0", "a-0", "d0") is None        # that model at another ratio


def test_a_screening_stands_in_only_with_the_rows_of_every_rule_variant(tmp_path):
    """The rule ablation's rows of a set (results/cfbd/former_rules.csv) must hold the current rules,
    every former rule and every other reading, both stages: rows of the former rules alone (a file
    written before the other readings existed) leave the set to be screened again."""
    from types import SimpleNamespace

    from paperlib.experiments.cfbd_screened import FORMER_RULES, RULE_VARIANTS
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path), "fault_attacks": []})
    of = {"attack": "badnet", "seed": 0, "scale": p.scale, "victim_model": "v0"}
    (tmp_path / "cfbd").mkdir()
    pd.DataFrame([{**of, "study": "k_gamma", "k": k, "gamma": g, "benign_rule": rule, "q": p.cfbd.q}
                  for k in p.ablation_ks for rule in p.ablation_benign_rules for g in p.ablation_gammas]
                 + [{**of, "study": "q", "q": q, "k": p.cfbd.k, "gamma": p.cfbd.gamma, "benign_rule": p.cfbd.benign_rule}
                    for q in p.ablation_qs]).to_csv(tmp_path / "cfbd" / "fig6_ablation.csv", index=False)
    check = studies_published(p, figures=False)
    v = SimpleNamespace(attack="badnet")

    def rule_rows(labels):
        pd.DataFrame([{**of, "rules": label, "stage": stage, "mapping": p.mapping.kind}
                      for label in labels for stage in ("coarse", "fine")]).to_csv(tmp_path / "cfbd" / "former_rules.csv",
                                                                                    index=False)
    rule_rows(["current rules", *FORMER_RULES])
    assert check(v, 0, "v0", 1000) == "former rules' rows"
    rule_rows(["current rules", *RULE_VARIANTS])
    assert check(v, 0, "v0", 1000) is None
    assert check(v, 0, "another-victim", 1000) == "Fig. 6 rows"


def _with_the_shared_base(p, cache):
    """Copy the smoke clean base from the shared cache into ``cache``, when there (other tests
    build it): a minute of pre-training saved."""
    from paperlib.experiments.common import clean_base_unbuilt
    base = clean_base_unbuilt(p).path
    if (base / "DONE").is_file():
        shutil.copytree(base, cache / "model" / base.name)


def test_cfbd_on_a_machine_without_its_models_screens_nothing_and_draws_the_same(tmp_path, monkeypatch):
    """A whole CFBD run at smoke, then the same run on a 'fresh machine' (the retrained and ABL models
    moved out of the cache): no set is screened (screening would fail), every row and figure comes
    from the results files, the tables and claims are the first run's, and no results file changes."""
    out = tmp_path / "out"
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(out), "mapping_ablation": []})
    _with_the_shared_base(p, tmp_path / "cache")   # a copy: this test moves models out of its own cache
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    from paperlib import cache as run_ledger
    monkeypatch.setattr(run_ledger, "_USED", {})    # this run's ledger alone (not earlier tests' in this process)
    first = cfbd.run(p, log=lambda *a: None)
    files = {f: f.read_bytes() for f in out.rglob("*.csv")}
    from paperlib.pipeline import device_name, resolve_device
    assert (pd.read_csv(out / "detection" / "cfbd.csv").screened_on == device_name(resolve_device("cpu"))).all()
    for rel in ("fig2_fig4_pairs.csv", "fig4_gmm.csv", "fig5_pr_curves.csv"):
        assert (out / "cfbd" / rel) in files
    models = list(pd.read_csv(out / "defences" / "matrix.csv").model) + list(pd.read_csv(out / "detection" / "abl.csv").model)
    for m in models:
        shutil.move(tmp_path / "cache" / "model" / m, tmp_path / m)
    # the manifest's ledger: one unit of work per screened set, naming its models; on this machine
    # without them the cost estimate leaves out the sets' own seconds (their rows stand in)
    import json

    from paperlib import costs
    manifest = json.loads((out / "cfbd" / f"manifest_{p.scale}.json").read_text())
    work = [a for a in manifest["artifacts"] if a["kind"] == "work"]
    assert len(work) == 2 and all(a["models"] and set(a["models"]) <= set(models) for a in work)
    assert all(a["built_seconds"] > 0 for a in work)     # a screening takes time of its own
    rows = costs.stand_in_keys(str(out))
    assert all(a["key"] in rows for a in work)          # its detection rows name its victim and detector
    section = work[0]["section"]
    fresh = costs.section_estimate(manifest, section, tmp_path / "cache", {}, rows)
    screened = costs.section_estimate(manifest, section, tmp_path / "cache", {}, frozenset())
    in_section = [a for a in work if a["section"] == section]
    assert fresh.stand_in - screened.stand_in >= len(in_section)
    assert screened.seconds - fresh.seconds == pytest.approx(sum(a["built_seconds"] for a in in_section), abs=0.2)

    def no_screening(*a, **k):
        raise AssertionError("screened on the fresh machine")
    monkeypatch.setattr(detection.Screener, "ready", no_screening)
    monkeypatch.setattr(detection.Screener, "screen", no_screening)
    said = []
    again = cfbd.run(p, log=said.append)
    assert len(again["claims"]) == len(first["claims"])
    pd.testing.assert_frame_equal(again["claims"], first["claims"])
    for name in ("Table 1-2", "Table 3", "Table 4", "Table 5"):
        pd.testing.assert_frame_equal(again["tables"][name], first["tables"][name], check_dtype=False,
                                      rtol=1e-3)   # the files hold 4 significant digits
    for name, data in again["figure_data"].items():                    # drawn from the published data
        assert len(data) and len(data) == len(first["figure_data"][name]), name
    assert any("CFBD screenings: 2 of 2 taken from the results files" in line for line in said)
    assert any(line.startswith("Table 3: 2 of 2 sets taken") for line in said)
    changed = [str(f.relative_to(out)) for f, data in files.items() if f.read_bytes() != data]
    assert not changed
    for m in models:                         # nothing was trained again
        assert not (tmp_path / "cache" / "model" / m).exists()
    # another detector (a setting outside the rule columns) and reuse_rows: false screen every set again
    # (here: they would, and fail on purpose)
    with pytest.raises(AssertionError, match="screened on the fresh machine"):
        cfbd.run(cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(out), "mapping_ablation": [], "cfbd.q": 4}),
                 log=lambda *a: None)
    with pytest.raises(AssertionError, match="screened on the fresh machine"):
        cfbd.run(cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(out), "mapping_ablation": [],
                                                      "reuse_rows": False}), log=lambda *a: None)
