"""CleanCLIP at several budgets on a pre-training victim (issue 23): the row's step and learning-rate
shares against the victim's pre-training, and one row per budget kept side by side in the file."""
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from paperlib.experiments import pretrain_budget

ROOT = Path(__file__).resolve().parents[1]


def _model(name: str, key_params=None, **summary):
    return SimpleNamespace(path=Path("/cache/model") / name, summary=summary, key_params=key_params or {})


def test_a_row_sets_the_defence_s_steps_and_lr_against_the_victim_s_pretraining():
    victim = _model("v1", {"train": {"lr": 1e-3, "batch_size": 256}}, steps=1268, seconds=1595.4, device="cpu")
    defended = _model("d1", steps=975, seconds=1180.26, device="Intel Xeon")
    train = SimpleNamespace(epochs=25, lr=1e-4, batch_size=128)
    metrics = {"ca_top1": 15.0, "ca_top5": 30.0, "asr_top1": 60.0, "asr_top5": 80.0, "asr_top10": 90.0}
    row = pretrain_budget.budget_row("badnet", 0, "embedded", victim, defended, "eftclip", train, 5000, 1500,
                                     {**metrics, "ca_top1": 18.4, "asr_top1": 100.0}, metrics)
    assert row["steps_vs_victim"] == round(975 / 1268, 4) and row["lr_vs_victim"] == 0.1 and row["victim_lr"] == 1e-3
    assert (row["victim_model"], row["model"], row["defence"]) == ("v1", "d1", "eftclip")
    assert (row["clean_scenes"], row["finetune_set"]) == (5000, 1500)
    assert (row["victim_asr_top1"], row["asr_top1"]) == (100.0, 60.0)
    assert row["train_seconds"] == 1180.3 and row["device"] == "Intel Xeon"
    assert set(row) == set(pretrain_budget.COLUMNS)


def test_smoke_run_keeps_one_row_per_budget(tmp_path, monkeypatch):
    """Two budgets of the smoke file's pre-training victim, each with CleanCLIP on the pool and EftCLIP
    on its curated set: the longer one takes more steps of the same victim, and the second run's rows
    join the first's in the file."""
    from paperlib.experiments.eftclip import load
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    out = str(tmp_path / "r")
    p = load(ROOT / "params" / "eftclip" / "smoke.yaml", {"results_dir": out})
    short = pretrain_budget.run(p, log=lambda *a: None)
    longer = pretrain_budget.run(load(ROOT / "params" / "eftclip" / "smoke.yaml",
                                      {"results_dir": out, "defence.train.epochs": 2 * p.defence.train.epochs}),
                                 log=lambda *a: None)
    assert len(short) == len(longer) == 2 * len(p.pretrain_victims) * len(p.pretrain_seed_list)
    assert short.defence.tolist() == ["cleanclip", "eftclip"]
    assert short.finetune_set.iloc[0] == p.defence.clean_scenes > short.finetune_set.iloc[1]
    assert (longer.victim_model.tolist() == short.victim_model.tolist())
    assert (longer.steps > short.steps).all() and (longer.steps_vs_victim > short.steps_vs_victim).all()
    assert short.asr_top1.between(0, 100).all() and longer.ca_top1.between(0, 100).all()
    kept = pd.read_csv(Path(out) / "eftclip" / pretrain_budget.FILE)
    assert len(kept) == 2 * len(short) and sorted(kept.epochs.unique()) == sorted({*short.epochs, *longer.epochs})
    # the file's own budget is Table 3's CleanCLIP: the key eftclip.py's Table 2 and 3 rows build
    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.experiments import common
    v = p.pretrain_victims[0]
    victim = common.pretrain_victim(p, common.clean_base(p), v, p.pretrain_seed_list[0])
    table3 = pl.defence_key(victim.key_params, "cleanclip", p.defence.config("cleanclip", v.attack),
                            p.defence.clean_scenes, p.defence.train, p.pretrain_seed_list[0], None, "cpu")
    assert short.model.iloc[0] == artifact_key("model", table3) != longer.model.iloc[0]
    # and EftCLIP's is the model Table 3's curated defence makes (the same call, read from the cache)
    from paperlib.experiments.eftclip import curated_defence
    from paperlib.experiments.eftclip_setup import Workbench
    assert short.model.iloc[1] == curated_defence(p, Workbench(p), v.attack, "pretrain", 0)["model"].path.name
    # the notebook's view finds both runs' rows of this victim by its key, in the run's folder
    shown = pretrain_budget.rows_so_far(p)
    assert set(shown.model) == {*short.model, *longer.model}
    assert all(g.steps.is_monotonic_increasing for _, g in shown.groupby("defence"))   # shorter budget first


