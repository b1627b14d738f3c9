"""CLIP models: open_clip architectures with the project's small configs, safetensors checkpoints.

The configs in ``configs/*.json`` are registered with ``open_clip.add_model_config`` on import,
so ``create_model("tiny-rn64")`` works like any open_clip model name (``RN50`` included).
Checkpoints are safetensors files: loading one never unpickles anything, because this project
handles models from untrusted sources by design (backdoored checkpoints are its subject).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import open_clip
import torch
from safetensors.torch import load_file, save_file

CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)
log = logging.getLogger(__name__)

MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)


def model_names() -> list[str]:
    """Every model name open_clip knows, the project's small configs included."""
    return open_clip.list_models()


def create_model(name: str, device: str | torch.device = "cpu", seed: int | None = None):
    """A randomly initialised open_clip model (``seed`` makes the initialisation reproducible)."""
    if name not in open_clip.list_models():
        from paperlib.config import ParamError
        local = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ParamError(f"unknown model {name!r}. Project configs: {', '.join(local)}; "
                         f"or any open_clip config such as RN50, ViT-B-32")
    if seed is not None:
        torch.manual_seed(seed)
    logging.getLogger("root").setLevel(logging.ERROR)  # open_clip warns that no weights were loaded
    model = open_clip.create_model(name, pretrained=None, device=device)
    logging.getLogger("root").setLevel(logging.WARNING)
    model.paperlib_name = name   # lets code that only holds the model find its tokenizer
    return model


def get_tokenizer(name: str):
    """open_clip's tokenizer for ``name`` (BPE vocabulary ships inside the wheel: no download)."""
    cfg = open_clip.get_model_config(name)
    ctx = cfg["text_cfg"].get("context_length", 77)
    return open_clip.get_tokenizer(name, context_length=ctx)


def config_image_size(name: str) -> int:
    """Input side (pixels) of a model config, without building the model."""
    size = open_clip.get_model_config(name)["vision_cfg"]["image_size"]
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def image_size(model) -> int:
    size = model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else int(size)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or [0, 1] float) images (B, 3, H, W) -> CLIP-normalised float images."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    return (x - MEAN.to(x.device)) / STD.to(x.device)


def save_checkpoint(model, path: str | Path, metadata: dict | None = None) -> None:
    """Write the model's state dict as safetensors, atomically."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    os.replace(tmp, path)


def load_checkpoint(model, path: str | Path, strict: bool = True):
    """Load safetensors weights into ``model`` (no pickle is ever involved)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: only .safetensors checkpoints are loaded (no pickle files); "
                         "convert with torch.load(..., weights_only=True) + safetensors.save_file")
    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=strict)
    return model


def load_model(name: str, path: str | Path, device: str | torch.device = "cpu"):
    model = create_model(name)
    load_checkpoint(model, path)
    return model.to(device)
