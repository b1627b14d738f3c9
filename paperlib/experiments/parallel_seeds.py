"""More seeds of the defence matrix on one GPU, with the CPU run's numerics.

The embedded matrix (``params/defences/embedded.yaml``) trains tiny models whose steps are too
small to fill a GPU, and CleanCLIP's per-image AutoAugment and EDA run on the CPU anyway.  So
this runs several (attack, seed) jobs at once, each an ordinary
``python -m paperlib.experiments.defences`` process with its own results folder, sharing the
GPU and the CPU cores, and then merges their rows into ``results/defences/matrix.csv``.

Every training section is forced to ``precision: fp32`` (``auto`` would mean bf16 on a GPU), so
the cache keys and the arithmetic are those of the 2-core CPU run, and the jobs reuse its clean
base model (``seed`` varies victims and defences, never the base).  TF32 is off for fp32 on the
GPU (``train.loop.ieee_fp32_on_cuda``).  Rows record the device that trained each model, because
their ``wall_s`` are a shared GPU's, not the 2 cores'.

    python -m paperlib.experiments.parallel_seeds data   params/defences/embedded.yaml
    python -m paperlib.experiments.parallel_seeds run    params/defences/embedded.yaml \\
        --seeds 1 2 --attacks badnet blended badclip --jobs 6 --deadline 480 --work /tmp/seeds
    python -m paperlib.experiments.parallel_seeds merge  --work /tmp/seeds --seeds 1 2
    python -m paperlib.experiments.parallel_seeds compare --other /tmp/cpu/defences/matrix.csv --seeds 1

``data`` renders the splits and tokens the jobs share (it needs no model), ``run`` builds the
attacks' triggers once (they need the clean base), then starts the jobs; ``merge`` upserts the
finished rows; ``compare`` sets rows of the same models trained on another device beside them
(``results/defences/device_check.csv``), and ``victims`` does so for the attack suite's victims
(``results/attacks/victims.csv``, trained on the CPU) against the matrix's victims of the same key.
``bundle`` writes what a machine without the emoji packages needs to render the scenes
(docs/gpu.md: the 2026-12-04 lending).  A job stopped by the deadline keeps the rows it wrote
(the matrix saves after every defended model) and resumes from the cache when run again.
"""
from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from paperlib.config import read_yaml

log = logging.getLogger(__name__)


def fp32_params(path: str | Path, seeds, attacks=None, device: str = "cuda", workers: int = 16,
                module: str = "defences") -> dict:
    """The parameter file at ``path`` as a dict, with fp32 in every training section, ``seeds``,
    the victims of ``attacks`` only (all if None), ``device``, and no FT learning-rate study."""
    source = read_yaml(Path(path).read_text())
    raw = read_yaml(Path(path).read_text())
    raw["seeds"] = list(seeds)
    raw.pop("seeds_by_attack", None)   # the jobs are (attack, seed) pairs named on the command line
    raw["device"] = device
    raw.setdefault("data", {})["workers"] = workers
    raw.setdefault("pretrain", {})["precision"] = "fp32"
    victims = raw.get("victims", [])
    if attacks:
        unknown = sorted(set(attacks) - {v["attack"] for v in victims})
        if unknown:
            raise SystemExit(f"{path}: no victim for attack(s) {unknown}; "
                             f"valid: {', '.join(v['attack'] for v in victims)}")
        victims = [v for v in victims if v["attack"] in attacks]
    for v in victims:
        v.setdefault("finetune", {})["precision"] = "fp32"
    raw["victims"] = victims
    job_kind(module).adjust(raw, source)
    return raw


