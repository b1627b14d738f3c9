"""What is left of a run, read from what its published run used and what building each artifact costs.

Two records make the estimate:

* a published run's manifest (``results/<notebook>/manifest_<scale>.json``) lists the artifacts it
  used, section by section, and the seconds it spent building those it had to build
  (:func:`paperlib.cache.used_artifacts`);
* ``results/benchmarks/cache_costs.csv`` (``python -m paperlib.bench --cache-costs``) holds the median
  build time of each artifact kind and role, per CPU kind, measured while cold caches were filled, and
  ``artifact_costs.csv`` beside it each artifact's own time (cache keys are the same on every
  machine, so an artifact recorded there is priced by its own time, others by their kind's median).

A section then costs about its published wall time less what the published run spent building, plus
the recorded cost of each of its artifacts that this machine's cache lacks, except those a results row
of the run's results folder stands in for (a row whose ``model`` or ``eval_key`` names the artifact:
``reuse_rows``, docs/running.md), which a fresh machine does not build, nor the evaluations and
classifiers made of such a model (their ``of`` in the manifest), nor a unit of work whose models'
rows all stand in (a CFBD screening, ``kind: work`` in the manifest: its own seconds are counted
only where it will run).  The two CPU kinds seen
(with and without native bf16) train at different speeds, so only rows of this CPU kind count; on a
GPU no recorded cost applies and the estimate says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from paperlib.assets import repo_root
from paperlib.cache import WORK_KIND, work_key

COSTS_FILE = Path("results") / "benchmarks" / "cache_costs.csv"
ARTIFACT_COSTS_NAME = "artifact_costs.csv"   # beside COSTS_FILE: each cached artifact's own build time
COSTS_SCALE = "embedded"   # the scale whose caches the recorded costs were measured on


def published_manifest(notebook: str, scale: str) -> dict:
    """The manifest of ``notebook``'s published run at ``scale`` (empty if none or unreadable)."""
    path = repo_root() / "results" / notebook / f"manifest_{scale}.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def published_sections(notebook: str, scale: str) -> dict[str, float]:
    """Wall seconds per section of the published run of ``notebook`` at ``scale`` (empty if none)."""
    try:
        return {k: float(v) for k, v in published_manifest(notebook, scale).get("wall_seconds", {}).items()}
    except (ValueError, AttributeError, TypeError):
        return {}


@lru_cache(maxsize=None)
def _this_cpu_kind() -> str | None:
    """``"True"``/``"False"`` (native bf16 or not: the column that tells the CPU kinds apart), or
    None on a GPU machine, where the CPU's build costs do not apply."""
    import torch

    from paperlib.train.loop import cpu_has_native_bf16
    if torch.cuda.is_available():
        return None
    return str(cpu_has_native_bf16())


def _recorded_rows(path: str | None, cpu_kind: str | None):
    """The rows of the costs file for ``cpu_kind`` ("here": this machine's kind), as text, the latest
    of each artifact kind, role and precision, oldest first; None on a GPU (``cpu_kind`` None) or
    without the file."""
    import pandas as pd
    kind = _this_cpu_kind() if cpu_kind == "here" else cpu_kind
    file = Path(path) if path else repo_root() / COSTS_FILE
    if kind is None or not file.is_file():
        return None
    rows = pd.read_csv(file, keep_default_na=False, dtype=str)
    rows = rows[rows.cpu_native_bf16 == kind]
    # one measurement per artifact kind, the latest: a kind recorded again (e.g. under a CPU label
    # that has since gained its vector extension) would otherwise count twice
    return rows.sort_values("measured").drop_duplicates(["kind", "role", "precision"], keep="last")


@lru_cache(maxsize=None)
def build_costs(path: str | None = None, cpu_kind: str | None = "here") -> dict[tuple[str, ...], float]:
    """Median build seconds per (kind, role) on ``cpu_kind`` (default: this machine's), the latest
    measurement where several were recorded, and each recorded artifact's own seconds under
    (kind, role, key) (:func:`artifact_cost` reads both); empty on a GPU or without the file."""
    rows = _recorded_rows(path, cpu_kind)
    if rows is None:
        return {}
    costs = {(r.kind, r.role): float(r.median_seconds) for r in rows.sort_values("measured").itertuples(index=False)}
    return {**costs, **_artifact_costs(path, cpu_kind)}


