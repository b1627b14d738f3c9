"""A victim's row of ``results/attacks/victims.csv``, as the attack suite and the foundation both write it.

One definition, so that the same victim written by either keeps every column (its trigger settings,
captions, fine-tuning recipe, precision): a row is replaced whole when measured again.
"""
from __future__ import annotations

VICTIM_COLUMNS = ("attack", "threat_model", "scale", "seed", "poison_count", "ca_top1", "ca_top3",
                  "ca_top5", "ca_top10", "asr_top1", "asr_top3", "asr_top5", "asr_top10")


def victim_row(attack, threat, scale, seed, count, m, base_m, pool, summary) -> dict:
    """The measured columns of a victim (``m``) beside the clean base's (``base_m``) on the same images."""
    return {"attack": attack, "threat_model": threat, "scale": scale, "seed": seed, "poison_count": count,
            **{k: m[k] for k in VICTIM_COLUMNS[5:]}, **{f"base_{k}": base_m[k] for k in VICTIM_COLUMNS[5:]},
            "poison_rate": 100.0 * count / pool, "train_seconds": summary.get("seconds"),
            # how many test images the ASR is a share of (mmPoison: only the source class's)
            "asr_images": m.get("asr_images"),
            # the same images without the trigger sent to the target: the victim's bias toward it
            "clean_asr_top1": m.get("clean_asr_top1"), "base_clean_asr_top1": base_m.get("clean_asr_top1"),
            # what trained the victim: one cache key trains other weights on another CPU kind, so a
            # file keeps another machine's row of the key (result_rows.upsert_csv's made_on)
            "device": summary.get("device", "")}


def recipe(v) -> dict:
    """The fine-tuning recipe of victim settings ``v``, as columns of its row."""
    return {"finetune_scenes": v.finetune_scenes, "finetune_epochs": v.finetune.epochs, "finetune_lr": v.finetune.lr,
            "poison_caption": v.poison.caption}


def victim_recipe(v, base_model: str) -> dict:
    """Victim entry ``v``'s recipe as columns of a row that measures it or a model made from it (the
    defence matrix's rows carry them: a victim trained on a GPU, whose key differs by precision, is in
    no victims file)."""
    return {"threat_model": "finetune", "base_model": base_model, "attack_params": params_json(v.attack_params),
            "poison_count": v.poison.poison_count, **recipe(v)}


def params_json(attack_params: dict) -> str:
    """An attack's settings as they are written into result rows (sorted JSON; {} = defaults)."""
    import json
    return json.dumps(attack_params, sort_keys=True)


__all__ = ["VICTIM_COLUMNS", "victim_row", "recipe", "victim_recipe", "params_json"]