def _write(raw: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    os.replace(tmp, path)
    return path


MODULES = {"defences": "paperlib.experiments.defences", "cfbd": "paperlib.experiments.cfbd",
           "eftclip": "paperlib.experiments.eftclip"}


def _load(module: str):
    import importlib
    return importlib.import_module(MODULES[module]).load


@dataclass(frozen=True)
class JobKind:
    """What ``run`` needs of the experiment its jobs run (``--module``): how the parameter file is
    set for jobs, one job's parameters, what is built once before the jobs start, and whether every
    job writes into one shared results folder (else each its own, merged afterwards)."""

    adjust: Callable[[dict], None]                      # the file's parameters for jobs, in place
    job_params: Callable[..., dict]                     # (raw, attack, seed, work, results, file_seeds)
    warm: Callable[[Path], None]                        # (the jobs' parameter file)
    shared_results: bool
    env: dict = field(default_factory=dict)             # environment of the warm-up and every job


def _matrix_adjust(raw: dict, source: dict | None = None) -> None:
    raw.setdefault("defence", {}).setdefault("train", {})["precision"] = "fp32"
    raw["defence"]["ft_lrs"] = []   # no FT learning-rate study in the jobs


def _matrix_job(raw: dict, attack: str, seed: int, work: Path, results=None, file_seeds=None) -> dict:
    return {**raw, "seeds": [seed], "victims": [v for v in raw["victims"] if v["attack"] == attack],
            "results_dir": str(work / f"{attack}_seed{seed}")}


def job_kind(module: str) -> JobKind:
    """The job interface of ``module``: the defence matrix's is here, CFBD's in ``cfbd_jobs``,
    EftCLIP's pre-training victims' in ``eftclip_jobs``."""
    if module == "cfbd":
        from paperlib.experiments import cfbd_jobs
        return JobKind(cfbd_jobs.adjust, cfbd_jobs.job_params, cfbd_jobs.warm, cfbd_jobs.SHARED_RESULTS)
    if module == "eftclip":   # the pre-training victims of Tables 3-5
        from paperlib.experiments import eftclip_jobs
        return JobKind(eftclip_jobs.adjust, eftclip_jobs.job_params, eftclip_jobs.warm, eftclip_jobs.SHARED_RESULTS,
                       eftclip_jobs.ENV)
    if module == "defences":
        return JobKind(_matrix_adjust, _matrix_job, warm_attacks, False)
    raise SystemExit(f"--module {module!r}: valid are {', '.join(sorted(MODULES))}")


def warm_data(raw: dict, work: Path, module: str = "defences") -> None:
    """Render the splits and tokens every job reads, once (jobs must not build one artifact twice)."""
    from paperlib.cache import ArtifactCache
    from paperlib.data.splits import get_split, split_params
    from paperlib.pipeline import split_tokens
    p = _load(module)(_write(raw, work / "params.yaml"))
    cache = ArtifactCache()
    split = get_split("cc3m_analog", p.data, cache)
    split_tokens(split, split_params("cc3m_analog", p.data), p.model, cache)
    get_split("imagenet_analog", p.data, cache)


def warm_attacks(params_path: Path) -> None:
    """The defence matrix's jobs' triggers and renderings, built once (:func:`common.build_triggers`)."""
    from paperlib.experiments.common import build_triggers, clean_base
    from paperlib.experiments.defences import load
    p = load(params_path)
    build_triggers(p, clean_base(p))


def parse_pairs(pairs, raw: dict) -> list[tuple[str, int]]:
    """``attack:seed`` strings as (attack, seed), in the order given; each attack must have a victim
    in ``raw``."""
    attacks = [v["attack"] for v in raw["victims"]]
    out = []
    for text in pairs:
        attack, _, seed = str(text).partition(":")
        if attack not in attacks or not seed.isdigit():
            raise SystemExit(f"--pairs {text!r}: expected attack:seed with attack one of {', '.join(attacks)}")
        if (attack, int(seed)) in out:
            raise SystemExit(f"--pairs {text!r} named twice: two jobs would share one work folder")
        out.append((attack, int(seed)))
    return out


def bundle(raw: dict, out: Path, module: str = "defences", triggers: bool = True) -> list[Path]:
    """What a machine without the emoji packages needs to render this file's scenes, in ``out``:
    the vocabulary snapshot (``$PAPERLIB_VOCABULARY``) and each style's sprite bank restricted to
    the classes ``max_classes`` keeps at this file's data seed (``sprites/``, to copy into that
    machine's cache; another data seed or class limit keeps other classes and needs its own).  A bank
    restricted so renders the same scenes (the renderer draws only from the kept classes, each
    class's sprites in the same order) at a fraction of the size, so it fits the 64 MiB that
    travels to a lent GPU.  And the victims' fitted triggers (``cache/trigger/``: :func:`carry_triggers`)."""
    from dataclasses import replace

    from paperlib.data import sprites as sp
    from paperlib.data.splits import _kept_classes
    from paperlib.data.vocabulary import build_vocabulary, save_vocabulary
    # on this machine, whatever device the jobs will use: the triggers carried are this CPU's
    p = _load(module)(_write({**raw, "device": "cpu"}, out / "params.yaml"))
    vocab = build_vocabulary()
    written = [save_vocabulary(vocab, out / "vocabulary.json")]
    keep = _kept_classes(vocab, p.data)
    for style in sorted(set(p.data.train_styles) | {p.data.heldout_style}):
        bank = sp.load_sprite_bank(style, vocab, size=p.data.sprite_size)
        rows = np.ones(len(bank.class_ids), bool) if keep is None else np.isin(bank.class_ids, sorted(keep))
        small = replace(bank, images=bank.images[rows], class_ids=bank.class_ids[rows],
                        sources=tuple(s for s, r in zip(bank.sources, rows) if r))
        path = sp._cache_path(style, p.data.sprite_size, vocab, out / "sprites")
        sp._save(small, path)
        written.append(path)
    return written + (carry_triggers(p, out / "cache") if triggers else [])


def carry_triggers(p, dest: Path) -> list[Path]:
    """This machine's fitted triggers of the file's victims (SSBA's encoder, BadCLIP's patch, ...),
    laid out like a cache in ``dest`` for ``python -m paperlib.cache import``, fitted first where
    missing.  A trigger is fitted on the device that builds it and its key does not name the device,
    so a lent GPU that fitted its own would poison other pairs under the same keys (SSBA's H200
    victims implanted 16-20 points more than the CPU's: results/defences/device_check.csv); with the
    carried ones its victims, screenings and kept sets are the CPU's."""
    from paperlib.cache import ArtifactCache, export_artifacts
    from paperlib.experiments.common import clean_base, victim_attack
    base = clean_base(p)
    paths = [getattr(victim_attack(p, base, v), "trigger_path", None) for v in p.victims]
    keys = sorted({path.name for path in paths if path is not None})
    return export_artifacts(ArtifactCache(), "trigger", keys, dest) if keys else []


def run_jobs(raw: dict, work: Path, jobs: int, deadline_s: float, threads: int = 2,
             pairs: list[tuple[str, int]] | None = None, module: str = "defences",
             results: Path | None = None, file_seeds=None) -> list[dict]:
    """One process per (attack, seed), ``jobs`` at a time, all stopped at ``deadline_s``; ``pairs``
    (attack, seed) in the order to start them, else every victim at every seed.  ``module``: the
    defence matrix (each job its own results folder, merged afterwards) or CFBD (each job its
    ``cfbd_jobs.job_params``, all writing into the shared ``results`` folder, whose upserts lock)."""
    todo = list(pairs) if pairs else [(v["attack"], s) for v in raw["victims"] for s in raw["seeds"]]
    kind = job_kind(module)
    t0, running, done = time.time(), [], []
    env = {**os.environ, **kind.env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PAPERLIB_PROGRESS": "0"}
    if deadline_s <= 0:   # the lending's end came while the triggers were built: start nothing
        return [{"job": f"{a}_seed{s}", "rc": None, "seconds": 0.0} for a, s in todo]
    while todo or running:
        while todo and len(running) < jobs:
            attack, seed = todo.pop(0)
            name = f"{attack}_seed{seed}"
            one = kind.job_params(raw, attack, seed, work, results, file_seeds)
            params = _write(one, work / name / "params.yaml")
            logf = open(work / name / "log.txt", "w")
            proc = subprocess.Popen([sys.executable, "-m", MODULES[module], str(params)],
                                    env=env, stdout=logf, stderr=subprocess.STDOUT)
            running.append({"name": name, "proc": proc, "log": logf, "start": time.time()})
            log.info("started %s", name)
        time.sleep(2)
        for job in list(running):
            rc = job["proc"].poll()
            late = time.time() - t0 > deadline_s
            if rc is None and late:
                job["proc"].terminate()
                rc = job["proc"].wait()
                log.warning("%s stopped at the deadline", job["name"])
            if rc is not None:
                job["log"].close()
                running.remove(job)
                done.append({"job": job["name"], "rc": rc, "seconds": round(time.time() - job["start"], 1)})
                log.info("%s finished rc=%s after %.0f s", job["name"], rc, done[-1]["seconds"])
        if time.time() - t0 > deadline_s and todo:
            done += [{"job": f"{a}_seed{s}", "rc": None, "seconds": 0.0} for a, s in todo]
            todo = []
    return done


def merge(work: Path, seeds, into: Path = Path("results/defences/matrix.csv")) -> int:
    """Upsert the jobs' rows of ``seeds`` into the matrix; returns how many rows came in.

    A row whose model (cache key) the matrix already holds from another device is left as it is:
    the published row stays, and the re-run of the same key belongs beside it in
    :func:`compare_devices`, not over it (the 2026-12-04 lending retrained 23 published CPU keys)."""
    import pandas as pd

    from paperlib.experiments.defences import MATRIX_COLUMNS, MATRIX_KEY
    from paperlib.results import upsert_csv
    frames = [pd.read_csv(f) for f in sorted(Path(work).glob("*/defences/matrix.csv"))]
    if not frames:
        return 0
    rows = pd.concat(frames, ignore_index=True)
    rows = rows[rows.seed.isin(list(seeds))]
    if Path(into).is_file():
        have = pd.read_csv(into)
        key = list(MATRIX_KEY)
        seen = rows.merge(have[key + ["device"]].drop_duplicates(key), on=key, how="left", suffixes=("", "_file"))
        kept = ~(seen.device_file.notna() & (seen.device_file != seen.device)).to_numpy()
        if (~kept).any():
            log.info("%d rows name models the matrix holds from another device: left as published "
                     "(compare them with the compare step)", int((~kept).sum()))
        rows = rows[kept]
    upsert_csv(into, rows.to_dict("records"), MATRIX_KEY, MATRIX_COLUMNS)
    return len(rows)


def compare_devices(other_matrix: Path, seeds, into: Path = Path("results/defences/device_check.csv"),
                    matrix: Path = Path("results/defences/matrix.csv")) -> "pd.DataFrame":
    """The same (attack, defence, seed), trained from the same cache key on two devices: the rows
    of ``other_matrix`` (e.g. a CPU re-run of a GPU seed, in its own cache) beside the matrix's.
    One row per measurement, with the device that trained it; a check that GPU seeds and CPU seeds
    measure the same experiment (they are not bit-equal: kernels sum in another order)."""
    import pandas as pd

    from paperlib.results import upsert_csv
    other = pd.read_csv(other_matrix)
    other = other[other.seed.isin(list(seeds))]
    main = pd.read_csv(matrix)
    key = ["attack", "defence", "scale", "seed", "model"]
    # the other file's own rows, merged into the matrix already, are not a second device
    merged = main.merge(other[key + ["device"]], on=key + ["device"], how="left", indicator=True)["_merge"]
    main = main[(merged == "left_only").to_numpy()]
    same = main.merge(other[key], on=key)
    from paperlib.experiments.defences import DEVICE_CHECK_COLUMNS
    cols = list(DEVICE_CHECK_COLUMNS)
    rows = pd.concat([same[cols], other.merge(same[["attack", "defence", "scale", "seed", "model"]])[cols]])
    return upsert_csv(into, rows.to_dict("records"), ("attack", "defence", "scale", "seed", "model", "device"))


def compare_victims(params_path: Path, victims_csv: Path, matrix: Path, into: Path,
                    against: str = "NVIDIA H200", device: str = "cpu (attack suite)") -> "pd.DataFrame":
    """The attack suite's victims (``victims_csv``, trained on ``device``) beside the matrix's
    victim rows (``none``) of the same cache key trained on ``against``: whether a victim measures the
    same on both devices.  The keys are those of the parameter file's victims at their seeds, matched
    with the suite's ``victim_model`` column; victims of other recipes are left out."""
    import pandas as pd

    from paperlib.experiments.common import clean_base, victim_model_name
    from paperlib.experiments.defences import load
    from paperlib.results import upsert_csv
    p = load(params_path)
    base = clean_base(p)
    suite, main = pd.read_csv(victims_csv), pd.read_csv(matrix)
    main = main[(main.defence == "none") & (main.device == against)]
    from paperlib.experiments.defences import DEVICE_CHECK_COLUMNS
    cols = list(DEVICE_CHECK_COLUMNS)
    rows = []
    for v in p.victims:
        for seed in p.seeds_for(v.attack):
            key = victim_model_name(p, base, v, seed)
            same, there = suite[suite.victim_model.astype(str) == key], main[main.model == key]
            if same.empty or there.empty:
                continue
            r = next(same.itertuples())
            mine = {c: getattr(r, c) for c in cols if hasattr(r, c)}
            rows.append({**mine, "defence": "none", "model": key, "device": device, "wall_s": r.train_seconds})
            rows += there[cols].to_dict("records")
    if not rows:
        return pd.DataFrame(columns=cols)
    return upsert_csv(into, rows, ("attack", "defence", "scale", "seed", "model", "device"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=("data", "run", "merge", "compare", "victims", "bundle"))
    ap.add_argument("params", nargs="?", default="params/defences/embedded.yaml")
    ap.add_argument("--module", default="defences", choices=sorted(MODULES),
                    help="the experiment each job runs: the defence matrix (default) or CFBD's rows")
    ap.add_argument("--results", default=None,
                    help="run --module cfbd: the results folder every job writes into (default WORK/results)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--attacks", nargs="+", default=None, help="victims to run (default: all in the file)")
    ap.add_argument("--pairs", nargs="+", default=None,
                    help="run: attack:seed jobs in the order to start them (instead of every attack at every seed)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--jobs", type=int, default=6, help="processes at a time")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per process")
    ap.add_argument("--workers", type=int, default=16, help="rendering processes (data step)")
    ap.add_argument("--deadline", type=float, default=float("inf"), help="seconds before running jobs stop")
    ap.add_argument("--until", type=float, default=None,
                    help="run: stop running jobs at this Unix time (a lending's end, counted before the "
                         "triggers are built; overrides --deadline)")
    ap.add_argument("--work", default="seeds_work", help="folder of the jobs' parameters, logs and rows")
    ap.add_argument("--publish", action="store_true",
                    help="merge / compare into the committed results/ (default: the scratch results folder)")
    ap.add_argument("--against", default="NVIDIA H200",
                    help="victims: the device column of the matrix rows to set beside the attack suite's")
    ap.add_argument("--other", help="compare: a matrix.csv of the same seeds trained on another device")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from paperlib.assets import configure_environment, repo_root
    from paperlib.results import PUBLISHED, default_results_dir, prepare_results_dir
    configure_environment()
    work = Path(a.work).resolve()   # the jobs run from the repository root
    # merge takes rows the jobs made (each job's own manifest names its code); the rest run code here
    results = prepare_results_dir(PUBLISHED if a.publish else default_results_dir(), check_dirty=a.step != "merge")
    a.into = str(results / "defences" / "matrix.csv")
    if a.step == "compare":
        print(compare_devices(Path(a.other), a.seeds, into=results / "defences" / "device_check.csv",
                              matrix=Path(a.into)).to_string())
        return 0
    if a.step == "victims":
        published = repo_root() / PUBLISHED   # both sides are published rows; the check goes where --publish says
        print(compare_victims(Path(a.params), published / "attacks" / "victims.csv",
                              published / "defences" / "matrix.csv", results / "defences" / "device_check.csv",
                              a.against).to_string())
        return 0
    if a.step == "merge":
        print(f"merged {merge(work, a.seeds, Path(a.into))} rows into {Path(a.into).relative_to(repo_root())}"
              if Path(a.into).is_relative_to(repo_root()) else f"merged into {a.into}")
        return 0
    pairs = None
    if a.pairs:
        pairs = parse_pairs(a.pairs, read_yaml(Path(a.params).read_text()))
        a.seeds = sorted({s for _, s in pairs})
        a.attacks = sorted({t for t, _ in pairs})
    raw = fp32_params(a.params, a.seeds, a.attacks, a.device, a.workers, a.module)
    if a.step == "bundle":
        for path in bundle(raw, work, a.module):
            print(path)
        return 0
    if a.step == "data":   # with --workers rendering processes, whatever the jobs' parameters say
        warm_data({**raw, "data": {**raw.get("data", {}), "workers": a.workers}}, work, a.module)
        return 0
    kind = job_kind(a.module)
    os.environ.update(kind.env)   # the warm-up's too (the jobs get it in run_jobs)
    shared = Path(a.results or work / "results").resolve() if kind.shared_results else None
    kind.warm(_write({**raw, **({"results_dir": str(shared)} if shared else {})}, work / "params.yaml"))
    if a.until is not None:
        a.deadline = a.until - time.time()
        log.info("jobs stop in %.0f s (--until)", a.deadline)
    file_seeds = read_yaml(Path(a.params).read_text()).get("seeds")   # not the command line's
    jobs = run_jobs(raw, work, a.jobs, a.deadline, a.threads, pairs, a.module, shared, file_seeds)
    for r in jobs:
        print(r)
    write_jobs(jobs, work / "jobs.csv")
    return 0


def write_jobs(jobs: list[dict], path: Path) -> Path:
    """One row per job: its name, exit status and wall seconds (``merge`` does not need it; it is
    the record of what the run cost on that machine)."""
    import pandas as pd

    from paperlib.results import write_csv_atomic
    write_csv_atomic(pd.DataFrame(jobs, columns=["job", "rc", "seconds"]), path)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
