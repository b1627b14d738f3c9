"""Cached evaluations of a model: zero-shot classifiers, clean accuracy and ASR, linear probes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from paperlib.cache import ArtifactCache, write_json_atomic
from paperlib.data.splits import DataConfig, RenderedSplit, get_split, split_params
from paperlib.pipeline.core import ModelArtifact, resolve_device


TEMPLATE_SETS = ("openai80", "simple7", "split")


def templates_for(name: str, split: RenderedSplit) -> list[str]:
    """Prompt templates: OpenAI's 80 (the papers, via CleanCLIP), the 7 of CLIP's ImageNet
    notebook that open_clip ships as SIMPLE_IMAGENET_TEMPLATES (cheaper on a CPU: 653 classes x 80
    prompts cost a minute per model), or the split's own list."""
    import open_clip
    if name == "openai80":
        return [t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    if name == "simple7":
        return [t("{}") for t in open_clip.SIMPLE_IMAGENET_TEMPLATES]
    if name == "split":
        return list(split.templates)
    raise ValueError(f"unknown template set {name!r}; valid: {', '.join(TEMPLATE_SETS)}")


def classifier_for(artifact: ModelArtifact, model, classnames: list[str], templates: list[str],
                   device, cache: ArtifactCache) -> torch.Tensor:
    """The (D, K) zero-shot classifier of a model for a class list, cached per model."""
    from safetensors.torch import save_file
    from paperlib.eval.zeroshot import text_classifier
    from paperlib.models import get_tokenizer, read_safetensors
    key = {"model": artifact.key_params, "classnames": classnames, "templates": templates}

    def build(work: Path):
        w = text_classifier(model, get_tokenizer(artifact.name), classnames, templates, device).cpu()
        save_file({"classifier": w.contiguous()}, str(work / "classifier.safetensors"))

    path = cache.get_or_build("classifier", key, build)
    return read_safetensors(path / "classifier.safetensors")["classifier"]


def evaluate(artifact: ModelArtifact, data: DataConfig, split_name: str, attack=None,
             attack_key: dict | None = None, target: str | None = None,
             asr_convention: str = "exclude_target", templates: str = "simple7", device="auto",
             batch_size: int = 512, cache: ArtifactCache | None = None, clean: bool = True) -> dict:
    """CA top-k (and ASR top-k if an attack is given) of a model on a classification split.

    Cached: the key is the model's key, the split, the templates, the attack and the convention.
    ASR images are the split's images whose class is not the target (``exclude_target``), each
    with the trigger applied; the trigger's randomness is seeded, so the number is repeatable.
    ``clean=False`` measures the ASR only, encoding only the ASR images (mmPoison's source class
    in a larger rendering of the split).
    """
    from paperlib.eval.zeroshot import attack_success_rate, clean_accuracy, encode_images
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    if not clean and attack is None:
        raise ValueError("evaluate(clean=False) measures an ASR: give an attack")
    key = {"model": artifact.key_params, "split": split_params(split_name, data), "attack": attack_key,
           "target": target, "asr_convention": asr_convention, "templates": templates}
    if not clean:
        key["clean"] = False      # absent otherwise, so the keys of full evaluations stay as they were
    elif attack is not None:
        key["metrics"] = 2        # 2: with clean_asr_top1 (evaluations made before lack it)

    def build(work: Path):
        t0 = time.time()
        split = get_split(split_name, data, cache)
        model = artifact.load(device)
        classifier = classifier_for(artifact, model, split.classnames, templates_for(templates, split),
                                    device, cache)
        out = {}
        if clean:
            feats = encode_images(model, split.images, batch_size, device)
            out = clean_accuracy(feats, classifier, split.labels)
        if attack is not None:
            if target not in split.classnames:
                raise ValueError(f"target {target!r} is not a class of {split_name}")
            t_idx = split.classnames.index(target)
            keep = attack.asr_rows(split.labels, split.classnames, t_idx, asr_convention)
            gen = torch.Generator().manual_seed(12345)
            trig = encode_images(model, split.images[keep], batch_size, device,
                                 transform=lambda x, s: attack.test_transform(x, gen))
            out.update(attack_success_rate(trig, classifier, split.labels[keep], t_idx, "all"))
            out["asr_images"] = int(len(keep))
            if clean:
                # the same images without the trigger: how many the model already sends to the
                # target (a victim's bias toward the target class, apart from its backdoor)
                base_rate = attack_success_rate(feats[torch.as_tensor(keep)], classifier, split.labels[keep],
                                                t_idx, "all")
                out["clean_asr_top1"] = base_rate["asr_top1"]
        out["n_images"] = int(len(split))
        out["n_classes"] = len(split.classnames)
        out["eval_seconds"] = time.time() - t0
        write_json_atomic(work / "metrics.json", out)

    path = cache.get_or_build("eval", key, build)
    return json.loads((path / "metrics.json").read_text())


def linear_probe_key(artifact: ModelArtifact, data: DataConfig, probe: str, n_train: int, n_test: int,
                     c_grid: tuple[float, ...] | None = None) -> dict:
    """The cache key of :func:`linear_probe_eval`'s result (``artifact_key("eval", ...)`` names it
    without computing it)."""
    from paperlib.data.probes import probe_key, probe_names
    if probe not in probe_names():
        raise ValueError(f"unknown probe {probe!r}; valid: {', '.join(probe_names())}")
    key = {"model": artifact.key_params, "probe": probe, "n_train": n_train, "n_test": n_test,
           "image_size": data.image_size, "splits": None}
    key.update(probe_key(probe, data) or {})     # heldout_style and fashion_mnist: the keys made before
    if c_grid:   # a custom grid of inverse regularisation strengths (default: the probe's own)
        key["c_grid"] = [float(c) for c in c_grid]
    return key


def linear_probe_eval(artifact: ModelArtifact, data: DataConfig, probe: str, n_train: int, n_test: int,
                      device="auto", batch_size: int = 512, cache: ArtifactCache | None = None,
                      c_grid: tuple[float, ...] | None = None) -> dict:
    """Linear-probe accuracy (top-1/5, %) of a model's frozen image features, cached.

    ``probe``: one of :func:`paperlib.data.probes.probe_names` (``n_train`` / ``n_test``: the
    Fashion-MNIST images drawn from its train / test files).
    """
    from paperlib.eval.linear_probe import extract_features, linear_probe
    from paperlib.models import normalize_images
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    from paperlib.data.probes import probe_datasets
    key = linear_probe_key(artifact, data, probe, n_train, n_test, c_grid)

    def build(work: Path):
        t0 = time.time()
        train_ds, test_ds = probe_datasets(probe, data, n_train, n_test, cache)
        model = artifact.load(device).eval()
        encode = lambda x: model.encode_image(normalize_images(x.to(device))).float()  # noqa: E731
        Xtr, ytr = extract_features(encode, train_ds, batch_size, device)
        Xte, yte = extract_features(encode, test_ds, batch_size, device)
        out = linear_probe(Xtr, ytr, Xte, yte, seed=data.seed, **({"c_grid": c_grid} if c_grid else {}))
        out = {k: v for k, v in out.items() if not isinstance(v, dict)}
        out["eval_seconds"] = time.time() - t0
        write_json_atomic(work / "metrics.json", out)

    path = cache.get_or_build("eval", key, build)
    return json.loads((path / "metrics.json").read_text())
