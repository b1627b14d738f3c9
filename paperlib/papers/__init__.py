"""The numbers printed in the four papers' tables, as tidy data (one row per number).

The CSV files next to this module are hand transcriptions; README.md here lists every table,
the column meanings and each transcription doubt. Typical use in a notebook::

    from paperlib import papers
    papers.lookup("cleanerclip", "Table 1", attack="badclip", metric="asr", k=1)

``value`` is a float; ``value_str`` keeps the number exactly as printed (e.g. "68.7", "100.0").
``k`` is a nullable integer (empty in the CSV when the metric is not top-k).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent

PAPERS: tuple[str, ...] = ("eftclip", "cleanerclip", "abd", "cfbd")

COLUMNS: tuple[str, ...] = (
    "paper", "table", "row", "attack", "defence", "dataset", "metric", "k", "setting", "value", "note",
)

ATTACKS = frozenset({
    "badnet", "blended", "sig", "wanet", "ssba", "trojannn", "trojannet", "lc", "mmpoison", "badclip",
})
# "clean" = a model trained on clean data only; "none" = the poisoned / victim model without defence.
DEFENCES = frozenset({
    "none", "ft", "cleanclip", "cleanerclip", "abd", "roclip", "eftclip", "cfbd", "abl", "clean",
})
# Paper-specific defence labels (ablation columns), documented in README.md.
EXTRA_DEFENCES = frozenset({"i_adv", "t_eda", "uap", "uap+lbd"})


def _check_paper(paper: str) -> str:
    key = str(paper).strip().lower()
    if key not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; valid papers are: {', '.join(PAPERS)}")
    return key


def _read(paper: str) -> pd.DataFrame:
    path = HERE / f"{paper}.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(df.columns) != COLUMNS:
        raise ValueError(f"{path.name}: columns {list(df.columns)} differ from {list(COLUMNS)}")
    df["value_str"] = df["value"]
    df["value"] = pd.to_numeric(df["value"], errors="raise").astype(float)
    df["k"] = pd.to_numeric(df["k"].replace("", None)).astype("Int64")
    return df


def load(paper: str | None = None) -> pd.DataFrame:
    """All transcribed numbers of one paper, or of every paper when ``paper`` is None."""
    if paper is None:
        return pd.concat([_read(p) for p in PAPERS], ignore_index=True)
    return _read(_check_paper(paper))


def _matches(column: pd.Series, wanted) -> pd.Series:
    if column.name == "k":
        if wanted is None or wanted == "":
            return column.isna()
        if isinstance(wanted, (list, tuple, set, frozenset)):
            return column.isin([int(w) for w in wanted]).fillna(False).astype(bool)
        return (column == int(wanted)).fillna(False).astype(bool)
    if isinstance(wanted, (list, tuple, set, frozenset)):
        return column.isin([str(w) for w in wanted])
    return column == str(wanted)


def lookup(paper: str, table: str, **filters) -> pd.DataFrame:
    """Rows of one table of one paper, filtered by column equality.

    ``table`` is matched case-insensitively ("Table I", "table 1", "Fig 4c").
    Keyword filters name columns (attack, defence, dataset, metric, k, setting, row, ...); a list
    value means "any of". An unknown column or table raises ValueError naming the valid ones.
    Setting filters may also be given as ``setting_contains="q=50"`` (substring match).
    """
    df = load(paper)
    tables = sorted(df["table"].unique())
    sel = df[df["table"].str.lower() == str(table).strip().lower()]
    if sel.empty:
        raise ValueError(f"{paper}: unknown table {table!r}; tables are: {', '.join(tables)}")
    contains = filters.pop("setting_contains", None)
    if contains is not None:
        sel = sel[sel["setting"].str.contains(str(contains), regex=False)]
    for col, wanted in filters.items():
        if col not in sel.columns:
            raise ValueError(f"unknown column {col!r}; columns are: {', '.join(sel.columns)}")
        sel = sel[_matches(sel[col], wanted)]
    return sel.reset_index(drop=True)


__all__ = ["PAPERS", "COLUMNS", "ATTACKS", "DEFENCES", "EXTRA_DEFENCES", "load", "lookup"]
