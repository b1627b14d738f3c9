"""Run by tests/test_ddp.py (two CPU ranks, gloo) and tests/test_cuda.py (GPU ranks, NCCL) under
torchrun: the ranks train one tiny CLIP with DDP.  ``argv``: output folder [, device [, loss]],
loss ``clip`` (default) or ``roclip`` (also records a hash of RoCLIP's memory bank)."""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch

from paperlib.models import create_model, get_tokenizer
from paperlib.train.loop import TrainConfig, train
from paperlib.train.losses import ClipLossTerm
from paperlib.train.pairs import TensorPairs


def main(out: Path, device: str = "cpu", loss: str = "clip") -> None:
    import os
    rank = int(os.environ["RANK"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 64)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    images = np.repeat(np.repeat(palette[labels][:, None, None, :], 64, 1), 64, 2)
    names = ["red", "green", "blue", "yellow"]
    tokens = get_tokenizer("tiny-rn64")([f"a {names[l]} square" for l in labels]).numpy()
    model = create_model("tiny-rn64", seed=0)
    cfg = TrainConfig(epochs=6, batch_size=16, lr=1e-3, warmup_steps=2, log_every=1, threads=1)
    extra = {}
    if loss == "roclip":
        from paperlib.defences.roclip import RoCLIPConfig, RoCLIPTerm, record_step
        term = RoCLIPTerm(RoCLIPConfig(break_epoch=2, bank_size=48), steps_per_epoch=64 // 16)
        summary = train(model, TensorPairs(images, tokens), cfg, [(term, 1.0)], device=device,
                        transforms=[record_step])
        bank = term.bank.items.detach().cpu().contiguous()
        extra = {"bank_hash": hashlib.sha256(bank.numpy().tobytes()).hexdigest(), "bank_rows": len(bank)}
    else:
        summary = train(model, TensorPairs(images, tokens), cfg, [(ClipLossTerm(), 1.0)], device=device)
    flat = torch.cat([p.detach().flatten().cpu() for p in model.parameters()]).numpy().tobytes()
    (out / f"rank{rank}.json").write_text(json.dumps({
        "hash": hashlib.sha256(flat).hexdigest(), "steps": summary["steps"],
        "loss": summary["final_losses"][loss], **extra}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), *sys.argv[2:4])
