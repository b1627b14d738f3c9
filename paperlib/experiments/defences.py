"""The defence matrix: every fine-tuning defence against every victim, one budget for all.

Parameters: ``params/defences/<scale>.yaml`` (schema :class:`DefenceMatrixParams`).  The clean
base and the victims are the foundation's (same cache keys when the same settings are given),
so nothing is trained twice.  Every defence fine-tunes the victim on the same ``clean_scenes``
clean CC3M-analogue pairs (disjoint from the poisoned set) with the same optimiser settings and
number of steps: the fair budget the issue asks for, written into every row (``samples``).
Output: ``results/defences/matrix.csv`` (one row per attack x defence x seed; ``none`` is the
undefended victim), its manifest, and ``results/defences/matrix_summary.csv`` (each victim recipe's
seeds condensed per defence, paired against the undefended victim, beside the papers' band:
:mod:`paperlib.experiments.matrix_summary`).  ``defence.ft_lrs`` sweeps plain FT's learning rate against
the papers' FT rows (the shared budget is what decides how much of a backdoor clean fine-tuning
removes); those rows go to ``results/defences/ft_budget.csv``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from paperlib.attacks import ATTACK_IDS
from paperlib.config import SAFETENSORS, SCALES, ParamError, from_dict, load_params, param
from paperlib.data.splits import DataConfig
from paperlib.defences import REGISTRY as DEFENCES
from paperlib.defences import defence_config_class
from paperlib.experiments.attacks import PretrainVictimConfig
from paperlib.experiments.foundation import EvalConfig, VictimConfig
from paperlib.models import model_names
from paperlib.results import results_dir_param
from paperlib.train.loop import TrainConfig
from paperlib.experiments.victims import complete_victims

MATRIX_COLUMNS = ("attack", "defence", "scale", "seed", "ca_top1", "ca_top3", "ca_top5", "ca_top10",
                  "asr_top1", "asr_top3", "asr_top5", "asr_top10", "wall_s", "samples")
# A row is keyed by the measured model's cache key too: that key names every setting that made the
# model (victim, defence settings, budget, seed, base), so a run at another learning rate or on
# another victim adds rows beside the others and never replaces or removes them.
MATRIX_KEY = ("attack", "defence", "scale", "seed", "model")


@dataclass(frozen=True)
class DefenceSettings:
    """The shared budget and the per-defence settings (``defence:`` section)."""

    methods: tuple[str, ...] = param(tuple(DEFENCES), choices=tuple(DEFENCES), doc="defences to run")
    clean_scenes: int = param(5000, range=(2, None), doc="clean pairs every defence fine-tunes on")
    train: TrainConfig = param(default_factory=lambda: TrainConfig(epochs=5, batch_size=128, lr=3e-5,
                                                                   warmup_steps=20),
                               doc="optimiser settings shared by all defences (the fair budget)")
    settings: dict = param(default_factory=dict, doc="per-defence settings: {defence id: {key: value}}")
    per_attack: dict = param(default_factory=dict,
                             doc="settings for one attack only: {attack id: {defence id: {key: value}}} "
                                 "(CleanerCLIP uses 3,000 sub-captioned samples against BadCLIP)")
    save_epochs: tuple[str, ...] = param((), choices=tuple(DEFENCES),
                                         doc="defences whose per-epoch weights are kept (ASR-per-epoch curves: "
                                             "the CleanerCLIP notebook's Fig. 3 reads CleanCLIP's and CleanerCLIP's)")
    ft_lrs: tuple[float, ...] = param((), range=(0.0, 10.0),
                                      doc="FT learning rates tried against the papers' FT rows (how much of the "
                                          "backdoor plain clean fine-tuning removes at this budget); rows go to "
                                          "results/defences/ft_budget.csv, never into the matrix")
    ft_lr_attacks: tuple[str, ...] = param((), choices=ATTACK_IDS, doc="victims of the FT sweep (empty: all)")
    variants: dict = param(default_factory=dict,
                           doc="extra rows: {label: {defence: id, key: value, ...}}, e.g. ABD's ablations "
                               "{abd_uap: {defence: abd, lambda_bd: 0}}")

    def validate(self):
        for d, values in self.settings.items():
            if d not in DEFENCES:
                raise ParamError(f"defence.settings: unknown defence {d!r}; valid: {', '.join(DEFENCES)}")
            from_dict(defence_config_class(d), values, prefix=f"defence.settings.{d}")
        for a, by_defence in self.per_attack.items():
            if a not in ATTACK_IDS:
                raise ParamError(f"defence.per_attack: unknown attack {a!r}; valid: {', '.join(ATTACK_IDS)}")
            for d in by_defence:
                if d not in DEFENCES:
                    raise ParamError(f"defence.per_attack.{a}: unknown defence {d!r}; valid: {', '.join(DEFENCES)}")
                self.config(d, a)

        for label, spec in self.variants.items():
            if not isinstance(spec, dict) or spec.get("defence") not in DEFENCES:
                raise ParamError(f"defence.variants.{label}: needs 'defence' (one of {', '.join(DEFENCES)}) "
                                 f"and that defence's settings")
            if label in DEFENCES or label == "none":
                raise ParamError(f"defence.variants.{label}: a variant label must differ from the defence ids")
            self.variant(label)

    def variant(self, label: str, attack: str | None = None):
        """(defence id, settings) of a variant row: the defence's settings with the variant's on top."""
        spec = dict(self.variants[label])
        d = spec.pop("defence")
        values = {**self.settings.get(d, {}), **(self.per_attack.get(attack, {}).get(d, {}) if attack else {}), **spec}
        return d, from_dict(defence_config_class(d), values, prefix=f"defence.variants.{label}")

    def rows(self, attack: str, variants: bool = True):
        """(row label, defence id, settings) of every defended model for ``attack`` (``variants``:
        with the variant rows)."""
        out = [(d, d, self.config(d, attack)) for d in self.methods]
        if variants:
            out += [(label, *self.variant(label, attack)) for label in self.variants]
        return out

    def config(self, defence_id: str, attack: str | None = None):
        """The settings of ``defence_id`` (with ``attack``'s own overrides, if any)."""
        values = {**self.settings.get(defence_id, {}),
                  **(self.per_attack.get(attack, {}).get(defence_id, {}) if attack else {})}
        return from_dict(defence_config_class(defence_id), values, prefix=f"defence.{defence_id}")


@dataclass(frozen=True)
class DefenceMatrixParams:
    scale: str = param("embedded", choices=SCALES, doc="which scale these parameters describe")
    model: str = param("tiny-rn64", choices=model_names, doc="open_clip model config")
    device: str = param("auto", choices=("auto", "cpu", "cuda"), doc="where to train")
    seeds: tuple[int, ...] = param((0,), range=(0, None), doc="seeds of victims and defences")
    seeds_by_attack: dict = param(default_factory=dict, doc="attack -> its seeds where they are not ``seeds`` "
                                  "(issue 24: BadNet's headline rows at 5 seeds, the others at 3)")
    ablation_seeds: tuple[int, ...] = param((), range=(0, None),
                                            doc="seeds of the variant rows and of the papers' figures and "
                                                "ablations (empty: the first of seeds); the headline "
                                                "tables use every seed")
    data: DataConfig = param(default_factory=DataConfig)
    pretrain: TrainConfig = param(default_factory=TrainConfig, doc="clean pre-training (shared with foundation)")
    base_checkpoint: str | None = param(None, suffixes=SAFETENSORS,
                                        doc="safetensors of a pre-trained CLIP used as the clean base "
                                            "instead of pre-training one (the paper scale: OpenAI's RN50)")
    victims: tuple[VictimConfig, ...] = param((), doc="the victims (fine-tuning threat model), one per attack")
    defence: DefenceSettings = param(default_factory=DefenceSettings)
    pretrain_victims: tuple[PretrainVictimConfig, ...] = param(
        (), doc="victims of the pre-training threat model (trained from scratch on the poisoned CC3M "
                "analogue) that the training-time defences are compared on "
                "(paperlib.experiments.pretrain_defences)")
    pretrain_seeds: tuple[int, ...] = param((), range=(0, None),
                                            doc="seeds of the pre-training threat model (each one a training "
                                                "from scratch, about 50 min on 2 cores; empty: the first of seeds)")
    pretrain_defences: tuple[str, ...] = param(("roclip",), choices=("roclip",),
                                               doc="defences trained from scratch on each pre-training "
                                                   "victim's poisoned set, with its settings in defence.settings")
    eval: EvalConfig = param(default_factory=EvalConfig)
    run_name: str = param("", doc="names this run's manifest (manifest_<scale>_<run_name>.json): a named "
                          "parameter file's run keeps its own beside the matrix's")
    results_dir: str = results_dir_param()
    reuse_rows: bool = param(True, doc="take rows from results/defences/matrix.csv instead of training "
                                       "when they name the model (cache key) these parameters make and "
                                       "this machine's cache lacks it: the victim's and its defended "
                                       "models' rows when the victim is absent, a defended model's row "
                                       "when only that model is; rows trained elsewhere (extra seeds on a "
                                       "GPU) count without their weights")

    def seeds_for(self, attack: str) -> tuple[int, ...]:
        """The seeds of ``attack``'s victim and defended models."""
        return tuple(self.seeds_by_attack.get(attack, self.seeds))

    @property
    def ablation_seed_list(self) -> tuple[int, ...]:
        return tuple(self.ablation_seeds) or tuple(self.seeds[:1])

    @property
    def pretrain_seed_list(self) -> tuple[int, ...]:
        return tuple(self.pretrain_seeds) or tuple(self.seeds[:1])

    def validate(self):
        if not self.victims:
            raise ParamError("victims: give at least one victim (attack and poisoning settings)")
        if not self.seeds:
            raise ParamError("seeds: give at least one seed")
        for key in ("ablation_seeds", "pretrain_seeds"):
            stray = sorted(set(getattr(self, key)) - set(self.seeds))
            if stray:
                raise ParamError(f"{key}: {stray} are not in seeds {list(self.seeds)}")
        seen = [v.attack for v in self.victims]
        if len(set(seen)) != len(seen):
            raise ParamError(f"victims: one victim per attack, got {seen}")
        from paperlib.experiments.victims import check_seeds_by_attack
        check_seeds_by_attack(self.seeds_by_attack, set(seen))
        seen = [v.attack for v in self.pretrain_victims]
        if len(set(seen)) != len(seen):
            raise ParamError(f"pretrain_victims: one victim per attack, got {seen}")


def in_seeds(m: pd.DataFrame, p: DefenceMatrixParams) -> pd.Series:
    """Which rows of a matrix frame ``m`` are at one of their attack's seeds (``p.seeds_for``)."""
    if not len(m):
        return pd.Series(dtype=bool, index=m.index)
    return pd.Series([int(s) in p.seeds_for(a) for a, s in zip(m.attack, m.seed)], index=m.index)


def load(path: str | Path | None = None, overrides: dict | None = None) -> DefenceMatrixParams:
    return load_params(DefenceMatrixParams, path, overrides, complete=complete_victims)


def run(p: DefenceMatrixParams, log=print, manifest: bool = True) -> dict:
    """Train (or reuse) base, victims and defended models; evaluate; write the matrix.

    ``manifest=False`` for the paper notebooks that take their rows from here: they write their own
    manifest, and must not overwrite the matrix run's ``results/defences/manifest_<scale>.json``."""
    from paperlib import pipeline as pl
    from paperlib.cache import note_model_stood_in
    from paperlib.experiments.common import clean_base, finetune_victim, victim_attack, victim_metrics
    from paperlib.experiments import matrix_summary
    from paperlib.experiments.victim_rows import victim_recipe
    from paperlib.results import Timer, upsert_csv, write_manifest

    timer = Timer()
    with timer("pretrain"):
        base = clean_base(p)
    rows, budget_rows = [], []
    results = Path(p.results_dir)

    def save(rows):
        out = upsert_csv(results / "defences" / "matrix.csv", rows, MATRIX_KEY, MATRIX_COLUMNS)
        matrix_summary.write(results)   # each recipe's seeds condensed, beside the papers' band
        return out

    for v in p.victims:
        atk = None
        for seed in p.seeds_for(v.attack):
            kept = rows_from_file(p, base, v, seed) if p.reuse_rows else None
            if kept is not None and len(kept) == 1 + len(p.defence.rows(v.attack, seed in p.ablation_seed_list)):
                rows += list(kept.values())
                for label, r in kept.items():
                    note_model_stood_in(str(r["model"]), "poison_finetune" if label == "none" else "defence")
                log(f"{v.attack:10s} seed {seed}: {len(kept)} rows from the matrix file (models trained on "
                    f"{', '.join(sorted({str(r.get('device', '')) for r in kept.values()}))}; not in this cache)")
                continue
            kept = {k: r for k, r in (kept or {}).items() if k != "none"}   # the victim is trained below anyway
            atk = atk or victim_attack(p, base, v)
            with timer("victims"):
                victim = finetune_victim(p, base, v, seed)
                m = victim_metrics(p, victim, atk, v)
            recipe = victim_recipe(v, base.path.name)
            here = {**matrix_row(v.attack, "none", p.scale, seed, m, 0.0, 0), **provenance(victim, victim), **recipe}
            published = published_victim_row(p, victim.path.name, v.attack, seed) if p.reuse_rows else None
            if published is not None and other_device(published.get("device"), here.get("device")):
                # the same key trained on another device is published: its row stays, and this device's
                # victim goes beside it in the device check (its defended rows below name this device)
                rows.append(published)
                device_check(p, [published, here])
                log(f"{v.attack:10s} seed {seed}: victim row kept as published ({published.get('device')}: "
                    f"ASR {published.get('asr_top1')}); this device's ({here.get('device')}: ASR "
                    f"{here['asr_top1']:.2f}) written to device_check.csv")
            else:
                rows.append(here)
            victim_row = rows[-1]
            for label, d, dcfg in p.defence.rows(v.attack, seed in p.ablation_seed_list):
                if label in kept:    # its model was trained elsewhere: the file's row stands in for it
                    rows.append(kept[label])
                    note_model_stood_in(str(kept[label]["model"]), "defence")
                    log(f"{v.attack:10s} seed {seed} {label:12s} row from the matrix file (trained on "
                        f"{kept[label].get('device', '')}; not in this cache)")
                    continue
                with timer(f"defence_{label}"):
                    model = pl.defend(victim, p.data, d, dcfg, p.defence.clean_scenes,
                                      p.defence.train, seed, clean_base=base, device=p.device,
                                      save_epochs=d in p.defence.save_epochs)
                    m = victim_metrics(p, model, atk, v)
                s = model.summary
                # wall time includes what a defence prepares before fine-tuning (ABD's generator)
                wall = s.get("seconds", 0.0) + s.get("defence_info", {}).get("prep_seconds", 0.0)
                row = {**matrix_row(v.attack, label, p.scale, seed, m, wall, s.get("samples", 0)),
                       **provenance(victim, model), **recipe, "lr": p.defence.train.lr,
                       "defence_settings": matrix_summary.settings_json(dcfg)}
                published = published_matrix_row(p, model.path.name, label, v.attack, seed) if p.reuse_rows else None
                if published is not None and other_device(published.get("device"), row.get("device")):
                    # as for the victim: the published row of this key stays (a GPU seed's weights
                    # exist nowhere else), this device's measurement goes beside it
                    rows.append(published)
                    save(rows)
                    device_check(p, [published, row])
                    log(f"{v.attack:10s} seed {seed} {label:12s} row kept as published ({published.get('device')}: "
                        f"ASR {published.get('asr_top1')}); this device's ({row.get('device')}: ASR "
                        f"{row['asr_top1']:.2f}) written to device_check.csv")
                    continue
                rows.append(row)
                save(rows)   # after every defended model: long runs show progress in results/
                log(f"{v.attack:10s} seed {seed} {label:12s} CA {m['ca_top1']:5.1f}  ASR {m['asr_top1']:5.1f}"
                    f"  ({s.get('seconds', 0):.0f} s)")
            # the FT learning-rate study calibrates the budget: on the first seed only
            if p.defence.ft_lrs and seed == p.seeds_for(v.attack)[0] and (not p.defence.ft_lr_attacks
                                                             or v.attack in p.defence.ft_lr_attacks):
                save(rows)
                for lr in p.defence.ft_lrs:
                    with timer(f"ft_budget_{v.attack}"):
                        train = replace(p.defence.train, lr=lr)
                        model = pl.defend(victim, p.data, "ft", p.defence.config("ft", v.attack),
                                          p.defence.clean_scenes, train, seed, clean_base=base, device=p.device)
                        m = victim_metrics(p, model, atk, v)
                    budget_rows.append(_budget_row(v.attack, p.scale, seed, train, p.defence.clean_scenes, m,
                                                   victim_row, model, victim, v))
                    upsert_csv(results / "defences" / "ft_budget.csv", budget_rows, FT_BUDGET_KEY)
                    log(f"{v.attack:10s} seed {seed} FT lr {lr:g}: CA {m['ca_top1']:5.1f}  ASR {m['asr_top1']:5.1f}")
    save(rows)
    # this run's rows only: the file also holds rows of other budgets, victims and seeds
    matrix = pd.DataFrame(rows)
    matrix = matrix[[c for c in (*MATRIX_COLUMNS, *[c for c in matrix.columns if c not in MATRIX_COLUMNS])
                     if c in matrix.columns]] if len(matrix) else pd.DataFrame(columns=list(MATRIX_COLUMNS))
    if manifest:
        write_manifest(results / "defences" / f"manifest_{p.scale}{'_' + p.run_name if p.run_name else ''}.json",
                       asdict(p), timer.sections,
                       extra={"base_model": base.path.name})
    return {"matrix": matrix, "wall_seconds": timer.sections}


def other_device(a, b) -> bool:
    """Whether two rows' ``device`` labels name different machines: a GPU and a CPU, or two named
    CPUs of different kinds; the labels rows had before CPUs were named (``cpu``, empty) count as
    any CPU."""
    from paperlib.results import is_gpu_label
    a, b = (str(x) if isinstance(x, str) else "" for x in (a, b))
    if is_gpu_label(a) != is_gpu_label(b):
        return True
    return a != b and not ({a.lower(), b.lower()} & {"", "cpu"})


def published_matrix_row(p: DefenceMatrixParams, model: str, defence: str, attack: str, seed: int) -> dict | None:
    """The matrix file's row of ``model`` (a cache key's name) as ``defence``, if there is one."""
    from paperlib.results import row_naming_model
    return row_naming_model(Path(p.results_dir) / "defences" / "matrix.csv", model,
                            defence=defence, attack=attack, scale=p.scale, seed=seed)


def published_victim_row(p: DefenceMatrixParams, victim_model: str, attack: str, seed: int) -> dict | None:
    """The matrix file's row of the victim ``victim_model`` (its ``none`` row), if there is one."""
    return published_matrix_row(p, victim_model, "none", attack, seed)


DEVICE_CHECK_COLUMNS = ("attack", "defence", "scale", "seed", "model", "device", "ca_top1", "ca_top3", "ca_top5",
                        "ca_top10", "asr_top1", "asr_top3", "asr_top5", "asr_top10", "wall_s")


def device_check(p: DefenceMatrixParams, rows: list[dict]) -> None:
    """Rows of one model (cache key) measured on different devices, into ``defences/device_check.csv``."""
    from paperlib.results import upsert_csv
    upsert_csv(Path(p.results_dir) / "defences" / "device_check.csv",
               [{c: r.get(c) for c in DEVICE_CHECK_COLUMNS} for r in rows],
               ("attack", "defence", "scale", "seed", "model", "device"), DEVICE_CHECK_COLUMNS)


def rows_from_file(p: DefenceMatrixParams, base, v, seed: int) -> dict[str, dict] | None:
    """The matrix file's rows of victim ``v`` at ``seed`` that can stand in for training, by label
    (``none`` for the victim): only rows naming the model (cache key) these parameters would make.
    With the victim absent from this machine's cache, every such row; with the victim cached, only
    those of models absent from it (the cached ones are evaluated from the cache).  The caller uses
    them all when every label has one; otherwise it trains (or loads) the victim and the defences
    without a row.  So a run that adds a variant on a machine holding the victims trains just the
    variant, and one on a fresh machine retrains the victim and the missing rows only.  None when
    there is no matrix file to read, or it has no ``model`` column."""
    from paperlib import pipeline as pl
    from paperlib.cache import ArtifactCache, artifact_key
    from paperlib.experiments.common import victim_key as victim_key_of
    path = Path(p.results_dir) / "defences" / "matrix.csv"
    victim_key = victim_key_of(p, base, v, seed)
    if not path.is_file():
        return None
    cache = ArtifactCache()
    victim_cached = cache.exists("model", victim_key)
    m = pd.read_csv(path)
    if "model" not in m.columns:
        return None
    m = m[(m.attack == v.attack) & (m.scale == p.scale) & (m.seed == seed)]
    device_type = pl.resolve_device(p.device).type
    wanted = {"none": victim_key}
    for label, d, dcfg in p.defence.rows(v.attack, seed in p.ablation_seed_list):
        wanted[label] = pl.defence_key(victim_key, d, dcfg, p.defence.clean_scenes, p.defence.train, seed, base,
                                       device_type)
    out = {}
    for label, key in wanted.items():
        if victim_cached and cache.exists("model", key):
            continue
        hit = m[(m.defence == label) & (m.model.astype(str) == artifact_key("model", key))]
        if len(hit):
            out[label] = {k: (None if pd.isna(x) else x) for k, x in hit.iloc[0].to_dict().items()}
    return out


def matrix_row(attack: str, defence: str, scale: str, seed: int, m: dict, wall: float, samples: int) -> dict:
    """One measurement in the matrix's columns (MATRIX_COLUMNS): CA / ASR top-1/3/5/10 of ``m``, wall time, samples."""
    return {"attack": attack, "defence": defence, "scale": scale, "seed": seed, **metric_columns(m),
            "wall_s": wall, "samples": samples}


def metric_columns(m: dict) -> dict:
    """CA / ASR top-1/3/5/10 of an evaluation, in the matrix's column names and order."""
    return {f"{kind}_top{k}": m[f"{kind}_top{k}"] for kind in ("ca", "asr") for k in (1, 3, 5, 10)}


def _budget_row(attack: str, scale: str, seed: int, train: TrainConfig, clean_scenes: int, m: dict,
                victim_row: dict, model, victim, victim_cfg=None) -> dict:
    """One FT setting against one victim: CA / ASR after FT beside the victim's, and the share of
    the victim's top-1 ASR that survives (the papers' FT rows keep about two thirds for BadNet);
    with the victim's settings ``victim_cfg``, the FT's optimizer steps and lr beside the victim recipe's
    (steps as the training loops counted them)."""
    keep = 100.0 * m["asr_top1"] / victim_row["asr_top1"] if victim_row["asr_top1"] else float("nan")
    steps = model.summary.get("steps")
    row = {"attack": attack, "scale": scale, "seed": seed, "lr": train.lr, "epochs": train.epochs,
           "clean_scenes": clean_scenes, **metric_columns(m),
           "victim_ca_top1": victim_row["ca_top1"], "victim_asr_top1": victim_row["asr_top1"],
           "asr_kept": keep, "samples": model.summary.get("samples", 0), "wall_s": model.summary.get("seconds", 0.0),
           "steps": steps, **provenance(victim, model)}
    if victim_cfg is not None:
        import json
        v_steps = victim.summary.get("steps")
        row.update(attack_params=json.dumps(victim_cfg.attack_params, sort_keys=True), victim_lr=victim_cfg.finetune.lr, victim_steps=v_steps, lr_vs_victim=train.lr / victim_cfg.finetune.lr,
                   steps_vs_victim=steps / v_steps if steps and v_steps else float("nan"))
    return row


# the victim too: FT rows of two victims of one attack (old and new recipes) stand apart
FT_BUDGET_KEY = ("attack", "scale", "seed", "lr", "epochs", "clean_scenes", "victim_model")


def provenance(victim, model) -> dict:
    """Cache keys of the victim a row defends and of the model it measured: rows from an older
    victim (other trigger settings, or a bf16 base made on another machine) stay recognisable."""
    return {"victim_model": victim.path.name, "model": model.path.name,
            # what trained the measured model: GPU wall times are not the 2 cores' ("cpu" in
            # models trained before the name was recorded)
            "device": model.summary.get("device", "")}


def main(argv=None) -> int:
    """``python -m paperlib.experiments.defences params/defences/embedded.yaml [key=value ...]``"""
    from paperlib.experiments.common import cli
    return cli(load, run, argv, main.__doc__)


__all__ = ["DefenceMatrixParams", "DefenceSettings", "MATRIX_COLUMNS", "MATRIX_KEY", "load", "matrix_row",
           "provenance", "rows_from_file", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
