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
        from paperlib.errors import ParamError
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


# what a weights file given to this project must be, said by every error about one
VALID_CHECKPOINT = ("a safetensors file written by paperlib.models.save_checkpoint (a pre-trained CLIP is "
                    "converted once, on a trusted machine, as the README's 'paper scale' section says)")


class CheckpointError(ValueError):
    """A weights file that cannot be loaded: the message names it and what would be valid."""


def _artifact_folder(path: Path) -> Path | None:
    """The cache artifact folder ``path`` lies in: a complete one (``params.json`` and ``DONE``)
    or one being built (``<key>.partial``, whose checkpoints a resumed training reads)."""
    for folder in path.parents:
        if folder.name.endswith(".partial") or ((folder / "params.json").is_file() and (folder / "DONE").is_file()):
            return folder
    return None


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file.  safetensors' own error for anything else (a pickle under
    a ``.safetensors`` name, random bytes, a truncated copy) names no file; this one names it and
    what would be valid: for a file inside a cache artifact (weights this project wrote), that
    the artifact is damaged and rebuilt once its folder is deleted."""
    from safetensors import SafetensorError
    path = Path(path)
    try:
        return load_file(str(path), device=device)
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError) as err:
        folder = _artifact_folder(path)
        valid = (f"the artifact is damaged: delete {folder} and it is rebuilt" if folder is not None
                 else f"give {VALID_CHECKPOINT}")
        raise CheckpointError(f"{path}: not a safetensors file ({err}); {valid}") from None


def check_safetensors(path: str | Path) -> None:
    """Fail now, with :func:`read_safetensors`' message, if ``path`` is not a safetensors file
    (only its header is read: a cheap check before hours of work that would load it at the end)."""
    from safetensors import SafetensorError, safe_open
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            fh.keys()
    except FileNotFoundError:
        raise
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: not a safetensors file ({err}); give {VALID_CHECKPOINT}") from None


def load_checkpoint(model, path: str | Path, strict: bool = True):
    """Load safetensors weights into ``model`` (no pickle is ever involved).  A file that is not
    safetensors, or holds another architecture's weights, raises :class:`CheckpointError`
    naming the file (torch's own error for the latter names neither the file nor the model)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only .safetensors checkpoints are loaded (no pickle files); "
                              f"give {VALID_CHECKPOINT}")
    state = read_safetensors(path)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        name = getattr(model, "paperlib_name", type(model).__name__)
        raise CheckpointError(f"{path}: its weights do not fit model {name!r} (another architecture?): "
                              f"{str(err)[:400]}") from None
    return model


def load_model(name: str, path: str | Path, device: str | torch.device = "cpu"):
    model = create_model(name)
    load_checkpoint(model, path)
    return model.to(device)
