"""CFBD screenings that stand in by their published rows (issue 25: the main job on a fresh machine).

Screening a poisoned set needs the rendered scenes, the fitted trigger, the mapping network and
50,000 image and caption embeddings: on a fresh 2-core machine, half an hour before the first
set, and minutes per set after.  Everything a screening produces is a row of a results file (the
detection rows of both stages, the retrainings' rows in the defence matrix, Table 3's rates with
ABL, Table 5, Fig. 6's ablation, the former rules, the figures' data), so a screening whose
rows are all published, and none of whose models (its retrainings, ABL's isolation model) this
cache holds, stands in by those rows: nothing is screened or trained for it, and the run says so
in its log and the terminal.  ``reuse_rows: false`` screens and trains everything.

A model of the screening present in this cache means this machine made it (or can measure it): the
set is screened here, as before.  A screening that feeds no model (``retrain: false``) stands in
whenever its rows are published, as the mapping ablation's rows always have.  (ABL's isolation
model counts as one of its models when the run asks for ABL.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from paperlib.results import column_equals, read_results

# the rows' columns naming the detector's rules (as in detection.CFBD_KEY)
RULE_COLUMNS = ("mapping", "benign_rule", "gamma_z_rule", "gamma_z_quantile")


@dataclass(frozen=True)
class PublishedScreening:
    """A poisoned set's screening not made here: what the results files hold of it.  It has the
    ``victim_model`` a :class:`~paperlib.experiments.detection.Screened` has (the key every
    derived row carries) and no scores; the studies on screened sets skip it (their rows of it are
    in their files already)."""
    attack: str
    seed: int
    poison_count: int
    victim_model: str
    rows: tuple = ()          # the detection rows (coarse, fine), whole
    matrix_rows: tuple = ()   # the defence matrix's rows of its retrainings
    abl_row: dict | None = None   # ABL's row on the set (when the run asks for ABL)


def model_here(name: str) -> bool:
    """Whether this machine's cache holds the model of cache key (directory name) ``name``."""
    from paperlib.cache import ArtifactCache
    return (ArtifactCache().root / "model" / str(name) / "DONE").is_file()


def has_rows(path: Path, want: list[dict], **fixed) -> bool:
    """Whether the results file ``path`` holds a row for every dict of ``want`` (each with the
    columns ``fixed`` too).  Numbers are compared as the files write them, to 4 significant digits."""
    df = read_results(path)
    if df is None or not want:
        return df is not None
    for col, value in fixed.items():
        if col not in df.columns:
            return False
        df = df[column_equals(df[col], value)]
    if df.empty:
        return False
    cols = list(want[0])
    if any(c not in df.columns for c in cols):
        return False

    def norm(frame):   # numbers as the files write them (4 significant digits), the rest as text
        out = frame[cols].copy()
        for c in cols:
            if pd.api.types.is_numeric_dtype(out[c]):
                out[c] = [float(f"{x:.4g}") for x in out[c].astype(float)]
            else:
                out[c] = out[c].astype(str)
        return out.drop_duplicates()
    have = norm(df)
    need = norm(pd.DataFrame(want))
    return len(need.merge(have, on=cols, how="inner")) == len(need)


# what a detection or Table 3 row must name to stand in (older rows lack some: they never do)
NEEDED = ("attack", "scale", "seed", "poison_count", "victim_model", "detector")


def _rows_of(df: pd.DataFrame | None, v, seed: int, victim_model: str, digest: str, p) -> pd.DataFrame | None:
    """The rows of ``df`` of ``v``'s set at ``seed`` made by the detector of ``digest``."""
    if df is None or any(c not in df.columns for c in NEEDED):
        return None
    return df[(df.attack == v.attack) & (df.scale == p.scale) & (df.seed == seed)
              & (df.poison_count == v.poison.poison_count) & (df.victim_model == victim_model)
              & (df.detector.astype(str) == digest)]


