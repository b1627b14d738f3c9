"""The clean base model: a user's or a shipped CLIP imported into the cache, or one pre-trained from scratch."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.splits import DataConfig, get_split, split_params
from paperlib.pipeline.core import ModelArtifact, _train_artifact, resolve_device, split_tokens
from paperlib.train.loop import TrainConfig


def external_model(name: str, weights: str | Path) -> ModelArtifact:
    """A user-supplied pre-trained CLIP (e.g. OpenAI's RN50 converted to safetensors) as the base.

    Its cache identity is the file's size and a hash of its first and last megabyte.  Its header
    is read here, so a file that is not safetensors fails before anything is built on it.
    """
    import hashlib

    from paperlib.models import CheckpointError, check_safetensors
    path = Path(weights)
    if path.is_file() and is_shipped_record(path.with_suffix(".json")):
        return shipped_base(name, path)
    if not path.is_file():
        raise FileNotFoundError(f"base_checkpoint {str(path)!r} does not exist: convert the pre-trained "
                                "weights to safetensors first (see README, 'paper scale')")
    if path.suffix != ".safetensors":
        raise ValueError(f"base_checkpoint {str(path)!r}: only .safetensors files are loaded")
    try:
        check_safetensors(path)
    except CheckpointError as err:
        raise CheckpointError(f"base_checkpoint: {err}") from None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(fh.read())
    key = {"role": "external", "model": name, "size": path.stat().st_size, "sha256_ends": h.hexdigest()}
    return ModelArtifact(name, path.parent, key, weights_file=path.name)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def is_shipped_record(path: Path) -> bool:
    """Whether ``path`` is a shipped base's record (other JSON beside a weights file, such as an
    open_clip model config, is not); a record that cannot be read is named."""
    from paperlib.models import CheckpointError
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable JSON record ({err})") from None
    return isinstance(record, dict) and {"sha256", "source_key", "model"} <= set(record)


def shipped_base_name(weights: str | Path) -> str | None:
    """The name (cache key) results files give the shipped base at ``weights`` (their ``base_model``),
    from its record beside it, read alone (nothing hashed, nothing built); None without a record."""
    record_path = Path(weights).with_suffix(".json")
    return json.loads(record_path.read_text()).get("base_model") if record_path.is_file() else None


def shipped_base_key(name: str, weights: Path) -> dict:
    """The cache key a shipped base is imported under (:func:`shipped_base`): its record's model and
    SHA-256, read from the record alone (nothing hashed, nothing built)."""
    from paperlib.models import CheckpointError
    record_path = weights.with_suffix(".json")
    record = json.loads(record_path.read_text())
    if record.get("model") != name:
        raise CheckpointError(f"{weights}: its record {record_path.name} says model {record.get('model')!r}, "
                              f"the parameters ask for {name!r}")
    return {"role": "shipped_base", "model": name, "sha256": record.get("sha256")}


def shipped_base(name: str, weights: Path, cache: ArtifactCache | None = None) -> ModelArtifact:
    """A clean base shipped with the project (``paperlib/bases/<name>.safetensors`` beside its record
    ``<name>.json``, written by :mod:`paperlib.experiments.ship_base`): the file's full SHA-256 must
    be the record's, the record's model must be ``name``; then it is imported into the cache under
    a key of that hash, so every machine builds on the same weights and names them the same way."""
    from paperlib.models import CheckpointError, check_safetensors
    cache = cache or ArtifactCache()
    record_path = weights.with_suffix(".json")
    record = json.loads(record_path.read_text())
    key = shipped_base_key(name, weights)
    if (path := cache.cached("model", key)) is not None:
        return ModelArtifact(name, path, key)
    check_safetensors(weights)
    digest = file_sha256(weights)
    if digest != record.get("sha256"):
        raise CheckpointError(f"{weights}: SHA-256 {digest[:16]}... is not the {str(record.get('sha256'))[:16]}... "
                              f"its record {record_path.name} names: the file was changed or damaged; restore it "
                              "(git checkout) or rebuild it with python -m paperlib.experiments.ship_base")

    def build(work: Path):
        shutil.copyfile(weights, work / "model.safetensors")
        write_json_atomic(work / "summary.json", {**record.get("summary", {}), "shipped_from": str(weights.name)})
    return ModelArtifact(name, cache.get_or_build("model", key, build), key)


def clean_pretrain_key(data: DataConfig, model_name: str, cfg: TrainConfig, device_type: str) -> dict:
    """The cache key of :func:`pretrain_clean`'s base (it names every victim built on the base)."""
    return {"role": "clean_pretrain", "model": model_name, "train": cfg.key(device_type),
            "split": split_params("cc3m_analog", data)}


def pretrain_clean(data: DataConfig, model_name: str, cfg: TrainConfig, device="auto",
                   cache: ArtifactCache | None = None) -> ModelArtifact:
    """The clean base CLIP, pre-trained from scratch on the CC3M analogue."""
    from paperlib.train.pairs import TensorPairs
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = clean_pretrain_key(data, model_name, cfg, device.type)
    if (path := cache.cached("model", key)) is not None:
        return ModelArtifact(model_name, path, key)
    split = get_split("cc3m_analog", data, cache)
    tokens = split_tokens(split, key["split"], model_name, cache)
    pairs = TensorPairs(split.images, tokens)
    if device.type == "cuda":
        pairs.to_device(device)
    return _train_artifact(key, model_name, None, pairs, cfg, device, cache, "pretrain clean")
