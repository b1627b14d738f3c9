"""The GPU-seeds driver: parameters it writes, rows it merges and compares (no training here)."""
from pathlib import Path

import pandas as pd
import pytest

from paperlib.experiments import parallel_seeds as ps

ROOT = Path(__file__).resolve().parents[1]


def test_fp32_params_force_fp32_everywhere_and_keep_the_cache_keys(tmp_path):
    from paperlib.experiments.defences import load
    raw = ps.fp32_params(ROOT / "params" / "defences" / "embedded.yaml", [1, 2], ["blended", "badnet"], "cpu", 4)
    assert raw["seeds"] == [1, 2] and raw["device"] == "cpu" and raw["data"]["workers"] == 4
    assert [v["attack"] for v in raw["victims"]] == ["badnet", "blended"]          # the file's order
    assert raw["pretrain"]["precision"] == "fp32" and raw["defence"]["train"]["precision"] == "fp32"
    assert all(v["finetune"]["precision"] == "fp32" for v in raw["victims"]) and raw["defence"]["ft_lrs"] == []
    # trained on a GPU, the keys are the file's own as an fp32 machine resolves them: only the
    # precision is forced, so the 2-core CPU's cached base and seed-0 rows are the same experiment
    forced = load(ps._write(raw, tmp_path / "p.yaml"))
    plain = load(ROOT / "params" / "defences" / "embedded.yaml")
    assert forced.pretrain.key("cuda") == {**plain.pretrain.key("cpu"), "precision": "fp32"}
    assert forced.defence.train.key("cuda") == {**plain.defence.train.key("cpu"), "precision": "fp32"}
    assert forced.victims[0].finetune.key("cuda") == {**plain.victims[0].finetune.key("cpu"), "precision": "fp32"}
    with pytest.raises(SystemExit, match="nope"):
        ps.fp32_params(ROOT / "params" / "defences" / "embedded.yaml", [1], ["nope"])


def _rows(seed, device, asr, models):
    return [{"attack": "badnet", "defence": d, "scale": "embedded", "seed": seed, "model": m, "device": device,
             **{f"{k}_top{n}": asr for k in ("ca", "asr") for n in (1, 3, 5, 10)}, "wall_s": 1.0, "samples": 10}
            for d, m in models.items()]


def test_merge_takes_only_the_given_seeds_and_compare_pairs_same_models(tmp_path):
    for job, seed in (("a", 1), ("b", 2)):
        (tmp_path / "work" / job / "defences").mkdir(parents=True)
        pd.DataFrame(_rows(seed, "GPU", 10.0 * seed, {"none": f"v{seed}", "ft": f"f{seed}"})
                     + _rows(0, "GPU", 99.0, {"none": "v0"})).to_csv(tmp_path / "work" / job / "defences" / "matrix.csv", index=False)
    into = tmp_path / "matrix.csv"
    pd.DataFrame(_rows(0, "cpu", 5.0, {"none": "v0"})).to_csv(into, index=False)
    assert ps.merge(tmp_path / "work", [1, 2], into) == 4
    m = pd.read_csv(into)
    assert sorted(m.seed) == [0, 1, 1, 2, 2] and m[m.seed == 0].asr_top1.tolist() == [5.0]   # seed 0 untouched
    other = tmp_path / "cpu.csv"   # seed 1 again on another device: one model the same, one not
    pd.DataFrame(_rows(1, "cpu", 12.0, {"none": "v1", "ft": "another"})).to_csv(other, index=False)
    out = ps.compare_devices(other, [1], tmp_path / "check.csv", into)
    assert sorted(zip(out.defence, out.device, out.asr_top1)) == [("none", "GPU", 10.0), ("none", "cpu", 12.0)]


def test_merge_leaves_a_published_row_of_another_device_and_compare_still_pairs_it(tmp_path):
    (tmp_path / "work" / "a" / "defences").mkdir(parents=True)
    pd.DataFrame(_rows(1, "GPU", 30.0, {"none": "v1", "ft": "f1"})).to_csv(
        tmp_path / "work" / "a" / "defences" / "matrix.csv", index=False)
    into = tmp_path / "matrix.csv"
    pd.DataFrame(_rows(1, "cpu", 20.0, {"none": "v1"})).to_csv(into, index=False)   # v1 published from the CPU
    assert ps.merge(tmp_path / "work", [1], into) == 1                             # only f1 comes in
    m = pd.read_csv(into).set_index("model")
    assert m.loc["v1", "device"] == "cpu" and m.loc["v1", "asr_top1"] == 20.0 and m.loc["f1", "device"] == "GPU"
    # the GPU's f1 is in the matrix now; comparing the GPU rows must not pair f1 with itself
    out = ps.compare_devices(tmp_path / "work" / "a" / "defences" / "matrix.csv", [1], tmp_path / "check.csv", into)
    assert sorted(zip(out.model, out.device, out.asr_top1)) == [("v1", "GPU", 30.0), ("v1", "cpu", 20.0)]


