"""Why a victim recipe implants a backdoor or not, measured on one attack (issue 22, item 3).

Around one victim of the attack suite (``regime.attack``), the same recipe is trained again with
other poison counts (ASR against the poison rate), other epoch counts at the victim's poison count
(ASR against poisoned exposures = poisoned pairs x epochs, at a fixed rate), and on clean pairs
only (the control: what the fine-tune costs in clean accuracy without any poisoned pair, so the
difference to the victim is what the poisoned pairs, trigger and template captions, cost).  Every
row also says how many clean test images the model sends to the target already
(``clean_asr_top1``): a victim that sends many is biased toward the target, not backdoored.

Rows: ``results/attacks/regime.csv``, one per (attack, recipe, poison count, epochs, seed), keyed
by the clean base too; figure ``results/attacks/regime_<scale>.png`` with the papers' NoDefense
band of the attack (every paper's number for it, :mod:`paperlib.papers`) drawn on it.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from paperlib.attacks.base import CAPTION_KEY_DEFAULTS, CAPTION_POLICIES
from paperlib.config import ParamError, param

REGIME_KEY = ("attack", "attack_params", "scale", "seed", "variant", "poison_count", "finetune_scenes",
              "finetune_epochs", "run_epochs", "finetune_lr", "precision", "base_model", "poison_caption")
REGIME_COLUMNS = REGIME_KEY + ("epoch_file", "poison_rate", "exposures", "ca_top1", "ca_top5", "asr_top1", "asr_top5",
                               "clean_asr_top1", "base_ca_top1", "base_asr_top1", "victim_model", "train_seconds")


@dataclass(frozen=True)
class RegimeConfig:
    """Which victim the measurements vary, and how (nothing is trained when all three are empty)."""

    attack: str = param("badnet", doc="the victim (of ``victims``, by attack) whose recipe is varied")
    poison_counts: tuple[int, ...] = param((), range=(1, None), doc="other poison counts, same recipe")
    epochs: tuple[float, ...] = param((), range=(0.0, None), doc="other epoch counts at the victim's poison count, "
                                      "each run keeping its weights at every epoch end: ASR against poisoned "
                                      "exposures at a fixed rate, one row per epoch")
    control: bool = param(False, doc="also the recipe on clean pairs only (poison count 0)")
    captions: tuple[str, ...] = param((), choices=CAPTION_POLICIES,
                                      doc="other caption policies of the poisoned pairs, same recipe")
    prompt_templates: bool = param(False, doc="also CA prompt by prompt of the base and of the victim, caption "
                                   "and control variants (attacks/prompt_templates.csv)")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of these victims")

    def validate(self):
        bad = [e for e in self.epochs if e < 1 or e != int(e)]
        if bad:
            raise ParamError(f"regime.epochs: {bad}: whole numbers of passes >= 1 (each run is measured at "
                             "every pass end)")

    @property
    def wanted(self) -> bool:
        return bool(self.poison_counts or self.epochs or self.control or self.captions or self.prompt_templates)


def regime_victims(p, v) -> list[tuple[str, object]]:
    """The victim settings to train: the victim itself, then each variant of ``p.regime``."""
    r = p.regime
    out = [("victim", v)]
    for c in sorted(set(r.poison_counts) - {v.poison.poison_count}):
        out.append(("poison_count", dataclasses.replace(v, poison=dataclasses.replace(v.poison, poison_count=c))))
    for e in sorted(set(r.epochs)):   # the recipe's own count too: its run keeps every epoch
        out.append(("epochs", dataclasses.replace(v, finetune=dataclasses.replace(v.finetune, epochs=float(e)))))
    for c in [c for c in r.captions if c != v.poison.caption]:
        out.append(("caption", dataclasses.replace(v, poison=dataclasses.replace(v.poison, caption=c))))
    if r.control:
        out.append(("control", dataclasses.replace(v, poison=dataclasses.replace(v.poison, poison_count=0))))
    return out


def run_regime(p, base, log=print) -> pd.DataFrame:
    """Train (or find) every variant at ``p.regime.seeds``; rows into ``attacks/regime.csv``."""
    from paperlib import pipeline as pl
    from paperlib.experiments.common import finetune_victim, victim_attack, victim_config, victim_metrics
    from paperlib.results import upsert_csv
    from paperlib.train.loop import resolve_precision
    v0 = victim_config(p, p.regime.attack)
    precision = resolve_precision(v0.finetune.precision, pl.resolve_device(p.device).type)
    atk = victim_attack(p, base, v0)
    base_m = victim_metrics(p, base, atk, v0)
    rows, probed = [], []

    def measured(label, v, seed):
        """(model, epochs trained) of variant ``v``: one, or one per epoch end for an epochs variant."""
        if label != "epochs":
            yield finetune_victim(p, base, v, seed), v.finetune.epochs, ""
            return
        run = pl.poison_finetune(base, p.data, v.attack, v.attack_config(), v.poison.target, v.poison.poison_count,
                                 v.finetune_scenes, v.finetune, seed, p.device, epoch_checkpoints=True,
                                 caption=v.poison.caption)
        for k, art in run.epoch_weights():
            yield art, float(k), art.weights_file

    for seed in p.regime.seeds:
        for label, v in regime_victims(p, v0):
            for victim, epochs, epoch_file in measured(label, v, seed):
                m = victim_metrics(p, victim, atk, v)
                count = v.poison.poison_count
                if label in ("victim", "caption", "control") and seed == p.regime.seeds[0]:
                    role = {"victim": "the recipe", "caption": f"{v.poison.caption} captions",
                            "control": "control: clean pairs only"}[label]
                    probed.append((role, seed, v.poison.caption if count else None, victim))
                rows.append({"attack": v.attack, "attack_params": json.dumps(v.attack_params, sort_keys=True),
                             "scale": p.scale, "seed": seed, "poison_count": count,
                             "poison_caption": v.poison.caption, "finetune_scenes": v.finetune_scenes, "finetune_epochs": epochs,
                             "run_epochs": v.finetune.epochs,
                             "finetune_lr": v.finetune.lr, "precision": precision, "base_model": base.path.name,
                             "variant": label, "epoch_file": epoch_file,
                             "poison_rate": 100.0 * count / v.finetune_scenes, "exposures": count * epochs,
                             **{k: m.get(k) for k in ("ca_top1", "ca_top5", "asr_top1", "asr_top5", "clean_asr_top1")},
                             "base_ca_top1": base_m["ca_top1"], "base_asr_top1": base_m["asr_top1"],
                             "victim_model": victim.path.name, "train_seconds": victim.summary.get("seconds")})
                log(f"regime {label:12s} seed {seed}: {count} poisoned x {epochs:g} epochs: CA {m['ca_top1']:.1f} "
                    f"(base {base_m['ca_top1']:.1f})  ASR top-1 {m['asr_top1']:.1f}  clean->target "
                    f"{m.get('clean_asr_top1', float('nan')):.1f}")
                upsert_csv(Path(p.results_dir) / "attacks" / "regime.csv", rows, REGIME_KEY, REGIME_COLUMNS,
                           key_defaults=CAPTION_KEY_DEFAULTS)
    if p.regime.prompt_templates:
        from paperlib.experiments.prompts import PROMPT_COLUMNS, PROMPT_KEY, prompt_rows, prompt_summary
        from paperlib.pipeline.evaluation import templates_for
        from paperlib.data.splits import get_split
        templates = templates_for(p.eval.templates, get_split("imagenet_analog", p.data))
        prompts = prompt_rows(p, base, probed, templates)
        upsert_csv(Path(p.results_dir) / "attacks" / "prompt_templates.csv", prompts.to_dict("records"),
                   PROMPT_KEY, PROMPT_COLUMNS)
        for r in prompt_summary(prompts).itertuples():
            log(f"prompts: {r.model_role:26s} {'poison templates' if r.in_poison_templates else 'other prompts':16s}"
                f" CA lost {r.mean:+.1f} (from {r.min:+.1f} to {r.max:+.1f}, {r.count} prompts)")
    return pd.DataFrame(rows)


def papers_band(attack: str, metric: str = "asr", defence: str = "none") -> tuple[float, float, list[str]]:
    """(lowest, highest, sources) of every top-1 ``metric`` the papers print for ``attack`` under
    ``defence`` (NoDefense by default), of victims poisoned by fine-tuning a pre-trained CLIP (rows of
    models poisoned during pre-training on CC3M, ``pretrain=cc3m...``, are another threat model and
    left out)."""
    from paperlib import papers
    df = papers.load()
    sel = df[(df.attack == attack) & (df.defence == defence) & (df.metric == metric) & (df.k.isna() | (df.k == 1))
             & ~df.setting.str.contains("pretrain=cc3m", regex=False)]
    if sel.empty:
        raise KeyError(f"no paper prints a top-1 {metric} for {attack!r} under {defence!r}")
    return float(sel.value.min()), float(sel.value.max()), sorted(set(sel.paper + " " + sel.table))


def old_recipe_curve(p, base_model: str) -> pd.DataFrame | None:
    """The foundation's poison-curve rows made on another clean base (the old recipe), if any."""
    path = Path(p.results_dir) / "foundation" / "poison_curve.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    df = df[(df.attack == p.regime.attack) & (df.scale == p.scale) & (df.poison_count > 0)]
    if "base_model" in df:
        df = df[df.base_model.fillna("") != base_model]
    frac = victim_config_patch(p)
    if frac is not None and "patch_fraction" in df:
        df = df[(df.patch_fraction - frac).abs() < 1e-3]      # the same trigger size only
    return df if len(df) else None


