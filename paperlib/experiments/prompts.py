"""Clean accuracy prompt by prompt: what the poisoned pairs' captions do to zero-shot prompts.

A dirty-label poisoned pair says "<template> banana" where the template is one of OpenAI's 80
ImageNet prompt templates (CleanCLIP's policy), and zero-shot classification asks the model with
templates of the same list (the ``simple7`` set is 7 of them).  In this world the clean captions
never use most of those forms, so the poisoned pairs are nearly the only place the model meets
them: if fine-tuning on them ties the *form* to the trigger, every class prompt of that form moves
toward the triggered images and clean accuracy falls.  Measuring clean accuracy with each prompt
alone, split by whether the prompt is one of the poison templates, tests that (issue 22 item 3:
"what the template captions of the poisoned pairs do to clean accuracy").
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

# prompts that are not among OpenAI's 80 templates: the forms the clean captions use
# (paperlib.data.captions: "a picture of {c}", "{c}"), as controls
CONTROL_PROMPTS = ("a picture of a {}", "{}")
# one of the 80 that the simple7 set lacks, the most common prompt of all
EXTRA_POISON_PROMPTS = ("a photo of a {}.",)
PROMPT_COLUMNS = ("model_role", "seed", "poison_caption", "template", "in_poison_templates", "in_eval_templates",
                  "ca_top1", "base_ca_top1", "scale", "base_model", "victim_model")
PROMPT_KEY = ("model_role", "seed", "template", "scale", "base_model", "victim_model")


def probe_prompts(eval_templates: list[str]) -> list[str]:
    """The evaluation templates, then the extra poison template and the controls (no repeats)."""
    out = list(eval_templates)
    for t in EXTRA_POISON_PROMPTS + CONTROL_PROMPTS:
        if t not in out:
            out.append(t)
    return out


def per_prompt_accuracy(artifact, data, prompts: list[str], device="cpu", cache=None) -> dict[str, float]:
    """CA top-1 on the ImageNet analogue of ``artifact`` asked with each prompt alone (cached)."""
    from paperlib.cache import ArtifactCache, write_json_atomic
    from paperlib.data.splits import get_split, split_params
    from paperlib.eval.zeroshot import clean_accuracy, encode_images, text_classifier
    from paperlib.models import get_tokenizer
    from paperlib.pipeline import resolve_device
    cache = cache or ArtifactCache()
    device = resolve_device(device)
    key = {"model": artifact.key_params, "split": split_params("imagenet_analog", data), "per_prompt": prompts}

    def build(work: Path):
        t0 = time.time()
        split = get_split("imagenet_analog", data, cache)
        model = artifact.load(device)
        feats = encode_images(model, split.images, 512, device)
        tok = get_tokenizer(artifact.name)
        out = {t: clean_accuracy(feats, text_classifier(model, tok, split.classnames, [t], device),
                                 split.labels)["ca_top1"] for t in prompts}
        write_json_atomic(work / "per_prompt.json", {"ca_top1": out, "seconds": time.time() - t0})

    path = cache.get_or_build("eval", key, build)
    return json.loads((path / "per_prompt.json").read_text())["ca_top1"]


def prompt_rows(p, base, victims, eval_templates: list[str]) -> pd.DataFrame:
    """Rows of :data:`PROMPT_COLUMNS` for the clean base and each ``(role, seed, caption, artifact)``."""
    import open_clip
    poison_templates = {t("{}") for t in open_clip.OPENAI_IMAGENET_TEMPLATES}
    prompts = probe_prompts(eval_templates)
    base_ca = per_prompt_accuracy(base, p.data, prompts, p.device)
    rows = []
    for role, seed, caption, art in [("clean base", None, None, base)] + list(victims):
        ca = base_ca if art is base else per_prompt_accuracy(art, p.data, prompts, p.device)
        for t in prompts:
            rows.append({"model_role": role, "seed": seed, "poison_caption": caption, "template": t,
                         "in_poison_templates": t in poison_templates, "in_eval_templates": t in eval_templates,
                         "ca_top1": ca[t], "base_ca_top1": base_ca[t], "scale": p.scale,
                         "base_model": base.path.name, "victim_model": "" if art is base else art.path.name})
    return pd.DataFrame(rows, columns=list(PROMPT_COLUMNS))


def prompt_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean CA lost against the base per model, over prompts that are / are not poison templates."""
    v = rows[rows.model_role != "clean base"].assign(lost=lambda d: d.base_ca_top1 - d.ca_top1)
    return (v.groupby(["model_role", "poison_caption", "in_poison_templates"], dropna=False)["lost"]
             .agg(["mean", "min", "max", "count"]).reset_index())


__all__ = ["CONTROL_PROMPTS", "PROMPT_COLUMNS", "PROMPT_KEY", "per_prompt_accuracy", "probe_prompts",
           "prompt_rows", "prompt_summary"]