def test_pairs_are_attack_seed_in_the_order_given():
    raw = {"victims": [{"attack": "badnet"}, {"attack": "sig"}]}
    assert ps.parse_pairs(["sig:2", "badnet:0"], raw) == [("sig", 2), ("badnet", 0)]
    for bad in ("wanet:0", "sig", "sig:x"):
        with pytest.raises(SystemExit, match="attack:seed"):
            ps.parse_pairs([bad], raw)
    with pytest.raises(SystemExit, match="named twice"):
        ps.parse_pairs(["sig:1", "sig:1"], raw)


def test_compare_keeps_the_cpu_rows_when_the_other_file_holds_a_cpu_row_too(tmp_path):
    """Only rows equal to the other file's (same key and device) are set aside as merged already."""
    into = tmp_path / "matrix.csv"
    pd.DataFrame(_rows(1, "cpu", 20.0, {"none": "v1", "ft": "f1"}) + _rows(1, "GPU", 30.0, {"ft": "f1"})).to_csv(into, index=False)
    other = tmp_path / "gpu.csv"
    pd.DataFrame(_rows(1, "GPU", 30.0, {"none": "v1", "ft": "f1"}) + _rows(1, "cpu", 5.0, {"ft": "g1"})).to_csv(other, index=False)
    out = ps.compare_devices(other, [1], tmp_path / "check.csv", into)
    assert sorted(zip(out.model, out.device)) == [("f1", "GPU"), ("f1", "cpu"), ("v1", "GPU"), ("v1", "cpu")]


def test_jobs_past_the_lendings_end_are_not_started(tmp_path):
    raw = {"victims": [{"attack": "sig"}], "seeds": [0, 1]}
    assert ps.run_jobs(raw, tmp_path, jobs=2, deadline_s=-5.0) == [
        {"job": "sig_seed0", "rc": None, "seconds": 0.0}, {"job": "sig_seed1", "rc": None, "seconds": 0.0}]


def test_bundle_banks_cut_to_the_kept_classes_render_the_same_scenes(tmp_path, monkeypatch):
    """What travels to a lent GPU (a vocabulary snapshot, banks of the kept classes only) renders
    scenes identical to the full banks'."""
    from dataclasses import replace

    import numpy as np

    from paperlib.cache import ArtifactCache
    from paperlib.data import splits
    from paperlib.experiments.defences import load
    raw = ps.fp32_params(ROOT / "params" / "defences" / "smoke.yaml", [0], None, "cpu", 1)
    written = ps.bundle(raw, tmp_path / "bundle", triggers=False)   # (the triggers: the test below)
    data = replace(load(tmp_path / "bundle" / "params.yaml").data, train_scenes=40)   # the bundle is for its own data seed
    splits._vocab_and_banks.cache_clear()
    full = np.asarray(splits.get_split("cc3m_analog", data, ArtifactCache(tmp_path / "full")).images)
    cut = tmp_path / "cut" / "sprites"
    cut.mkdir(parents=True)
    for path in written[1:]:
        (cut / path.name).write_bytes(path.read_bytes())
    from paperlib.assets import cache_root
    for path in written[1:]:   # smoke keeps 40 classes: the cut banks hold fewer sprites than the full ones
        with np.load(path) as small, np.load(cache_root() / "sprites" / path.name) as whole:
            assert 0 < len(small["class_ids"]) < len(whole["class_ids"])
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cut"))
    monkeypatch.setenv("PAPERLIB_VOCABULARY", str(written[0]))
    splits._vocab_and_banks.cache_clear()
    try:
        again = np.asarray(splits.get_split("cc3m_analog", data, ArtifactCache(tmp_path / "cut")).images)
    finally:
        splits._vocab_and_banks.cache_clear()
    assert again.shape == full.shape and np.array_equal(again, full)


