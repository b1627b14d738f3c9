"""What every experiment does the same way: its victims, its attack evaluation, its command line.

Experiments whose parameters carry ``data``, ``model``, ``pretrain``, ``device`` and ``eval`` (the
foundation's :class:`~paperlib.experiments.foundation.EvalConfig`) share these helpers, so a victim
or an evaluation is built by one piece of code (and one cache key) wherever it is needed.
"""
from __future__ import annotations


def clean_base(p):
    """The clean pre-trained model of these parameters (cached; shared by every experiment): the
    user's pre-trained weights when ``base_checkpoint`` is set (the paper scale: OpenAI's RN50 as
    safetensors), else a CLIP pre-trained here on the CC3M analogue."""
    from paperlib import pipeline as pl
    if getattr(p, "base_checkpoint", None):
        return pl.external_model(p.model, p.base_checkpoint)
    return pl.pretrain_clean(p.data, p.model, p.pretrain, p.device)


def clean_base_unbuilt(p):
    """The clean base's artifact as :func:`clean_base` would return it, without training it (or, a
    shipped base, importing it into the cache): its key names the victims built on it (to find
    their rows in a results file)."""
    from pathlib import Path

    from paperlib import pipeline as pl
    from paperlib.cache import ArtifactCache
    if getattr(p, "base_checkpoint", None):
        weights = Path(p.base_checkpoint)
        if weights.is_file() and pl.is_shipped_record(weights.with_suffix(".json")):
            key = pl.shipped_base_key(p.model, weights)
            return pl.ModelArtifact(p.model, ArtifactCache().path("model", key), key)
        return pl.external_model(p.model, p.base_checkpoint)
    key = pl.clean_pretrain_key(p.data, p.model, p.pretrain, pl.resolve_device(p.device).type)
    return pl.ModelArtifact(p.model, ArtifactCache().path("model", key), key)


def victim_config(p, attack: str, threat: str = "finetune"):
    """The victim settings of ``attack`` in ``p.victims`` (or ``p.pretrain_victims``)."""
    pool = p.victims if threat == "finetune" else p.pretrain_victims
    for v in pool:
        if v.attack == attack:
            return v
    raise KeyError(f"no {threat} victim for attack {attack!r}; victims: {[v.attack for v in pool]}")


def victim_attack(p, base, v):
    """The attack of victim settings ``v``, its trigger fitted on ``base`` if it needs one."""
    from paperlib import pipeline as pl
    return pl.prepared_attack(v.attack, v.attack_config(), base, p.data, v.poison.target, p.device)


def finetune_victim(p, base, v, seed: int):
    """The victim of the fine-tuning threat model that ``v`` describes (cached)."""
    from paperlib import pipeline as pl
    return pl.poison_finetune(base, p.data, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                              v.finetune_scenes, v.finetune, seed, p.device, caption=v.poison.caption)


def victim_key(p, base, v, seed: int) -> dict:
    """The cache key parameters of the victim :func:`finetune_victim` makes, without making it."""
    from paperlib import pipeline as pl
    return pl.poison_finetune_key(base, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                                  v.finetune_scenes, v.finetune, seed, pl.resolve_device(p.device).type,
                                  v.poison.caption)


def victim_model_name(p, base, v, seed: int) -> str:
    """The cache key (directory name) of the victim :func:`finetune_victim` makes, without making it."""
    from paperlib.cache import artifact_key
    return artifact_key("model", victim_key(p, base, v, seed))


def pretrain_victim(p, base, v, seed: int, attack=None, defence_id: str | None = None, defence_cfg=None,
                    epoch_checkpoints: bool = False):
    """The victim of the pre-training threat model that ``v`` describes (cached); a fitted
    trigger is fitted on ``base``, as for the fine-tuning victims.  With ``defence_id`` the same
    poisoned set is trained from scratch under that training-time defence (RoCLIP);
    ``epoch_checkpoints``: keep each pass's weights (another cache key)."""
    from paperlib import pipeline as pl
    attack = attack or victim_attack(p, base, v)
    return pl.poison_pretrain(p.data, p.model, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                              p.pretrain, seed, trigger_base=base if attack.needs_fit else None, device=p.device,
                              defence_id=defence_id, defence_cfg=defence_cfg, caption=v.poison.caption,
                              epoch_checkpoints=epoch_checkpoints)


def pretrain_victim_key(p, base, v, seed: int, defence_id: str | None = None, defence_cfg=None) -> dict:
    """The cache key of the model :func:`pretrain_victim` makes, without making it (or fitting its trigger)."""
    from paperlib import pipeline as pl
    from paperlib.attacks import build_attack
    fits = build_attack(v.attack, v.attack_config(), image_side=p.data.image_size).needs_fit
    return pl.poison_pretrain_key(p.data, p.model, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                                  p.pretrain, seed, base if fits else None, pl.resolve_device(p.device).type,
                                  defence_id, defence_cfg, v.poison.caption)


