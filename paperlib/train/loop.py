"""The one training loop: contrastive pre-training, poisoning and every fine-tuning defence.

What varies between uses is data and loss, never the loop:

* ``pairs``: a pair set (:mod:`paperlib.train.pairs`) that yields uint8 image / token batches;
* ``terms``: weighted loss terms (:mod:`paperlib.train.losses`);
* ``transforms``: batch transforms applied before the forward pass (augmentations, sub-caption
  construction, nearest-neighbour captions...), each ``fn(batch, step, generator) -> batch``;
* ``callbacks``: ``fn(event, state)`` after each epoch (e.g. ASR per epoch for CleanerCLIP Fig 3).

The loop runs on the CPU (deterministic for a seed: every random draw comes from generators
seeded by (seed, epoch, step)) and on CUDA (bf16 autocast, batches built on the device), and
under ``torchrun`` with DDP.  It writes a checkpoint (model + optimiser + scheduler + position +
the loss terms' own state, such as RoCLIP's memory bank) every ``checkpoint_every`` steps as
safetensors, and resumes from it when called again with the same ``work_dir``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from safetensors.torch import save_file
from torch import nn

from paperlib.config import param
from paperlib.train.losses import LOGIT_SCALE_MAX, TrainingObjective
from paperlib.train.optim import make_optimizer, make_scheduler

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")
CUDA_AUTO_PRECISION_ENV = "PAPERLIB_CUDA_AUTO_PRECISION"   # what auto means on CUDA (resolve_precision)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16, Linux cpuinfo flags).

    Without it, bf16 autocast on the CPU is emulated: on a 2-core AVX2-only AMD EPYC tiny-rn64
    trains at 6.6 samples/s in bf16 against 124.7 in fp32; on the earlier CPU with native bf16,
    237 vs 172 (``python -m paperlib.bench``, results/benchmarks/throughput.csv)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def ieee_fp32_on_cuda() -> None:
    """Make fp32 on a GPU mean IEEE fp32: PyTorch lets cuDNN convolutions use TF32 by default,
    which would make a ``precision: fp32`` run on a GPU less precise than the same run on a CPU.
    bf16 autocast is unaffected."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def resolve_precision(precision: str, device_type: str | None = None) -> str:
    """``auto`` -> ``bf16`` on CUDA, ``fp32`` on the CPU; others unchanged.

    On the CPU ``auto`` is fp32 whatever the CPU: a run's numbers (and its cache keys) must not
    depend on whether the machine it landed on computes bf16 in hardware (bf16 there is faster,
    emulated and ~19x slower elsewhere, see :func:`cpu_has_native_bf16`); ``precision: bf16`` asks
    for it explicitly.  ``device_type`` defaults to the device ``device: auto`` picks (CUDA when
    torch sees one), which is what the cache key uses, so an artifact's key names the precision it
    was trained in.

    ``$PAPERLIB_CUDA_AUTO_PRECISION=fp32`` makes ``auto`` resolve to fp32 on CUDA too: a GPU lending
    that must make the CPU's cache keys under a parameter file that says ``auto`` (its rows' settings
    digests name the file's words, the keys the resolved precision) sets it
    (:mod:`paperlib.experiments.eftclip_jobs`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type != "cuda":
        return "fp32"
    on_cuda = os.environ.get(CUDA_AUTO_PRECISION_ENV, "bf16")
    if on_cuda not in ("bf16", "fp32"):
        raise ValueError(f"${CUDA_AUTO_PRECISION_ENV}={on_cuda!r}; valid: bf16 (the default), fp32")
    return on_cuda


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (a ``pretrain:`` / ``finetune:`` section of a parameter file)."""

    epochs: float = param(1.0, range=(0.0, None), doc="passes over the pair set (fractions allowed)")
    batch_size: int = param(256, range=(2, None), doc="global batch size")
    lr: float = param(1e-3, range=(0.0, 10.0), doc="peak learning rate")
    weight_decay: float = param(0.1, range=(0.0, 10.0), doc="AdamW decay (not on norms, biases, logit scale)")
    betas: tuple[float, float] = param((0.9, 0.98), range=(0.0, 1.0), doc="AdamW betas")
    eps: float = param(1e-6, range=(0.0, 1.0), doc="AdamW epsilon")
    warmup_steps: int = param(100, range=(0, None), doc="linear warm-up steps before the cosine decay")
    grad_clip: float = param(1.0, range=(0.0, None), doc="gradient-norm clip (0 = off)")
    precision: str = param("auto", choices=PRECISIONS,
                           doc="autocast dtype; auto = bf16 on CUDA, fp32 on any CPU")
    checkpoint_every: int = param(200, range=(1, None), doc="steps between resumable checkpoints")
    log_every: int = param(50, range=(1, None), doc="steps between log lines")
    seed: int = param(0, range=(0, None), doc="seed of batch order, augmentations and init")
    threads: int = param(0, range=(0, 256), doc="torch CPU threads (0 = leave as is)")

    def key(self, device_type: str | None = None) -> dict:
        """The settings that change the trained weights (cache key): not logging or threads.
        ``precision: auto`` enters as what it resolves to on ``device_type`` (the training device;
        default: the one ``device: auto`` picks), so the key names the precision actually used."""
        d = asdict(self)
        for k in ("checkpoint_every", "log_every", "threads"):
            d.pop(k)
        d["precision"] = resolve_precision(self.precision, device_type)
        return d


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    samples: int = 0
    seconds: float = 0.0


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> dict:
    """Optimiser state as safetensors tensors + a JSON description of the rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.detach().contiguous().cpu()
            else:
                scalars[f"{pid}.{k}"] = v
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return {"param_groups": [{k: v for k, v in g.items()} for g in sd["param_groups"]], "scalars": scalars}


def _load_optimizer(opt: torch.optim.Optimizer, path: Path, meta: dict) -> None:
    from paperlib.models import read_safetensors
    tensors = read_safetensors(path)
    state: dict = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    for key, v in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _save_terms(terms: nn.Module, path: Path) -> bool:
    """The loss terms' own state (e.g. RoCLIP's memory bank) as safetensors; False if they have none."""
    sd = {k: v.detach().contiguous().cpu() for k, v in terms.state_dict().items()}
    if not sd:
        return False
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(sd, str(tmp))
    os.replace(tmp, path)
    return True


def _save_checkpoint(work_dir: Path, model: nn.Module, opt, sched, state: TrainState,
                     terms: nn.Module | None = None) -> None:
    from paperlib.models import save_checkpoint
    save_checkpoint(model, work_dir / "last.safetensors")
    if terms is not None:
        _save_terms(terms, work_dir / "last_terms.safetensors")
    opt_meta = _save_optimizer(opt, work_dir / "last_optimizer.safetensors")
    meta = {"state": asdict(state), "optimizer": opt_meta, "scheduler": sched.state_dict()}
    tmp = work_dir / ".last.json.tmp"
    tmp.write_text(json.dumps(meta, default=str))
    os.replace(tmp, work_dir / "last.json")


def _try_resume(work_dir: Path, model: nn.Module, opt, sched, terms: nn.Module | None = None) -> TrainState | None:
    meta_path = work_dir / "last.json"
    if not meta_path.is_file():
        return None
    from paperlib.models import load_checkpoint, read_safetensors
    meta = json.loads(meta_path.read_text())
    load_checkpoint(model, work_dir / "last.safetensors")
    terms_path = work_dir / "last_terms.safetensors"
    if terms is not None and terms.state_dict():
        if not terms_path.is_file():
            raise FileNotFoundError(f"{terms_path}: the checkpoint in {work_dir} has no state of the loss "
                                    "terms (e.g. RoCLIP's memory bank); delete the folder to train anew")
        terms.load_state_dict(read_safetensors(terms_path))
    _load_optimizer(opt, work_dir / "last_optimizer.safetensors", meta["optimizer"])
    sched.load_state_dict(meta["scheduler"])
    return TrainState(**meta["state"])


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def train(model: nn.Module, pairs, cfg: TrainConfig, terms: Sequence[tuple[nn.Module, float]],
          work_dir: str | Path | None = None, device: str | torch.device = "cpu",
          transforms: Sequence[Callable] = (), callbacks: Sequence[Callable] = (),
          desc: str = "train") -> dict:
    """Train ``model`` in place; returns a summary (steps, samples, seconds, loss history).

    ``work_dir`` receives ``last*.safetensors`` checkpoints and ``history.jsonl``; if it already
    holds a checkpoint, training resumes from it.
    """
    from paperlib.progress import bar as progress_bar
    device = torch.device(device)
    rank, world_size, local_rank = _distributed()
    if world_size > 1:
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
    if device.type == "cuda":
        ieee_fp32_on_cuda()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    work_dir = Path(work_dir) if work_dir is not None else None
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)

    model.to(device)
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    objective = TrainingObjective(model, list(terms)).to(device)
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps)
    steps_per_epoch = pairs.steps_per_epoch(cfg.batch_size // world_size, world_size)
    if steps_per_epoch == 0:
        raise ValueError(f"{desc}: pair set of {len(pairs)} rows is smaller than one batch of "
                         f"{cfg.batch_size}; lower batch_size")
    total_steps = max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))
    sched = make_scheduler(opt, min(cfg.warmup_steps, total_steps // 2), total_steps)
    state = TrainState()
    if work_dir is not None:
        resumed = _try_resume(work_dir, model, opt, sched, objective.terms)
        if resumed is not None:
            state = resumed
            log.info("%s: resumed at step %d of %d", desc, state.step, total_steps)
    ddp_objective = objective
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel
        # A term that leaves a tower without gradient on some steps (RoCLIP's nearest-neighbour
        # epochs: the captions enter only through the detached bank) needs DDP told so.
        unused = any(getattr(t, "leaves_parameters_unused", False) for t in objective.terms)
        ddp_objective = DistributedDataParallel(objective, device_ids=[device] if device.type == "cuda" else None,
                                                find_unused_parameters=unused)

    amp = resolve_precision(cfg.precision, device.type) == "bf16"
    history_path = work_dir / "history.jsonl" if (work_dir is not None and rank == 0) else None
    bar = progress_bar(total=total_steps, initial=state.step, desc=desc, unit="step", disable=rank != 0,
               mininterval=5)
    model.train()
    t_last = time.time()
    recent: dict[str, float] = {}
    while state.step < total_steps:
        batches = pairs.epoch_batches(state.epoch, cfg.batch_size // world_size, cfg.seed,
                                      skip=state.step_in_epoch, rank=rank, world_size=world_size)
        for batch in batches:
            if state.step >= total_steps:
                break
            gen = torch.Generator().manual_seed(hash((cfg.seed, state.epoch, state.step_in_epoch, rank)) % (2 ** 63))
            batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            if device.type == "cpu":
                batch["images"] = batch["images"].contiguous(memory_format=torch.channels_last)
            for tf in transforms:
                batch = tf(batch, state.step, gen)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                losses = ddp_objective(batch, rank, world_size)
                total = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, LOGIT_SCALE_MAX)
            now = time.time()
            state.seconds += now - t_last
            t_last = now
            state.step += 1
            state.step_in_epoch += 1
            state.samples += cfg.batch_size
            for k, v in losses.items():
                recent[k] = 0.9 * recent.get(k, float(v.detach())) + 0.1 * float(v.detach())
            bar.update(1)
            if state.step % cfg.log_every == 0 or state.step == total_steps:
                rec = {"step": state.step, "epoch": state.epoch, "lr": sched.get_last_lr()[0],
                       "samples_per_s": state.samples / max(state.seconds, 1e-9),
                       **{f"loss_{k}": float(v.detach()) for k, v in losses.items()}}
                bar.set_postfix({k: f"{v:.3f}" for k, v in recent.items()})
                if history_path is not None:
                    with open(history_path, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
            if work_dir is not None and rank == 0 and state.step % cfg.checkpoint_every == 0:
                _save_checkpoint(work_dir, model, opt, sched, state, objective.terms)
        else:
            # the epoch ran out: next epoch
            state.epoch += 1
            state.step_in_epoch = 0
            for cb in callbacks:
                cb("epoch_end", {"epoch": state.epoch, "step": state.step, "model": model})
            continue
        break
    bar.close()
    if work_dir is not None and rank == 0:
        _save_checkpoint(work_dir, model, opt, sched, state, objective.terms)
    for cb in callbacks:
        cb("train_end", {"epoch": state.epoch, "step": state.step, "model": model})
    model.eval()
    return {"steps": state.step, "samples": state.samples, "seconds": state.seconds,
            "samples_per_second": state.samples / max(state.seconds, 1e-9),
            "final_losses": {k: float(v) for k, v in recent.items()}}
