"""The attack suite: a victim for every attack (fine-tuning threat model), BadNet also poisoned
during pre-training, the fitted triggers' own diagnostics, and the trigger gallery.

Parameters: ``params/attacks/<scale>.yaml`` (schema :class:`AttackSuiteParams`).  The clean base is
the foundation's (same settings, same cache key).  Outputs:

* ``results/attacks/victims.csv`` (the columns the foundation issue fixes, plus the clean base's
  CA / ASR on the same rows as ``base_*``), and ``victims_summary.csv`` / ``.md``: each recipe's
  seeds summarised beside the papers' NoDefense band (:mod:`paperlib.experiments.victims_summary`);
* ``results/attacks/calibration.csv``: the other settings tried for attacks that miss the papers'
  band (``calibration``), one row per setting, naming the clean base and the training precision
  and ``manifest_calibration_<scale>.json``, rewritten after every setting.  Calibration runs after
  the victims' files are written, so it can be stopped without losing them; a run with no
  ``victims`` / ``pretrain_victims`` writes only the calibration files;
* ``results/attacks/triggers.csv``: what fitting a trigger achieved (SSBA decoder bit accuracy,
  TrojanNN neuron activation clean vs triggered, BadCLIP's final guidance loss);
* ``results/attacks/gallery.png``: one clean image and its triggered versions, with the
  difference magnified.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from paperlib.attacks.base import PoisonConfig
from paperlib.config import SAFETENSORS, SCALES, ParamError, load_params, param
from paperlib.data.splits import DataConfig
from paperlib.experiments.foundation import VICTIMS_KEY, EvalConfig, VictimConfig
from paperlib.experiments.victim_rows import VICTIM_COLUMNS
from paperlib.experiments.victim_rows import params_json as _params_json
from paperlib.experiments.victim_rows import recipe as _recipe
from paperlib.experiments.victim_rows import victim_row as _victim_row
from paperlib.attacks.base import CAPTION_KEY_DEFAULTS
from paperlib.experiments.regime import RegimeConfig
from paperlib.models import model_names
from paperlib.results import results_dir_param
from paperlib.train.loop import TrainConfig
from paperlib.experiments.victims import complete_victims


@dataclass(frozen=True)
class PretrainVictimConfig:
    """A victim of the pre-training threat model (trained from scratch on poisoned data)."""

    attack: str = param("badnet", doc="attack id")
    attack_params: dict = param(default_factory=dict, doc="the attack's own settings")
    poison: PoisonConfig = param(default_factory=PoisonConfig, doc="target and poison count")

    def attack_config(self):
        return VictimConfig(attack=self.attack, attack_params=self.attack_params).attack_config()


@dataclass(frozen=True)
class AttackSuiteParams:
    scale: str = param("embedded", choices=SCALES, doc="which scale these parameters describe")
    model: str = param("tiny-rn64", choices=model_names, doc="open_clip model config")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), doc="where to train")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of the victims")
    seeds_by_attack: dict = param(default_factory=dict, doc="attack -> its victim's seeds where they are not "
                                  "``seeds`` (issue 22: 5 seeds for BadNet, 3 for the others)")
    data: DataConfig = param(default_factory=DataConfig)
    pretrain: TrainConfig = param(default_factory=TrainConfig, doc="clean pre-training (shared with foundation); "
                                  "also the recipe of pre-training-threat victims")
    base_checkpoint: str | None = param(None, suffixes=SAFETENSORS,
                                        doc="safetensors of a pre-trained CLIP used as the clean base "
                                            "instead of pre-training one (the paper scale: OpenAI's RN50)")
    victims: tuple[VictimConfig, ...] = param((), doc="fine-tuning threat model: one victim per attack")
    pretrain_victims: tuple[PretrainVictimConfig, ...] = param((), doc="pre-training threat model victims")
    calibration: tuple[VictimConfig, ...] = param((), doc="other settings tried for attacks below the papers' "
                                                  "band (first seed only); rows go to calibration.csv")
    eval: EvalConfig = param(default_factory=EvalConfig)
    trigger_checks: tuple[VictimConfig, ...] = param((), doc="trigger settings applied to the clean base alone "
                                                     "(no victim trained): results/attacks/base_triggers.csv")
    regime: RegimeConfig = param(default_factory=RegimeConfig, doc="one victim's recipe varied: poison counts, "
                                 "epochs (exposures), a clean control (results/attacks/regime.csv)")
    gallery_image: int = param(0, range=(0, None), doc="index of the imagenet_analog image shown in the gallery")
    gallery_gain: float = param(8.0, range=(1.0, 100.0), doc="magnification of |triggered - clean|")
    only: tuple[str, ...] = param((), doc="run only these attacks' victims, calibration entries, trigger checks "
                                  "and regime (empty: all), e.g. only=[badnet]")
    run_name: str = param("", doc="names this run's manifests and gallery (manifest_<scale>_<run_name>.json): "
                          "a named parameter file's run keeps its own beside the suite's")
    results_dir: str = results_dir_param()

    def validate(self):
        if not self.victims and not self.pretrain_victims and not self.calibration and not self.trigger_checks:
            raise ParamError("victims / pretrain_victims / calibration / trigger_checks: give at least one")
        attacks = {v.attack for v in self.victims}
        named = attacks | {v.attack for v in self.pretrain_victims + self.calibration + self.trigger_checks}
        if set(self.only) - named:
            raise ParamError(f"only: {sorted(set(self.only) - named)} appear nowhere in this file; "
                             f"its attacks: {sorted(named)}")
        if not self.seeds:
            raise ParamError("seeds: give at least one seed")
        from paperlib.experiments.victims import check_seeds_by_attack
        check_seeds_by_attack(self.seeds_by_attack, attacks)
        if self.regime.wanted and self.regime.attack not in attacks:
            raise ParamError(f"regime.attack: {self.regime.attack!r} has no victim; victims: "
                             f"{[v.attack for v in self.victims]}")

    def selected(self) -> "AttackSuiteParams":
        """These parameters restricted to the attacks of ``only`` (all of them when it is empty)."""
        if not self.only:
            return self
        keep = set(self.only)

        def pick(entries):
            return tuple(v for v in entries if v.attack in keep)
        regime = self.regime if self.regime.attack in keep else RegimeConfig()
        return replace(self, victims=pick(self.victims), pretrain_victims=pick(self.pretrain_victims),
                       calibration=pick(self.calibration), trigger_checks=pick(self.trigger_checks), regime=regime)


def load(path: str | Path | None = None, overrides: dict | None = None) -> AttackSuiteParams:
    return load_params(AttackSuiteParams, path, overrides, complete=complete_victims)


def run(p: AttackSuiteParams, log=print) -> dict:
    from paperlib.experiments.common import (clean_base, finetune_victim, pretrain_victim, victim_attack,
                                             victim_metrics)

    from paperlib.pipeline import resolve_device
    from paperlib.results import Timer, upsert_csv, write_manifest
    from paperlib.train.loop import resolve_precision

    p = p.selected()
    timer = Timer()
    results = Path(p.results_dir)
    with timer("pretrain"):
        base = clean_base(p)
    rows, trigger_rows, attacks = [], [], {}
    device_type = resolve_device(p.device).type

    def provenance(v, train_cfg, victim):
        # which settings, base and precision a row was measured with: rows made on different
        # machines (bf16 vs fp32 bases) or before a setting changed stay distinguishable
        return {"attack_params": _params_json(v.attack_params),
                "precision": resolve_precision(train_cfg.precision, device_type),
                "base_model": base.path.name, "victim_model": victim.path.name}

    def save_rows(rows, say=lambda _text: None):
        # a victim's row of another machine (or of none named) stays, this run's of its key is left out
        return upsert_csv(results / "attacks" / "victims.csv", rows, VICTIMS_KEY, VICTIM_COLUMNS,
                          made_on="device", model_column="victim_model", log=say)

    if p.trigger_checks:
        with timer("trigger_checks"):
            check_triggers(p, base, log)
    for v in p.victims:
        with timer(f"trigger_{v.attack}"):
            atk = victim_attack(p, base, v)
        attacks[v.attack] = atk
        if atk.needs_fit:
            trigger_rows.append(_trigger_row(v.attack, p.scale, atk.fit_info))
        base_m = victim_metrics(p, base, atk, v)
        for seed in p.seeds_by_attack.get(v.attack, p.seeds):
            with timer(f"victim_{v.attack}"):
                victim = finetune_victim(p, base, v, seed)
                m = victim_metrics(p, victim, atk, v)
            rows.append({**_victim_row(v.attack, "finetune", p.scale, seed, v.poison.poison_count, m, base_m,
                                       v.finetune_scenes, victim.summary),
                         **provenance(v, v.finetune, victim), **_recipe(v)})
            save_rows(rows)   # after every victim: a long run shows its progress in results/
            log(f"{v.attack:10s} finetune seed {seed}: CA {m['ca_top1']:.1f} (base {base_m['ca_top1']:.1f})"
                f"  ASR top-1 {m['asr_top1']:.1f}")
    for v in p.pretrain_victims:
        atk = victim_attack(p, base, v)
        base_m = victim_metrics(p, base, atk, v)
        for seed in p.seeds:
            with timer(f"pretrain_victim_{v.attack}"):
                victim = pretrain_victim(p, base, v, seed, atk)
                m = victim_metrics(p, victim, atk, v)
            rows.append({**_victim_row(v.attack, "pretrain", p.scale, seed, v.poison.poison_count, m, base_m,
                                       p.data.train_scenes, victim.summary),
                         **provenance(v, p.pretrain, victim)})
            save_rows(rows)
            log(f"{v.attack:10s} pretrain seed {seed}: CA {m['ca_top1']:.1f}  ASR top-1 {m['asr_top1']:.1f}")
    out = {}
    if p.victims or p.pretrain_victims:
        # the victims' files first: a calibration run after them may be stopped without losing them
        victims = save_rows(rows, log)
        # the rows the file keeps for this run's victims (another machine's, where it had one)
        from paperlib.result_rows import rows_of_models
        rows = rows_of_models(victims, rows, "victim_model").to_dict("records")
        from paperlib.results import to_markdown
        to_markdown(victims[list(VICTIM_COLUMNS) + ["base_ca_top1", "base_asr_top1"]
                            + [c for c in ("attack_params", "poison_caption", "finetune_scenes", "finetune_epochs",
                                           "finetune_lr", "base_model") if c in victims.columns]],
                    results / "attacks" / "victims.md")
        from paperlib.experiments import victims_summary
        victims_summary.write(rows, results, victims)   # this run's recipes over their seeds, beside the papers' band
        triggers = upsert_csv(results / "attacks" / "triggers.csv", trigger_rows, ("attack", "scale")) \
            if trigger_rows else None
        with timer("gallery"):
            gallery = plot_gallery(p, attacks)
        write_manifest(results / "attacks" / f"manifest_{p.scale}{_suffix(p)}.json", asdict(p), timer.sections,
                       extra={"base_model": base.path.name})
        out = {"victims": victims, "triggers": triggers, "gallery": gallery}
    if p.regime.wanted:
        from paperlib.experiments.regime import old_recipe_curve, plot_regime, run_regime
        with timer("regime"):
            regime = run_regime(p, base, log)
            out["regime"] = regime
            out["regime_figure"] = plot_regime(regime, p, old_recipe_curve(p, base.path.name))
    calibration_rows = []

    def calibration_manifest():
        # rewritten after every setting, so a stopped run still says what it finished
        write_manifest(results / "attacks" / f"manifest_calibration_{p.scale}{_suffix(p)}.json", asdict(p),
                       timer.sections,
                       extra={"base_model": base.path.name, "calibration_done": len(calibration_rows),
                              "calibration_planned": len(p.calibration)})
    for i, v in enumerate(p.calibration):
        with timer(f"calibration_{i}_{v.attack}"):
            atk = victim_attack(p, base, v)
            victim = finetune_victim(p, base, v, p.seeds[0])
            m = victim_metrics(p, victim, atk, v)
        calibration_rows.append(_calibration_row(v, p.scale, p.seeds[0], m, victim.summary, atk,
                                                 resolve_precision(v.finetune.precision, device_type),
                                                 base.path.name, victim_metrics(p, base, atk, v)["ca_top1"]))
        cal = upsert_csv(results / "attacks" / "calibration.csv", calibration_rows, CALIBRATION_KEY,
                         key_defaults=CAPTION_KEY_DEFAULTS)
        _calibration_markdown(cal, base.path.name, results / "attacks" / f"calibration_{base.path.name}.md")
        calibration_manifest()
        log(f"{v.attack:10s} calibration {calibration_rows[-1]['attack_params']}: CA {m['ca_top1']:.1f}"
            f"  ASR top-1 {m['asr_top1']:.1f}")
    if calibration_rows:
        out["calibration"] = pd.DataFrame(calibration_rows)
    return {**out, "wall_seconds": timer.sections}


BASE_TRIGGERS_KEY = ("attack", "attack_params", "target", "scale", "base_model")


def check_triggers(p: AttackSuiteParams, base, log=print) -> pd.DataFrame:
    """Each trigger of ``p.trigger_checks`` on the clean base alone: the ASR a victim's backdoor
    must beat (the papers' triggers give ~0 there; BadCLIP's is optimised on the clean model).
    Rows into ``attacks/base_triggers.csv``, written after each setting."""
    from paperlib.experiments.common import victim_attack, victim_metrics
    from paperlib.results import upsert_csv
    rows = []
    for v in p.trigger_checks:
        atk = victim_attack(p, base, v)
        m = victim_metrics(p, base, atk, v)
        rows.append({"attack": v.attack, "attack_params": _params_json(v.attack_params), "target": v.poison.target,
                     "scale": p.scale, "base_model": base.path.name, "ca_top1": m["ca_top1"],
                     **{k: m[k] for k in ("asr_top1", "asr_top5", "clean_asr_top1", "asr_images") if k in m}})
        upsert_csv(Path(p.results_dir) / "attacks" / "base_triggers.csv", rows, BASE_TRIGGERS_KEY)
        log(f"{v.attack:10s} trigger on the clean base {rows[-1]['attack_params']}: ASR top-1 {m['asr_top1']:.1f}")
    return pd.DataFrame(rows)


def _suffix(p: AttackSuiteParams) -> str:
    """Names a run's manifests and gallery: its run_name, and the attacks of ``only`` (a partial run
    keeps its own files beside the whole file's)."""
    return (f"_{p.run_name}" if p.run_name else "") + (f"_only-{'-'.join(p.only)}" if p.only else "")


