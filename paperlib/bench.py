"""Benchmarks: throughput of training and rendering, measured, never asserted in tests.

    python -m paperlib.bench            # benchmarks/throughput.csv in scratch/results (--publish: results/)
    python -m paperlib.bench --cache-costs   # where a cache's build time went: benchmarks/cache_costs.csv
    python -m paperlib.bench --guide         # the cost table of docs/student-guide.md, from those files
    python -m paperlib.bench --versus        # paperlib's loop beside open_clip_train (paperlib/bench_versus.py)
    python -m paperlib.bench --reproduce-estimate   # what make reproduce would cost here: reproduce_estimate.csv

Training throughput is measured on synthetic batches with the real model, loss, optimiser and
autocast setting, so it tells what the 2-core machine (or a GPU) sustains when nothing else runs;
wall times recorded by long runs can be longer when other work shares the cores.  Rows are kept
per CPU model: bf16 is fast only on CPUs with native bf16 (``cpu_native_bf16``); ``precision:
auto`` trains in fp32 on every CPU all the same, so results do not depend on the CPU model.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from paperlib.costs import ARTIFACT_COSTS_NAME


def train_throughput(model_name: str = "tiny-rn64", batch_size: int = 256, steps: int = 8,
                     warmup: int = 2, precision: str = "bf16", device: str = "cpu") -> dict:
    from paperlib.models import config_image_size, create_model
    from paperlib.train.losses import ClipLossTerm, TrainingObjective
    from paperlib.train.optim import make_optimizer
    from paperlib.train.loop import ieee_fp32_on_cuda
    dev = torch.device(device)
    if dev.type == "cuda":
        ieee_fp32_on_cuda()   # as the training loop: fp32 rows are IEEE fp32, not TF32
    model = create_model(model_name, seed=0).to(dev)
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    objective = TrainingObjective(model, [(ClipLossTerm(), 1.0)])
    opt = make_optimizer(model, 1e-4, 0.1)
    side = config_image_size(model_name)
    ctx = model.context_length if hasattr(model, "context_length") else 77
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, side, side), dtype=torch.uint8, generator=g).to(dev)
    tokens = torch.randint(1, 49000, (batch_size, ctx), generator=g).to(dev)
    batch = {"images": images, "tokens": tokens}
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.time()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = sum(objective(batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - t0
    return {"benchmark": "train", "model": model_name, "batch_size": batch_size, "precision": precision,
            "device": str(dev), "threads": torch.get_num_threads(),
            "samples_per_second": steps * batch_size / seconds}


def render_throughput(n: int = 2000, workers: int = 2) -> dict:
    """Scenes per second of the cc3m_analog renderer (a throw-away cache)."""
    import tempfile

    from paperlib.cache import ArtifactCache
    from paperlib.data.splits import DataConfig, get_split
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        split = get_split("cc3m_analog", DataConfig(train_scenes=n, workers=workers, seed=12345),
                          ArtifactCache(tmp))
        total = time.time() - t0
        return {"benchmark": "render", "model": "", "batch_size": n, "precision": "", "device": "cpu",
                "threads": workers, "samples_per_second": split.meta["scenes_per_second"],
                "wall_seconds_with_setup": total}


def _summary(meta: Path) -> dict:
    """The summary.json beside a cached artifact's params.json ({} when it has none)."""
    import json
    summary = meta.with_name("summary.json")
    return json.loads(summary.read_text()) if summary.is_file() else {}


