"""paperlib's training loop beside open_clip's own trainer (``open_clip_train``), on the same data.

    python -m paperlib.bench --versus        # rows in benchmarks/throughput.csv (scratch; --publish: results/)

Both trainers train the same open_clip model config for the same number of steps with the same
optimiser (AdamW, lr 1e-4, weight decay 0.1 off norms and biases, betas 0.9/0.98, eps 1e-6,
warm-up then cosine, gradient clip 1.0), batch size and torch threads, on two kinds of data:

* ``synthetic``: what each trainer offers for timing without data.  paperlib: its
  :class:`~paperlib.train.pairs.TensorPairs` of random uint8 images and token ids, gathered in the
  training process; open_clip_train: ``--dataset-type synthetic``, one PIL image that ``--workers``
  processes transform (random resized crop, to tensor, normalise) and tokenise per sample.  So this row
  compares the trainers *with* their own synthetic pipelines (the ``pipeline`` column says which);
* ``csv``: a CSV of PNG files exported from rendered ``cc3m_analog`` scenes, what a user would train
  on; paperlib reads it with :class:`~paperlib.data.realdata.CaptionCSV` through
  :class:`~paperlib.train.pairs.LoaderPairs`, open_clip_train with ``--dataset-type csv``, both with
  ``workers`` loader processes.

What paperlib's loop does that open_clip_train does not, and so what a speed-up is made of: the model
and each batch in ``channels_last`` memory format (oneDNN's fast convolution layout on CPUs), and
resizing only once per image (to the model's side, no random crop); it also runs with
``torch.use_deterministic_algorithms``, which can only cost time.

Runs alternate (paperlib, open_clip_train, then open_clip_train, paperlib, ...) so that a slow phase of
the machine or an order effect hits both, and each trainer's rate is the median over repeats of the
steady state: the mean step time after the warm-up steps, data waits included (for open_clip_train
its own per-step log with ``--log-every-n-steps 1``; for paperlib its ``history.jsonl`` with
``log_every: 1``).  Each row carries the FLOPs of one trained pair (forward and backward of the CLIP
loss as torch's flop counter counts them: matrix products and convolutions only) and the machine's
matmul peak in that precision, measured once before the runs, so it shows its fraction of peak.
:func:`step_profile` splits a step of paperlib's loop into data, forward, backward and optimiser.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TRAINERS = ("paperlib", "open_clip_train")
DATA_KINDS = ("synthetic", "csv")
PRECISIONS = ("fp32", "bf16")
# the optimiser both trainers use here (paperlib's defaults of its pre-training sections)
LR, WEIGHT_DECAY, BETAS, EPS, GRAD_CLIP = 1e-4, 0.1, (0.9, 0.98), 1e-6, 1.0
# open_clip_train's step line: "Data (t): 0.012 Batch (t): 1.408, 181.8/s, ..." (seconds rounded to 3
# decimals, the rate to 6 significant digits: the step time is read from the rate)
_STEP_LINE = re.compile(r"Data \(t\): ([0-9.]+) Batch \(t\): [0-9.]+, ([0-9.eE+-]+)/s,")
PIPELINES = {("paperlib", "synthetic"): "uint8 arrays in memory, no workers",
             ("open_clip_train", "synthetic"): "one PIL image, per-sample transforms in workers",
             ("paperlib", "csv"): "PNG decode and resize in workers",
             ("open_clip_train", "csv"): "PNG decode and transforms in workers"}


def matmul_peak_gflops(precision: str = "fp32", n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """The best GFLOP/s of an n x n matmul in ``precision`` on ``device`` with torch's current threads."""
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def flops_per_pair(model_name: str, batch_size: int = 16) -> float:
    """FLOPs of one trained pair: the forward and backward of the CLIP loss, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    from paperlib.models import config_image_size, create_model
    from paperlib.train.losses import ClipLossTerm, TrainingObjective
    model = create_model(model_name, seed=0)
    objective = TrainingObjective(model, [(ClipLossTerm(), 1.0)])
    side = config_image_size(model_name)
    batch = {"images": torch.randint(0, 256, (batch_size, 3, side, side), dtype=torch.uint8),
             "tokens": torch.randint(1, 49000, (batch_size, model.context_length))}
    counter = FlopCounterMode(display=False)
    with counter:
        sum(objective(batch).values()).backward()
    return counter.get_total_flops() / batch_size


def export_csv(folder: str | Path, n: int, seed: int = 12345) -> Path:
    """``n`` rendered cc3m_analog scenes as PNG files and ``pairs.csv`` (columns filepath, title:
    open_clip_train's defaults) in ``folder``; returns the CSV's path.  The scenes are rendered into a
    cache inside ``folder``, not the user's artifact cache."""
    import pandas as pd
    from PIL import Image

    from paperlib.cache import ArtifactCache
    from paperlib.data.splits import DataConfig, get_split
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    split = get_split("cc3m_analog", DataConfig(train_scenes=n, seed=seed, workers=2), ArtifactCache(folder / "cache"))
    rows = []
    for i in range(n):
        rel = f"images/{i:06d}.png"
        Image.fromarray(np.asarray(split.images[i])).save(folder / rel)
        rows.append({"filepath": str((folder / rel).resolve()), "title": split.captions[i][0]})
    csv = folder / "pairs.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def _steady_seconds(step_seconds: list[float], warmup: int) -> float:
    timed = step_seconds[warmup:]
    if not timed:
        raise ValueError(f"no timed steps: {len(step_seconds)} steps logged, warm-up {warmup}")
    return float(sum(timed)) / len(timed)


def _pair_set(model_name: str, context_length: int, data: str, n: int, workers: int, csv: Path | None, what: str):
    """The ``n`` pairs a run trains on: random uint8 images and token ids (``synthetic``), or the first
    ``n`` rows of the exported CSV of PNGs read by loader workers (``csv``)."""
    from paperlib.models import config_image_size, get_tokenizer
    from paperlib.train.pairs import LoaderPairs, TensorPairs
    if data == "synthetic":
        side = config_image_size(model_name)
        rng = np.random.default_rng(0)
        return TensorPairs(rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                           rng.integers(1, 49000, (n, context_length)))
    if csv is None:
        raise ValueError(f"{what}: data 'csv' needs csv= (a CSV that export_csv wrote)")
    from paperlib.data.realdata import CaptionCSV
    dataset = CaptionCSV(csv, config_image_size(model_name), image_key="filepath", caption_key="title")
    if len(dataset) < n:
        raise ValueError(f"{csv}: {len(dataset)} rows, the {what} needs {n}")
    return LoaderPairs(dataset.select(np.arange(n)), get_tokenizer(model_name), workers=workers)


def run_paperlib(model_name: str, data: str, precision: str, batch_size: int, warmup: int, steps: int,
                 workers: int, threads: int, csv: Path | None = None) -> float:
    """Mean seconds per steady-state step of paperlib's training loop (:func:`paperlib.train.loop.train`)."""
    from paperlib.models import create_model
    from paperlib.train.loop import TrainConfig, train
    from paperlib.train.losses import ClipLossTerm
    n = batch_size * (warmup + steps)
    model = create_model(model_name, seed=0)
    pairs = _pair_set(model_name, model.context_length, data, n, workers, csv, "run")
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS, eps=EPS,
                      warmup_steps=warmup, grad_clip=GRAD_CLIP, precision=precision, log_every=1,
                      checkpoint_every=10 ** 9, seed=0, threads=threads)
    with tempfile.TemporaryDirectory() as work:
        train(model, pairs, cfg, [(ClipLossTerm(), 1.0)], work_dir=work, desc=f"paperlib {data} {precision}")
        history = [json.loads(line) for line in (Path(work) / "history.jsonl").read_text().splitlines()]
    # history holds the running rate: step k has taken k * batch / rate seconds in all
    if len(history) != warmup + steps:
        raise RuntimeError(f"paperlib's loop logged {len(history)} steps, expected {warmup + steps}")
    elapsed = [h["step"] * batch_size / h["samples_per_s"] for h in history]
    return _steady_seconds(list(np.diff([0.0] + elapsed)), warmup)