def _artifact_costs(path: str | None, cpu_kind: str | None) -> dict[tuple[str, str, str], float]:
    """(kind, role, key) -> that artifact's own build seconds on ``cpu_kind`` (the latest record;
    resumed builds, which recorded only their last leg, left out), from the file beside the costs
    file; empty without it."""
    import pandas as pd
    kind = _this_cpu_kind() if cpu_kind == "here" else cpu_kind
    file = (Path(path) if path else repo_root() / COSTS_FILE).with_name(ARTIFACT_COSTS_NAME)
    if kind is None or not file.is_file():
        return {}
    rows = pd.read_csv(file, keep_default_na=False, dtype=str)
    resumed = pd.to_numeric(rows.resumed, errors="coerce").fillna(0) > 0
    seconds = pd.to_numeric(rows.build_seconds, errors="coerce")
    rows = rows[(rows.cpu_native_bf16 == kind) & ~resumed & (seconds > 0)]
    rows = rows.sort_values("measured").drop_duplicates(["kind", "key"], keep="last")
    return {(r.kind, r.role, r.key): float(r.build_seconds) for r in rows.itertuples(index=False)}


def artifact_cost(costs: dict, kind: str, role: str, key: str) -> float | None:
    """The recorded cost of one artifact: its own build time where recorded, else its kind's median."""
    return costs.get((kind, role, key), costs.get((kind, role)))


def recorded_total(path: str | None = None, cpu_kind: str | None = "here") -> tuple[float, int] | None:
    """Seconds and artifacts that the cold caches recorded in the costs file took in all on
    ``cpu_kind`` (default: this machine's): the rough estimate of retraining everything where the
    published manifests do not list their artifacts.  None without the file or rows of that kind."""
    rows = _recorded_rows(path, cpu_kind)
    if rows is None or rows.empty:
        return None
    return float(rows.total_seconds.astype(float).sum()), int(rows.artifacts.astype(int).sum())


RUN_RESULTS_ENV = "PAPERLIB_RUN_RESULTS"   # the results folder of the run_all run (rows that stand in)
KEY_COLUMNS = ("model", "eval_key")          # columns naming the artifact a row measured
# files whose rows stand in for the victim they name (the foundation's poison curve)
FILE_KEY_COLUMNS = {"foundation/poison_curve.csv": ("victim_model",)}
# a row naming the screened victim and the detector stands in for that CFBD screening (its work key)
WORK_ROW_COLUMNS = ("victim_model", "detector")
# files whose rows name models they measured but do not stand in for (a diagnostic of ABL's losses
# under the clean base and ABL's isolation model: that table's rows are not those models' results)
NOT_STANDING_IN = frozenset({"detection/abl_losses.csv"})


@lru_cache(maxsize=8)
def stand_in_keys(rows_dir: str) -> frozenset[str]:
    """Artifact keys that a row of some CSV under ``rows_dir`` names in a ``model`` or ``eval_key``
    column (or a column of :data:`FILE_KEY_COLUMNS` in that file): absent from a cache, such an
    artifact is not built (its row stands in); and the work keys of the CFBD screenings whose rows
    are there (:data:`WORK_ROW_COLUMNS`: ``cfbd_set/<victim_model>/<detector>``)."""
    import pandas as pd
    keys: set[str] = set()
    for path in sorted(Path(rows_dir).rglob("*.csv")):
        if path.relative_to(rows_dir).as_posix() in NOT_STANDING_IN:
            continue
        try:
            header = pd.read_csv(path, nrows=0).columns
            columns = KEY_COLUMNS + FILE_KEY_COLUMNS.get(path.relative_to(rows_dir).as_posix(), ())
            wanted = [c for c in columns if c in header]
            if wanted:
                rows = pd.read_csv(path, usecols=wanted, dtype=str, keep_default_na=False)
                keys.update(v for c in wanted for v in rows[c] if v)
            if all(c in header for c in WORK_ROW_COLUMNS):
                rows = pd.read_csv(path, usecols=list(WORK_ROW_COLUMNS), dtype=str, keep_default_na=False)
                keys.update(work_key("cfbd_set", victim, detector)
                            for victim, detector in zip(rows.victim_model, rows.detector) if victim and detector)
        except (OSError, ValueError):
            continue
    return frozenset(keys)