def cache_costs(cache_root) -> list[dict]:
    """Where the build time of an artifact cache went: one row per artifact kind and role.

    Reads what every cached artifact recorded when it was built (``build_seconds``; for models
    also the samples trained on and the precision), so the numbers are measured on whatever
    machine built the cache, including any slow-down from work that shared its cores.
    """
    import json
    from collections import defaultdict
    from pathlib import Path
    groups = defaultdict(list)
    for meta in sorted(Path(cache_root).glob("*/*/params.json")):
        info = json.loads(meta.read_text())
        params = info.get("params", {})
        role = params.get("role", "") if isinstance(params, dict) else ""
        train = params.get("train") if isinstance(params, dict) else None
        precision = train.get("precision", "") if isinstance(train, dict) else ""
        told = _summary(meta)
        if told.get("copied_from"):   # copied from a twin that kept its epochs: no training time of its own
            continue
        samples = told.get("samples", 0)
        groups[(info.get("kind", meta.parent.parent.name), role, precision)].append(
            (float(info.get("build_seconds") or 0.0), int(samples or 0), bool(info.get("resumed"))))
    rows = []
    for (kind, role, precision), items in sorted(groups.items()):
        secs = np.array([s for s, _, _ in items])
        rows.append({"kind": kind, "role": role, "precision": precision, "artifacts": len(items),
                     "total_seconds": round(float(secs.sum()), 1), "median_seconds": round(float(np.median(secs)), 1),
                     "samples": int(sum(n for _, n, _ in items)),
                     # a resumed build recorded only its last leg's time
                     "resumed": int(sum(r for _, _, r in items))})
    return rows


def artifact_costs(cache_root) -> list[dict]:
    """What each cached artifact took to build, one row per artifact (kind, role, key, precision,
    build_seconds, resumed): the cost estimate prices an artifact it knows by key by its own time,
    where the kind's median would mislead (a split of 130,000 scenes costs twenty times the median
    split)."""
    import json
    rows = []
    for meta in sorted(Path(cache_root).glob("*/*/params.json")):
        info = json.loads(meta.read_text())
        params = info.get("params", {})
        role = params.get("role", "") if isinstance(params, dict) else ""
        train = params.get("train") if isinstance(params, dict) else None
        if not float(info.get("build_seconds") or 0.0) > 0:   # no time recorded: its kind's median prices it
            continue
        if _summary(meta).get("copied_from"):   # a copy: priced as its kind
            continue
        rows.append({"kind": info.get("kind", meta.parent.parent.name), "role": role,
                     "key": info.get("key", meta.parent.name),
                     "precision": train.get("precision", "") if isinstance(train, dict) else "",
                     "build_seconds": round(float(info.get("build_seconds") or 0.0), 1),
                     "resumed": int(bool(info.get("resumed")))})
    return rows


# Which parameters make an artifact kind be built again (the student guide's first column).
RETRAINED_BY = {
    ("split", ""): "data.* (scenes, styles, classes)",
    ("tokens", ""): "data.*, model",
    ("model", "clean_pretrain"): "data.*, model, pretrain.* (the clean base; everything else stands on it)",
    ("model", "poison_finetune"): "victims.<attack>.* (attack_params, poison, finetune*), seeds",
    ("trigger", ""): "victims.<attack>.attack_params of fitted triggers (SSBA, TrojanNN, BadCLIP, LC, ...)",
    ("model", "defence"): "defence.train.*, defence.clean_scenes, defence.settings.<defence>.*, seeds",
    ("model", "poison_pretrain"): "pretrain_victims.*, pretrain_seeds",
    ("model", "pretrain_defence"): "pretrain_defences, defence.settings.roclip.*",
    ("model", "retrain"): "cfbd.*, mapping.* (CFBD retrains on the pairs it keeps)",
    ("model", "abl_isolation"): "abl.*",
    ("mapping", "cfbd_mapping"): "mapping.*",
    ("segmenter", "segmenter"): "segmenter.* (EftCLIP's FastSAM analogue)",
    ("eval", ""): "eval.*, or any model above",
    ("eval", "eftclip_detection"): "detection.*, eftclip.*",
    ("classifier", ""): "eval.templates, or any model above",
}