def test_a_file_without_pretraining_victims_is_refused_by_name():
    import pytest

    from paperlib.experiments.eftclip import load
    p = load(ROOT / "params" / "eftclip" / "smoke.yaml", {"pretrain_victims": []})
    with pytest.raises(ValueError, match="pretrain_victims"):
        pretrain_budget.run(p, log=lambda *a: None)


def test_rows_so_far_are_this_file_s_victims_only(tmp_path, monkeypatch):
    """The notebook's view: rows of the file's own pre-training victims, found by key without training,
    a row of another victim left out, and the run's folder read beside the committed file."""
    from paperlib.cache import artifact_key
    from paperlib.experiments import common
    from paperlib.experiments.eftclip import load
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = load(ROOT / "params" / "eftclip" / "smoke.yaml", {"results_dir": str(tmp_path / "r")})
    own = artifact_key("model", common.pretrain_victim_key(p, common.clean_base_unbuilt(p), p.pretrain_victims[0], 0))
    row = {c: 0 for c in pretrain_budget.COLUMNS}
    rows = [{**row, "attack": "badnet", "victim_model": own, "steps": 20, "epochs": 2, "model": "m2"},
            {**row, "attack": "badnet", "victim_model": own, "steps": 10, "epochs": 1, "model": "m1"},
            {**row, "attack": "badnet", "victim_model": "someone_else", "steps": 10, "model": "m3"}]
    (tmp_path / "r" / "eftclip").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "r" / "eftclip" / pretrain_budget.FILE, index=False)
    shown = pretrain_budget.rows_so_far(p)
    assert shown.victim_model.tolist() == [own, own] and shown.steps.tolist() == [10, 20]
    assert not (tmp_path / "cache" / "model").exists()   # nothing trained


def test_the_summary_gives_each_budget_its_seeds_mean_spread_and_per_seed_asr():
    row = dict(attack="badnet", clean_scenes=5000, batch_size=128, finetune_set=5000, epochs=20.0, lr=1e-3, steps=780)
    rows = pd.DataFrame([{**row, "defence": "cleanclip", "seed": 2, "ca_top1": 16.0, "asr_top1": 3.0},
                         {**row, "defence": "cleanclip", "seed": 0, "ca_top1": 14.0, "asr_top1": 1.0},
                         {**row, "defence": "cleanclip", "epochs": 5.0, "lr": 1e-4, "steps": 195, "seed": 0,
                          "ca_top1": 16.13, "asr_top1": 99.87},
                         {**row, "defence": "eftclip", "finetune_set": 1500, "steps": 220, "seed": 0,
                          "ca_top1": 10.8, "asr_top1": 47.36}])
    t = pretrain_budget.summary(rows)
    assert [(r.defence, r.lr, r.seeds) for r in t.itertuples()] == [
        ("cleanclip", 1e-4, [0]), ("cleanclip", 1e-3, [0, 2]), ("eftclip", 1e-3, [0])]
    two = t.iloc[1]
    assert two.n_seeds == 2 and two.ca_top1 == 15.0 and two.asr_top1 == 2.0
    assert abs(two.asr_top1_std - 2 ** 0.5) < 1e-9 and two.asr_top1_per_seed == [1.0, 3.0]   # in seed order
    assert pd.isna(t.iloc[0].asr_top1_std)                                                    # one seed: no spread
    text = pretrain_budget.summary_markdown(t, shared_budget=(5, 1e-4))
    assert "| badnet | CleanCLIP (5,000) | 5, 1e-4 (the matrix's) | 195 | 0 | 16.13 | 99.87 | 99.87 |" in text
    assert "| badnet | CleanCLIP (5,000) | 20, 1e-3 | 780 | 0, 2 | 15 ± 1.4 | 2 ± 1.4 | 1 / 3 |" in text
    assert "| badnet | EftCLIP (1,500 curated) | 20, 1e-3 | 220 | 0 |" in text

    rates = pretrain_budget.summary(rows.assign(lr=[2.5e-4, 2.5e-4, 5e-5, 1e-3]))
    assert "| 20, 2.5e-4 |" in pretrain_budget.summary_markdown(rates) and "| 5, 5e-5 |" in pretrain_budget.summary_markdown(rates)
    other = rows.iloc[[1]].assign(model="another-weight-decay")       # seed 0 again, a setting no column names
    with pytest.raises(ValueError, match=r"repeat seeds \[0\].*another-weight-decay"):
        pretrain_budget.summary(pd.concat([rows.assign(model="m"), other]))