def open_clip_train_args(model_name: str, data: str, precision: str, batch_size: int, warmup: int, steps: int,
                         workers: int, logs: Path, csv: Path | None = None) -> list[str]:
    """open_clip_train's command line for the same run (no evaluation; its end-of-run checkpoint
    is written after the timed steps, into ``logs``)."""
    args = ["--model", model_name, "--batch-size", str(batch_size), "--epochs", "1",
            "--lr", str(LR), "--wd", str(WEIGHT_DECAY), "--beta1", str(BETAS[0]), "--beta2", str(BETAS[1]),
            "--eps", str(EPS), "--warmup", str(warmup), "--grad-clip-norm", str(GRAD_CLIP),
            "--precision", {"fp32": "fp32", "bf16": "amp_bf16"}[precision], "--workers", str(workers),
            "--log-every-n-steps", "1", "--save-frequency", "0", "--zeroshot-frequency", "0",
            "--val-frequency", "0", "--seed", "0", "--logs", str(logs), "--name", "run", "--device", "cpu"]
    if data == "synthetic":
        args += ["--dataset-type", "synthetic", "--train-data", "synthetic",
                 "--train-num-samples", str(batch_size * (warmup + steps))]
    else:
        args += ["--dataset-type", "csv", "--train-data", str(csv), "--csv-separator", ",",
                 "--csv-img-key", "filepath", "--csv-caption-key", "title"]
    return args