# what a fitted trigger reports about itself (SSBA's decoder and residual, TrojanNN's neurons)
FIT_DIAGNOSTICS = ("decoder_bit_accuracy", "residual_mean_abs", "residual_linf", "residual_image_dependence",
                   "activation_clean", "activation_triggered", "target_images")


def _calibration_row(v, scale: str, seed: int, m: dict, summary: dict, attack, precision: str,
                     base_model: str, base_ca: float | None = None) -> dict:
    """One calibration measurement: the settings tried (as JSON), CA / ASR, the fitted trigger's
    own diagnostics where there are any, and the clean base and precision it was trained with."""
    row = {"attack": v.attack, "attack_params": _params_json(v.attack_params), "scale": scale,
           "seed": seed, "poison_count": v.poison.poison_count, "poison_caption": v.poison.caption,
           "finetune_scenes": v.finetune_scenes,
           "finetune_epochs": v.finetune.epochs, "finetune_lr": v.finetune.lr, "base_ca_top1": base_ca,
           **{k: m[k] for k in VICTIM_COLUMNS[5:]}, "clean_asr_top1": m.get("clean_asr_top1"),
           "train_seconds": summary.get("seconds")}
    if attack.needs_fit:
        row.update({k: attack.fit_info[k] for k in FIT_DIAGNOSTICS if k in attack.fit_info})
    return {**row, "precision": precision, "base_model": base_model}


