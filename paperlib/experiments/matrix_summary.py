"""The defence matrix condensed: per victim recipe, attack and defence, its seeds beside the papers' band.

    python -m paperlib.experiments.matrix_summary                  # scratch results
    python -m paperlib.experiments.matrix_summary results_dir=results
    python -m paperlib.experiments.matrix_summary results_dir=results --settings-from-cache   # older rows

The defence matrix (``results/defences/matrix.csv``) has a row per attack x defence x seed, keyed by
the victim's model; the attack suite's ``results/attacks/victims.csv`` says which recipe made each
victim model (trigger, poison count and captions, fine-tuning set, passes, lr).  Joined on the victim
model, the rows of one recipe, one defence's settings and one budget (its lr and the pairs it
fine-tuned on) are summarised over seeds into
``results/defences/matrix_summary.csv`` (and ``.md``):

* top-1 ASR and clean top-1, mean and std over the seeds;
* what the defence removed, **paired by seed** against the same victim's undefended row: the mean of
  ``asr(none) - asr(defence)`` and of ``ca(none) - ca(defence)`` with their standard errors of the mean
  (the two-SEM rule of ``docs/verdicts.md`` reads them);
* the lowest and highest top-1 ASR the four papers print for that attack and defence on victims
  poisoned by fine-tuning (``paperlib/papers/*.csv``), and which tables.

A matrix row whose victim is not in the victims file (a victim trained on a GPU) is known by its own
recipe columns, which the defence experiment writes; older rows with neither are left out.
The defence experiment rewrites the summary after every run; this command rebuilds it from the files.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.experiments.victims_summary import RECIPE

KEY = RECIPE + ("defence", "defence_lr", "defence_samples", "defence_settings")
COLUMNS = KEY + (
    "seeds", "n_seeds", "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std",
    "asr_removed_mean", "asr_removed_sem", "ca_cost_mean", "ca_cost_sem", "n_paired",
    "papers_asr_low", "papers_asr_high", "papers_sources", "devices")


def settings_json(defence_cfg) -> str:
    """A defence's settings as the matrix records them: the JSON of its config (sorted keys), the
    ``defence_cfg`` part of the model's cache key, so rows of two variants at one budget stay apart."""
    import json

    from paperlib.cache import canonical
    return json.dumps(canonical(asdict(defence_cfg)), sort_keys=True)


def of_file_settings(rows: pd.DataFrame, p, lr_column: str = "lr") -> pd.Series:
    """Which ``rows`` (of the matrix, or of its summary with ``lr_column="defence_lr"``) a defence
    matrix parameter file ``p`` would make: its settings of the row's defence for the row's attack
    and its learning rate (victims, ``none``, always; defences the file does not run, never)."""
    if "defence_settings" not in rows.columns or lr_column not in rows.columns or not len(rows):
        return rows.defence.eq("none") if "defence" in rows.columns else pd.Series(False, index=rows.index)
    wanted = rows.apply(lambda r: settings_json(p.defence.config(r.defence, r.attack))
                        if r.defence in p.defence.methods else None, axis=1)
    lr_ok = np.isclose(rows[lr_column].astype(float), p.defence.train.lr, rtol=1e-6, atol=0.0)
    return rows.defence.eq("none") | ((rows.defence_settings == wanted) & lr_ok)


def settings_from_cache(matrix: pd.DataFrame, cache=None) -> pd.Series:
    """``defence_settings`` for rows that lack it (rows written before the column), read from the
    defended model's own cache entry (its ``params.json``); NaN where the model is not in ``cache``
    (e.g. trained on another machine) and for undefended rows."""
    import json
    from paperlib.cache import ArtifactCache
    root = (cache or ArtifactCache()).root / "model"
    have = matrix["defence_settings"] if "defence_settings" in matrix else pd.Series(float("nan"), index=matrix.index)

    def one(row):
        if isinstance(row.defence_settings, str) or row.defence == "none" or not isinstance(row.model, str):
            return row.defence_settings
        meta = root / row.model / "params.json"
        if not meta.is_file():
            return float("nan")
        cfg = json.loads(meta.read_text()).get("params", {}).get("defence_cfg")
        return json.dumps(cfg, sort_keys=True) if isinstance(cfg, dict) else float("nan")
    return matrix.assign(defence_settings=have).apply(one, axis=1)


