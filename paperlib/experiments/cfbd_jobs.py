"""CFBD's rows as parallel jobs: what ``parallel_seeds run --module cfbd`` needs of CFBD.

Each job is one victim at one seed (``rows_only``: its detection, retraining and ABL rows, no
tables), and every job writes into one shared results folder (``result_rows.upsert_csv`` locks it).
Table 3's low rates run in the jobs of the parameter file's seeds, the mapping ablation in the
job of its first seed.  Before the jobs start, :func:`warm` builds what they all read once.
"""
from __future__ import annotations

from pathlib import Path

SHARED_RESULTS = True   # every job upserts into one results folder (the defence matrix's are merged)
PER_ATTACK_LISTS = ("rate_attacks", "fault_attacks")


def _default(key: str):
    from paperlib.experiments.cfbd import CFBDParams
    return CFBDParams.__dataclass_fields__[key].default


def adjust(raw: dict, source: dict | None = None) -> None:
    """The file's parameters for jobs, in place: the per-attack lists keep only the victims left
    in ``raw`` (the command line's attacks), and the figure's attack is one of them."""
    kept = {v["attack"] for v in raw.get("victims", [])}
    for key in PER_ATTACK_LISTS:
        raw[key] = [a for a in raw.get(key, _default(key)) if a in kept]
    if raw.get("figure_attack", "badnet") not in kept and raw.get("victims"):
        raw["figure_attack"] = raw["victims"][0]["attack"]


def job_params(raw: dict, attack: str, seed: int, work: Path, results: Path | None, file_seeds=None) -> dict:
    """The parameters (as a dict) of one job: ``attack``'s victim at ``seed``, rows only, into the
    shared ``results`` folder.  ``file_seeds``: those of the parameter file, not of the command line
    (BadNet's extra seeds run no rate sweep)."""
    seeds = list(file_seeds if file_seeds is not None else raw.get("seeds", [0]))
    one = {**raw, "seeds": [seed], "victims": [v for v in raw["victims"] if v["attack"] == attack],
           "rows_only": True, "figure_attack": attack}
    one.pop("seeds_by_attack", None)
    for key in PER_ATTACK_LISTS:   # the file's list, else the parameter's default
        one[key] = [a for a in raw.get(key, _default(key)) if a == attack]
    if seed not in seeds:
        one["rate_attacks"] = []
    if seed != seeds[0]:
        one["mapping_ablation"] = []
    if results is not None:
        one["results_dir"] = str(results)
    return one


def warm(params_path: Path) -> None:
    """What every job of the parameter file ``params_path`` reads and none may build twice at once:
    the mapping networks (the default and the ablation's), the clean embeddings' splits and each
    victim's trigger."""
    from paperlib import pipeline as pl
    from paperlib.config import replace
    from paperlib.experiments.cfbd import load
    from paperlib.experiments.common import build_triggers, clean_base
    from paperlib.experiments.detection import trained_mapping
    p = load(params_path)
    base = clean_base(p)
    device = pl.resolve_device(p.device)
    for kind in dict.fromkeys((p.mapping.kind, *p.mapping_ablation)):
        trained_mapping(replace(p, mapping=replace(p.mapping, kind=kind)), base, device)
    build_triggers(p, base)