def _detection_rows(p, v, seed: int, victim_model: str, digest: str, rows_file: str) -> dict[str, dict] | None:
    """The published detection rows (stage -> row) of ``v``'s set at ``seed`` by the detector of
    ``digest`` (:func:`~paperlib.experiments.detection.detector_digest`) in ``detection/<rows_file>``."""
    df = _rows_of(read_results(Path(p.results_dir) / "detection" / rows_file), v, seed, victim_model, digest, p)
    if df is None or "stage" not in df.columns:
        return None
    stages = {r["stage"]: {k: val for k, val in r.items() if not pd.isna(val)} for r in df.to_dict("records")}
    return stages if {"coarse", "fine"} <= set(stages) else None


def published_screening(p, v, seed: int, victim_model: str, log=print,
                        also: Callable[[object, int, str, int], str | None] | None = None,
                        abl_model: str | None = None, digest: str = "", *, rows_file: str,
                        retrain: bool) -> PublishedScreening | None:
    """The screening of victim ``v``'s poisoned set at ``seed`` as the results files hold it, when it
    stands in (module docstring): ``p.reuse_rows``, both stages' detection rows by the detector of
    ``digest`` (:func:`~paperlib.experiments.detection.detector_digest`: the mapping and every setting),
    each retraining ``p`` asks for named by its row with its matrix row, ABL's row of ``abl_model``
    (its isolation model, when ``p`` runs ABL) at ``p``'s isolation ratio, and none of those models
    in this cache.  ``rows_file``: the detection rows' file (``detection.cfbd_file``); ``retrain``:
    whether ``p`` retrains on this attack's kept pairs.  ``also(v, seed, victim_model, n_pairs)``: what else must be published (a paper's studies of
    the set), the name of what is missing or None.  None: the set is screened here."""
    from paperlib.results import row_naming_model
    if not getattr(p, "reuse_rows", False):
        return None
    stages = _detection_rows(p, v, seed, victim_model, digest, rows_file)
    if stages is None:
        return None
    matrix = []
    for stage in p.retrain_stages if retrain else ():
        model = stages[stage].get("model")
        if model is None and int(stages[stage].get("kept", 0)) < v.finetune.batch_size:
            continue   # too few pairs kept to retrain on: there is no model (detection.run says so)
        if model is None or "ca_top1" not in stages[stage] or model_here(model):
            return None
        label = "cfbd" if stage == "fine" else "cfbd_coarse"
        row = row_naming_model(Path(p.results_dir) / "defences" / "matrix.csv", model, defence=label)
        if row is None:
            return None
        matrix.append(row)
    abl_row = None
    if abl_model is not None:
        abl_row = row_naming_model(Path(p.results_dir) / "detection" / "abl.csv", abl_model,
                                   isolation_ratio=p.abl.isolation_ratio)
        if abl_row is None or model_here(abl_model):
            return None
    if also is not None and (missing := also(v, seed, victim_model, int(stages["fine"]["n_pairs"]))) is not None:
        log(f"{v.attack} seed {seed}: screened here (its {missing} are not in the results files)")
        return None
    return PublishedScreening(v.attack, seed, v.poison.poison_count, victim_model,
                              (stages["coarse"], stages["fine"]), tuple(matrix), abl_row)


def published_rates(p, v, seed: int, victim_model: str, abl_model: str | None, digest: str) -> list[dict] | None:
    """Table 3's rows of ``v``'s set (``v`` at the rate's poison count) at ``seed``, when they stand
    in: ``p.reuse_rows``, CFBD's row by the detector of ``digest`` and (``abl_model``: ABL's
    isolation model, when ``p`` runs ABL) ABL's row of that very model at ``p``'s isolation ratio in
    ``detection/abl.csv``, the model absent from this cache.  None: screened here."""
    from paperlib.results import row_naming_model
    if not getattr(p, "reuse_rows", False) or (abl_model is not None and model_here(abl_model)):
        return None
    df = read_results(Path(p.results_dir) / "cfbd" / "table3_rates.csv")
    cfbd_rows = _rows_of(df, v, seed, victim_model, digest, p)
    if cfbd_rows is None or "method" not in cfbd_rows.columns:
        return None
    cfbd_rows = cfbd_rows[cfbd_rows.method == "cfbd"]
    if cfbd_rows.empty:
        return None
    rows = [cfbd_rows.iloc[0].to_dict()]
    if abl_model is not None:
        abl = row_naming_model(Path(p.results_dir) / "detection" / "abl.csv", abl_model,
                               isolation_ratio=p.abl.isolation_ratio)
        ours = df[(df.method == "abl") & (df.attack == v.attack) & (df.poison_count == v.poison.poison_count)
                  & (df.scale == p.scale) & (df.seed == seed) & (df.victim_model == victim_model)]
        if abl is None or ours.empty or not np.isclose(float(ours.iloc[0].tpr), float(abl["tpr"]), rtol=1e-3):
            return None   # Table 3's ABL row must be that model's
        rows.append(ours.iloc[0].to_dict())
    return [{k: val for k, val in r.items() if not pd.isna(val)} for r in rows]