def test_victims_of_the_attack_suite_are_paired_with_the_matrix_rows_of_their_key(tmp_path):
    from paperlib.experiments.common import clean_base, victim_model_name
    from paperlib.experiments.defences import load
    params = ROOT / "params" / "defences" / "embedded-victims.yaml"
    p = load(params)
    v = next(x for x in p.victims if x.attack == "sig")
    key = victim_model_name(p, clean_base(p), v, 1)
    recipe = {"threat_model": "finetune", "attack_params": "{}", "poison_count": v.poison.poison_count,
              "finetune_scenes": v.finetune_scenes, "finetune_lr": v.finetune.lr, "finetune_epochs": v.finetune.epochs,
              "train_seconds": 5.0}
    suite = pd.DataFrame([{**_rows(1, "x", 40.0, {"none": "-"})[0], **recipe, "attack": "sig", "victim_model": key},
                          {**_rows(1, "x", 41.0, {"none": "-"})[0], **recipe, "attack": "sig", "poison_count": 7,
                           "victim_model": "another-recipe"}])
    suite.drop(columns=["model", "device", "defence"]).to_csv(tmp_path / "victims.csv", index=False)
    matrix = pd.DataFrame([{**r, "attack": "sig"} for r in _rows(1, "NVIDIA H200", 60.0, {"none": key, "ft": "f"})
                           + _rows(1, "AMD EPYC", 50.0, {"none": key})])
    matrix.to_csv(tmp_path / "matrix.csv", index=False)
    out = ps.compare_victims(params, tmp_path / "victims.csv", tmp_path / "matrix.csv", tmp_path / "check.csv")
    # the suite's row of the file's recipe (not the poison_count-7 one) beside the GPU's, never the CPU matrix row
    assert sorted(zip(out.device, out.asr_top1, out.model)) == [("NVIDIA H200", 60.0, key),
                                                                 ("cpu (attack suite)", 40.0, key)]


def test_cfbd_jobs_take_one_victim_at_one_seed_and_load(tmp_path):
    """A CFBD job: its attack's victim at its seed, rows only; Table 3's rates only at the file's
    seeds, the mapping ablation only at the first; the parameters load (fp32 forced, no defence
    section added)."""
    from paperlib.experiments import cfbd, cfbd_jobs
    path = ROOT / "params" / "cfbd" / "embedded.yaml"
    raw = ps.fp32_params(path, [0, 1, 2, 3], None, "cpu", 2, module="cfbd")
    assert "defence" not in raw and all(v["finetune"]["precision"] == "fp32" for v in raw["victims"])
    file_seeds = [0, 1, 2]                        # the file's (the command line's may be BadNet's 3-4)
    first = cfbd_jobs.job_params(raw, "badnet", 0, tmp_path, None, file_seeds)
    assert [v["attack"] for v in first["victims"]] == ["badnet"] and first["seeds"] == [0] and first["rows_only"]
    assert first["rate_attacks"] == ["badnet"] and first["mapping_ablation"] == raw["mapping_ablation"]
    assert cfbd_jobs.job_params(raw, "badnet", 1, tmp_path, None, file_seeds)["mapping_ablation"] == []
    # BadNet's extra seeds (--pairs badnet:3 badnet:4 makes the command line's seeds [3, 4]): no rates,
    # no mapping ablation
    extra = cfbd_jobs.job_params({**raw, "seeds": [3, 4]}, "badnet", 3, tmp_path, None, file_seeds)
    assert extra["rate_attacks"] == [] and extra["mapping_ablation"] == []
    assert cfbd_jobs.job_params(raw, "sig", 0, tmp_path, None, file_seeds)["rate_attacks"] == []   # SIG is not one of Table 3's
    one = cfbd_jobs.job_params(raw, "sig", 2, tmp_path, tmp_path / "shared", file_seeds)
    assert one["results_dir"] == str(tmp_path / "shared")   # every job writes into the shared folder
    p = cfbd.load(ps._write(one, tmp_path / "p.yaml"))
    assert p.rows_only and [v.attack for v in p.victims] == ["sig"] and p.figure_attack == "sig"


