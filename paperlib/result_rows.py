"""Tidy result rows: one row per measurement, merged into a CSV by key columns, written atomically.

Several notebooks add rows to the same table (the victims table gets rows from the foundation
and from the attack suite); :func:`upsert_csv` replaces rows with the same key and keeps the rest,
so re-running one notebook never erases another's results, and never replaces another machine's
row of a model's key (``made_on``).  :mod:`paperlib.results` re-exports these names.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import pandas as pd


def _is_writer() -> bool:
    """Under torchrun only rank 0 writes result files (the others compute the same rows)."""
    return int(os.environ.get("RANK", "0")) == 0


def upsert_csv(path: str | Path, rows: Iterable[Mapping], key: Sequence[str],
               columns: Sequence[str] | None = None, key_defaults: Mapping | None = None,
               made_on: str | None = None, model_column: str | None = None, log=print) -> pd.DataFrame:
    """Merge ``rows`` into the CSV at ``path``: same ``key`` values replace, others are kept.

    A key column the file lacks (added to the key later) is empty in its older rows, or
    ``key_defaults[column]`` where the value those rows were made with is known.  No rows: the
    file is left as it is (and returned; an empty table when there is none).

    ``made_on`` names the column that says which machine trained the model a row measures
    (``device``), ``model_column`` the one naming that model by its cache key (``victim_model``,
    ``model``).  One cache key trains other weights on another CPU kind (docs/provenance.md), so a row
    of the file of the same key and model naming another machine than the new row, or none (written
    before the column) where the new row names one, is kept and the new row left out, said through
    ``log``: measuring this machine's model never replaces another machine's row of it (nor does a
    new row naming no machine replace one that names it)."""
    if made_on is not None and model_column is None:
        raise ValueError("upsert_csv: made_on needs model_column, the column naming the measured model")
    path = Path(path)
    if not _is_writer():
        return pd.DataFrame(list(rows))
    new = pd.DataFrame(list(rows))
    if new.empty:   # nothing to merge (every row reused, or none asked for): the file as it is
        old = read_results(path)
        return old if old is not None else pd.DataFrame(columns=list(columns or key))
    missing = [k for k in key if k not in new.columns]
    if missing:
        raise KeyError(f"{path}: rows lack key columns {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _folder_lock(path.parent):   # processes sharing one results folder (parallel jobs) take turns
        return _upsert_locked(path, new, key, columns, key_defaults, made_on, model_column, log)


@contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on ``folder`` (flock on the directory itself: no lock file is left behind),
    held while one process reads, merges and rewrites a results file in it."""
    import fcntl
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing releases the lock


# columns naming cache artifacts (text even where not a key: a CFBD row's retrained `model`)
NAME_COLUMNS = ("model", "victim_model", "base_model", "eval_key")


def read_results(path: str | Path) -> pd.DataFrame | None:
    """A results file with its columns naming artifacts (:data:`NAME_COLUMNS`) read as text; None
    when it does not exist."""
    path = Path(path)
    return pd.read_csv(path, dtype={k: str for k in NAME_COLUMNS}) if path.is_file() else None


def rows_of_models(every: pd.DataFrame, rows: Iterable[Mapping], column: str = "model") -> pd.DataFrame:
    """The rows of a results file (``every``, which keeps other models' rows) naming in ``column`` a
    model of this run's ``rows``, in the file's order: what the file keeps for them, another machine's
    row where :func:`upsert_csv` kept one."""
    names = {str(r[column]) for r in rows}
    return every[every[column].astype(str).isin(names)].reset_index(drop=True)


def column_equals(column: pd.Series, value) -> pd.Series:
    """Which cells of a results file's ``column`` hold ``value``: text as text, numbers as the files
    write them (4 significant digits, so to a relative 1e-3)."""
    import numpy as np
    if isinstance(value, str):
        return column.astype(str) == value
    return pd.Series(np.isclose(pd.to_numeric(column, errors="coerce"), float(value), rtol=1e-3), index=column.index)