def parse_steps(log_text: str, batch_size: int) -> list[tuple[float, float]]:
    """(seconds, data-wait seconds) of each step of an open_clip_train log written with
    ``--log-every-n-steps 1`` (its meters are reset after every line, so each line is one step)."""
    return [(batch_size / float(m.group(2)), float(m.group(1))) for m in _STEP_LINE.finditer(log_text)]


def run_open_clip_train(model_name: str, data: str, precision: str, batch_size: int, warmup: int, steps: int,
                        workers: int, threads: int, csv: Path | None = None) -> float:
    """Mean seconds per steady-state step of open_clip_train, run in a child process (the mean data
    wait of those steps is logged)."""
    with tempfile.TemporaryDirectory() as tmp:
        if data == "csv":   # open_clip_train reads every row of the CSV: give it exactly the run's rows
            import pandas as pd
            rows = pd.read_csv(csv).iloc[:batch_size * (warmup + steps)]
            csv = Path(tmp) / "pairs.csv"
            rows.to_csv(csv, index=False)
        args = open_clip_train_args(model_name, data, precision, batch_size, warmup, steps, workers,
                                    Path(tmp) / "logs", csv)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        proc = subprocess.run([sys.executable, "-m", "paperlib.bench_versus", "--open-clip-train", *args],
                              capture_output=True, text=True, env=env)
        text = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f"open_clip_train failed (exit {proc.returncode}):\n{text[-3000:]}")
        logged = parse_steps(text, batch_size)
        if len(logged) != warmup + steps:
            raise RuntimeError(f"open_clip_train logged {len(logged)} steps, expected {warmup + steps}:\n{text[-3000:]}")
        return _steady_seconds([t for t, _ in logged], warmup)


def step_profile(model_name: str = "tiny-rn64", data: str = "synthetic", precision: str = "fp32",
                 batch_size: int = 256, steps: int = 4, threads: int = 2, workers: int = 2,
                 csv: Path | None = None) -> list[dict]:
    """Seconds per step of paperlib's step in its phases: data (batch from the pair set to tensors),
    forward (towers and loss), backward, optimiser (gradient clip, AdamW); one row per phase.  The
    step is that of :func:`paperlib.train.loop.train` taken apart (its schedule and logit-scale clamp,
    each a few scalar operations, are left out)."""
    from paperlib.models import create_model
    from paperlib.train.losses import ClipLossTerm, TrainingObjective
    from paperlib.train.optim import make_optimizer
    torch.set_num_threads(threads)
    model = create_model(model_name, seed=0).to(memory_format=torch.channels_last)
    objective = TrainingObjective(model, [(ClipLossTerm(), 1.0)])
    opt = make_optimizer(model, LR, WEIGHT_DECAY, BETAS, EPS)
    pairs = _pair_set(model_name, model.context_length, data, batch_size * (steps + 1), workers, csv, "profile")
    torch.use_deterministic_algorithms(True, warn_only=True)   # as the loop on the CPU
    phases = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    amp = precision == "bf16"
    batches = iter(pairs.epoch_batches(0, batch_size, 0))
    model.train()
    for i in range(steps + 1):   # the first step warms up and is not counted
        t0 = time.perf_counter()
        batch = next(batches)
        batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
        t1 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = sum(objective(batch).values())
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        t4 = time.perf_counter()
        if i:
            for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name] += dt
    total = sum(phases.values())
    return [{"benchmark": "step_profile", "trainer": "paperlib", "data": data, "model": model_name,
             "batch_size": batch_size, "precision": precision, "threads": threads, "phase": name,
             "seconds_per_step": seconds / steps, "share": seconds / total} for name, seconds in phases.items()]


