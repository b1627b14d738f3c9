"""EftCLIP's pre-training victims as a lending's jobs (issue 23, Table 5 as the paper's): a job's rows
must carry the settings digest, victim keys and blocks the notebook looks for on the CPU; Table 5
reads one threat model's rows; the pieces that let the jobs run on the lent GPU's image."""
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from paperlib.experiments import eftclip_jobs, parallel_seeds
from paperlib.train.loop import CUDA_AUTO_PRECISION_ENV, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_T5 = [   # Table 5's pre-training entries (params/eftclip/embedded.yaml holds them too)
    {"attack": "wanet", "attack_params": {"k": 64, "s": 1.0}, "poison": {"target": "banana", "poison_count": 1000}},
    {"attack": "trojannn", "attack_params": {"patch_fraction": 0.25, "position": "bottom_right"},
     "poison": {"target": "banana", "poison_count": 1000}},
]


def _table5_pretrain_file(tmp_path) -> Path:
    raw = yaml.safe_load((ROOT / "params" / "eftclip" / "embedded.yaml").read_text())
    have = {v["attack"] for v in raw["pretrain_victims"]}
    raw["pretrain_victims"] = raw["pretrain_victims"] + [v for v in PRETRAIN_T5 if v["attack"] not in have]
    raw["table5_attacks"] = ["badnet", "wanet", "trojannn"]
    raw.update(pretrain_seeds=[0, 1, 2], table5_threat="pretrain")
    path = tmp_path / "embedded.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_resolve_precision_on_cuda_follows_the_environment(monkeypatch):
    monkeypatch.delenv(CUDA_AUTO_PRECISION_ENV, raising=False)
    assert resolve_precision("auto", "cuda") == "bf16"
    monkeypatch.setenv(CUDA_AUTO_PRECISION_ENV, "fp32")
    assert resolve_precision("auto", "cuda") == "fp32"
    assert resolve_precision("bf16", "cuda") == "bf16"   # an explicit precision is kept
    assert resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.setenv(CUDA_AUTO_PRECISION_ENV, "fp16")
    with pytest.raises(ValueError, match=CUDA_AUTO_PRECISION_ENV):
        resolve_precision("auto", "cuda")


def test_a_job_s_rows_carry_the_notebook_s_digest_keys_and_blocks(tmp_path, monkeypatch):
    """The job runs on CUDA under fp32 sections rewritten to the file's words; with the environment
    the lending sets its digest, victim keys and blocks equal the CPU notebook's, without it not."""
    import torch

    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.experiments.common import clean_base, pretrain_victim_key, victim_config
    from paperlib.experiments.eftclip import load
    from paperlib.experiments.eftclip_reuse import _block
    from paperlib.experiments.eftclip_setup import settings_digest
    path = _table5_pretrain_file(tmp_path)
    notebook = load(path)
    raw = parallel_seeds.fp32_params(path, [0, 1, 2], ["badnet", "wanet", "trojannn"], module="eftclip")
    base = clean_base(notebook)

    def made_by(p, attack, seed, device):
        monkeypatch.setattr(pl, "resolve_device", lambda d: torch.device(device))
        key = artifact_key("model", pretrain_victim_key(p, base, victim_config(p, attack, "pretrain"), seed))
        digest = settings_digest(p)
        return key, digest, _block(p, "pretrain", attack, seed, key, digest)

    for attack, seed in (("wanet", 1), ("badnet", 2), ("trojannn", 0)):
        job_file = tmp_path / f"{attack}{seed}.yaml"
        job_file.write_text(yaml.safe_dump(eftclip_jobs.job_params(raw, attack, seed, tmp_path, tmp_path / "r")))
        job = load(job_file)
        assert job.device == "cuda" and job.only_threat == "pretrain"
        assert [v.attack for v in job.pretrain_victims] == [attack] and job.table5_attacks == (attack,)
        want = made_by(notebook, attack, seed, "cpu")
        monkeypatch.setenv(CUDA_AUTO_PRECISION_ENV, "fp32")
        assert made_by(job, attack, seed, "cuda") == want
        monkeypatch.delenv(CUDA_AUTO_PRECISION_ENV)
        key, digest, _ = made_by(job, attack, seed, "cuda")
        assert key != want[0] and digest != want[1]   # bf16 on the GPU: other models, other settings