def test_each_module_s_jobs_get_their_own_parameters_and_results_folder(tmp_path, monkeypatch):
    """run_jobs starts one process per (attack, seed) of the module named: the defence matrix's
    jobs each write into their own folder, CFBD's all into the shared one (processes faked)."""
    import yaml
    started = []

    class Done:
        def __init__(self, cmd, **kw):
            started.append(cmd)

        def poll(self):
            return 0

    monkeypatch.setattr(ps.subprocess, "Popen", Done)
    monkeypatch.setattr(ps.time, "sleep", lambda s: None)
    raw = {"victims": [{"attack": "sig"}, {"attack": "badnet"}], "seeds": [0, 1], "mapping_ablation": ["lm"]}
    done = ps.run_jobs(raw, tmp_path / "m", jobs=2, deadline_s=60, pairs=[("sig", 1)])
    assert [d["job"] for d in done] == ["sig_seed1"] and started[0][2] == "paperlib.experiments.defences"
    one = yaml.safe_load((tmp_path / "m" / "sig_seed1" / "params.yaml").read_text())
    assert one["results_dir"] == str(tmp_path / "m" / "sig_seed1") and one["seeds"] == [1]
    shared = tmp_path / "shared"
    done = ps.run_jobs(raw, tmp_path / "c", jobs=2, deadline_s=60, module="cfbd", results=shared, file_seeds=[0, 1])
    assert sorted(d["job"] for d in done) == ["badnet_seed0", "badnet_seed1", "sig_seed0", "sig_seed1"]
    assert started[-1][2] == "paperlib.experiments.cfbd"
    for name in ("sig_seed0", "badnet_seed1"):
        one = yaml.safe_load((tmp_path / "c" / name / "params.yaml").read_text())
        assert one["results_dir"] == str(shared) and one["rows_only"] and len(one["victims"]) == 1
    assert ps.job_kind("cfbd").shared_results and not ps.job_kind("defences").shared_results
    with pytest.raises(SystemExit, match="valid are cfbd, defences"):
        ps.job_kind("nope")


def test_a_cfbd_job_outside_table_3_sweeps_no_rate_and_writes_no_rate_row(tmp_path):
    """A job of an attack Table 3 does not sweep gets an empty rate table (it raised a KeyError)."""
    from paperlib.experiments import cfbd, cfbd_jobs
    raw = ps.fp32_params(ROOT / "params" / "cfbd" / "smoke.yaml", [0], None, "cpu", 1, module="cfbd")
    outside = next(v["attack"] for v in raw["victims"] if v["attack"] not in raw["rate_attacks"])
    p = cfbd.load(ps._write(cfbd_jobs.job_params(raw, outside, 0, tmp_path, tmp_path, [0]), tmp_path / "p.yaml"))
    assert not p.rate_attacks
    rates = cfbd.rate_sweep(p, screener=None)
    assert rates.empty and {"attack", "poison_count", "method", "tpr", "victim_model"} <= set(rates.columns)
    assert not (tmp_path / "cfbd").exists()


def test_the_bundle_carries_this_machine_s_fitted_triggers_and_they_import(tmp_path, monkeypatch):
    """Each fitted trigger of the file's victims is exported once, laid out like a cache, and a
    machine importing it gets the same artifact under the same key (so it poisons the same pairs)."""
    from types import SimpleNamespace

    import torch
    from safetensors.torch import save_file

    from paperlib.cache import ArtifactCache, import_artifacts
    from paperlib.experiments import common
    here = ArtifactCache(tmp_path / "here")
    monkeypatch.setenv("PAPERLIB_CACHE", str(here.root))
    key = {"attack": "ssba", "cfg": {"a": 1}}
    path = here.get_or_build("trigger", key, lambda work: save_file({"w": torch.ones(3)}, str(work / "trigger.safetensors")))
    fitted = {"ssba": SimpleNamespace(trigger_path=path), "badnet": SimpleNamespace()}   # BadNet fits nothing
    monkeypatch.setattr(common, "clean_base", lambda p: None)
    monkeypatch.setattr(common, "victim_attack", lambda p, base, v: fitted[v.attack])
    p = SimpleNamespace(victims=[SimpleNamespace(attack=a) for a in ("ssba", "badnet", "ssba")])
    out = ps.carry_triggers(p, tmp_path / "bundle" / "cache")
    assert [o.relative_to(tmp_path / "bundle" / "cache").parts for o in out] == [("trigger", path.name)]
    there = ArtifactCache(tmp_path / "there")
    assert [q.name for q in import_artifacts(there, tmp_path / "bundle" / "cache")] == [path.name]
    assert there.exists("trigger", key)
    assert (there.path("trigger", key) / "trigger.safetensors").read_bytes() == (path / "trigger.safetensors").read_bytes()
    assert ps.carry_triggers(SimpleNamespace(victims=[SimpleNamespace(attack="badnet")]), tmp_path / "none") == []