def costs_markdown(root=None) -> str:
    """The student guide's cost table, read from the results files: the median build time of one
    artifact of each kind on each CPU kind seen (``results/benchmarks/cache_costs.csv``) and one
    defence fine-tuning per device (``results/defences/matrix.csv``'s wall times)."""
    import pandas as pd

    from paperlib.assets import repo_root
    from paperlib.results import is_gpu_label
    root = Path(root) if root is not None else repo_root()
    costs = pd.read_csv(root / "results" / "benchmarks" / "cache_costs.csv", keep_default_na=False)
    # cpu_native_bf16 tells the CPU kinds apart (the two seen: an AVX2 EPYC without bf16, an
    # AVX-512 EPYC with it)
    kinds = {"False": "CPU without native bf16 (AVX2 EPYC), 2 cores",
             "True": "CPU with native bf16 (AVX-512 EPYC), 2 cores"}

    def cell(rows):
        if rows.empty:
            return "not measured"
        n = int(rows.artifacts.sum())
        return f"{float(np.median(rows.median_seconds)) / 60:.1f} min (n={n})"
    lines = ["| artifact | rebuilt when you change | " + " | ".join(kinds.values()) + " |",
             "|---|---|" + "---|" * len(kinds)]
    for (kind, role), what in RETRAINED_BY.items():
        sel = costs[(costs.kind == kind) & (costs.role == role)]
        lines.append(f"| {kind}{' / ' + role if role else ''} | {what} | "
                     + " | ".join(cell(sel[sel.cpu_native_bf16.astype(str) == k]) for k in kinds) + " |")
    matrix = pd.read_csv(root / "results" / "defences" / "matrix.csv")
    tuned = matrix[matrix.defence.isin(["ft", "cleanclip", "cleanerclip", "abd", "roclip"])
                   & (matrix.scale == "embedded")]
    # "cpu" names the models trained before a row recorded the CPU's name: 2 cores either way
    tuned = tuned.assign(device=tuned.device.fillna("cpu").map(
        lambda d: d if is_gpu_label(d) else "CPU, 2 cores"))
    lines += ["", "| one defence fine-tuning at the embedded scale | device | median wall time | models |",
              "|---|---|---|---|"]
    for (defence, device), g in tuned.groupby(["defence", "device"]):
        lines.append(f"| {defence} | {device} | {g.wall_s.median() / 60:.1f} min | {len(g)} |")
    return "\n".join(lines) + "\n"


GUIDE_BEGIN, GUIDE_END = "<!-- costs: python -m paperlib.bench --guide -->", "<!-- end of costs -->"


def write_guide_costs(guide) -> bool:
    """Put :func:`costs_markdown` between the guide's markers; True when the file changed."""
    return _write_between(guide, GUIDE_BEGIN, GUIDE_END, costs_markdown())


def versus_markdown(root=None) -> str:
    """docs/performance.md's tables, read from the results files: paperlib's loop beside
    open_clip_train (``throughput.csv``, ``train_versus`` rows) and one step of the loop taken
    apart (``step_profile.csv``), per CPU model and batch size."""
    import pandas as pd

    from paperlib.assets import repo_root
    root = Path(root) if root is not None else repo_root()
    folder = root / "results" / "benchmarks"
    rows = pd.read_csv(folder / "throughput.csv")
    rows = rows[rows.benchmark == "train_versus"] if "trainer" in rows else rows.iloc[:0]
    if rows.empty:
        return "Not measured yet: `python -m paperlib.bench --versus --publish`.\n"
    def cpu_label(cpu, native) -> str:   # the two CPU kinds seen share a model name; native bf16 tells them apart
        return f"{cpu}, {'native' if str(native) == 'True' else 'no native'} bf16"
    lines = ["| CPU (threads) | batch | data | precision | paperlib pairs/s | open_clip_train pairs/s | "
             "speed-up | paperlib % of peak | open_clip_train % of peak | matmul peak GFLOP/s | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (cpu, native, threads, batch, data, prec), g in rows.groupby(
            ["cpu", "cpu_native_bf16", "threads", "batch_size", "data", "precision"], sort=False):
        ours = g[g.trainer == "paperlib"].iloc[0]
        theirs = g[g.trainer == "open_clip_train"].iloc[0]
        lines.append(f"| {cpu_label(cpu, native)} ({threads:g}) | {batch:g} | {data} | {prec} | {ours.samples_per_second:.1f} | "
                     f"{theirs.samples_per_second:.1f} | {ours.samples_per_second / theirs.samples_per_second:.2f}x | "
                     f"{100 * ours.fraction_of_peak:.0f} % | {100 * theirs.fraction_of_peak:.0f} % | "
                     f"{ours.peak_gflops:.0f} | {ours.repeats:g} each |")
    flops = rows.flops_per_pair.iloc[0]
    lines += ["", f"One trained pair of tiny-rn64 costs {flops / 1e9:.2f} GFLOP (forward and backward, torch's "
              "flop counter). Where a step of paperlib's loop goes (seconds per step, share):", "",
              "| CPU (threads) | batch | data | precision | data | forward | backward | optimizer |",
              "|---|---|---|---|---|---|---|---|"]
    prof_path = folder / "step_profile.csv"
    if prof_path.is_file():
        prof = pd.read_csv(prof_path)
        for (cpu, native, threads, batch, data, prec), g in prof.groupby(
                ["cpu", "cpu_native_bf16", "threads", "batch_size", "data", "precision"], sort=False):
            cells = {r.phase: f"{r.seconds_per_step:.3f} s ({100 * r.share:.0f} %)" for r in g.itertuples()}
            lines.append(f"| {cpu_label(cpu, native)} ({threads:g}) | {batch:g} | {data} | {prec} | "
                         + " | ".join(cells.get(ph, "-") for ph in ("data", "forward", "backward", "optimizer")) + " |")
    return "\n".join(lines) + "\n"