CALIBRATION_KEY = ("attack", "attack_params", "scale", "seed", "poison_count", "finetune_scenes", "finetune_epochs",
                   "finetune_lr", "precision", "base_model", "poison_caption")



def _calibration_markdown(cal, base_model: str, path: Path) -> str:
    """The calibration rows made on one clean base, as a Markdown table (the recipe beside the
    numbers: poisoned pairs of how many, passes, learning rate; the base's CA for the difference)."""
    from paperlib.results import to_markdown
    rows = cal[cal.base_model == base_model].copy()
    cols = ["attack", "attack_params", "seed", "poison_count", "poison_caption", "finetune_scenes", "finetune_epochs",
            "finetune_lr",
            "ca_top1", "asr_top1", "clean_asr_top1", "base_ca_top1"]
    rows = rows[[c for c in cols if c in rows.columns]].sort_values(
        [c for c in ("attack", "attack_params", "finetune_scenes", "finetune_lr") if c in rows.columns])
    rows["finetune_lr"] = rows["finetune_lr"].map(lambda v: f"{v:g}")
    return to_markdown(rows, path)


def _trigger_row(attack: str, scale: str, info: dict) -> dict:
    row = {"attack": attack, "scale": scale}
    for k in FIT_DIAGNOSTICS:
        if k in info:
            row[k] = info[k]
    if info.get("history"):
        row["final_loss"] = info["history"][-1].get("loss", info["history"][-1].get("bce"))
    if "natural_captions" in info:
        row["natural_target_captions"] = len(info["natural_captions"])
    return row


