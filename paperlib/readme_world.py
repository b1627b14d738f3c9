"""The README's paragraphs on the world the papers' notebooks stand on: the new victims
(``results/attacks/victims.csv``) and the defence matrix on them (``results/defences/matrix_summary.csv``),
written from the files by :mod:`paperlib.readme` (split from it: one module per kind of section)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pm(mean: float, std: float, n: int) -> str:
    from paperlib.compare import mean_std_text
    return mean_std_text(mean, std, n)


def attack_name(a: str) -> str:
    """How the papers write an attack's name."""
    return {"badnet": "BadNet", "badclip": "BadCLIP", "blended": "Blended", "sig": "SIG", "wanet": "WaNet",
            "ssba": "SSBA", "trojannn": "TrojanNN", "trojannet": "TrojanNet", "lc": "LC",
            "mmpoison": "mmPoison"}.get(a, a)


VICTIMS_PARAMS = "params/attacks/embedded-victims.yaml"


def _lr(lr: float) -> str:
    """A learning rate as the papers print it: 1e-4, 5e-5, 0.001."""
    if lr >= 1e-3:
        return f"{lr:g}"
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def new_victims(res: Path, params: str | Path | None = None) -> str:
    """One paragraph on the victims of ``params``' recipe found in ``res/attacks/victims.csv`` (empty
    when there are none yet): top-1 ASR and clean top-1 per attack, mean ± std over the seeds there,
    counting only rows made with the file's settings for that attack (trigger, poison count and
    captions, fine-tuning set, passes and lr)."""
    from paperlib.assets import repo_root
    from paperlib.experiments import attacks
    from paperlib.experiments.victims_summary import of_recipe
    params = Path(params) if params is not None else repo_root() / VICTIMS_PARAMS
    path = Path(res) / "attacks" / "victims.csv"
    if not path.is_file() or not Path(params).is_file():
        return ""
    suite = attacks.load(params)
    df = pd.read_csv(path)
    if "poison_caption" not in df or "attack_params" not in df:
        return ""
    parts, base = [], None
    for v in suite.victims:
        g = df[of_recipe(df, v)]
        if g.empty:
            continue
        n = len(g)
        base = g.base_ca_top1.iloc[0]
        other_rate = (f", {100.0 * v.poison.poison_count / v.finetune_scenes:g}% poisoned"
                      if v.poison.poison_count != suite.victims[0].poison.poison_count else "")
        parts.append(f"{attack_name(v.attack)} {_pm(g.asr_top1.mean(), g.asr_top1.std(), n)} at clean "
                     f"{_pm(g.ca_top1.mean(), g.ca_top1.std(), n)} ({n} seed{'s' if n > 1 else ''}{other_rate})")
    if not parts:
        return ""
    recipe = suite.victims[0]
    ft = recipe.finetune
    rate = 100.0 * recipe.poison.poison_count / recipe.finetune_scenes
    return (f"**New victims** (issue 22, [docs/attacks.md](docs/attacks.md); `{VICTIMS_PARAMS}`): the shipped "
            f"clean base (clean top-1 {base:.1f}%) fine-tuned on {recipe.finetune_scenes:,} pairs, {rate:g}% "
            f"of them poisoned with captions of the set naming the target, "
            f"{'one pass' if ft.epochs == 1 else format(ft.epochs, 'g') + ' passes'} at lr {_lr(ft.lr)}, the "
            "triggers of that file. Top-1 ASR and clean top-1 (%, mean ± std over seeds): " + "; ".join(parts)
            + ". The notebooks' parameter files use them (which executed notebooks do: the first line above).")


# the defence matrix on those victims, at the budget of this file (its rows: results/defences/matrix_summary.csv)
MATRIX_PARAMS = "params/defences/embedded-victims.yaml"
DEFENCE_NAMES = {"none": "none", "ft": "FT", "cleanclip": "CleanCLIP", "cleanerclip": "CleanerCLIP", "abd": "ABD",
                 "roclip": "RoCLIP"}


def _band(low: float, high: float) -> str:
    if pd.isna(low):
        return "none printed"
    f = (lambda x: f"{x:.1f}" if x < 10 else f"{x:.0f}")
    return f(low) if f(low) == f(high) else f"{f(low)}–{f(high)}"