def test_pretrain_blocks_keep_their_digest_unless_table5_reads_them(tmp_path):
    """Blocks published before Table 5 could be of pre-training victims keep their digest (their rows
    stand in as before); with table5_threat pretrain the block names Table 5, whatever the ablation seeds."""
    from paperlib.experiments.eftclip import load
    from paperlib.experiments.eftclip_reuse import _block
    before = load(ROOT / "params" / "eftclip" / "embedded.yaml", {"table5_threat": "finetune"})
    other_ablation = load(ROOT / "params" / "eftclip" / "embedded.yaml", {"table5_threat": "finetune", "ablation_seeds": [0, 1]})
    assert _block(before, "finetune", "badnet", 1, "m", "s") != _block(other_ablation, "finetune", "badnet", 1, "m", "s")
    t5 = load(_table5_pretrain_file(tmp_path))
    t5_abl = load(_table5_pretrain_file(tmp_path), {"ablation_seeds": [0, 1]})
    assert _block(t5, "pretrain", "badnet", 1, "m", "s") == _block(t5_abl, "pretrain", "badnet", 1, "m", "s")
    assert _block(t5, "pretrain", "badnet", 0, "m", "s") != _block(before, "pretrain", "badnet", 0, "m", "s")
    assert _block(t5, "finetune", "badnet", 0, "m", "s") == _block(before, "finetune", "badnet", 0, "m", "s")


def test_the_published_blocks_are_found_at_the_committed_parameters():
    """Every block of the committed results at the embedded file's settings hashes, at today's code
    and parameters, to the block its rows carry: the rows stand in for their absent models (a change
    of what _block reads orphans them, and a fresh clone would retrain them).  Rows of blocks no
    longer asked for (Tables 3-4 of the pre-training victims before Table 5 read them) may stay."""
    from paperlib.experiments.eftclip import load
    from paperlib.experiments.eftclip_reuse import _block
    from paperlib.experiments.eftclip_setup import settings_digest
    p = load(ROOT / "params" / "eftclip" / "embedded.yaml")
    digest = settings_digest(p)
    rows = pd.read_csv(ROOT / "results" / "eftclip" / "curation.csv", dtype=str, keep_default_na=False)
    rows = rows[rows.settings == digest]
    assert len(rows) >= 15 and set(rows.threat_model) == {"finetune", "pretrain"}
    for r in rows[rows.threat_model == "finetune"].itertuples():
        assert r.block == _block(p, r.threat_model, r.attack, int(r.seed), r.victim_model, digest), r
    found = {(r.attack, int(r.seed)) for r in rows[rows.threat_model == "pretrain"].itertuples()
             if r.block == _block(p, "pretrain", r.attack, int(r.seed), r.victim_model, digest)}
    assert found == {(v.attack, s) for v in p.pretrain_victims for s in p.pretrain_seed_list}


