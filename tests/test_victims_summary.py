"""The victims' summary: a recipe's seeds condensed into one line beside the papers' band."""
import pandas as pd
import pytest

from paperlib.experiments import victims_summary as vs


def _rows(attack, lr, asr, ca, seeds=None):
    seeds = seeds or list(range(len(asr)))
    return [{"attack": attack, "threat_model": "finetune", "scale": "embedded", "base_model": "b0",
             "attack_params": "{}", "poison_count": 500, "poison_caption": "natural", "finetune_scenes": 50000,
             "finetune_epochs": 1, "finetune_lr": lr, "seed": s, "poison_rate": 1.0, "asr_top1": a, "ca_top1": c,
             "base_ca_top1": 28.0, "base_asr_top1": 0.5, "clean_asr_top1": 0.2} for s, a, c in zip(seeds, asr, ca)]


def test_each_recipe_becomes_one_line_with_its_seeds_mean_and_spread():
    rows = pd.DataFrame(_rows("badnet", 1e-4, [90, 95, 100], [25, 26, 27]) + _rows("badnet", 5e-5, [70], [26]))
    s = vs.summarise(rows).set_index("finetune_lr")
    one, other = s.loc[1e-4], s.loc[5e-5]
    assert one.seeds == "0 1 2" and one.n_seeds == 3
    assert one.asr_top1_mean == pytest.approx(95) and one.asr_top1_std == pytest.approx(5)
    assert one.ca_drop_mean == pytest.approx(2) and one.base_asr_top1 == 0.5
    assert other.n_seeds == 1 and pd.isna(other.asr_top1_std)          # one seed: no spread
    # the papers' NoDefense band of the attack (BadNet: every paper prints one)
    assert 0 < one.papers_asr_low <= one.papers_asr_high <= 100 and one.papers_sources


def test_a_later_run_adds_its_recipes_and_keeps_the_others(tmp_path):
    vs.write(_rows("badnet", 1e-4, [90, 95, 100], [25, 26, 27]), tmp_path)
    df = vs.write(_rows("blended", 1e-4, [99, 100], [25, 25]), tmp_path)
    assert sorted(df.attack) == ["badnet", "blended"]
    assert (tmp_path / "attacks" / "victims_summary.md").read_text().count("| badnet |") == 1
    again = vs.write(_rows("blended", 1e-4, [97, 98, 99], [25, 25, 25]), tmp_path)   # more seeds replace
    assert again.set_index("attack").loc["blended", "n_seeds"] == 3 and len(again) == 2


def test_a_run_of_one_more_seed_keeps_the_recipes_other_seeds(tmp_path):
    every = pd.DataFrame(_rows("badnet", 1e-4, [90, 95, 100, 99], [25, 26, 27, 26]))
    vs.write(every.iloc[:3], tmp_path, every.iloc[:3])
    df = vs.write(every.iloc[3:], tmp_path, every)           # seed 3 alone, the file holding 0-3
    assert df.set_index("attack").loc["badnet", "seeds"] == "0 1 2 3"


def test_a_run_without_fine_tuning_victims_writes_no_summary(tmp_path):
    assert vs.write([{"attack": "badnet", "threat_model": "pretrain", "seed": 0, "asr_top1": 10.0}], tmp_path) is None
    assert not (tmp_path / "attacks" / "victims_summary.csv").exists()