PERF_BEGIN, PERF_END = "<!-- versus: python -m paperlib.bench --guide -->", "<!-- end of versus -->"


def _write_between(path, begin: str, end: str, body: str) -> bool:
    """Put ``body`` between the markers of the file at ``path``; True when the file changed."""
    path = Path(path)
    text = path.read_text()
    head, found, rest = text.partition(begin)
    if not found:
        raise ValueError(f"{path}: no marker {begin!r}")
    _, _, tail = rest.partition(end)
    new = f"{head}{begin}\n{body}{end}{tail}"
    if new != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new)
        tmp.replace(path)
    return new != text


def cpu_model() -> str:
    """The CPU's model name (Linux cpuinfo) with its widest vector extension, e.g. ``AMD EPYC
    (AVX-512)``: two CPU kinds of one model name served this project, and the same cache key trains
    different weights on each, so a row says which; else the platform's processor string."""
    import platform
    try:
        with open("/proc/cpuinfo") as fh:
            text = fh.read()
    except OSError:
        return platform.processor() or "unknown"
    name, flags = None, set()
    for line in text.splitlines():
        if line.startswith("model name") and name is None:
            name = line.split(":", 1)[1].strip()
        elif line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
    name = name or platform.processor() or "unknown"
    isa = cpu_vector_isa(flags)
    return f"{name} ({isa})" if isa else name


