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