def _sem(x: pd.Series) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else np.nan


def _std(x: pd.Series) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else np.nan


def joined(matrix: pd.DataFrame, victims: pd.DataFrame) -> pd.DataFrame:
    """The matrix rows whose victim's recipe is known, with the recipe's columns: from ``victims``
    (the attack suite's file, fine-tuning victims) where it lists the victim model, else from the
    row's own recipe columns (rows the defence experiment writes carry them: a victim trained on a
    GPU is in no victims file).  Rows with neither are left out.  Added: the defence's budget,
    ``defence_lr`` and ``defence_samples`` (pairs seen in fine-tuning; NaN on the undefended rows),
    and its ``defence_settings`` (the JSON of its config; NaN on rows written before the column)."""
    recipe = [c for c in RECIPE if c not in ("attack", "scale")]
    if matrix.empty or "victim_model" not in matrix:
        return pd.DataFrame(columns=list(matrix.columns) + [c for c in recipe if c not in matrix]
                            + ["defence_lr", "defence_samples"])
    matrix = matrix[matrix.victim_model.notna()]
    if "defence_settings" not in matrix:
        matrix = matrix.assign(defence_settings=float("nan"))
    for c in recipe:
        if c not in matrix:
            matrix = matrix.assign(**{c: float("nan")})
    if len(victims) and "victim_model" in victims and all(c in victims for c in recipe):
        v = victims[(victims.threat_model == "finetune") & victims.victim_model.notna()]
        v = v.drop_duplicates("victim_model", keep="last")[["victim_model", *recipe]]
        out = matrix.merge(v, on="victim_model", how="left", suffixes=("", "_file"))
        for c in recipe:   # the victims file's word first, the row's own where the file has none
            out[c] = out[f"{c}_file"].where(out[f"{c}_file"].notna(), out[c])
        out = out.drop(columns=[f"{c}_file" for c in recipe])
    else:
        out = matrix.copy()
    out = out[out[recipe].notna().all(axis=1)]
    undefended = out.defence == "none"
    out["defence_lr"] = np.where(undefended, np.nan, out["lr"].astype(float))
    out["defence_samples"] = np.where(undefended, np.nan, out["samples"].astype(float))
    return out


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per recipe x defence x budget (lr, samples) of :func:`joined` rows; the undefended line
    per recipe has the budget NaN and nothing removed."""
    from paperlib.experiments.regime import papers_band
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    none = rows[rows.defence == "none"].drop_duplicates("victim_model", keep="last").set_index("victim_model")
    out = []
    for key, g in rows.groupby(list(KEY), dropna=False, sort=False):
        rec = dict(zip(KEY, key))
        g = g.drop_duplicates("seed", keep="last").sort_values("seed")
        n = len(g)
        line = {**rec, "seeds": " ".join(str(int(s)) for s in g.seed), "n_seeds": n,
                "asr_top1_mean": g.asr_top1.mean(), "asr_top1_std": _std(g.asr_top1),
                "ca_top1_mean": g.ca_top1.mean(), "ca_top1_std": _std(g.ca_top1),
                "devices": "; ".join(sorted(set(g["device"].dropna().astype(str)))) if "device" in g else ""}
        if rec["defence"] != "none":
            paired = g[g.victim_model.isin(none.index)]
            removed = none.loc[paired.victim_model, "asr_top1"].to_numpy() - paired.asr_top1.to_numpy()
            cost = none.loc[paired.victim_model, "ca_top1"].to_numpy() - paired.ca_top1.to_numpy()
            line.update({"asr_removed_mean": float(np.mean(removed)) if len(removed) else np.nan,
                         "asr_removed_sem": _sem(pd.Series(removed)),
                         "ca_cost_mean": float(np.mean(cost)) if len(cost) else np.nan,
                         "ca_cost_sem": _sem(pd.Series(cost)), "n_paired": len(paired)})
        low, high, sources = np.nan, np.nan, []
        # a variant of ours (abd_uap) under the paper's own name for it (uap in ABD's Table III)
        for name in dict.fromkeys((rec["defence"], str(rec["defence"]).removeprefix("abd_"))):
            try:
                low, high, sources = papers_band(rec["attack"], defence=name)
                break
            except KeyError:
                continue
        line.update({"papers_asr_low": low, "papers_asr_high": high, "papers_sources": "; ".join(sources)})
        out.append(line)
    return pd.DataFrame(out, columns=list(COLUMNS))


def build(results: str | Path) -> pd.DataFrame:
    """The summary of every recipe found in ``results``' matrix and victims files (empty when either
    is missing)."""
    results = Path(results)
    m, v = results / "defences" / "matrix.csv", results / "attacks" / "victims.csv"
    if not m.is_file() or not v.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return summarise(joined(pd.read_csv(m), pd.read_csv(v)))


def write(results: str | Path) -> pd.DataFrame:
    """Rewrite ``results/defences/matrix_summary.csv`` and its Markdown view from the files (a summary
    is derived data: it is made whole each time, never merged)."""
    from paperlib.results import to_markdown, write_csv_atomic
    df = build(results)
    path = Path(results) / "defences" / "matrix_summary.csv"
    if df.empty:
        return df
    for c in ("defence_samples", "n_seeds", "n_paired"):   # counts: exact, not 4 significant digits
        df[c] = df[c].round().astype("Int64")
    write_csv_atomic(df, path)
    df_view = df.assign(settings_id=df.defence_settings.map(
        lambda t: hashlib.sha1(t.encode()).hexdigest()[:8] if isinstance(t, str) else ""))
    view = df_view[["attack", "base_model", "attack_params", "poison_count", "finetune_lr", "defence", "settings_id", "defence_lr", "defence_samples", "seeds",
               "asr_top1_mean", "asr_top1_std", "ca_top1_mean", "ca_top1_std", "asr_removed_mean",
               "asr_removed_sem", "ca_cost_mean", "papers_asr_low", "papers_asr_high"]]
    to_markdown(view, path.with_suffix(".md"))
    return df


def fill_settings(results: str | Path, cache=None) -> int:
    """Fill the matrix file's ``defence_settings`` where a row lacks it and its defended model is in
    the artifact cache (:func:`settings_from_cache`); returns how many
    rows were filled.  The file is rewritten atomically, its rows otherwise unchanged."""
    from paperlib.results import write_csv_atomic
    path = Path(results) / "defences" / "matrix.csv"
    if not path.is_file():
        return 0
    m = pd.read_csv(path)
    before = m["defence_settings"].notna().sum() if "defence_settings" in m else 0
    m["defence_settings"] = settings_from_cache(m, cache)
    write_csv_atomic(m, path)
    return int(m["defence_settings"].notna().sum() - before)


def main(argv=None) -> int:
    from paperlib.results import default_results_dir, prepare_results_dir
    args = list(sys.argv[1:] if argv is None else argv)
    results, fill = default_results_dir(), False
    for a in args:
        if a == "--settings-from-cache":
            fill = True
            continue
        if not a.startswith("results_dir="):
            raise SystemExit(f"python -m paperlib.experiments.matrix_summary: unknown argument {a!r}; "
                             "valid: results_dir=<folder> (default: the scratch results), --settings-from-cache")
        results = a.split("=", 1)[1]
    folder = prepare_results_dir(results)
    if fill:
        print(f"{folder / 'defences' / 'matrix.csv'}: defence settings of {fill_settings(folder)} rows read from "
              "their models' cache entries")
    df = write(folder)
    print(f"{folder / 'defences' / 'matrix_summary.csv'}: {len(df)} lines"
          if len(df) else f"no matrix rows with a known victim recipe under {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KEY", "COLUMNS", "settings_json", "settings_from_cache", "joined", "summarise", "build", "write", "fill_settings"]
