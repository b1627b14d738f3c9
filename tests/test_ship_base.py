"""The shipped clean base: written in fp16 beside its record, imported into the cache under a key
of its full hash on any machine, refused by name when changed or made for another model."""
import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_a_shipped_base_is_imported_checked_and_used(tmp_path, monkeypatch):
    from paperlib.experiments import foundation
    from paperlib.experiments.common import clean_base, clean_base_unbuilt
    from paperlib.experiments.ship_base import ship
    from paperlib.models import CheckpointError, read_safetensors
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    p = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml", {"results_dir": str(tmp_path / "res")})
    record = ship(p, "smoke-base", tmp_path / "bases", log=lambda *a: None)
    weights = tmp_path / "bases" / "smoke-base.safetensors"
    assert json.loads(weights.with_suffix(".json").read_text())["sha256"] == record["sha256"]
    assert all(v.dtype.is_floating_point is False or str(v.dtype) == "torch.float16"
               for v in read_safetensors(weights).values())
    rows = pd.read_csv(tmp_path / "res" / "base" / "zeroshot.csv")
    assert set(rows.model) == {"shipped_base"} and (rows.base_model == record["base_model"]).all()
    # a parameter file naming it builds on it: same artifact, known without training
    q = foundation.load(ROOT / "params" / "foundation" / "smoke.yaml", {"base_checkpoint": str(weights)})
    base = clean_base(q)
    assert base.key_params["role"] == "shipped_base" and base.path.name == record["base_model"]
    assert clean_base_unbuilt(q).path == base.path
    # a fresh cache imports it again under the same key
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache2"))
    assert clean_base(q).path.name == record["base_model"]
    # a changed file, or a record for another model, is refused naming the file
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache3"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="smoke-base.safetensors: SHA-256"):
        clean_base(q)
    rec = json.loads(weights.with_suffix(".json").read_text())
    weights.with_suffix(".json").write_text(json.dumps({**rec, "model": "RN50"}))
    with pytest.raises(CheckpointError, match="says model 'RN50'"):
        clean_base(q)


def test_other_json_beside_a_weights_file_is_not_a_shipped_record(tmp_path):
    from paperlib.models import CheckpointError
    from paperlib.pipeline import is_shipped_record
    cfg = tmp_path / "RN50.json"
    cfg.write_text(json.dumps({"embed_dim": 1024, "vision_cfg": {}, "text_cfg": {}}))   # an open_clip config
    assert not is_shipped_record(cfg) and not is_shipped_record(tmp_path / "absent.json")
    assert is_shipped_record(cfg) is False
    cfg.write_text(json.dumps({"model": "RN50", "sha256": "ab", "source_key": "cd"}))
    assert is_shipped_record(cfg)
    cfg.write_text("{not json")
    with pytest.raises(CheckpointError, match="RN50.json: not a readable JSON record"):
        is_shipped_record(cfg)


def test_the_shipped_embedded_base_matches_its_record(tmp_path):
    """The committed base imports under the key its record names (its hash checked in full)."""
    from paperlib.cache import ArtifactCache
    from paperlib.pipeline import shipped_base
    weights = ROOT / "paperlib" / "bases" / "tiny-rn64-embedded.safetensors"
    record = json.loads(weights.with_suffix(".json").read_text())
    assert weights.stat().st_size <= 30 * 1024 * 1024
    base = shipped_base("tiny-rn64", weights, ArtifactCache(tmp_path))
    assert base.path.name == record["base_model"] and (base.path / "model.safetensors").is_file()
    rows = pd.read_csv(ROOT / "results" / "base" / "zeroshot.csv")
    shipped = rows[(rows.model == "shipped_base") & (rows.base_model == record["base_model"])]
    assert dict(zip(shipped.split, shipped.top1)) == pytest.approx(
        {k: round(v, 2) for k, v in record["zeroshot_top1"].items()}, abs=0.01)


def test_a_shipped_base_shows_the_data_ablation_rows_that_chose_its_data(tmp_path):
    """With base_checkpoint the data variants are not pre-trained again; the notebook shows the
    rows already in the results folder, of this scale and these variants only."""
    import pandas as pd

    from paperlib.experiments import foundation
    (tmp_path / "foundation").mkdir()
    rows = [{"variant": v, "split": "imagenet_analog", "scale": sc, "seed": 0, "top1": t}
            for v, sc, t in [("one_style_plain_bg", "embedded", 3.0), ("two_styles_plain_bg", "embedded", 4.0),
                             ("two_styles_plain_bg", "smoke", 9.0), ("gone_variant", "embedded", 5.0)]]
    pd.DataFrame(rows).to_csv(tmp_path / "foundation" / "data_ablation.csv", index=False)
    p = foundation.load(ROOT / "params" / "foundation" / "embedded.yaml", {"results_dir": str(tmp_path)})
    assert p.base_checkpoint and "two_styles_plain_bg" in p.data_ablation.variants
    got = foundation.committed_data_ablation(p)
    assert sorted(got.variant) == ["one_style_plain_bg", "two_styles_plain_bg"] and set(got.scale) == {"embedded"}
    empty = foundation.load(ROOT / "params" / "foundation" / "embedded.yaml", {"results_dir": str(tmp_path / "none")})
    assert foundation.committed_data_ablation(empty) is None


def test_foundation_targets_read_only_this_runs_base_and_victim(tmp_path):
    """zeroshot.csv and victims.csv keep rows of other bases and attacks: the targets must not
    average them in (the old base's 16.8 % beside the shipped 27.9 %, another attack's victim)."""
    import pandas as pd

    from paperlib.experiments import foundation
    p = foundation.load(ROOT / "params" / "foundation" / "embedded.yaml", {"results_dir": str(tmp_path)})
    zs = pd.DataFrame([{"model": "clean_base", "split": "imagenet_analog", "scale": "embedded", "top1": t,
                        "top5": t + 20, "base_model": b} for t, b in [(16.8, "old"), (27.9, "shipped")]])
    vic = pd.DataFrame([{"attack": a, "scale": "embedded", "seed": s, "poison_count": 500, "asr_top1": asr,
                         "ca_top1": 26.0, "base_ca_top1": 27.9, "victim_model": m}
                        for a, s, asr, m in [("badnet", 0, 98.0, "v0"), ("wanet", 0, 5.0, "v1"),
                                             ("badnet", 1, 10.0, "other"), ("badnet", 1, 96.0, "v2")]])
    out = {"zeroshot": zs, "victims": vic, "base_summary": {"seconds": 600.0}, "base_model": "shipped",
           "victim_models": ["v0", "v2"]}
    targets = foundation.check_targets(out, p).set_index("target")
    assert targets.loc["BadNet victim ASR top-1 >= 90%", "over"] == "seeds 0, 1, mean over seeds"
    t = targets["measured"]
    assert t["shipped clean base zero-shot top-1 >= 25% (imagenet_analog; issue 22)"] == 27.9
    assert t["BadNet victim ASR top-1 >= 90%"] == 97.0             # the mean over this run's two victims
