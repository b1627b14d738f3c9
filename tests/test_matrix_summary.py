"""The defence matrix's summary: a victim recipe's seeds per defence, paired against the undefended victim."""
import numpy as np
import pandas as pd
import pytest

from paperlib.experiments import matrix_summary as ms


def _victims(keys, lr=1e-4, attack="badnet"):
    return pd.DataFrame([{"attack": attack, "threat_model": "finetune", "scale": "embedded", "base_model": "b0",
                          "attack_params": "{}", "poison_count": 500, "poison_caption": "natural",
                          "finetune_scenes": 50000, "finetune_epochs": 1, "finetune_lr": lr, "seed": s,
                          "victim_model": k} for s, k in enumerate(keys)])


def _matrix(rows):
    """rows: (attack, defence, seed, victim key, asr, ca, lr)."""
    return pd.DataFrame([{"attack": a, "defence": d, "scale": "embedded", "seed": s, "victim_model": v,
                          "asr_top1": asr, "ca_top1": ca, "lr": lr, "device": "cpu",
                          "samples": 0 if d == "none" else 24960}
                         for a, d, s, v, asr, ca, lr in rows])


def test_a_defence_is_paired_seed_by_seed_against_its_own_victim():
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "none", 1, "v1", 90.0, 27.0, np.nan),
                 ("badnet", "ft", 0, "v0", 70.0, 26.0, 1e-4), ("badnet", "ft", 1, "v1", 80.0, 25.0, 1e-4)])
    s = ms.summarise(ms.joined(m, _victims(["v0", "v1"]))).set_index("defence")
    ft, none = s.loc["ft"], s.loc["none"]
    assert ft.seeds == "0 1" and ft.n_paired == 2 and ft.defence_lr == pytest.approx(1e-4)
    # removed per seed: 100-70 = 30 and 90-80 = 10 -> mean 20, SEM std([30, 10]) / sqrt(2) = 10
    assert ft.asr_removed_mean == pytest.approx(20.0) and ft.asr_removed_sem == pytest.approx(10.0)
    assert ft.ca_cost_mean == pytest.approx(1.0)                      # 0 and 2 points of clean top-1
    assert ft.asr_top1_mean == pytest.approx(75.0) and ft.asr_top1_std == pytest.approx(np.std([70, 80], ddof=1))
    assert pd.isna(none.defence_lr) and pd.isna(none.asr_removed_mean)
    # the papers' FT rows for BadNet: CleanerCLIP Table 1 (62.14) to ABD Table II (66.41)
    assert (ft.papers_asr_low, ft.papers_asr_high) == (62.14, 66.41)


def test_rows_of_unknown_victims_and_other_recipes_stay_apart():
    v = pd.concat([_victims(["v0"]), _victims(["w0"], lr=5e-5)])
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "ft", 0, "v0", 60.0, 26.0, 1e-4),
                 ("badnet", "none", 0, "w0", 80.0, 26.0, np.nan), ("badnet", "ft", 0, "w0", 40.0, 26.0, 1e-4),
                 ("badnet", "ft", 0, "old", 5.0, 20.0, 3e-5)])        # its victim is in no victims file
    s = ms.summarise(ms.joined(m, v))
    assert len(s) == 4 and not (s.defence_lr == 3e-5).any()
    ft = s[s.defence == "ft"].set_index("finetune_lr")
    assert ft.loc[1e-4, "asr_removed_mean"] == 40.0 and ft.loc[5e-5, "asr_removed_mean"] == 40.0
    assert ft.n_seeds.tolist() == [1, 1] and ft.asr_removed_sem.isna().all()   # one seed: no standard error


def test_another_budget_at_the_same_lr_is_another_line():
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "cleanclip", 0, "v0", 70.0, 20.0, 1e-4),
                 ("badnet", "cleanclip", 0, "v0", 10.0, 25.0, 1e-4)])
    m.loc[2, "samples"] = 99840                                           # four times the passes
    s = ms.summarise(ms.joined(m, _victims(["v0"])))
    cc = s[s.defence == "cleanclip"].set_index("defence_samples")
    assert cc.loc[24960, "asr_top1_mean"] == 70.0 and cc.loc[99840, "asr_top1_mean"] == 10.0


def test_two_settings_of_one_defence_at_one_budget_are_two_lines():
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "cleanclip", 0, "v0", 70.0, 20.0, 1e-4),
                 ("badnet", "cleanclip", 0, "v0", 40.0, 24.0, 1e-4)])
    m["defence_settings"] = [np.nan, '{"joint_views": false}', '{"joint_views": true}']
    s = ms.summarise(ms.joined(m, _victims(["v0"])))
    cc = s[s.defence == "cleanclip"].set_index("defence_settings")
    assert cc.loc['{"joint_views": true}', "asr_removed_mean"] == 60.0
    assert cc.loc['{"joint_views": false}', "asr_removed_mean"] == 30.0


