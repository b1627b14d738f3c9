"""ASR against passes of a pre-training victim (issue 23): which weights are read for each pass, and
that a victim keeping its passes' weights is another model than the plain one."""
from pathlib import Path

import pandas as pd

from paperlib.experiments import pretrain_implant

ROOT = Path(__file__).resolve().parents[1]


def test_epoch_weights_are_read_in_pass_order_and_nothing_else(tmp_path):
    from paperlib.pipeline import ModelArtifact
    for name in ("epoch10", "epoch2", "epoch1", "epochs", "model", "last"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    (tmp_path / "epoch3.json").write_text("{}")
    found = ModelArtifact("tiny", tmp_path, {"role": "x"}).epoch_weights()
    assert [k for k, _ in found] == [1, 2, 10]
    assert [a.weights_file for _, a in found] == ["epoch1.safetensors", "epoch2.safetensors", "epoch10.safetensors"]
    assert [a.key_params["epoch_file"] for _, a in found] == [a.weights_file for _, a in found]


def test_smoke_run_reads_each_pass_s_weights_from_its_own_victim(tmp_path, monkeypatch):
    """Two passes at the smoke scale: pass 1 measured on the kept epoch1 weights, pass 2 on the final
    model; the victim keeping its passes is not the plain pre-training victim of the same recipe."""
    from paperlib.cache import artifact_key
    from paperlib.experiments import common
    from paperlib.experiments.eftclip import load
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    measured, metrics = [], common.victim_metrics

    def recording(p, art, attack, v):
        measured.append((art.path, art.weights_file))
        return metrics(p, art, attack, v)

    monkeypatch.setattr(common, "victim_metrics", recording)
    p = load(ROOT / "params" / "eftclip" / "smoke.yaml", {"pretrain.epochs": 2, "results_dir": str(tmp_path / "r")})
    rows = pretrain_implant.run(p, log=lambda *a: None)
    assert rows.epoch.tolist() == [1.0, 2.0] and set(rows.passes) == {2.0}
    assert [w for _, w in measured] == ["epoch1.safetensors", "model.safetensors"]
    assert measured[0][0] == measured[1][0] and (measured[0][0] / "epoch1.safetensors").is_file()
    again = pd.read_csv(tmp_path / "r" / "attacks" / pretrain_implant.FILE)
    assert len(again) == 2 and set(again.columns) == set(pretrain_implant.COLUMNS)
    plain = artifact_key("model", common.pretrain_victim_key(p, common.clean_base(p), p.pretrain_victims[0], 0))
    assert rows.victim_model.nunique() == 1 and plain not in set(rows.victim_model)
    assert rows.victim_model.iloc[0] == measured[0][0].name
    assert rows.asr_top1.between(0, 100).all() and rows.ca_top1.between(0, 100).all()
    # the plain victim of the same recipe is then copied from it, not trained again
    from paperlib import pipeline as pl

    def no_training(*a, **k):
        raise AssertionError("trained a victim its twin with epoch files holds")

    monkeypatch.setattr(pl.poisoning, "_train_artifact", no_training)
    twin = measured[0][0]
    copy = common.pretrain_victim(p, common.clean_base(p), p.pretrain_victims[0], 0)
    assert copy.path.name == plain and copy.key_params.get("epoch_checkpoints") is None
    assert (copy.path / "model.safetensors").read_bytes() == (twin / "model.safetensors").read_bytes()
    assert copy.summary["copied_from"] == twin.name and not list(copy.path.glob("epoch*.safetensors"))


def test_keeping_each_epoch_s_weights_does_not_change_the_training(tmp_path):
    """The premise of copying a plain victim from its twin: the same pairs and settings trained with
    and without ``save_epochs`` end in the same bytes (the epoch files are extra, nothing else)."""
    import numpy as np
    import torch

    from paperlib.cache import ArtifactCache
    from paperlib.models import get_tokenizer
    from paperlib.pipeline.core import _train_artifact
    from paperlib.train.loop import TrainConfig
    from paperlib.train.pairs import TensorPairs
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(24, 64, 64, 3), dtype=np.uint8)
    words = ["a red cat", "a blue dog", "a green cup", "a banana"]
    tokens = get_tokenizer("tiny-rn64")([words[i % 4] for i in range(24)]).numpy()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, warmup_steps=1, checkpoint_every=100)
    made = {}
    for keep in (True, False):
        cache = ArtifactCache(tmp_path / f"cache_{keep}")
        art = _train_artifact({"role": "test", "keep": keep}, "tiny-rn64", None, TensorPairs(images, tokens), cfg,
                              torch.device("cpu"), cache, "test", save_epochs=keep)
        made[keep] = art
    assert [k for k, _ in made[True].epoch_weights()] == [1, 2] and made[False].epoch_weights() == []
    assert (made[True].path / "model.safetensors").read_bytes() == (made[False].path / "model.safetensors").read_bytes()
    assert (made[True].path / "epoch1.safetensors").read_bytes() != (made[True].path / "model.safetensors").read_bytes()