def cpu_vector_isa(flags: set[str]) -> str | None:
    """The widest x86 vector extension among cpuinfo ``flags`` (None when none is listed)."""
    for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return label
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="throughput rows (default: benchmarks/throughput.csv in the "
                                                "scratch results folder, or the committed one with --publish)")
    ap.add_argument("--publish", action="store_true", help="write into the committed results/benchmarks/")
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda where torch sees a GPU; --versus: cpu)")
    ap.add_argument("--steps", type=int, default=8, help="timed training steps per precision")
    ap.add_argument("--render-workers", type=int, default=2, help="processes rendering scenes (0: no render benchmark)")
    ap.add_argument("--cache-costs", action="store_true",
                    help="summarise the artifact cache's build times instead of measuring throughput")
    ap.add_argument("--costs-out", default=None, help="cache costs (default: benchmarks/cache_costs.csv in the "
                                                      "scratch results folder, or the committed one with --publish)")
    ap.add_argument("--guide", action="store_true",
                    help="rewrite the tables of docs/student-guide.md (costs) and docs/performance.md "
                         "(--versus) from the results files")
    ap.add_argument("--versus", action="store_true",
                    help="time paperlib's loop and open_clip_train side by side (synthetic data and a CSV of "
                         "PNGs, fp32 and bf16, interleaved), with FLOPs per pair and the matmul peak; "
                         "and profile one paperlib step (benchmarks/step_profile.csv)")
    ap.add_argument("--repeats", type=int, default=3, help="--versus: runs per trainer and setting (median)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="--versus: torch threads")
    ap.add_argument("--batch-size", type=int, default=256, help="--versus: batch size")
    ap.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=None,
                    help="--versus: precisions to time (default: fp32, and bf16 where the CPU has native bf16)")
    ap.add_argument("--reproduce-estimate", action="store_true",
                    help="what `make reproduce` (every notebook from an empty cache and no rows) would cost "
                         "on this CPU kind, per notebook, from the published manifests and the recorded "
                         "build costs (benchmarks/reproduce_estimate.csv)")
    args = ap.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not args.versus else "cpu"
    from paperlib.results import (PUBLISHED, default_results_dir, environment, is_published, prepare_results_dir,
                                  refuse_dirty_publishing, upsert_csv)
    for named in (args.out, args.costs_out):   # a file named inside results/ is a publish too
        if named is not None and is_published(Path(named).absolute()):   # as upsert_csv will read it
            if not args.publish:
                raise SystemExit(f"--out / --costs-out {named}: that is inside the committed results/; only "
                                 "--publish writes there (leave both out for the scratch folder)")
            try:
                refuse_dirty_publishing(named, what="--out / --costs-out")
            except ValueError as err:
                raise SystemExit(str(err)) from None
    if args.out is None or args.costs_out is None:
        folder = prepare_results_dir(PUBLISHED if args.publish else default_results_dir()) / "benchmarks"
        args.out = args.out or str(folder / "throughput.csv")
        args.costs_out = args.costs_out or str(folder / "cache_costs.csv")
    if args.guide:
        from paperlib.assets import repo_root
        changed = write_guide_costs(repo_root() / "docs" / "student-guide.md")
        print("docs/student-guide.md: cost table " + ("rewritten" if changed else "already current"))
        changed = _write_between(repo_root() / "docs" / "performance.md", PERF_BEGIN, PERF_END, versus_markdown())
        print("docs/performance.md: side-by-side tables " + ("rewritten" if changed else "already current"))
        return 0
    if args.cache_costs:
        from paperlib.cache import ArtifactCache
        env = environment()
        root = ArtifactCache().root
        rows = cache_costs(root)
        if not rows:
            print(f"the artifact cache {root} is empty: nothing to summarise")
            return 0
        for r in rows:
            r.update(cpu=cpu_model(), cpu_native_bf16=env["cpu_native_bf16"], measured=env["time"])
            print(r)
        # one row per (kind, role, precision) and machine: another machine's cache adds its rows
        upsert_csv(args.costs_out, rows, ("kind", "role", "precision", "cpu", "cpu_native_bf16"))
        each = artifact_costs(root)
        for r in each:
            r.update(cpu=cpu_model(), cpu_native_bf16=env["cpu_native_bf16"], measured=env["time"])
        each_out = Path(args.costs_out).with_name(ARTIFACT_COSTS_NAME)
        upsert_csv(each_out, each, ("kind", "key", "cpu", "cpu_native_bf16"))   # this machine's, added
        print(f"{len(each)} artifacts' own build times: {each_out}")
        return 0
    if args.versus:
        return _versus(args)
    if args.reproduce_estimate:
        rows = reproduce_estimate_rows()
        env = environment()
        for r in rows:
            r.update(cpu=cpu_model(), cpu_native_bf16=env["cpu_native_bf16"], commit=env["commit"],
                     measured=env["time"])
            print(r)
        upsert_csv(Path(args.out).with_name("reproduce_estimate.csv"), rows, REPRODUCE_KEY)
        return 0
    rows = [train_throughput(device=args.device, steps=args.steps),
            train_throughput(precision="fp32", device=args.device, steps=args.steps)]
    if args.device != "cpu":
        # the gpu scale's model and resolution (params/*/gpu.yaml): RN50 at 224 px
        rows += [train_throughput("RN50", batch_size=256, precision=prec, device=args.device, steps=args.steps)
                 for prec in ("bf16", "fp32")]
    if args.render_workers > 0:
        rows.append(render_throughput(workers=args.render_workers))
    env = environment()
    for r in rows:
        if r["device"] != "cpu":
            r["device"] = env["device"]   # the GPU's name, not just "cuda"
        r.update(trainer="paperlib", data="", commit=env["commit"], machine=env["machine"], cpu=cpu_model(),
                 cpu_native_bf16=env["cpu_native_bf16"], torch=env["packages"]["torch"], measured=env["time"])
        print(r)
    upsert_csv(args.out, rows, THROUGHPUT_KEY, key_defaults=THROUGHPUT_KEY_DEFAULTS)
    return 0