def test_a_job_s_file_validates_whatever_pairs_the_command_line_names(tmp_path):
    """The data and warm steps load the jobs' shared parameter file: with a few pairs (the ones a
    budget stopped, run again) it keeps a BadNet victim and every Table 5 attack's, and the
    pre-training seeds among the command line's; a file without table5_attacks gets the default."""
    from paperlib.experiments.eftclip import load
    path = _table5_pretrain_file(tmp_path)
    raw = yaml.safe_load(path.read_text())
    del raw["table5_attacks"]
    if "trojannet" not in {v["attack"] for v in raw["pretrain_victims"]}:
        raw["pretrain_victims"].append({"attack": "trojannet", "attack_params": {"patch_fraction": 0.25,
                                        "position": "bottom_right"}, "poison": {"target": "banana", "poison_count": 1000}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    shared = parallel_seeds.fp32_params(path, [1], ["wanet"], module="eftclip")
    (tmp_path / "shared.yaml").write_text(yaml.safe_dump(shared))
    p = load(tmp_path / "shared.yaml")
    assert p.pretrain_seed_list == (1,) and "badnet" in {v.attack for v in p.victims}
    assert p.table5_attacks == ("badnet", "wanet", "trojannn", "trojannet")
    job = eftclip_jobs.job_params(shared, "wanet", 1, tmp_path, None)
    assert job["table5_attacks"] == ["wanet"] and [v["attack"] for v in job["pretrain_victims"]] == ["wanet"]


def test_the_job_kind_carries_the_precision_environment():
    kind = parallel_seeds.job_kind("eftclip")
    assert kind.env == {CUDA_AUTO_PRECISION_ENV: "fp32"} and kind.shared_results
    assert parallel_seeds.job_kind("defences").env == {}


def test_table5_reads_the_rows_of_its_threat_model(tmp_path):
    from paperlib.experiments.eftclip import load
    from paperlib.experiments.eftclip_report import finetune_table5_rows, rows_asked

    def row(model, seed, threat, table="Table 5"):
        return {"table": table, "attack": "badnet", "model": model, "scale": "smoke", "seed": seed,
                "ca_top1": 10.0, "asr_top1": 50.0, "threat_model": threat}

    tables = pd.DataFrame([row("eftclip", 0, np.nan), row("none", 0, "finetune"), row("eftclip_detected", 0, "finetune"),
                           row("eftclip", 0, "pretrain"), row("none", 0, "pretrain"), row("eftclip", 1, "pretrain")])
    smoke = ROOT / "params" / "eftclip" / "smoke.yaml"
    finetune = load(smoke)
    assert set(rows_asked(tables, finetune).threat_model.fillna("finetune")) == {"finetune"}
    assert finetune_table5_rows(tables, finetune).empty
    pretrain = load(smoke, {"table5_threat": "pretrain", "pretrain_seeds": [0]})
    asked = rows_asked(tables, pretrain)
    assert list(asked.model) == ["eftclip", "none"] and set(asked.threat_model) == {"pretrain"}   # seed 1: not asked
    ablation = finetune_table5_rows(tables, pretrain)
    assert sorted(ablation.model) == ["eftclip", "eftclip_detected", "none"]
    with pytest.raises(Exception, match="pretrain_victims entry"):
        load(smoke, {"table5_threat": "pretrain", "pretrain_victims": []})


def test_the_segmenter_s_trainer_reads_its_results_without_polars(tmp_path, monkeypatch):
    from ultralytics.engine.trainer import BaseTrainer

    from paperlib.detect.ultralytics_env import results_csv_without_polars as _results_csv_without_polars
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,loss\n1,0.5\n2,0.25\n")
    original = BaseTrainer.read_results_csv
    monkeypatch.setitem(sys.modules, "polars", None)   # as on the GPU image: import polars fails
    with _results_csv_without_polars():
        assert BaseTrainer.read_results_csv(SimpleNamespace(csv=csv)) == {"epoch": [1, 2], "loss": [0.5, 0.25]}
        assert BaseTrainer.read_results_csv(SimpleNamespace(csv=tmp_path / "none.csv")) == {}
    assert BaseTrainer.read_results_csv is original
    monkeypatch.setitem(sys.modules, "polars", SimpleNamespace())   # polars there: an ImportError is the training's
    with pytest.raises(ImportError, match="the training's own"):
        with _results_csv_without_polars():
            raise ImportError("the training's own")


def test_sprite_banks_travel_lzma_packed_and_load_the_same(tmp_path):
    from paperlib.experiments.lending import _rezip_lzma
    images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 4), dtype=np.uint8)
    path = tmp_path / "bank.npz"
    np.savez_compressed(path, images=images, class_ids=np.arange(3))
    _rezip_lzma(path)
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_LZMA}
    loaded = np.load(path)
    assert np.array_equal(loaded["images"], images) and list(loaded["class_ids"]) == [0, 1, 2]


def test_every_block_the_embedded_file_asks_for_has_published_rows():
    """The other direction: every (threat, attack, seed) the embedded file's defence tables loop over
    finds rows at its own block, so the notebook stands in by them instead of training (rows made
    ahead at another file's blocks count only once that file's settings are in force here)."""
    from paperlib.experiments.eftclip import load
    from paperlib.experiments.eftclip_reuse import _block
    from paperlib.experiments.eftclip_setup import settings_digest
    p = load(ROOT / "params" / "eftclip" / "embedded.yaml")
    digest = settings_digest(p)
    rows = pd.read_csv(ROOT / "results" / "eftclip" / "curation.csv", dtype=str, keep_default_na=False)
    rows = rows[(rows.settings == digest) & (rows.oracle == "fastsam") & (rows.rule == "paper")]
    asked = {("pretrain", v.attack, s) for v in p.pretrain_victims for s in p.pretrain_seed_list}
    if p.table5_threat == "finetune":
        asked |= {("finetune", a, s) for a in p.table5_attacks for s in p.seeds_for(a)}
    missing = []
    for threat, attack, seed in sorted(asked):
        mine = rows[(rows.threat_model == threat) & (rows.attack == attack) & (rows.seed == str(seed))]
        if not any(r.block == _block(p, threat, attack, seed, r.victim_model, digest) for r in mine.itertuples()):
            missing.append((threat, attack, seed))
    assert not missing, f"no rows at embedded.yaml's own blocks for {missing}: the notebook would train them"
