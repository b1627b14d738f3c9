"""Where poisoned pairs' losses lie for ABL (paperlib.experiments.abl_losses), on hand-made losses."""
import numpy as np
import pytest

from paperlib.experiments.abl_losses import cells, loss_summary


def test_poisoned_pairs_with_the_lowest_losses_are_what_abl_isolates():
    truth = np.zeros(100, bool)
    truth[:3] = True
    losses = np.arange(100, dtype=float)            # the poisoned pairs hold the three lowest losses
    s = loss_summary(losses, truth, isolation_ratio=0.05)
    assert s["low_loss_auroc"] == 100.0 and s["poisoned_isolated"] == 3 and s["tpr"] == 100.0
    assert s["poisoned_pct_median"] == pytest.approx(100 / 99) and s["loss_poisoned_median"] == 1.0
    assert s["loss_benign_median"] == 51.0 and (s["n_pairs"], s["n_poisoned"]) == (100, 3)


def test_poisoned_pairs_with_the_highest_losses_are_never_isolated():
    truth = np.zeros(100, bool)
    truth[-4:] = True                                # the four highest losses
    s = loss_summary(np.arange(100, dtype=float), truth, isolation_ratio=0.5)
    assert s["low_loss_auroc"] == 0.0 and s["poisoned_isolated"] == 0 and s["tpr"] == 0.0
    assert s["poisoned_pct_median"] == pytest.approx(100 * 97.5 / 99)


def test_a_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="truth"):
        loss_summary(np.zeros(5), np.zeros(4, bool), 0.01)


def test_the_cells_are_table_3s_attacks_and_counts_at_its_abl_seeds():
    from paperlib.experiments import cfbd
    p = cfbd.load("params/cfbd/embedded.yaml")
    got = cells(p)
    assert len(got) == len(p.rate_attacks) * len(p.rate_counts) * len(p.rate_abl_seeds)
    assert {s for _, _, s in got} == set(p.rate_abl_seeds)


def test_the_summary_shows_mean_and_std_over_the_seeds_of_each_model(tmp_path):
    import pandas as pd

    from paperlib.experiments import abl_losses, cfbd
    p = cfbd.load("params/cfbd/smoke.yaml", {"results_dir": str(tmp_path)})
    assert abl_losses.summary(p).empty                              # nothing measured yet
    rows = [{"attack": "badnet", "poison_count": 30, "scale": p.scale, "seed": s, "abl_epochs": 1.0, "model_role": role,
             "model": f"m{s}{role}", "low_loss_auroc": auroc + s, "poisoned_pct_median": 99.0, "tpr": 0.0}
            for s in (0, 1) for role, auroc in (("clean_base", 1.0), ("abl_isolation", 5.0))]
    (tmp_path / "detection").mkdir()
    pd.DataFrame(rows + [{**rows[0], "scale": "other"}]).to_csv(tmp_path / "detection" / abl_losses.FILE, index=False)
    s = abl_losses.summary(p).set_index("model_role")
    assert s.loc["clean_base", "low_loss_auroc"] == "1.5 ± 0.7" and s.loc["abl_isolation", "seeds"] == "0 1"
    assert s.loc["abl_isolation", "abl_tpr"] == "0.0 ± 0.0" and len(s) == 2