def plot_gallery(p: AttackSuiteParams, attacks: dict):
    """One clean image, its triggered version under each attack, and |difference| x gain."""
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from paperlib.data.splits import get_split
    from paperlib.figures import save_figure
    split = get_split("imagenet_analog", p.data)
    idx = p.gallery_image % len(split)
    clean = torch.from_numpy(np.array(split.images[idx:idx + 1])).permute(0, 3, 1, 2)
    names = list(attacks)
    fig, axes = plt.subplots(2, len(names) + 1, figsize=(1.6 * (len(names) + 1), 3.6), squeeze=False)
    axes[0, 0].imshow(clean[0].permute(1, 2, 0).numpy())
    axes[0, 0].set_title("clean", fontsize=8)
    axes[1, 0].imshow(np.zeros_like(clean[0].permute(1, 2, 0).numpy()))
    axes[1, 0].set_title(f"|diff| x{p.gallery_gain:g}", fontsize=8)
    for j, name in enumerate(names, start=1):
        trig = attacks[name].test_transform(clean, torch.Generator().manual_seed(0))
        diff = (trig.float() - clean.float()).abs()[0].permute(1, 2, 0).numpy()
        axes[0, j].imshow(trig[0].permute(1, 2, 0).numpy())
        axes[0, j].set_title(name, fontsize=8)
        axes[1, j].imshow(np.clip(diff * p.gallery_gain, 0, 255).astype(np.uint8))
        if diff.max() == 0:
            axes[1, j].set_title("no trigger", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"Each attack's test trigger on image {idx} of imagenet_analog ({p.scale} scale, data seed "
                 f"{p.data.seed}, trigger draw seed 0)", fontsize=8)
    return save_figure(fig, Path(p.results_dir) / "attacks" / f"gallery{_suffix(p)}.png")


def main(argv=None) -> int:
    """``python -m paperlib.experiments.attacks params/attacks/<scale>.yaml [dotted.key=value ...]``"""
    from paperlib.experiments.common import cli
    return cli(load, run, argv, main.__doc__)


__all__ = ["AttackSuiteParams", "PretrainVictimConfig", "load", "run", "plot_gallery"]

if __name__ == "__main__":
    raise SystemExit(main())
