"""The foundation experiment: clean base CLIP, a BadNet victim, and the ASR-vs-poison-count curve.

Parameters come from ``params/foundation/<scale>.yaml`` (schema: :class:`FoundationParams`).
``run`` writes ``results/base/zeroshot.csv`` and ``results/attacks/victims.csv`` rows (tidy, one
row per measurement), the poison curve, and a manifest.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paperlib.attacks import ATTACK_IDS, attack_config_class
from paperlib.attacks import attack_key as trigger_key
from paperlib.attacks.base import PoisonConfig
from paperlib.config import SAFETENSORS, SCALES, ParamError, from_dict, load_params, param
from paperlib.data.splits import DataConfig
# the presentation (the notebook's tables and figures) lives in foundation_report; re-exported here
from paperlib.experiments.foundation_report import (SPLIT_ANALOGUES, check_targets, describe_splits,  # noqa: F401
                                                    describe_vocabulary, paper_victims, plot_poison_curve,
                                                    plot_scene_gallery, victim_table, victims_beside_papers,
                                                    zeroshot_table)
from paperlib.experiments.victim_rows import VICTIM_COLUMNS, params_json, recipe, victim_row
from paperlib.models import model_names
from paperlib.results import results_dir_param
from paperlib.train.loop import TrainConfig

ZEROSHOT_SPLITS = ("imagenet_analog", "cifar10_analog", "in_style")


@dataclass(frozen=True)
class VictimConfig:
    """How the backdoored model is made from the clean base (fine-tuning threat model)."""

    attack: str = param("badnet", choices=ATTACK_IDS, doc="attack id")
    attack_params: dict = param(default_factory=dict, doc="the attack's own settings (see its config class)")
    poison: PoisonConfig = param(default_factory=PoisonConfig, doc="target and poison count")
    finetune_scenes: int = param(20_000, range=(2, None), doc="CC3M-analogue pairs in the poisoned fine-tuning set")
    finetune: TrainConfig = param(default_factory=lambda: TrainConfig(epochs=2, lr=5e-4, warmup_steps=20),
                                  doc="optimisation of the poisoning fine-tune")
    poison_curve: tuple[int, ...] = param((), range=(0, None), doc="extra poison counts for the ASR curve")
    patch_curve: tuple[tuple[float, int], ...] = param((), doc="extra (patch_fraction, poison_count) "
                                                      "victims: how ASR depends on the trigger's size")

    def validate(self):
        cfg = from_dict(attack_config_class(self.attack), self.attack_params, prefix="attack_params")
        if self.patch_curve and not hasattr(cfg, "patch_fraction"):
            raise ParamError(f"patch_curve needs a patch attack; {self.attack!r} has no patch_fraction")
        for frac, count in self.patch_curve:
            if not 0 < frac < 1 or count < 0:
                raise ParamError(f"patch_curve: ({frac}, {count}) needs 0 < patch_fraction < 1 and count >= 0")

    def attack_config(self):
        return from_dict(attack_config_class(self.attack), self.attack_params)


@dataclass(frozen=True)
class EvalConfig:
    asr_convention: str = param("exclude_target", choices=("exclude_target", "all"),
                                doc="whether target-class images count in ASR (anchors.md)")
    batch_size: int = param(512, range=(1, None), doc="evaluation batch size")
    templates: str = param("simple7", choices=("openai80", "simple7", "split"),
                           doc="prompt ensemble: the papers' 80 OpenAI templates or CLIP's 7")
    splits: tuple[str, ...] = param(ZEROSHOT_SPLITS, choices=ZEROSHOT_SPLITS, doc="zero-shot splits to report")
    linear_probes: tuple[str, ...] = param(("fashion_mnist", "heldout_style"),
                                           choices=("fashion_mnist", "heldout_style"),
                                           doc="linear probes of the clean base's frozen image features")
    fashion_train: int = param(10_000, range=(10, 60_000), doc="Fashion-MNIST training images for the probe")
    fashion_test: int = param(2_000, range=(10, 10_000), doc="Fashion-MNIST test images for the probe")
    source_images_per_class: int = param(50, range=(0, None),
                                         doc="mmPoison: images per class of the larger imagenet_analog rendering "
                                             "its ASR is measured on (only the source class is encoded); "
                                             "0 or <= data.zeroshot_per_class: the zero-shot split itself")


@dataclass(frozen=True)
class DataAblationConfig:
    """Short pre-training runs on variants of the CC3M analogue (``data_ablation:`` section).

    Each variant is ``data`` with the given overrides and ``train_scenes`` scenes, pre-trained
    with ``pretrain`` except for ``epochs`` and ``warmup_steps``: a fixed small budget, so the
    variants compare how fast each look of the data teaches object identity.
    """

    variants: dict = param(default_factory=dict, doc="name -> {data key: value} overrides")
    train_scenes: int = param(40_000, range=(1, None), doc="scenes of each variant's CC3M analogue")
    epochs: float = param(1.66, range=(0.0, None), doc="pre-training epochs of each variant")
    warmup_steps: int = param(100, range=(0, None), doc="warm-up steps of each variant")

    def validate(self):
        for name, over in self.variants.items():
            if not isinstance(over, dict):
                raise ParamError(f"data_ablation.variants.{name}: give a mapping of data keys")
            from_dict(DataConfig, {**over, "train_scenes": self.train_scenes},
                      prefix=f"data_ablation.variants.{name}")


@dataclass(frozen=True)
class FoundationParams:
    scale: str = param("embedded", choices=SCALES, doc="which scale these parameters describe")
    model: str = param("tiny-rn64", choices=model_names, doc="open_clip model config")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), doc="where to train")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of the victims")
    data: DataConfig = param(default_factory=DataConfig)
    pretrain: TrainConfig = param(default_factory=TrainConfig, doc="clean pre-training")
    victim: VictimConfig = param(default_factory=VictimConfig)
    eval: EvalConfig = param(default_factory=EvalConfig)
    results_dir: str = results_dir_param()
    vocabulary_ablation: tuple[int, ...] = param((), range=(0, None),
                                                 doc="other data.max_classes values to pre-train and "
                                                     "evaluate a base with (0 = all classes)")
    data_ablation: DataAblationConfig = param(default_factory=DataAblationConfig,
                                              doc="short pre-training runs on variants of the data")
    base_checkpoint: str | None = param(None, suffixes=SAFETENSORS,
                                        doc="safetensors of a pre-trained CLIP to use as the clean "
                                        "base instead of pre-training (paper scale: OpenAI RN50)")
    reuse_rows: bool = param(True, doc="a victim or linear probe absent from this cache: take its rows from "
                                       "foundation/poison_curve.csv and base/zeroshot.csv (base/linear_probe.csv) "
                                       "when they name the model (the probe result) by the cache key these "
                                       "parameters make, instead of computing it")

    def validate(self):
        if not self.seeds:
            raise ParamError("seeds: give at least one seed")
        from paperlib.models import config_image_size
        size = config_image_size(self.model)
        if size != self.data.image_size:
            raise ParamError(f"data.image_size {self.data.image_size} does not match model {self.model!r}, "
                             f"which takes {size} px images: set data.image_size: {size} or pick another model")


def load(path: str | Path | None = None, overrides: dict | None = None) -> FoundationParams:
    return load_params(FoundationParams, path, overrides)


__all__ = ["FoundationParams", "VictimConfig", "EvalConfig", "load", "ZEROSHOT_SPLITS"]
_ = (asdict, field)


ZEROSHOT_COLUMNS = ("model", "split", "scale", "seed", "top1", "top3", "top5", "top10")
# rows are keyed by the clean base they stand on too: a run on another base (a shipped one) adds
# rows beside the old base's instead of replacing them
# the victim's model (its cache key) too: a victim of another recipe on the same base (lr, passes,
# captions) is another row, the same victim measured again replaces its row
VICTIMS_KEY = ("attack", "threat_model", "scale", "seed", "poison_count", "base_model", "victim_model")
ZEROSHOT_KEY = ("model", "split", "scale", "seed", "base_model")


def _zeroshot_row(model_id: str, split: str, scale: str, seed: int, metrics: dict, base_model: str) -> dict:
    return {"model": model_id, "split": split, "scale": scale, "seed": seed,
            **{f"top{k}": metrics[f"ca_top{k}"] for k in (1, 3, 5, 10)},
            "n_images": metrics["n_images"], "n_classes": metrics["n_classes"], "base_model": base_model}


CURVE_KEY = ("attack", "threat_model", "scale", "seed", "patch_fraction", "poison_count")


def _as_written(x: float | None) -> float | None:
    """``x`` as result_rows.upsert_csv writes it (``%.4g``) and reads it back."""
    return None if x is None else float(f"{x:.4g}")


def eval_settings(p: FoundationParams) -> str:
    """A digest of what the victims' measurements depend on beyond the victim: the evaluation's
    prompts and ASR convention and the data its splits are rendered from (the ``eval_settings``
    column; a row is reused only under the same settings)."""
    import hashlib
    import json

    from paperlib.cache import canonical
    what = {"templates": p.eval.templates, "asr_convention": p.eval.asr_convention, "data": asdict(p.data)}
    return hashlib.sha256(json.dumps(canonical(what), sort_keys=True).encode()).hexdigest()[:12]


def _published_victim(p: FoundationParams, key: dict, main: bool) -> tuple[dict, list[dict]] | None:
    """The rows of the victim of cache ``key`` when that model is absent here and ``reuse_rows``
    allows it (a fresh machine does not train it again, docs/running.md): its poison-curve row and,
    for the main victim, its zero-shot rows (every split of ``eval.splits``), all measured under
    these evaluation settings (:func:`eval_settings`); None if any is missing."""
    import pandas as pd

    from paperlib.cache import ArtifactCache, artifact_key
    from paperlib.results import row_naming_model
    if not p.reuse_rows or ArtifactCache().exists("model", key):
        return None
    name, settings = artifact_key("model", key), eval_settings(p)
    results = Path(p.results_dir)
    row = row_naming_model(results / "foundation" / "poison_curve.csv", name, column="victim_model",
                           eval_settings=settings)
    if row is None:
        return None
    for column in CURVE_KEY:    # an empty key cell (no patch) is dropped with the row's empty cells
        row.setdefault(column, None)
    if not main:
        return row, []
    path = results / "base" / "zeroshot.csv"
    zs = (pd.read_csv(path, dtype={"victim_model": str, "base_model": str, "eval_settings": str})
          if path.is_file() else pd.DataFrame())
    if "victim_model" not in zs.columns or "eval_settings" not in zs.columns:
        return None
    zs = zs[(zs.victim_model == name) & (zs.eval_settings == settings) & zs.split.isin(p.eval.splits)]
    if set(zs.split) != set(p.eval.splits):
        return None
    return row, [{k: v for k, v in r.items() if not pd.isna(v)} for r in zs.to_dict("records")]


def _published_probe(p: FoundationParams, eval_key: str) -> dict | None:
    """The row of results/base/linear_probe.csv of the probe result ``eval_key`` (its cache key)
    when this cache lacks it and ``reuse_rows`` allows it."""
    from paperlib.assets import cache_root
    from paperlib.results import row_naming_model
    if not p.reuse_rows or (cache_root() / "eval" / eval_key / "DONE").is_file():
        return None
    return row_naming_model(Path(p.results_dir) / "base" / "linear_probe.csv", eval_key, column="eval_key")


def run(p: FoundationParams, log=print) -> dict:
    """Everything the foundation issue reports; returns the result tables as DataFrames."""
    import pandas as pd

    from paperlib import pipeline as pl
    from paperlib.cache import artifact_key
    from paperlib.result_rows import rows_of_models
    from paperlib.results import Timer, upsert_csv, write_manifest

    timer = Timer()
    results = Path(p.results_dir)
    ev = p.eval
    with timer("pretrain"):
        base = (pl.external_model(p.model, p.base_checkpoint) if p.base_checkpoint
                else pl.pretrain_clean(p.data, p.model, p.pretrain, p.device))
    bs = base.summary
    rate = bs.get("samples_per_second") or bs.get("samples", 0) / max(bs.get("seconds", 0), 1e-9)
    log(f"clean base{' (shipped: ' + bs['shipped_from'] + ')' if bs.get('shipped_from') else ''}: "
        + (f"trained on {bs['samples']} samples in {bs.get('seconds', 0):.0f} s ({rate:.0f} samples/s on "
           f"{bs.get('device')})" if bs.get("samples") else "no training record (an external checkpoint)"))

    attack_cfg = p.victim.attack_config()
    attack = pl.prepared_attack(p.victim.attack, attack_cfg, base, p.data, p.victim.poison.target, p.device)
    attack_key = {"attack": p.victim.attack, "cfg": trigger_key(p.victim.attack, attack_cfg)}
    target = p.victim.poison.target
    def clean_eval(model, split):
        return pl.evaluate(model, p.data, split, templates=ev.templates, device=p.device,
                           batch_size=ev.batch_size)

    def attack_eval(model, atk=attack, atk_key=attack_key):
        """CA and ASR on the ImageNet analogue (the target is one of its classes)."""
        return pl.evaluate(model, p.data, "imagenet_analog", atk, atk_key, target,
                           ev.asr_convention, ev.templates, p.device, ev.batch_size)

    zs_rows, victim_rows, curve_rows = [], [], []
    with timer("evaluate_base"):
        for s in ev.splits:
            zs_rows.append(_zeroshot_row("clean_base", s, p.scale, p.pretrain.seed, clean_eval(base, s),
                                         base.path.name))
        base_in = attack_eval(base)

    from paperlib.train.loop import resolve_precision
    main_count = p.victim.poison.poison_count          # the main victim first, then the curves
    variants = [(None, main_count)] + [(None, c) for c in sorted(set(p.victim.poison_curve) - {main_count})]
    variants += [(float(f), int(c)) for f, c in p.victim.patch_curve]
    device_type = pl.resolve_device(p.device).type
    reused = 0
    for seed in p.seeds:
        for frac, count in variants:
            cfg = attack_cfg if frac is None else dataclasses.replace(attack_cfg, patch_fraction=frac)
            main = frac is None and count == main_count
            published = _published_victim(p, pl.poison_finetune_key(
                base, p.victim.attack, cfg, target, count, p.victim.finetune_scenes, p.victim.finetune, seed,
                device_type, p.victim.poison.caption), main)
            if published is not None:   # trained elsewhere: its rows stand in
                row, victim_zs = published
                curve_rows.append(row)
                if main:
                    victim_rows.append(row)
                    zs_rows.extend(victim_zs)
                reused += 1
                log(f"seed {seed} patch {row.get('patch_fraction', float('nan')):.3f} poison {count}: rows of "
                    f"victim {row['victim_model']} taken from the results files (absent from this cache)")
                continue
            atk = attack if frac is None else pl.prepared_attack(p.victim.attack, cfg, base, p.data, target, p.device)
            with timer("victims"):
                victim = pl.poison_finetune(base, p.data, p.victim.attack, cfg, target, count,
                                            p.victim.finetune_scenes, p.victim.finetune, seed, p.device,
                                            caption=p.victim.poison.caption)
                m = attack_eval(victim, atk, {"attack": p.victim.attack, "cfg": trigger_key(p.victim.attack, cfg)})
            # the attack suite's columns (its victims.csv rows name trigger, captions and precision
            # too): the same victim written from here must not lose them
            row = {**victim_row(p.victim.attack, "finetune", p.scale, seed, count, m, base_in,
                                 p.victim.finetune_scenes, victim.summary), **recipe(p.victim),
                   "eval_settings": eval_settings(p),
                   # a key column: at the precision the file keeps (4 significant digits), so that a
                   # fresh row replaces the one read back instead of standing beside it
                   "patch_fraction": _as_written(getattr(cfg, "patch_fraction", None)),
                   "attack_params": params_json({**p.victim.attack_params, **({} if frac is None else
                                                                              {"patch_fraction": frac})}),
                   "precision": resolve_precision(p.victim.finetune.precision, pl.resolve_device(p.device).type),
                   "base_model": base.path.name, "victim_model": victim.path.name}
            curve_rows.append(row)
            if main:
                victim_rows.append(row)
                for s in ev.splits:
                    zs_rows.append({**_zeroshot_row(f"{p.victim.attack}_victim", s, p.scale, seed,
                                                    clean_eval(victim, s), base.path.name),
                                    "victim_model": victim.path.name, "eval_settings": eval_settings(p),
                                    "device": victim.summary.get("device", "")})
            log(f"seed {seed} patch {row['patch_fraction']:.3f} poison {count}: "
                f"CA top-1 {m['ca_top1']:.1f} ASR top-1 {m['asr_top1']:.1f} top-5 {m['asr_top5']:.1f}")

    if reused:
        from paperlib.results import say_in_terminal
        text = (f"victims: {reused} of {len(p.seeds) * len(variants)} taken from the results files "
                "(their models are absent from this cache; reuse_rows: false trains them)")
        log(text)
        say_in_terminal(text)
    # a victim's rows of another machine (or of none named) stay: this run's of the same key are left
    # out, and the curve shows the rows the file keeps
    zs = upsert_csv(results / "base" / "zeroshot.csv", zs_rows, ZEROSHOT_KEY, ZEROSHOT_COLUMNS,
                    made_on="device", model_column="victim_model", log=log)
    victims = upsert_csv(results / "attacks" / "victims.csv", victim_rows, VICTIMS_KEY, VICTIM_COLUMNS,
                         made_on="device", model_column="victim_model", log=log)
    curve = upsert_csv(results / "foundation" / "poison_curve.csv", curve_rows, CURVE_KEY, VICTIM_COLUMNS,
                       made_on="device", model_column="victim_model", log=log)
    if "victim_model" in curve.columns:     # (no rows and no file: an empty table)
        order = {str(r["victim_model"]): i for i, r in enumerate(curve_rows)}   # the run's order: main victim first
        curve = rows_of_models(curve, curve_rows, "victim_model").sort_values(
            "victim_model", key=lambda names: names.astype(str).map(order))
    probe_rows = []
    with timer("linear_probe"):
        for probe in ev.linear_probes:
            eval_key = artifact_key("eval", pl.linear_probe_key(base, p.data, probe, ev.fashion_train, ev.fashion_test))
            published = _published_probe(p, eval_key)
            if published is not None:   # this very probe, computed elsewhere: its row stands in
                probe_rows.append(published)
                log(f"linear probe {probe}: row {eval_key} taken from results/base/linear_probe.csv")
                continue
            m = pl.linear_probe_eval(base, p.data, probe, ev.fashion_train, ev.fashion_test, p.device,
                                     ev.batch_size)
            probe_rows.append({"model": "clean_base", "probe": probe, "scale": p.scale, "seed": p.pretrain.seed,
                               "top1": m["top1"], "top5": m["top5"], "C": m["C"], "n_train": m["n_train"],
                               "n_test": m["n_test"], "n_classes": m["n_classes"], "base_model": base.path.name,
                               "eval_key": eval_key})
    # keyed by the base too: another base's probes stay in the file, and out of this run's table
    probes = upsert_csv(results / "base" / "linear_probe.csv", probe_rows,
                        ("model", "probe", "scale", "seed", "base_model")) if probe_rows else None
    probes = probes[probes.base_model.astype(str) == base.path.name] if probes is not None else None
    ablation = None
    if p.vocabulary_ablation and not p.base_checkpoint:
        with timer("vocabulary_ablation"):
            ablation = vocabulary_ablation(p, base, clean_eval)
    data_abl = None
    if p.data_ablation.variants and not p.base_checkpoint:
        with timer("data_ablation"):
            data_abl = data_ablation(p, clean_eval_for=lambda m, d, s: pl.evaluate(
                m, d, s, templates=ev.templates, device=p.device, batch_size=ev.batch_size))
    elif p.data_ablation.variants:
        # a shipped base is not pre-trained here, so neither are its data variants: the rows that
        # chose its data (written when the base was trained from scratch) are shown as they stand
        data_abl = committed_data_ablation(p)
        log(f"data ablation: {0 if data_abl is None else len(data_abl)} rows of {results / 'foundation' / 'data_ablation.csv'} reused "
            f"(the base is shipped: its pre-training variants are not re-run)")
    write_manifest(results / "foundation" / f"manifest_{p.scale}.json", asdict(p), timer.sections,
                   extra={"base_model": str(base.path.name), "base_summary": base.summary})
    return {"zeroshot": zs, "victims": victims, "curve": curve.reset_index(drop=True),
            "base_model": base.path.name, "victim_models": [r["victim_model"] for r in victim_rows],
            "base_summary": base.summary, "wall_seconds": timer.sections, "ablation": ablation,
            "data_ablation": data_abl,
            "linear_probe": probes}


def data_ablation(p: FoundationParams, clean_eval_for):
    """Pre-train each variant of ``p.data_ablation`` with the same small budget; zero-shot rows.

    Rows: results/foundation/data_ablation.csv (one per variant and split).
    """
    from paperlib import pipeline as pl
    from paperlib.config import replace
    from paperlib.results import upsert_csv
    a = p.data_ablation
    cfg = replace(p.pretrain, epochs=a.epochs, warmup_steps=a.warmup_steps)
    rows = []
    for name, over in a.variants.items():
        data = replace(p.data, **{**over, "train_scenes": a.train_scenes})
        model = pl.pretrain_clean(data, p.model, cfg, p.device)
        s = model.summary
        for split in ("imagenet_analog", "in_style"):
            m = clean_eval_for(model, data, split)
            rows.append({"variant": name, "split": split, "scale": p.scale, "seed": cfg.seed,
                         "train_styles": "+".join(data.train_styles),
                         "backgrounds": "+".join(data.train_backgrounds),
                         "object_weights": ":".join(f"{w:g}" for w in data.train_object_weights),
                         **{f"top{k}": m[f"ca_top{k}"] for k in (1, 3, 5, 10)}, "n_classes": m["n_classes"],
                         "train_samples": s.get("samples"), "train_steps": s.get("steps"),
                         "final_loss": s.get("final_losses", {}).get("clip")})
    return upsert_csv(Path(p.results_dir) / "foundation" / "data_ablation.csv", rows,
                      ("variant", "split", "scale", "seed"))


def committed_data_ablation(p: FoundationParams):
    """The data ablation's rows already in ``<results_dir>/foundation/data_ablation.csv`` for this
    scale and the variants of ``p`` (None when the file has none)."""
    import pandas as pd
    path = Path(p.results_dir) / "foundation" / "data_ablation.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    df = df[(df.scale == p.scale) & df.variant.isin(list(p.data_ablation.variants))].reset_index(drop=True)
    return df if len(df) else None


def vocabulary_ablation(p: FoundationParams, base, clean_eval):
    """The clean base pre-trained with other vocabulary sizes (same budget), evaluated zero-shot.

    Rows: results/foundation/vocabulary_ablation.csv (max_classes 0 = all classes).
    """
    import dataclasses

    from paperlib import pipeline as pl
    from paperlib.results import upsert_csv
    rows = []
    variants = [(p.data.max_classes, p.data, base)]
    for n in p.vocabulary_ablation:
        if n == p.data.max_classes:
            continue
        data = dataclasses.replace(p.data, max_classes=n)
        variants.append((n, data, pl.pretrain_clean(data, p.model, p.pretrain, p.device)))
    for n, data, model in variants:
        for split in ("imagenet_analog", "in_style"):
            m = pl.evaluate(model, data, split, templates=p.eval.templates, device=p.device,
                            batch_size=p.eval.batch_size)
            rows.append({"max_classes": n, "split": split, "scale": p.scale, "seed": p.pretrain.seed,
                         "n_classes": m["n_classes"], **{f"top{k}": m[f"ca_top{k}"] for k in (1, 3, 5, 10)},
                         "chance_top1": 100.0 / m["n_classes"], "train_samples": model.summary.get("samples"),
                         "train_seconds": model.summary.get("seconds")})
    return upsert_csv(Path(p.results_dir) / "foundation" / "vocabulary_ablation.csv", rows,
                      ("max_classes", "split", "scale", "seed"))


def main(argv=None) -> int:
    """Command line: ``python -m paperlib.experiments.foundation params/foundation/<scale>.yaml``.

    Under ``torchrun --nproc_per_node=N`` the training steps run data-parallel (DDP); data and
    evaluations are built by rank 0 alone, and result files are written by rank 0.
    """
    import argparse
    import os
    import torch
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("params", help="parameter file")
    args = ap.parse_args(argv)
    from paperlib.assets import configure_environment, repo_root
    from paperlib.results import open_results_dir
    configure_environment()
    params_file = Path(args.params).resolve()
    os.chdir(repo_root())   # relative result folders name the same place as in the notebooks
    p = load(params_file)
    where = open_results_dir(p)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"results go to {where} (results_dir=results publishes into the committed results)", flush=True)
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as dist
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    out = run(p, log=print if int(os.environ.get("RANK", 0)) == 0 else (lambda *a: None))
    if int(os.environ.get("RANK", 0)) == 0:
        print(check_targets(out, p).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