def compare(model_name: str = "tiny-rn64", batch_size: int = 256, warmup: int = 3, steps: int = 8,
            repeats: int = 3, threads: int = 2, workers: int = 2, data_kinds=DATA_KINDS,
            precisions=PRECISIONS, folder: str | Path | None = None, log=print) -> list[dict]:
    """Alternating runs of both trainers: one row per (trainer, data, precision), the median rate of
    ``repeats`` runs, with FLOPs per pair, the matmul peak and the fraction of it reached.  The CSV
    data is exported into ``folder`` (a temporary folder when None) as ``versus_csv/pairs.csv``."""
    torch.set_num_threads(threads)
    peak = {p: matmul_peak_gflops(p) for p in precisions}
    flops = flops_per_pair(model_name)
    log(f"[versus] {model_name}: {flops / 1e9:.3f} GFLOP per trained pair; matmul peak "
        + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peak.items()) + f" on {threads} threads")
    csv = None
    with tempfile.TemporaryDirectory() as tmp:
        if "csv" in data_kinds:
            csv = export_csv(Path(folder or tmp) / "versus_csv", batch_size * (warmup + steps))
        runners = {"paperlib": run_paperlib, "open_clip_train": run_open_clip_train}
        seconds: dict[tuple, list[float]] = {}
        t_start = time.time()
        # A B, then B A: an order effect (a warm cache, a slow phase) falls on both trainers alike
        plan = [(d, p, t) for d in data_kinds for p in precisions for r in range(repeats)
                for t in (TRAINERS if r % 2 == 0 else TRAINERS[::-1])]
        for k, (d, p, t) in enumerate(plan):
            s = runners[t](model_name, d, p, batch_size, warmup, steps, workers, threads, csv)
            seconds.setdefault((t, d, p), []).append(s)
            left = (time.time() - t_start) / (k + 1) * (len(plan) - k - 1)
            log(f"[versus] {k + 1}/{len(plan)} {t:15s} {d:9s} {p}: {batch_size / s:7.1f} samples/s "
                f"(elapsed {time.time() - t_start:.0f} s, about {left:.0f} s left)")
    rows = []
    for (t, d, p), runs in seconds.items():
        rate = batch_size / statistics.median(runs)
        rows.append({"benchmark": "train_versus", "trainer": t, "data": d, "pipeline": PIPELINES[(t, d)],
                     "model": model_name, "batch_size": batch_size, "precision": p, "device": "cpu",
                     "threads": threads, "workers": workers, "repeats": len(runs),
                     "samples_per_second": round(rate, 1),
                     "samples_per_second_runs": " ".join(f"{batch_size / s:.1f}" for s in runs),
                     "flops_per_pair": round(flops), "achieved_gflops": round(rate * flops / 1e9, 1),
                     "peak_gflops": round(peak[p], 1), "fraction_of_peak": round(rate * flops / 1e9 / peak[p], 3)})
    for r in rows:
        if r["trainer"] == "paperlib":
            other = next(o for o in rows if o["trainer"] == "open_clip_train"
                         and (o["data"], o["precision"]) == (r["data"], r["precision"]))
            r["speedup_vs_open_clip_train"] = round(r["samples_per_second"] / other["samples_per_second"], 2)
    return rows


def _open_clip_train_child(argv: list[str]) -> int:
    """Runs open_clip_train's main with the project's model configs registered (child process)."""
    import paperlib.models  # noqa: F401  (registers tiny-rn64 and small-rn64 with open_clip)
    from open_clip_train.main import main as open_clip_main
    status = open_clip_main(argv)   # -1: it refused to start (e.g. its log folder already exists)
    return 1 if status == -1 else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--open-clip-train":
        raise SystemExit(_open_clip_train_child(sys.argv[2:]))
    raise SystemExit("use python -m paperlib.bench --versus")
