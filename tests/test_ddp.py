"""The training loop under torchrun (DDP, gloo on the CPU): ranks stay in sync and learn."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_two_rank_ddp_training_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29531",
           str(HERE / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["hash"] == r1["hash"], "DDP ranks ended with different weights"
    assert r0["steps"] == 6 * (64 // 16)   # global batch 16 = 2 ranks x 8
    assert r0["loss"] < 0.8 * math.log(16)


@pytest.mark.slow
def test_two_rank_roclip_shares_one_memory_bank(tmp_path):
    """Under DDP every rank pushes the global batch's captions, so the ranks' banks are identical
    (a checkpoint written by rank 0 is right for all) and hold the whole bank size, not half."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29532",
           str(HERE / "ddp_worker.py"), str(tmp_path), "cpu", "roclip"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["hash"] == r1["hash"]
    assert r0["bank_rows"] == r1["bank_rows"] == 48
    assert r0["bank_hash"] == r1["bank_hash"], "the ranks' RoCLIP memory banks differ"


WORKER_CF = '''
import json, sys
import torch
import torch.distributed as dist
import torch.nn.functional as F
from paperlib.defences.cleanerclip import distributed_counterfactual_loss
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
sizes = [int(x) for x in sys.argv[2].split(",")]
g = torch.Generator().manual_seed(7)
full = [F.normalize(torch.randn(sum(sizes), 6, generator=g), dim=-1) for _ in range(3)]
start = sum(sizes[:rank])
v, p, n = (x[start:start + sizes[rank]] for x in full)
loss = distributed_counterfactual_loss(v, p, n, 0.07, 0.05, rank, world)
json.dump({"loss": loss.item()}, open(f"{sys.argv[1]}/cf{rank}.json", "w"))
dist.destroy_process_group()
'''


@pytest.mark.slow
@pytest.mark.parametrize("sizes", ["3,5", "4,0"])
def test_the_counterfactual_term_spans_the_global_batch_under_ddp(tmp_path, sizes):
    """L_cf under DDP, each rank holding a different number of sub-captioned rows (none on one):
    the mean of the ranks' losses (what DDP's gradient average differentiates) is Eq. 3 on the
    concatenated rows in one process."""
    import torch
    import torch.nn.functional as F

    from paperlib.defences.cleanerclip import counterfactual_loss
    worker = tmp_path / "cf_worker.py"
    worker.write_text(WORKER_CF)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(worker), str(tmp_path), sizes]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"cf{r}.json").read_text()) for r in (0, 1)]
    n_rows = [int(x) for x in sizes.split(",")]
    g = torch.Generator().manual_seed(7)
    v, p, n = (F.normalize(torch.randn(sum(n_rows), 6, generator=g), dim=-1) for _ in range(3))
    reference = counterfactual_loss(v, p, n, 0.07, 0.05).item()
    assert math.isclose(sum(r["loss"] for r in ranks) / 2, reference, rel_tol=1e-5)
    # a rank's own rows alone would give another loss (the term was local before)
    own = counterfactual_loss(v[:n_rows[0]], p[:n_rows[0]], n[:n_rows[0]], 0.07, 0.05).item()
    assert not math.isclose(ranks[0]["loss"], own, rel_tol=1e-3)