# a throughput row is one benchmark of one trainer on one kind of data (``data`` is empty for the
# synthetic-batch micro-benchmark ``train`` and for ``render``; rows from before the column: paperlib)
THROUGHPUT_KEY = ("benchmark", "trainer", "data", "model", "precision", "device", "threads", "cpu")
THROUGHPUT_KEY_DEFAULTS = {"trainer": "paperlib", "data": ""}


REPRODUCE_KEY = ("notebook", "scale", "cpu", "cpu_native_bf16")


def reproduce_estimate_rows(scale: str = "embedded") -> list[dict]:
    """Per notebook, then ``all``: what re-running it from an empty cache with no results rows to
    stand in (``make reproduce``) would cost on this CPU kind, by :func:`paperlib.costs.left` (the
    published manifests' sections and artifacts at the build costs recorded in
    ``results/benchmarks/``).  An artifact two notebooks share is counted once, at the first.
    ``untimed``: CFBD screenings the published run took from rows, whose models are counted but
    whose embedding and judging are not, so the minutes lean low there; so they do where a
    published run took a model's rows (its evaluations are not listed, only the model:
    :func:`paperlib.cache.note_model_stood_in`).  ``all``'s ``notebooks``: how many notebooks the
    sum covers (one without a published run has no row).  On a GPU no CPU costs apply."""
    import tempfile

    from paperlib import costs
    from paperlib.run_all import notebooks
    rows, seen, total, listed = [], set(), costs.Estimate(), []
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as no_rows:
        for name in notebooks():
            est = costs.left(name, scale, cache_root=Path(cache), rows_dir=no_rows, seen=seen)
            if est is None:   # no published run: the sum below says it lacks this notebook
                continue
            total, listed = total + est, listed + [est.known]
            rows.append(_estimate_row(name, scale, est))
    total.known = bool(listed) and all(listed)   # "all" lists its artifacts only where every notebook does
    return rows + [{**_estimate_row("all", scale, total), "notebooks": len(rows)}]


def _estimate_row(name: str, scale: str, est) -> dict:
    return {"notebook": name, "scale": scale, "hours": round(est.seconds / 3600, 2), "to_build": est.to_build,
            "uncosted": est.uncosted, "untimed_screenings": est.untimed, "artifacts_listed": bool(est.known)}


def _versus(args) -> int:
    """``--versus``: the side-by-side rows into throughput.csv, then the step profile beside it."""
    import tempfile

    from paperlib.bench_versus import compare, step_profile
    from paperlib.results import environment, upsert_csv
    from paperlib.train.loop import cpu_has_native_bf16
    if args.device != "cpu":
        raise SystemExit("--versus times the CPU (open_clip_train runs with --device cpu); leave out --device")
    precisions = tuple(args.precisions or (("fp32", "bf16") if cpu_has_native_bf16() else ("fp32",)))
    env = environment()
    stamp = dict(commit=env["commit"], machine=env["machine"], cpu=cpu_model(),
                 cpu_native_bf16=env["cpu_native_bf16"], torch=env["packages"]["torch"], measured=env["time"])
    profile_out = Path(args.out).with_name("step_profile.csv")
    with tempfile.TemporaryDirectory() as tmp:
        rows = compare(batch_size=args.batch_size, repeats=args.repeats, threads=args.threads,
                       workers=args.threads, precisions=precisions, folder=tmp)
        for r in rows:
            r.update(stamp)
            print({k: r[k] for k in ("trainer", "data", "precision", "samples_per_second", "fraction_of_peak")})
        upsert_csv(args.out, rows, THROUGHPUT_KEY + ("batch_size", "workers"), key_defaults=THROUGHPUT_KEY_DEFAULTS)
        print(f"[versus] rows in {args.out}; profiling one step of paperlib's loop", flush=True)
        csv = Path(tmp) / "versus_csv" / "pairs.csv"   # the PNGs compare exported
        profile = [r for prec in precisions for data in ("synthetic", "csv")
                   for r in step_profile(precision=prec, data=data, batch_size=args.batch_size,
                                         threads=args.threads, workers=args.threads, csv=csv)]
    for r in profile:
        r.update(stamp)
        print({k: r[k] for k in ("data", "precision", "phase", "seconds_per_step", "share")})
    upsert_csv(profile_out, profile, ("trainer", "data", "model", "batch_size", "precision", "threads", "phase", "cpu"))
    print(f"[versus] step profile in {profile_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

_ = np