def new_matrix(res: Path, params: str | Path | None = None) -> str:
    """A table of the defence matrix on the victims of ``params`` (empty when no line of
    ``res/defences/matrix_summary.csv`` is of them): per attack and defence, top-1 ASR / clean top-1
    as means over the seeds, and the papers' range of top-1 ASR for that attack and defence."""
    from paperlib.assets import repo_root
    from paperlib.experiments import defences
    from paperlib.experiments.matrix_summary import of_file_settings
    from paperlib.experiments.victims_summary import of_recipe
    params = Path(params) if params is not None else repo_root() / MATRIX_PARAMS
    path = Path(res) / "defences" / "matrix_summary.csv"
    if not path.is_file() or not Path(params).is_file():
        return ""
    p = defences.load(params)
    df = pd.read_csv(path, dtype={"seeds": str})
    # this file's world only: its scale, and its clean base where a shipped base names its key beside it
    df = df[df.scale == p.scale]
    from paperlib.pipeline.bases import shipped_base_name
    shipped = shipped_base_name(repo_root() / p.base_checkpoint) if p.base_checkpoint else None
    if shipped is not None:
        df = df[df.base_model.astype(str) == shipped]
    # the file's budget: its lr, and the pairs one process sees in whole batches over its passes
    samples = p.defence.clean_scenes // p.defence.train.batch_size * p.defence.train.batch_size * p.defence.train.epochs
    budget = df.defence.eq("none") | np.isclose(df.defence_samples.astype(float), samples)
    order = ["none", *p.defence.methods]
    # and the file's settings and lr of each defence for the line's attack (rows of other variants left out)
    df = df[budget & of_file_settings(df, p, "defence_lr")]
    head = "| attack (seeds) | " + " | ".join(DEFENCE_NAMES.get(d, d) for d in order) + " |"
    lines, done, planned = [head, "|---" * (len(order) + 1) + "|"], 0, 0
    for v in p.victims:
        g = df[of_recipe(df, v)].set_index("defence")
        planned += len(p.seeds_for(v.attack)) * len(p.defence.methods)
        if "none" not in g.index:
            continue
        cells = []
        for d in order:
            if d not in g.index:
                cells.append("…")
                continue
            r = g.loc[d]
            n = str(r.seeds).split()
            done += len(n) if d != "none" else 0
            seeds = "" if r.seeds == g.loc["none", "seeds"] else f" ({'seed' if len(n) == 1 else 'seeds'} {r.seeds})"
            cells.append(f"{r.asr_top1_mean:.1f} / {r.ca_top1_mean:.1f}{seeds} [{_band(r.papers_asr_low, r.papers_asr_high)}]")
        seeds = g.loc["none", "seeds"].split()
        span = f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else seeds[0]
        lines.append(f"| {attack_name(v.attack)} ({span}) | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ""
    mine = df[df.defence.isin(order) & np.logical_or.reduce([of_recipe(df, v) for v in p.victims])]
    devices = sorted({d.strip() for ds in mine.devices.dropna().astype(str) for d in ds.split(";") if d.strip()})
    apart = _victims_apart(res, df, p)
    return (f"**Defences on the new victims** ({p.scale} scale, on {', '.join(devices) or 'an unnamed device'}; "
            + (f"all {planned} defended models of `{MATRIX_PARAMS}`; " if done >= planned else
               f"in progress: {done} of {planned} defended models of `{MATRIX_PARAMS}`; ") +
            f"every defence fine-tunes on {p.defence.clean_scenes:,} clean pairs, {p.defence.train.epochs:g} passes "
            f"at lr {_lr(p.defence.train.lr)}; [matrix_summary.csv](results/defences/matrix_summary.csv), with stds "
            "and what each defence removed paired by seed). Top-1 ASR / clean top-1 (%, means over the seeds), "
            "[the papers' top-1 ASR for that attack and defence, lowest–highest, fine-tuning victims]:\n\n"
            + "\n".join(lines) + (f"\n\n{apart}" if apart else ""))


def _victims_apart(res: Path, matrix: pd.DataFrame, p, limit: float = 1.0) -> str:
    """A sentence naming the attacks whose ``none`` column (the victims the matrix defended, read from
    ``matrix``, its summary rows) lies more than ``limit`` points of top-1 ASR from the victims
    paragraph's (``res/attacks/victims.csv``): where both name one recipe, they differ only in where
    each was made."""
    from paperlib.experiments.victims_summary import of_recipe
    path = Path(res) / "attacks" / "victims.csv"
    if not path.is_file():
        return ""
    suite = pd.read_csv(path)
    parts = []
    for v in p.victims:
        ours = matrix[of_recipe(matrix, v) & matrix.defence.eq("none")]
        if ours.empty:
            continue
        line = ours.loc[ours.seeds.astype(str).str.split().str.len().idxmax()]   # the line over the most seeds
        seeds = [int(x) for x in str(line.seeds).split()]
        theirs = suite[of_recipe(suite, v) & suite.seed.isin(seeds)]                # at the same seeds
        if theirs.empty:
            continue
        here, there = float(line.asr_top1_mean), float(theirs.asr_top1.mean())
        if abs(here - there) > limit:
            parts.append(f"{attack_name(v.attack)}, {here:.1f} against {there:.1f} (the matrix's victims made on "
                         f"{line.devices})")
    return ("The `none` column is the victims the matrix defended; it lies over a point of top-1 ASR from the "
            "attack suite's rows of the same recipe (`results/attacks/victims.csv`) for " + "; ".join(parts)
            + ". The same recipe and cache key trained on another device gives other weights "
            "([docs/gpu.md](docs/gpu.md)).") if parts else ""