@dataclass
class Estimate:
    """What is left: seconds, how many artifacts must be built, how many of them have no recorded
    cost, and how many absent artifacts and units of work (CFBD screenings) results rows stand in
    for (not built, not run)."""
    seconds: float = 0.0
    to_build: int = 0
    uncosted: int = 0
    known: bool = False   # whether the published run listed its artifacts (older manifests did not)
    stand_in: int = 0
    untimed: int = 0      # units of work to do that the published run did not time (its rows stood in)

    def __add__(self, other: "Estimate") -> "Estimate":
        return Estimate(self.seconds + other.seconds, self.to_build + other.to_build,
                        self.uncosted + other.uncosted, self.known or other.known,
                        self.stand_in + other.stand_in, self.untimed + other.untimed)


def section_estimate(manifest: dict, section: str, cache_root: Path, costs: dict,
                     stand_in: frozenset[str] = frozenset(), seen: set | None = None) -> Estimate:
    """Seconds ``section`` of the run ``manifest`` describes should take on ``cache_root``: its
    published time less what the published run spent building, plus the recorded cost of every
    artifact it used that the cache lacks now and no row of ``stand_in`` (keys) replaces.  ``seen``:
    artifacts already counted (by an earlier notebook of the same estimate), counted once.

    An evaluation or classifier made of a model (``of`` in the ledger) is not counted where that
    model's row stands in; a unit of work (kind ``work``, a CFBD screening) is counted unless its own
    rows and every one of its models' rows stand in, those models absent from the cache.  It leans
    high: a row's model is counted under ``reuse_rows: false``, and so are the evaluations in
    manifests written before ``of`` was recorded; builds that the published run ran in parallel jobs
    are counted one after the other.  It leans low where a screening's cost was shared (the clean
    scenes' embeddings are paid by the first set screened at a seed: a later set that must be
    screened when the first stands in does not carry them) and where a screening's detection rows
    stand in but some of its study rows (Table 5, Fig. 6, the figures' data) do not."""
    published = float(manifest.get("wall_seconds", {}).get(section, 0.0))
    used = [a for a in manifest.get("artifacts", []) if a.get("section") == section]
    built_then = sum(float(a.get("built_seconds") or 0.0) for a in used)
    est = Estimate(seconds=max(0.0, published - built_then), known="artifacts" in manifest)
    for a in used:
        if a["kind"] == WORK_KIND:   # a unit of work (a CFBD screening): skipped where its rows stand in
            models = a.get("models") or []
            if a["key"] in stand_in and all(m in stand_in and not (cache_root / "model" / m / "DONE").is_file()
                                            for m in models):
                est.stand_in += 1
            elif a.get("built_seconds") is not None:   # screened in the published run: its models are its own entries
                est.seconds += float(a["built_seconds"])
            else:   # stood in there (cache.note_stood_in): its models were not built, the screening not timed
                est.untimed += 1
                est = est + _models_of_work(a, cache_root, costs, stand_in, seen)
            continue
        if (cache_root / a["kind"] / a["key"] / "DONE").is_file():
            continue
        if seen is not None:
            if (a["kind"], a["key"]) in seen:
                continue
            seen.add((a["kind"], a["key"]))
        if a["key"] in stand_in or a.get("of") in stand_in:   # its row, or its model's, stands in
            est.stand_in += 1
            continue
        est.to_build += 1
        cost = artifact_cost(costs, a["kind"], a.get("role", ""), a["key"])
        if cost is None:
            est.uncosted += 1
        else:
            est.seconds += cost
    return est