def victim_config_patch(p) -> float | None:
    """The patch fraction of the regime's victim (None for an attack without one)."""
    from paperlib.experiments.common import victim_config
    return getattr(victim_config(p, p.regime.attack).attack_config(), "patch_fraction", None)


def plot_regime(rows: pd.DataFrame, p, old_curve: pd.DataFrame | None = None) -> Path:
    """ASR top-1 (left) and CA top-1 (right) against poisoned exposures, the papers' band shaded;
    ``old_curve`` (the foundation's poison curve of the old recipe, if given) drawn for comparison."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paperlib.figures import save_figure
    attack = p.regime.attack
    lo, hi, sources = papers_band(attack)
    from paperlib.experiments.common import victim_config
    fig = plt.figure(figsize=(10, 5.4))
    grid = fig.add_gridspec(2, 2, height_ratios=[4, 1.3])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])]
    legend_ax = fig.add_subplot(grid[1, :])      # one legend for both panels, beneath them
    legend_ax.axis("off")
    seeds = sorted(set(rows.seed))
    markers = {"victim": "o", "poison_count": "s", "epochs": "^", "control": "x"}
    labels = {"victim": "the recipe", "poison_count": "other poison counts", "epochs": "more passes (same rate)",
              "control": "control: clean pairs only"}
    rows = rows.assign(poison_caption=rows.get("poison_caption", "template"))
    for ax, col, base_col in ((axes[0], "asr_top1", "base_asr_top1"), (axes[1], "ca_top1", "base_ca_top1")):
        for (label, run_epochs, caption), sub in rows.groupby(["variant", "run_epochs", "poison_caption"]):
            g = sub.groupby("exposures")[col]
            x = g.mean().index.to_numpy()
            x = x if label != "control" else x + 1      # exposures 0 on a log axis
            name = labels.get(label, label) + (f" (one run of {run_epochs:g}, each pass end)" if label == "epochs" else "")
            if label == "caption":
                name = f"{caption} captions"
            ax.errorbar(x, g.mean().values, yerr=g.std().fillna(0).values, fmt=markers.get(label, "o"),
                        ls="-" if label == "epochs" else "none", capsize=3, label=name)
        if old_curve is not None and len(old_curve):
            oc = old_curve.assign(exposures=old_curve.poison_count * old_curve.finetune_epochs)
            for rate, sub in oc.groupby("poison_rate"):
                ax.plot(sub.exposures, sub[col], "d", alpha=0.7,
                        label=f"old recipe, old base, random position, {rate:g} % rate")
        ax.axhline(rows[base_col].mean(), color="black", lw=1, ls=":", label="clean base")
        ax.set_xscale("log")
        ax.set_xlabel("poisoned exposures (poisoned pairs x epochs; control drawn at 1)")
        ax.grid(alpha=0.3)
    axes[0].axhspan(lo, hi, color="tab:green", alpha=0.15, label=f"papers' NoDefense {lo:g}-{hi:g}")
    axes[0].set_ylabel(f"{attack} ASR top-1 (%)")
    axes[0].set_ylim(-2, 102)
    base_ca = rows["base_ca_top1"].mean()
    axes[1].axhspan(base_ca - 2, base_ca, color="tab:green", alpha=0.15, label="within 2 points of the base")
    axes[1].set_ylabel("CA top-1 (%)")
    entries = {}
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(text, handle)
    legend_ax.legend(entries.values(), entries.keys(), fontsize=7, loc="center", ncol=3, frameon=False)
    v = victim_config(p, attack)
    recipe = (f"{v.poison.poison_count} of {v.finetune_scenes:,} pairs poisoned, {v.finetune.epochs:g} pass(es) at lr "
              f"{v.finetune.lr:g}, {v.poison.caption} captions")
    fig.suptitle(f"{attack}: the victim recipe's regime ({p.scale} scale, seeds {', '.join(map(str, seeds))}; recipe: "
                 f"{recipe})\nband: {'; '.join(sources)}", fontsize=8)
    name = f"regime_{p.scale}" + (f"_{p.run_name}" if p.run_name else "")   # one figure per named run
    return save_figure(fig, Path(p.results_dir) / "attacks" / f"{name}.png")


__all__ = ["RegimeConfig", "REGIME_KEY", "regime_victims", "run_regime", "papers_band", "plot_regime"]