def studies_published(p, figures: bool = True) -> Callable[[object, int, str, int], str | None]:
    """What CFBD's notebook makes of each screened set beyond its detection rows, as a check for
    :func:`published_screening`: Table 5's fault rows (``fault_attacks``), Fig. 6's ablation rows,
    the former rules' rows and (``figures``: a run that draws them) the figures' data (Figs. 2 and
    4: the figure attack at its first seed; Fig. 5: every set at the first seed).  Returns the name
    of what is missing, or None."""
    from paperlib.experiments.cfbd_figures import FIG4_GMM, FIG5_CURVES, FIG24_PAIRS, figure_seed
    from paperlib.experiments.cfbd_screened import RULE_VARIANTS
    out = Path(p.results_dir) / "cfbd"
    rules = {c: getattr(p.mapping, "kind") if c == "mapping" else getattr(p.cfbd, c) for c in RULE_COLUMNS}

    def check(v, seed: int, victim_model: str, n_pairs: int) -> str | None:
        of = {"attack": v.attack, "seed": seed, "scale": p.scale, "victim_model": victim_model}
        if v.attack in p.fault_attacks and not has_rows(out / "table5_fault.csv", [
                {"q": q, "fault_ratio": 100.0 * r} for q in p.fault_qs for r in (0.0, *p.fault_ratios)], **of):
            return "Table 5 rows"
        kg = [{"study": "k_gamma", "k": k, "gamma": g, "benign_rule": rule}
              for k in p.ablation_ks for rule in p.ablation_benign_rules for g in p.ablation_gammas]
        if not has_rows(out / "fig6_ablation.csv", kg, **of):
            return "Fig. 6 rows"
        qs = [{"study": "q", "q": q, "k": p.cfbd.k, "gamma": p.cfbd.gamma, "benign_rule": p.cfbd.benign_rule}
              for q in p.ablation_qs if q < n_pairs]
        if qs and not has_rows(out / "fig6_ablation.csv", qs, **of):
            return "Fig. 6 rows"
        if not has_rows(out / "former_rules.csv", [{"rules": label, "stage": stage} for stage in ("coarse", "fine")
                                                   for label in ("current rules", *RULE_VARIANTS)],
                        mapping=p.mapping.kind, **of):
            return "former rules' rows"
        if not figures:
            return None
        if (v.attack, seed) == (p.figure_attack, figure_seed(p)) and not (
                has_rows(out / FIG24_PAIRS, [{"poisoned": True}], **of, **rules)
                and has_rows(out / FIG4_GMM, [{"component": 0}], **of, **rules)):
            return "Figs. 2 and 4 data"
        if seed == p.seeds[0] and not has_rows(out / FIG5_CURVES, [{"stage": "coarse"}, {"stage": "coarse-to-fine"}],
                                               **of, **rules):
            return "Fig. 5 curves"
        return None
    return check


def say_stood_in(stood: list[PublishedScreening], total: int, log=print) -> str | None:
    """One line (the log and run_all's terminal) naming the screenings that stood in."""
    from paperlib.results import say_in_terminal
    if not stood:
        return None
    text = (f"CFBD screenings: {len(stood)} of {total} taken from the results files ("
            + ", ".join(f"{s.attack} seed {s.seed}" for s in stood)
            + "; their models are absent from this cache; reuse_rows: false screens and retrains them)")
    log(text)
    say_in_terminal(text)
    return text


__all__ = ["NEEDED", "PublishedScreening", "RULE_COLUMNS", "has_rows", "model_here", "published_rates", "published_screening",
           "say_stood_in", "studies_published"]
