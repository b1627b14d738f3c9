"""ABD's Fig. 2 over the ablation seeds: rows per seed and victim, standing in for an absent victim."""
from types import SimpleNamespace

import pandas as pd
import pytest

from paperlib import cache as ledger
from paperlib.experiments import abd, common


@pytest.fixture
def fake_victims(tmp_path, monkeypatch):
    """No training: the victim key names its seed, the similarities are made from the seed."""
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ledger, "_USED", {})
    monkeypatch.setattr(common, "clean_base", lambda p: SimpleNamespace(key_params={"base": 1}))
    monkeypatch.setattr(common, "victim_key", lambda p, b, v, seed: {"role": "poison_finetune", "seed": seed})
    measured = []

    def similarities(p, base, v, seed, n):
        measured.append(seed)
        return {pair: 10.0 * (i + 1) + seed for i, pair in enumerate(abd.FIG2_PAIRS)}, "a test CPU"
    monkeypatch.setattr(abd, "_similarities", similarities)
    return measured


def test_fig2_runs_at_every_ablation_seed_and_a_later_run_takes_its_rows(tmp_path, fake_victims):
    p = abd.load("params/abd/smoke.yaml", {"results_dir": str(tmp_path / "res"), "seeds": [0, 1, 2],
                                           "ablation_seeds": [0, 2]})
    bars = abd.similarity_bars(p, log=lambda m: None)
    assert fake_victims == [0, 2] and len(bars) == 2 * len(abd.FIG2_PAIRS) and set(bars.device) == {"a test CPU"}
    summ = abd.fig2_summary(bars)
    assert list(summ.pair) == list(abd.FIG2_PAIRS) and summ.seeds.iloc[0] == "0 2"
    assert summ["mean"].iloc[0] == 11.0 and summ["std"].iloc[0] == pytest.approx(2 ** 0.5)
    assert abd.plot_fig2(bars, p).is_file()
    said = []
    again = abd.similarity_bars(p, log=said.append)                 # the victims absent: the rows stand in
    assert fake_victims == [0, 2] and len(said) == 2
    assert again.sort_values(["seed", "pair"]).similarity_x100.tolist() == bars.sort_values(["seed", "pair"]).similarity_x100.tolist()
    assert {e["key"] for e in ledger.used_artifacts() if e.get("stood_in")} == set(bars.victim_model)
    # other ABD settings make other bars: measured again, beside the first run's rows
    other = abd.load("params/abd/smoke.yaml", {"results_dir": str(tmp_path / "res"), "seeds": [0, 1, 2],
                                               "ablation_seeds": [0, 2], "defence.settings": {"abd": {"lambda_bd": 3.0}}})
    abd.similarity_bars(other, log=lambda m: None)
    assert fake_victims == [0, 2, 0, 2]
    assert len(pd.read_csv(tmp_path / "res" / "abd" / "fig2_similarity_smoke.csv")) == 4 * len(abd.FIG2_PAIRS)
    # reuse_rows off: measured whatever the file holds
    abd.similarity_bars(abd.load("params/abd/smoke.yaml", {"results_dir": str(tmp_path / "res"), "reuse_rows": False}),
                        log=lambda m: None)
    assert fake_victims[-1] == 0
