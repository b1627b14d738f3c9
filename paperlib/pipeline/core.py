"""Devices, the handle of a cached model (ModelArtifact), cached tokens and the cached training step."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.splits import RenderedSplit
from paperlib.train.loop import TrainConfig


def resolve_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> a torch device (under torchrun: this rank's GPU)."""
    import os
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no GPU; use 'auto' or 'cpu'")
        from paperlib.train.loop import ieee_fp32_on_cuda
        ieee_fp32_on_cuda()   # evaluation runs in fp32: the same numbers on CPU and GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """The hardware a model trained on, as a summary records it (the GPU's or the CPU's name)."""
    from paperlib.bench import cpu_model
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


@dataclass(frozen=True)
class ModelArtifact:
    """A trained model in the cache: its architecture name and safetensors file."""

    name: str
    path: Path
    key_params: dict
    weights_file: str = "model.safetensors"

    def load(self, device="cpu"):
        from paperlib.models import load_model
        return load_model(self.name, self.path / self.weights_file, device)

    @property
    def summary(self) -> dict:
        p = self.path / "summary.json"
        return json.loads(p.read_text()) if p.is_file() else {}

    def epoch_weights(self) -> list[tuple[int, "ModelArtifact"]]:
        """The weights a model trained with ``save_epochs`` kept at each epoch's end
        (``epoch<k>.safetensors``), as ``(k, artifact)`` in epoch order; each artifact's key names its
        file, so its evaluations are cached apart from the final model's."""
        found = sorted((int(f.stem[len("epoch"):]), f.name) for f in self.path.glob("epoch*.safetensors")
                       if f.stem[len("epoch"):].isdigit())
        return [(k, ModelArtifact(self.name, self.path, {**self.key_params, "epoch_file": name}, name))
                for k, name in found]


def copied_from_epoch_twin(kind_params: dict, model_name: str, cache: ArtifactCache) -> "ModelArtifact | None":
    """The model of ``kind_params`` copied from its twin that also kept per-epoch weights (the same
    key plus ``epoch_checkpoints``), when that twin is in the cache; else None.

    Keeping the epoch files only saves weights at each epoch's end (no draw of any random number),
    so the twin's final weights are the ones this key would train: a victim measured pass by pass
    (:mod:`paperlib.experiments.pretrain_implant`) then serves the tables that need it plainly in
    seconds, not another training.  The copy keeps its own key; its summary names the twin (so
    :func:`paperlib.bench.cache_costs` leaves its seconds out of its kind's build times).  The twin is
    looked up without a note in the run's ledger: a machine without it trains the plain key, and its
    cost estimate should price that, not the twin."""
    import shutil
    twin_params = {**kind_params, "epoch_checkpoints": True}
    if not cache.exists("model", twin_params):
        return None
    twin = cache.path("model", twin_params)

    def build(work: Path):
        for leftover in work.iterdir():   # an interrupted training of the plain key: not this model
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        for name in ("model.safetensors", "history.jsonl"):
            if (twin / name).is_file():
                shutil.copyfile(twin / name, work / name)
        write_json_atomic(work / "summary.json",
                          {**ModelArtifact(model_name, twin, twin_params).summary, "copied_from": twin.name})

    return ModelArtifact(model_name, cache.get_or_build("model", kind_params, build), kind_params)


def split_tokens(split: RenderedSplit, split_key: dict, model_name: str,
                 cache: ArtifactCache) -> np.ndarray:
    """Token ids (N, captions_per_scene, context) of a captioned split, cached."""
    from paperlib.models import get_tokenizer

    def build(work: Path):
        tok = get_tokenizer(model_name)
        flat = [c for caps in split.captions for c in caps]
        ids = torch.cat([tok(flat[s:s + 8192]) for s in range(0, len(flat), 8192)])
        arr = ids.numpy().astype(np.int32).reshape(len(split.captions), -1, ids.shape[-1])
        np.save(work / "tokens.npy", arr)

    params = {"split": split_key, "tokenizer": model_name}
    path = cache.get_or_build("tokens", params, build)
    return np.load(path / "tokens.npy", mmap_mode="r")


def _train_artifact(kind_params: dict, model_name: str, init: ModelArtifact | None, pairs,
                    cfg: TrainConfig, device: torch.device, cache: ArtifactCache, desc: str,
                    terms=None, transforms=(), save_epochs: bool = False, info: dict | None = None
                    ) -> ModelArtifact:
    """Train (or find in the cache) one model.  ``save_epochs`` keeps the weights at every epoch
    end as ``epoch{k}.safetensors`` (ASR-per-epoch curves); ``info`` goes into the summary."""
    from paperlib.models import create_model, load_checkpoint, save_checkpoint
    from paperlib.train.loop import train
    from paperlib.train.losses import ClipLossTerm

    def build(work: Path):
        model = create_model(model_name, seed=cfg.seed)
        if init is not None:
            load_checkpoint(model, init.path / init.weights_file)
        from paperlib.cache import _rank_world
        callbacks = []
        if save_epochs:
            def keep_epoch(event, state):
                if event == "epoch_end" and _rank_world()[0] == 0:
                    save_checkpoint(state["model"], work / f"epoch{state['epoch']}.safetensors")
            callbacks.append(keep_epoch)
        summary = train(model, pairs, cfg, terms or [(ClipLossTerm(), 1.0)], work_dir=work,
                        device=device, desc=desc, transforms=transforms, callbacks=callbacks)
        summary.update(info or {})
        if _rank_world()[0] != 0:
            return
        save_checkpoint(model, work / "model.safetensors")
        summary["device"] = device_name(device)
        summary["world_size"] = _rank_world()[1]
        write_json_atomic(work / "summary.json", summary)
        for f in ("last.safetensors", "last_optimizer.safetensors", "last_terms.safetensors"):
            (work / f).unlink(missing_ok=True)

    path = cache.get_or_build("model", kind_params, build, collective=True)
    return ModelArtifact(model_name, path, kind_params)
