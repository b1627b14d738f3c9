"""EftCLIP's pre-training victims as parallel jobs: what ``parallel_seeds run --module eftclip`` needs.

Table 5 of the paper defends victims pre-trained on poisoned CC3M (issue 23): one such victim is a
2.5-pass pre-training from scratch (19 minutes of the 2 cores), twelve of them (four attacks, three
seeds) and BadNet's RoCLIP from scratch are hours of the 2 cores (on 2026-12-06 the CPU made them one
job at a time, no GPU being lent; a GPU runs them side by side).  Each job is one pre-training victim at
one seed (``only_threat: pretrain``: its Tables 3-5 rows, upserted into one shared results folder),
made under the parameter file's own words so that its rows' settings digests and blocks are the
ones the notebook looks for on the CPU; ``$PAPERLIB_CUDA_AUTO_PRECISION=fp32`` (:data:`ENV`, which
``parallel_seeds`` gives this module's jobs and warm-up) makes the file's ``precision: auto`` train
in fp32 on the GPU, so the victims' cache keys are the CPU's too.  Before the jobs start,
:func:`warm` builds what they all read once: the segmenter, the triggers and the evaluation splits.
"""
from __future__ import annotations

from pathlib import Path

SHARED_RESULTS = True   # every job upserts into one results folder (upsert_csv locks it)
ENV = {"PAPERLIB_CUDA_AUTO_PRECISION": "fp32"}   # the file's `auto` is fp32 on CUDA too: the CPU's keys


def _default(key: str):
    from paperlib.experiments.eftclip_setup import EftCLIPParams
    return list(EftCLIPParams.__dataclass_fields__[key].default)


def adjust(raw: dict, source: dict | None = None) -> None:
    """The file's parameters for jobs, in place: ``parallel_seeds.fp32_params`` wrote ``fp32`` into
    the training sections; the words a settings digest reads go back to the file's (``source``),
    the precision being fixed by the environment instead (the module docstring)."""
    import copy
    source = source or {}
    # the file's victims whatever pairs the command line names (not in the digest; the shared parameter
    # file of the data and warm steps must validate: a BadNet victim, one per Table 5 attack) and its
    # pre-training seeds among the command line's
    raw["victims"] = copy.deepcopy(source.get("victims", raw.get("victims", [])))
    raw["pretrain_seeds"] = [s for s in source.get("pretrain_seeds", []) if s in raw.get("seeds", [])] or raw.get("seeds", [0])
    raw["table5_attacks"] = list(source.get("table5_attacks", _default("table5_attacks")))
    pre = source.get("pretrain", {})
    raw.setdefault("pretrain", {})
    if "precision" in pre:
        raw["pretrain"]["precision"] = pre["precision"]
    else:
        raw["pretrain"].pop("precision", None)
    by_attack = {v["attack"]: v for v in source.get("victims", [])}
    for v in raw.get("victims", []):
        ft = by_attack.get(v["attack"], {}).get("finetune", {})
        if "precision" in ft:
            v["finetune"]["precision"] = ft["precision"]
        else:
            v.get("finetune", {}).pop("precision", None)
    data = raw.setdefault("data", {})   # the rendering workers too (in the digest): the data step sets its own
    if "workers" in source.get("data", {}):
        data["workers"] = source["data"]["workers"]
    else:
        data.pop("workers", None)


def job_params(raw: dict, attack: str, seed: int, work: Path, results: Path | None, file_seeds=None) -> dict:
    """One job: ``attack``'s pre-training victim at ``seed``, its rows only, into ``results``."""
    one = dict(raw)
    one.pop("seeds_by_attack", None)
    one.update(seeds=[seed], pretrain_seeds=[seed], ablation_seeds=[seed], only_threat="pretrain",
               pretrain_victims=[v for v in raw.get("pretrain_victims", []) if v["attack"] == attack],
               table5_attacks=[a for a in raw.get("table5_attacks", _default("table5_attacks")) if a == attack])
    if results is not None:
        one["results_dir"] = str(results)
    return one


def warm(params_path: Path) -> None:
    """What every job reads and none may build twice at once: the segmenter (the oracle), the
    splits of Table 4's CIFAR column and each victim's trigger."""
    from paperlib import pipeline as pl
    from paperlib.experiments.common import build_triggers, clean_base
    from paperlib.experiments.eftclip import Workbench, load
    p = load(params_path)
    build_triggers(p, clean_base(p))
    wb = Workbench(p)
    wb.segmenter()
    pl.get_split("cifar10_analog", p.data)