def _upsert_locked(path: Path, new: pd.DataFrame, key, columns, key_defaults, made_on=None, model_column=None,
                   log=print) -> pd.DataFrame:
    if path.is_file():
        # key columns these rows hold as text (digests, cache keys) are read back as text: a digest
        # of digits, or like "12e4", would otherwise come back a number and be rewritten as one
        text = {k: str for k in (*key, *NAME_COLUMNS) if k in new.columns
                and (new[k].dtype == object or pd.api.types.is_string_dtype(new[k]))}
        old = pd.read_csv(path, dtype=text)
        for k in key:
            if k not in old.columns:      # a key column added later: older rows have no value there
                old[k] = (key_defaults or {}).get(k, float("nan"))
        if len(old) and made_on is not None:
            new = _without_other_machines_rows(path, old, new, key, made_on, model_column, log)
        if len(old):
            old_keys = _key_strings(old, key)
            new_keys = set(_key_strings(new, key))
            old = old[~old_keys.isin(new_keys)]
        df = pd.concat([old, new], ignore_index=True)
    else:
        df = new
    if columns is not None:
        order = list(columns) + [c for c in df.columns if c not in columns]
        df = df[[c for c in order if c in df.columns]]
    df = df.sort_values(list(key), kind="stable").reset_index(drop=True)
    write_csv_atomic(df, path)
    return df


def _without_other_machines_rows(path: Path, old: pd.DataFrame, new: pd.DataFrame, key, made_on: str,
                                 model_column: str, log) -> pd.DataFrame:
    """``new`` less the rows that would replace a row of the file (``old``) of the same key and the
    same model (``model_column``) made on another machine (``made_on``); a row naming no machine
    counts as another machine's where the other row names one.  Those file rows stay as they are
    (:func:`upsert_csv`).  A row of another model under the key, or one naming no model, is replaced
    as usual; so is a row when neither names a machine (a row read back from a file and written again)."""
    def text(v):
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    def column(df, name):
        return df[name].map(text) if name in df.columns else pd.Series([""] * len(df), index=df.index)
    held: dict[tuple[str, str], set[str]] = {}
    for k, model, machine in zip(_key_strings(old, key), column(old, model_column), column(old, made_on)):
        if model:
            held.setdefault((k, model), set()).add(machine)
    new_keys, models, mine = _key_strings(new, key), column(new, model_column), column(new, made_on)

    def clashes(i) -> bool:
        theirs = held.get((new_keys[i], models[i]), set())
        return bool(models[i]) and any(m != mine[i] for m in theirs) and bool(mine[i] or any(theirs))
    clash = pd.Series([clashes(i) for i in new.index], index=new.index, dtype=bool)
    for i in new.index[clash]:
        theirs = ", ".join(sorted(m or "a machine it does not name" for m in held[(new_keys[i], models[i])]))
        log(f"{path.name}: the row of {new.loc[[i], list(key)].to_dict('records')[0]} (model {models[i]}) stays "
            f"as made on {theirs}; this run's, of the model trained on {mine[i] or 'a machine it does not name'}, "
            f"is left out (one cache key trains other weights on another machine; delete the row to replace it)")
    return new[~clash]


def _key_strings(df: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    """One string per row naming its key values; numbers by value, so 5, 5.0 and "5" read back
    from a CSV name the same row, and an empty value is "" however it reads back (CSV turns "" into NaN)."""
    import math
    import numbers

    def norm(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        if isinstance(v, numbers.Number) and not isinstance(v, bool):
            return format(float(v), ".12g")
        return str(v)
    return df[list(key)].apply(lambda col: col.map(norm)).agg("|".join, axis=1)


def write_csv_atomic(df: pd.DataFrame, path: str | Path) -> None:
    if not _is_writer():
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    df.to_csv(tmp, index=False, float_format="%.4g")
    os.replace(tmp, path)


def row_naming_model(path: str | Path, model: str, column: str = "model", **match) -> dict | None:
    """The first row of the results file ``path`` whose ``column`` (``model``; ``victim_model`` for
    a victim's own rows) names ``model`` (a cache key) and whose other columns equal ``match`` (what
    the row measured beyond the model: a stage, a ratio, a defence), without its empty cells; None
    when there is no such file, column or row.  This is how a model trained elsewhere (a GPU
    lending) stands in by its published row."""
    path = Path(path)
    if not path.is_file():
        return None
    # cache keys and digests are text, never numbers (a digest like 1234e5678901 would read as one)
    text = {"model": str, "victim_model": str, column: str, **{k: str for k, v in match.items() if isinstance(v, str)}}
    rows = pd.read_csv(path, dtype=text)
    if column not in rows.columns:
        return None
    rows = rows[rows[column] == str(model)]
    for column, value in match.items():
        rows = rows[rows[column] == value] if column in rows.columns else rows.iloc[0:0]
    return None if rows.empty else {k: v for k, v in rows.iloc[0].to_dict().items() if not pd.isna(v)}


__all__ = ["upsert_csv", "read_results", "column_equals", "write_csv_atomic", "row_naming_model",
           "rows_of_models", "NAME_COLUMNS"]