def _models_of_work(entry: dict, cache_root: Path, costs: dict, stand_in: frozenset[str],
                    seen: set | None) -> Estimate:
    """The models of a unit of work that stood in for the published run (``model_roles``: cache name
    -> role), each absent from ``cache_root`` and not standing in priced at its recorded cost."""
    est = Estimate()
    for key, role in (entry.get("model_roles") or {}).items():
        if (cache_root / "model" / key / "DONE").is_file() or key in stand_in:
            continue
        if seen is not None:
            if ("model", key) in seen:
                continue
            seen.add(("model", key))
        est.to_build += 1
        cost = artifact_cost(costs, "model", role, key)
        if cost is None:
            est.uncosted += 1
        else:
            est.seconds += cost
    return est


def run_rows_dir() -> str:
    """The results folder whose rows stand in during this run: run_all's (``$PAPERLIB_RUN_RESULTS``),
    else the committed ``results/``."""
    import os
    return os.environ.get(RUN_RESULTS_ENV) or str(repo_root() / "results")


def left(notebook: str, scale: str, done=(), cache_root: Path | None = None,
         rows_dir: str | None = None, sections=None, seen: set | None = None) -> Estimate | None:
    """The estimate for the sections of ``notebook`` not in ``done`` (or only ``sections``), with
    the rows of ``rows_dir`` (default :func:`run_rows_dir`, read once per process) standing in;
    None without a published run.  ``seen``: see :func:`section_estimate`."""
    manifest = published_manifest(notebook, scale)
    if not manifest.get("wall_seconds"):
        return None
    if cache_root is None:
        from paperlib.assets import cache_root as default_root
        cache_root = default_root()
    costs = build_costs() if scale == COSTS_SCALE else {}
    rows = stand_in_keys(str(rows_dir or run_rows_dir())) if "artifacts" in manifest else frozenset()
    total = Estimate(known="artifacts" in manifest)
    for section in manifest["wall_seconds"]:
        if section not in done and (sections is None or section in sections):
            total = total + section_estimate(manifest, section, Path(cache_root), costs, rows, seen)
    if sections is None:   # artifacts used between sections (no section of their own): while absent
        between = {a.get("section") for a in manifest.get("artifacts", [])} - set(manifest["wall_seconds"])
        for section in sorted(between):
            total = total + section_estimate(manifest, section, Path(cache_root), costs, rows, seen)
    return total


def describe(est: Estimate | None) -> str:
    """One phrase for a progress line."""
    if est is None:
        return "no published run to estimate from"
    text = f"~{minutes(est.seconds)} left"
    if not est.known:
        return text + " by the published run (its manifest lists no artifacts: models this cache lacks come on top)"
    rows = f"; {est.stand_in} more stand in by their rows" if est.stand_in else ""
    untimed = ""
    if est.untimed:   # CFBD screenings the published run took from rows: their models are counted, not the rest
        untimed = (f"; {est.untimed} screening{'s' if est.untimed != 1 else ''} that the published run took from "
                   "its rows, untimed (their models counted, their embedding and judging not)")
    if est.to_build == 0:
        return text + (f" (nothing to build{untimed}{rows})" if rows or untimed else
                       " (every model the published run used is in this cache)")
    text += f", {est.to_build} artifact{'s' if est.to_build != 1 else ''} to build by {COSTS_FILE.as_posix()}"
    if est.uncosted:
        text += f" ({est.uncosted} with no recorded cost for this scale and machine, not counted)"
    return text + untimed + rows


def expected_build(kind: str, role: str, key: str = "") -> str:
    """``~2.9 min by <file>`` for one artifact of ``kind`` and ``role`` (``key``: that very artifact,
    where its own time is recorded) on this CPU kind, and the file it was read from; empty if
    unrecorded."""
    costs = build_costs()
    cost = artifact_cost(costs, kind, role, key)
    if cost is None:
        return ""
    source = COSTS_FILE.with_name(ARTIFACT_COSTS_NAME) if (kind, role, key) in costs else COSTS_FILE
    return f"~{minutes(cost)} by {source.as_posix()}"


def minutes(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