def build_triggers(p, base) -> None:
    """Each victim's attack with its trigger fitted on ``base`` (BadCLIP's patch, SSBA's encoder, ...)
    and the larger evaluation rendering mmPoison's ASR needs, built once: what parallel jobs read
    and none may build twice at once (two jobs rendering one split broke a rendering pool on the
    H200: results/defences/gpu_seeds_jobs.csv)."""
    from paperlib.data.splits import get_split
    for v in p.victims:
        source_data = source_class_data(p, victim_attack(p, base, v))
        if source_data is not None:
            get_split("imagenet_analog", source_data)


def source_class_data(p, attack):
    """The data settings of the larger ImageNet-analogue rendering that ``attack``'s ASR is
    measured on, or None when it uses the ordinary one.  mmPoison's ASR counts only the source
    class's test images: 5 per class are too few to measure it, so at the embedded scale they come
    from a rendering with ``eval.source_images_per_class`` per class (CA stays on the ordinary one)."""
    from dataclasses import replace
    n = p.eval.source_images_per_class
    if getattr(attack, "asr_on_source_class", False) and p.data.source == "embedded" and n > p.data.zeroshot_per_class:
        return replace(p.data, zeroshot_per_class=n)
    return None


def attack_metrics(p, model, attack, attack_id: str, attack_cfg, target: str) -> dict:
    """CA and ASR of ``model`` on the ImageNet analogue under ``attack`` (cached evaluation)."""
    from paperlib import pipeline as pl
    from paperlib.attacks import attack_key
    ev = p.eval
    akey = {"attack": attack_id, "cfg": attack_key(attack_id, attack_cfg)}
    out = pl.evaluate(model, p.data, "imagenet_analog", attack, akey, target, ev.asr_convention, ev.templates,
                      p.device, ev.batch_size)
    source_data = source_class_data(p, attack)
    if source_data is not None:
        src = pl.evaluate(model, source_data, "imagenet_analog", attack, akey, target,
                          ev.asr_convention, ev.templates, p.device, ev.batch_size, clean=False)
        out = {**out, **{k: v for k, v in src.items() if k.startswith("asr_")}}
        # the ASR is the source class's now; the clean share was measured on other images
        out["clean_asr_top1"] = float("nan")
    return out


def victim_metrics(p, model, attack, v) -> dict:
    """:func:`attack_metrics` for the attack of victim settings ``v``."""
    return attack_metrics(p, model, attack, v.attack, v.attack_config(), v.poison.target)


def published_row(p, file: str, key: dict, **match) -> dict | None:
    """The row of ``<results_dir>/<file>`` that names the model of cache ``key``, when that model is
    absent from this cache and ``p.reuse_rows`` allows it: a model trained elsewhere (a GPU lending,
    the machine that published the results) stands in by its row, so a fresh machine does not train
    it again.  ``match``: what the row measured beyond the model (a stage, an epoch, a probe)."""
    from pathlib import Path

    from paperlib.cache import ArtifactCache, artifact_key
    from paperlib.results import row_naming_model
    from paperlib.cache import note_model_stood_in
    if not getattr(p, "reuse_rows", False) or ArtifactCache().exists("model", key):
        return None
    row = row_naming_model(Path(p.results_dir) / file, artifact_key("model", key), **match)
    if row is not None:   # listed in this run's ledger, so a run without the row knows to build it
        note_model_stood_in(artifact_key("model", key), str(key.get("role", "")))
    return row


def cli(load, run, argv=None, description: str = "") -> int:
    """``python -m paperlib.experiments.<name> params/<name>/<scale>.yaml [dotted.key=value ...]``

    Values are read as YAML (``seeds=[0,1,2]``, ``defence.train.lr=5e-5``).  Results go to the
    scratch folder unless ``results_dir=results`` publishes them.
    """
    import argparse
    import logging
    import os
    from pathlib import Path

    from paperlib.assets import configure_environment, repo_root
    from paperlib.config import read_yaml
    from paperlib.results import open_results_dir
    ap = argparse.ArgumentParser(description=description or cli.__doc__)
    ap.add_argument("params", help="parameter file")
    ap.add_argument("overrides", nargs="*", help="dotted.key=value (value read as YAML)")
    a = ap.parse_args(argv)
    overrides = {}
    for item in a.overrides:
        if "=" not in item:
            raise SystemExit(f"override {item!r} is not dotted.key=value")
        k, _, v = item.partition("=")
        overrides[k] = read_yaml(v)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    configure_environment()
    params_file = Path(a.params).resolve()
    os.chdir(repo_root())   # relative result folders name the same place as in the notebooks
    params = load(params_file, overrides)
    print(f"results go to {open_results_dir(params, log=print)} (results_dir=results publishes into "
          "the committed results)", flush=True)
    run(params)
    return 0