def test_older_rows_get_their_settings_from_their_models_cache_entries(tmp_path):
    import json
    from paperlib.cache import ArtifactCache
    (tmp_path / "defences").mkdir()
    cache = ArtifactCache(tmp_path / "cache")
    (cache.root / "model" / "m1").mkdir(parents=True)
    (cache.root / "model" / "m1" / "params.json").write_text(json.dumps({"params": {"defence_cfg": {"b": 2, "a": 1}}}))
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "ft", 0, "v0", 70.0, 26.0, 1e-4),
                 ("badnet", "abd", 0, "v0", 2.0, 24.0, 1e-4)])
    m["model"] = ["v0", "m1", "elsewhere"]                                 # abd's model is in no cache here
    m.to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    before = pd.read_csv(tmp_path / "defences" / "matrix.csv")
    assert ms.fill_settings(tmp_path, cache) == 1
    got = pd.read_csv(tmp_path / "defences" / "matrix.csv")
    assert got.defence_settings.tolist()[1] == '{"a": 1, "b": 2}' and got.defence_settings.isna().tolist() == [True, False, True]
    pd.testing.assert_frame_equal(got.drop(columns="defence_settings"), before, check_dtype=False)   # nothing else changed


def test_a_victim_in_no_victims_file_is_known_by_its_rows_own_recipe():
    m = _matrix([("badnet", "none", 0, "gpu0", 99.0, 26.0, np.nan), ("badnet", "ft", 0, "gpu0", 70.0, 26.0, 1e-4),
                 ("badnet", "ft", 0, "old", 5.0, 20.0, 3e-5)])             # no recipe anywhere: left out
    own = _victims(["gpu0"]).drop(columns=["victim_model", "seed"]).iloc[0].to_dict()
    for c, x in own.items():
        if c not in ("attack", "scale"):
            m[c] = [x, x, np.nan]
    s = ms.summarise(ms.joined(m, _victims(["v0"])))                    # the file lists another victim
    assert sorted(s.defence) == ["ft", "none"] and s.set_index("defence").loc["ft", "asr_removed_mean"] == 29.0
    assert (s.poison_count == 500).all() and (s.base_model == "b0").all()


def test_counts_are_written_exactly(tmp_path):
    (tmp_path / "defences").mkdir()
    (tmp_path / "attacks").mkdir()
    _victims(["v0"]).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    m = _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan), ("badnet", "ft", 0, "v0", 70.0, 26.0, 1e-4)])
    m.loc[1, "samples"] = 14976                                            # five digits: %.4g would say 14980
    m.to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    ms.write(tmp_path)
    back = pd.read_csv(tmp_path / "defences" / "matrix_summary.csv")
    assert back.defence_samples.dropna().tolist() == [14976]


def test_written_whole_from_the_files_and_nothing_without_them(tmp_path):
    assert ms.write(tmp_path).empty and not (tmp_path / "defences" / "matrix_summary.csv").exists()
    (tmp_path / "defences").mkdir()
    (tmp_path / "attacks").mkdir()
    _victims(["v0"]).to_csv(tmp_path / "attacks" / "victims.csv", index=False)
    _matrix([("badnet", "none", 0, "v0", 100.0, 26.0, np.nan),
             ("badnet", "abd", 0, "v0", 2.0, 24.0, 1e-4)]).to_csv(tmp_path / "defences" / "matrix.csv", index=False)
    df = ms.write(tmp_path)
    assert sorted(df.defence) == ["abd", "none"]
    assert (tmp_path / "defences" / "matrix_summary.md").read_text().count("| badnet |") == 2
    assert pd.read_csv(tmp_path / "defences" / "matrix_summary.csv").asr_removed_mean.dropna().tolist() == [98.0]


def test_the_command_names_a_bad_argument():
    with pytest.raises(SystemExit, match="results_dir="):
        ms.main(["results=results"])


def test_of_file_settings_keeps_victims_and_the_files_own_defence_rows():
    import dataclasses

    from paperlib.experiments import defences
    from paperlib.experiments.matrix_summary import of_file_settings, settings_json
    p = defences.load("params/defences/smoke.yaml")
    ft = settings_json(p.defence.config("ft", "badnet"))
    cc = p.defence.config("cleanclip", "badnet")
    lr = p.defence.train.lr
    rows = pd.DataFrame({"attack": ["badnet"] * 5,
                         "defence": ["none", "ft", "ft", "cleanclip", "nope"],
                         "defence_settings": [None, ft, ft, settings_json(dataclasses.replace(cc, joint_views=not cc.joint_views)), ft],
                         "defence_lr": [None, lr, lr / 2, lr, lr]})
    assert of_file_settings(rows, p, "defence_lr").tolist() == [True, True, False, False, False]
